/* xmllib.c - dlopen() of libxml2 for the early registry; see xmllib.h. */
#include "config.h"

#define XMLLIB_NO_REDIRECT
#include "server/xmllib.h"

#include <dlfcn.h>
#include <stdbool.h>

struct xmllib xmllib;

int xmllib_open(struct vm_error *err)
{
	static bool opened;
	void *handle;

	if (opened)
		return 0;
	handle = dlopen(XMLLIB_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!handle)
		return vm_error_set(err, VM_FAILED_PRECONDITION,
				    "early VMs need libxml2 (%s), which cannot be loaded: %s", XMLLIB_SONAME,
				    dlerror());
#define XMLLIB_RESOLVE(f)                                                                                              \
	xmllib.f = (__typeof__(f) *)dlsym(handle, #f);                                                                 \
	if (!xmllib.f) {                                                                                               \
		dlclose(handle);                                                                                       \
		return vm_error_set(err, VM_FAILED_PRECONDITION, "%s lacks %s: too old a libxml2", XMLLIB_SONAME, #f); \
	}
	XMLLIB_FUNCTIONS(XMLLIB_RESOLVE)
#undef XMLLIB_RESOLVE
	/* Checks the loaded library against the headers compiled against (it
	 * warns on stderr when they differ in a way that matters). */
	xmllib.xmlCheckVersion(LIBXML_VERSION);
	opened = true;
	return 0;
}
