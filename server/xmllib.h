/* xmllib.h - libxml2, opened when first needed.
 *
 * Only `virtmgrd --early` reads XML (the early-VM declarations), yet linking
 * libxml2 maps it and ICU, libstdc++, liblzma and zlib into every daemon:
 * about 2 MiB of an idle regular daemon's RSS. So virtmgrd does not link it;
 * xmllib_open() dlopen()s it the first time the early registry is created,
 * and the libxml2 functions server/early.c calls are redirected by the
 * macros below to pointers filled by dlsym(). Code using them includes this
 * header after (or instead of) the libxml2 headers and reads as plain
 * libxml2 calls; calling one before xmllib_open() succeeded is a bug.
 */
#ifndef VIRTMGR_SERVER_XMLLIB_H
#define VIRTMGR_SERVER_XMLLIB_H

#include <libxml/SAX2.h>
#include <libxml/globals.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlschemas.h>

#include "lib/util.h"

/* The shared object opened; libxml2's soname has been .so.2 since 2.0. */
#define XMLLIB_SONAME "libxml2.so.2"

/* Every libxml2 function the daemon calls, and xmlFree, a variable holding
 * one (its dlsym() address is then a pointer to that variable). */
#define XMLLIB_FUNCTIONS(X)                   \
	X(xmlCheckVersion)                    \
	X(xmlAddChild)                        \
	X(xmlCtxtReadMemory)                  \
	X(xmlDocCopyNode)                     \
	X(xmlDocGetRootElement)               \
	X(xmlDocSetRootElement)               \
	X(xmlFreeDoc)                         \
	X(xmlFreeNode)                        \
	X(xmlFreeParserCtxt)                  \
	X(xmlGetExternalEntityLoader)         \
	X(xmlGetLineNo)                       \
	X(xmlNewDoc)                          \
	X(xmlNewDocNode)                      \
	X(xmlNewParserCtxt)                   \
	X(xmlNodeGetContent)                  \
	X(xmlSAX2GetLineNumber)               \
	X(xmlSchemaFree)                      \
	X(xmlSchemaFreeParserCtxt)            \
	X(xmlSchemaFreeValidCtxt)             \
	X(xmlSchemaNewParserCtxt)             \
	X(xmlSchemaNewValidCtxt)              \
	X(xmlSchemaParse)                     \
	X(xmlSchemaSetParserStructuredErrors) \
	X(xmlSchemaSetValidStructuredErrors)  \
	X(xmlSchemaValidateDoc)               \
	X(xmlSetExternalEntityLoader)         \
	X(xmlSetStructuredErrorFunc)          \
	X(xmlStopParser)                      \
	X(xmlFree)                            \
	X(__xmlStructuredError)               \
	X(__xmlStructuredErrorContext)

struct xmllib {
#define XMLLIB_POINTER(f) __typeof__(f) *f;
	XMLLIB_FUNCTIONS(XMLLIB_POINTER)
#undef XMLLIB_POINTER
};

extern struct xmllib xmllib;

/**
 * xmllib_open() - load libxml2 and resolve every function the daemon uses
 * @err: filled on failure (FAILED_PRECONDITION naming the library or symbol)
 *
 * Idempotent; the library stays loaded until exit.
 *
 * Return: 0, or -1 with @err set.
 */
int xmllib_open(struct vm_error *err);

#ifndef XMLLIB_NO_REDIRECT
/* libxml2's own macros (xmlStructuredError, LIBXML_TEST_VERSION...) expand
 * to the names below, so they are covered too. */
#define xmlCheckVersion (*xmllib.xmlCheckVersion)
#define xmlAddChild (*xmllib.xmlAddChild)
#define xmlCtxtReadMemory (*xmllib.xmlCtxtReadMemory)
#define xmlDocCopyNode (*xmllib.xmlDocCopyNode)
#define xmlDocGetRootElement (*xmllib.xmlDocGetRootElement)
#define xmlDocSetRootElement (*xmllib.xmlDocSetRootElement)
#define xmlFreeDoc (*xmllib.xmlFreeDoc)
#define xmlFreeNode (*xmllib.xmlFreeNode)
#define xmlFreeParserCtxt (*xmllib.xmlFreeParserCtxt)
#define xmlGetExternalEntityLoader (*xmllib.xmlGetExternalEntityLoader)
#define xmlGetLineNo (*xmllib.xmlGetLineNo)
#define xmlNewDoc (*xmllib.xmlNewDoc)
#define xmlNewDocNode (*xmllib.xmlNewDocNode)
#define xmlNewParserCtxt (*xmllib.xmlNewParserCtxt)
#define xmlNodeGetContent (*xmllib.xmlNodeGetContent)
#define xmlSAX2GetLineNumber (*xmllib.xmlSAX2GetLineNumber)
#define xmlSchemaFree (*xmllib.xmlSchemaFree)
#define xmlSchemaFreeParserCtxt (*xmllib.xmlSchemaFreeParserCtxt)
#define xmlSchemaFreeValidCtxt (*xmllib.xmlSchemaFreeValidCtxt)
#define xmlSchemaNewParserCtxt (*xmllib.xmlSchemaNewParserCtxt)
#define xmlSchemaNewValidCtxt (*xmllib.xmlSchemaNewValidCtxt)
#define xmlSchemaParse (*xmllib.xmlSchemaParse)
#define xmlSchemaSetParserStructuredErrors (*xmllib.xmlSchemaSetParserStructuredErrors)
#define xmlSchemaSetValidStructuredErrors (*xmllib.xmlSchemaSetValidStructuredErrors)
#define xmlSchemaValidateDoc (*xmllib.xmlSchemaValidateDoc)
#define xmlSetExternalEntityLoader (*xmllib.xmlSetExternalEntityLoader)
#define xmlSetStructuredErrorFunc (*xmllib.xmlSetStructuredErrorFunc)
#define xmlStopParser (*xmllib.xmlStopParser)
#undef xmlFree
#define xmlFree (*xmllib.xmlFree)
#define __xmlStructuredError (*xmllib.__xmlStructuredError)
#define __xmlStructuredErrorContext (*xmllib.__xmlStructuredErrorContext)
#endif

#endif
