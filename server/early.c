/* early.c - early VM declarations, lookups, CID locks and run directories.
 *
 * Declarations live in <root>/<partition>/etc/avf/early_vms*.xml. Each file
 * goes through three gates:
 *   1. bytes: valid UTF-8 without NUL, at most EARLY_XML_MAX;
 *   2. XML: well-formed, no DOCTYPE (so no entities and no DTD loading: the
 *      parser runs without XML_PARSE_NOENT/DTDLOAD, with XML_PARSE_NONET and
 *      an external-entity loader that refuses everything), root <early_vms>;
 *   3. per entry: valid against early_vms.xsd, then the rules the schema
 *      cannot express: CID fits and lies in the partition's range, the path
 *      is canonical and on the partition; across entries: a name declared
 *      twice (in any of the partition's files) and a CID already used by an
 *      earlier entry make those entries unusable.
 * A file that fails gate 1 or 2 fails its whole partition: nothing in it
 * can be trusted. Gate 3 follows AVF's find_early_vm: an entry's problem
 * is logged once per load and fails only the lookups of its own name, so
 * one vendor typo does not stop every other early VM of the partition.
 * libxml2 reports through a structured error handler into the vm_error, so
 * messages read "<file>:<line>: early_vm \"<name>\": <what>" and nothing goes
 * to stderr. Tables are loaded on first use per partition and cached until
 * early_registry_reload() (SIGHUP).
 *
 * Who the caller is (its executable, read when it connected) is caller.c's;
 * here it is only mapped to a partition and its declarations.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/caller.h"
#include "server/early.h"
#include "server/xmllib.h"

#if LIBXML_VERSION >= 21200
#define EARLY_XML_ERROR const xmlError
#else
#define EARLY_XML_ERROR xmlError
#endif

static const struct {
	const char *name;
	uint32_t lo, hi;
} partitions[EARLY_PARTITION_COUNT] = {
	[EARLY_SYSTEM] = { "system", 100, 199 },   [EARLY_SYSTEM_EXT] = { "system_ext", 200, 299 },
	[EARLY_PRODUCT] = { "product", 200, 299 }, [EARLY_VENDOR] = { "vendor", 300, 399 },
	[EARLY_ODM] = { "odm", 300, 399 },
};

/* One <early_vm> as read: usable, or with the problem that makes it not.
 * An entry with several <name>s (a schema violation) appears once per name,
 * so that each of those names fails its lookup. */
struct early_entry {
	struct early_vm vm; /* name, file, line always; cid and path when usable */
	char *problem;	    /* NULL: usable; else "<file>:<line>: <entry>: <what>" */
	unsigned dup_of;    /* 1 + index of the first entry of this name, or 0 */
};

struct early_table {
	struct early_entry *e;
	size_t n, cap;
};

struct early_part_state {
	bool tried;	 /* files read at least once since the last reload */
	bool have_table; /* @table holds a successfully loaded set */
	bool failed;	 /* the last load failed with @load_err */
	struct early_table table;
	struct vm_error load_err;
};

struct early_registry {
	char *root; /* "" for the real root, no trailing slash */
	xmlSchemaPtr schema;
	struct early_part_state parts[EARLY_PARTITION_COUNT];
};

const char *early_partition_name(enum early_partition p)
{
	if ((unsigned)p >= EARLY_PARTITION_COUNT)
		return "?";
	return partitions[p].name;
}

int early_partition_lookup(const char *name, enum early_partition *out, struct vm_error *err)
{
	for (unsigned i = 0; i < EARLY_PARTITION_COUNT; i++) {
		if (strcmp(partitions[i].name, name) == 0) {
			*out = (enum early_partition)i;
			return 0;
		}
	}
	return vm_error_set(err, VM_PERMISSION_DENIED, "Early VMs are not supported for %s", name);
}

void early_partition_cid_range(enum early_partition p, uint32_t *lo, uint32_t *hi)
{
	*lo = partitions[p].lo;
	*hi = partitions[p].hi;
}

static void table_clear(struct early_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		early_vm_clear(&t->e[i].vm);
		free(t->e[i].problem);
	}
	free(t->e);
	t->e = NULL;
	t->n = t->cap = 0;
}

void early_vm_clear(struct early_vm *vm)
{
	free(vm->name);
	free(vm->path);
	free(vm->file);
	memset(vm, 0, sizeof(*vm));
}

static void early_vm_copy(struct early_vm *dst, const struct early_vm *src)
{
	dst->partition = src->partition;
	dst->name = xstrdup(src->name);
	dst->cid = src->cid;
	dst->path = xstrdup(src->path);
	dst->file = xstrdup(src->file);
	dst->line = src->line;
}

/* Copy @s into @buf for a message: at most 64 bytes, control bytes as '?'. */
static const char *printable(const char *s, char *buf, size_t size)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < size && i < 64; i++)
		buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	buf[i] = '\0';
	return buf;
}

/* ---- gate 1: bytes ---- */

/* Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF) and
 * no NUL. Return: 0, or -1 with the 1-based line of the first bad byte. */
static int check_utf8(const unsigned char *s, size_t len, unsigned *bad_line, size_t *bad_off)
{
	unsigned line = 1;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp, min;

		if (c == 0)
			goto bad;
		if (c < 0x80) {
			if (c == '\n')
				line++;
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			n = 2;
			cp = c & 0x1f;
			min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 3;
			cp = c & 0x0f;
			min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 4;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			goto bad;
		}
		if (len - i < n)
			goto bad;
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				goto bad;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			goto bad;
		i += n;
	}
	return 0;
bad:
	*bad_line = line;
	*bad_off = i;
	return -1;
}

/* ---- gate 2: XML ---- */

/* First error libxml2 reported, through the structured handler. */
struct xml_capture {
	bool have;
	unsigned count;
	int line;
	xmlNodePtr node;
	char message[320];
};

static void capture_error(void *ctx, EARLY_XML_ERROR *e)
{
	struct xml_capture *cap = ctx;
	size_t n;

	if (!e || e->level < XML_ERR_ERROR)
		return;
	cap->count++;
	if (cap->have)
		return;
	cap->have = true;
	cap->line = e->line;
	cap->node = e->node;
	snprintf(cap->message, sizeof(cap->message), "%s", e->message ? e->message : "unknown error");
	n = strlen(cap->message);
	while (n > 0 && (cap->message[n - 1] == '\n' || cap->message[n - 1] == ' '))
		cap->message[--n] = '\0';
}

struct doctype_seen {
	bool seen;
	int line;
};

/* SAX hook for <!DOCTYPE ...>: stop before any declaration is parsed. */
static void refuse_doctype(void *ctx, const xmlChar *name, const xmlChar *external_id, const xmlChar *system_id)
{
	xmlParserCtxtPtr ctxt = ctx;
	struct doctype_seen *seen = ctxt->_private;

	(void)name;
	(void)external_id;
	(void)system_id;
	seen->seen = true;
	seen->line = xmlSAX2GetLineNumber(ctxt);
	xmlStopParser(ctxt);
}

static xmlParserInputPtr refuse_entity(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
	(void)url;
	(void)id;
	(void)ctxt;
	return NULL;
}

static int child_count(xmlNodePtr parent, const char *name)
{
	int n = 0;

	for (xmlNodePtr c = parent->children; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
			n++;
	return n;
}

static xmlNodePtr child_element(xmlNodePtr parent, const char *name)
{
	for (xmlNodePtr c = parent->children; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
			return c;
	return NULL;
}

/* "early_vm \"name\"" or, without a usable name, "early_vm #index". */
static void entry_label(xmlNodePtr vm, char *buf, size_t size)
{
	xmlNodePtr name = child_element(vm, "name");
	char tmp[80];
	unsigned index = 1;

	if (name && child_count(vm, "name") == 1) {
		xmlChar *content = xmlNodeGetContent(name);

		if (content && content[0]) {
			snprintf(buf, size, "early_vm \"%s\"", printable((const char *)content, tmp, sizeof(tmp)));
			xmlFree(content);
			return;
		}
		xmlFree(content);
	}
	for (xmlNodePtr p = vm->prev; p; p = p->prev)
		if (p->type == XML_ELEMENT_NODE && strcmp((const char *)p->name, "early_vm") == 0)
			index++;
	snprintf(buf, size, "early_vm #%u", index);
}

static xmlNodePtr enclosing_vm(xmlNodePtr node)
{
	for (; node; node = node->parent)
		if (node->type == XML_ELEMENT_NODE && strcmp((const char *)node->name, "early_vm") == 0 &&
		    node->parent && node->parent->type == XML_ELEMENT_NODE &&
		    strcmp((const char *)node->parent->name, "early_vms") == 0)
			return node;
	return NULL;
}

static int entry_error(struct vm_error *err, const char *file, xmlNodePtr vm, int line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* "<file>:<line>: <entry>: <what>", FAILED_PRECONDITION. */
static int entry_error(struct vm_error *err, const char *file, xmlNodePtr vm, int line, const char *fmt, ...)
{
	char what[VM_ERROR_MSG_MAX];
	char label[100];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (vm) {
		entry_label(vm, label, sizeof(label));
		return vm_error_set(err, VM_FAILED_PRECONDITION, "%s:%d: %s: %s", file, line, label, what);
	}
	if (line > 0)
		return vm_error_set(err, VM_FAILED_PRECONDITION, "%s:%d: %s", file, line, what);
	return vm_error_set(err, VM_FAILED_PRECONDITION, "%s: %s", file, what);
}

static int capture_to_error(struct vm_error *err, const char *file, const struct xml_capture *cap, const char *what)
{
	xmlNodePtr vm = enclosing_vm(cap->node);
	int line = cap->line > 0 ? cap->line : (cap->node ? xmlGetLineNo(cap->node) : 0);

	if (!cap->have)
		return entry_error(err, file, NULL, 0, "%s", what);
	if (cap->count > 1)
		return entry_error(err, file, vm, line, "%s: %s (and %u more)", what, cap->message, cap->count - 1);
	return entry_error(err, file, vm, line, "%s: %s", what, cap->message);
}

/* Parse without DTD, entities or network. Return: the document or NULL. */
static xmlDocPtr parse_xml(const char *file, const char *data, size_t len, struct vm_error *err)
{
	struct xml_capture cap = { 0 };
	struct doctype_seen seen = { 0 };
	xmlStructuredErrorFunc old_handler = xmlStructuredError;
	void *old_ctx = xmlStructuredErrorContext;
	xmlExternalEntityLoader old_loader = xmlGetExternalEntityLoader();
	xmlParserCtxtPtr ctxt;
	xmlDocPtr doc;
	bool well_formed;

	if (len > INT_MAX)
		return entry_error(err, file, NULL, 0, "larger than %d bytes", EARLY_XML_MAX), NULL;
	ctxt = xmlNewParserCtxt();
	if (!ctxt)
		return vm_error_set(err, VM_INTERNAL, "%s: cannot create an XML parser", file), NULL;
	ctxt->_private = &seen;
	ctxt->sax->internalSubset = refuse_doctype;
	xmlSetStructuredErrorFunc(&cap, capture_error);
	xmlSetExternalEntityLoader(refuse_entity);
	doc = xmlCtxtReadMemory(ctxt, data, (int)len, file, NULL,
				XML_PARSE_NONET | XML_PARSE_NOWARNING | XML_PARSE_BIG_LINES);
	xmlSetExternalEntityLoader(old_loader);
	xmlSetStructuredErrorFunc(old_ctx, old_handler);
	well_formed = ctxt->wellFormed;
	xmlFreeParserCtxt(ctxt);

	if (seen.seen) {
		xmlFreeDoc(doc);
		entry_error(err, file, NULL, seen.line, "DOCTYPE declarations are not allowed");
		return NULL;
	}
	if (!doc || !well_formed) {
		xmlFreeDoc(doc);
		cap.node = NULL;
		capture_to_error(err, file, &cap, "not well-formed XML");
		return NULL;
	}
	if (doc->encoding && strcasecmp((const char *)doc->encoding, "UTF-8") != 0) {
		char tmp[80];

		entry_error(err, file, NULL, 1, "encoding \"%s\" declared, only UTF-8 is accepted",
			    printable((const char *)doc->encoding, tmp, sizeof(tmp)));
		xmlFreeDoc(doc);
		return NULL;
	}
	return doc;
}

/* Every error libxml2 reports while validating a document, in order. */
struct xml_errors {
	struct xml_capture *v;
	size_t n;
};

static void collect_error(void *ctx, EARLY_XML_ERROR *e)
{
	struct xml_errors *all = ctx;
	struct xml_capture *cap;

	if (!e || e->level < XML_ERR_ERROR || all->n >= 64)
		return;
	all->v = xrealloc(all->v, (all->n + 1) * sizeof(*all->v));
	cap = &all->v[all->n++];
	memset(cap, 0, sizeof(*cap));
	capture_error(cap, e);
}

/* Validate @doc against @schema; the errors go to @handler/@ctx.
 * Return: 0 valid, 1 invalid, -1 internal failure (@err). */
static int validate_doc(xmlSchemaPtr schema, const char *file, xmlDocPtr doc, xmlStructuredErrorFunc handler, void *ctx,
			struct vm_error *err)
{
	xmlStructuredErrorFunc old_handler = xmlStructuredError;
	void *old_ctx = xmlStructuredErrorContext;
	xmlSchemaValidCtxtPtr vctxt = xmlSchemaNewValidCtxt(schema);
	int rc;

	if (!vctxt)
		return vm_error_set(err, VM_INTERNAL, "%s: cannot create a schema validator", file);
	xmlSchemaSetValidStructuredErrors(vctxt, handler, ctx);
	xmlSetStructuredErrorFunc(ctx, handler);
	rc = xmlSchemaValidateDoc(vctxt, doc);
	xmlSetStructuredErrorFunc(old_ctx, old_handler);
	xmlSchemaFreeValidCtxt(vctxt);
	if (rc < 0)
		return vm_error_set(err, VM_INTERNAL, "%s: schema validation failed internally", file);
	return rc == 0 ? 0 : 1;
}

/*
 * One entry against the schema, on its own: a copy of @vm under a fresh
 * <early_vms>, so that an error elsewhere in the file cannot hide or cause
 * one here. Return: 0 valid, 1 invalid (@problem set), -1 internal (@err).
 */
static int validate_entry(xmlSchemaPtr schema, const char *file, xmlNodePtr vm, char **problem, struct vm_error *err)
{
	struct xml_capture cap = { 0 };
	struct vm_error e = { 0 };
	xmlDocPtr doc = xmlNewDoc((const xmlChar *)"1.0");
	xmlNodePtr root, copy;
	int rc;

	if (!doc)
		return vm_error_set(err, VM_INTERNAL, "%s: out of memory", file);
	root = xmlNewDocNode(doc, NULL, (const xmlChar *)"early_vms", NULL);
	copy = root ? xmlDocCopyNode(vm, doc, 1) : NULL;
	if (!copy) {
		xmlFreeNode(root);
		xmlFreeDoc(doc);
		return vm_error_set(err, VM_INTERNAL, "%s: out of memory", file);
	}
	xmlDocSetRootElement(doc, root);
	xmlAddChild(root, copy);
	rc = validate_doc(schema, file, doc, capture_error, &cap, err);
	if (rc == 1) {
		int line = cap.line > 0 ? cap.line : (int)xmlGetLineNo(vm);

		if (cap.count > 1)
			entry_error(&e, file, vm, line, "does not match early_vms.xsd: %s (and %u more)", cap.message,
				    cap.count - 1);
		else
			entry_error(&e, file, vm, line, "does not match early_vms.xsd: %s", cap.message);
		*problem = xstrdup(e.message);
	}
	xmlFreeDoc(doc);
	return rc;
}

/* ---- gate 3: rules ---- */

static bool xml_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The schema has already accepted @s as digits, possibly with whitespace. */
static int parse_cid(const char *s, uint32_t *out)
{
	uint64_t v = 0;

	while (xml_space(*s))
		s++;
	if (!(*s >= '0' && *s <= '9'))
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return -ERANGE;
	}
	while (xml_space(*s))
		s++;
	if (*s)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static bool path_is_canonical(const char *path)
{
	if (path[0] != '/')
		return false;
	for (const char *c = path + 1;;) {
		const char *end = strchrnul(c, '/');
		size_t n = (size_t)(end - c);

		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (!*end)
			return true;
		c = end + 1;
	}
}

static char *node_text(xmlNodePtr vm, const char *name)
{
	xmlNodePtr n = child_element(vm, name);
	xmlChar *content = n ? xmlNodeGetContent(n) : NULL;
	char *s = xstrdup(content ? (const char *)content : "");

	xmlFree(content);
	return s;
}

/* The rules a schema-valid entry must also pass. Return: NULL or the problem. */
static char *entry_rules(enum early_partition p, const char *file, xmlNodePtr vm, uint32_t *cid_out, char **path_out)
{
	const char *pname = partitions[p].name;
	int line = (int)xmlGetLineNo(vm);
	cleanup_free char *cid_text = node_text(vm, "cid");
	cleanup_free char *path = node_text(vm, "path");
	cleanup_free char *norm = NULL;
	enum early_partition path_part;
	struct vm_error e = { 0 };
	uint32_t cid = 0;
	char tmp[80];
	int rc;

	rc = parse_cid(cid_text, &cid);
	if (rc == -ERANGE)
		entry_error(&e, file, vm, line, "cid %s is too large", printable(cid_text, tmp, sizeof(tmp)));
	else if (rc < 0)
		entry_error(&e, file, vm, line, "cid \"%s\" is not a non-negative integer",
			    printable(cid_text, tmp, sizeof(tmp)));
	else if (cid < partitions[p].lo || cid > partitions[p].hi)
		entry_error(&e, file, vm, line, "cid %u is outside %s's range %u..%u", cid, pname, partitions[p].lo,
			    partitions[p].hi);
	else if (!path_is_canonical(path))
		entry_error(&e, file, vm, line, "path %s is not canonical (empty, . or .. component)", path);
	else if (early_normalize_path(path, &path_part, &norm, NULL) < 0 || path_part != p || strcmp(norm, path) != 0)
		entry_error(&e, file, vm, line, "path %s is not on partition %s (expected /%s/...)", path, pname,
			    pname);
	if (e.code != VM_OK)
		return xstrdup(e.message);
	*cid_out = cid;
	*path_out = steal_pointer(&path);
	return NULL;
}

static void table_add(struct early_table *t, enum early_partition p, const char *file, unsigned line, const char *name,
		      uint32_t cid, const char *path, const char *problem)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 8;
		t->e = xrealloc(t->e, t->cap * sizeof(*t->e));
	}
	t->e[t->n++] = (struct early_entry){
		.vm = {
			.partition = p,
			.name = xstrdup(name),
			.cid = problem ? 0 : cid,
			.path = xstrdup(problem || !path ? "" : path),
			.file = xstrdup(file),
			.line = line,
		},
		.problem = problem ? xstrdup(problem) : NULL,
	};
}

/*
 * Append the entries of @doc to @t (which holds the partition's earlier
 * files). An entry that breaks the schema or a rule is kept, with its
 * problem, under each name it gives: a lookup of that name fails, others
 * do not. What is not an entry at all (a stray element, text, an attribute
 * of <early_vms>) declares nothing: it is logged and otherwise ignored.
 * Return: 0, or -1 with @err for an internal failure.
 */
static int apply_rules(xmlSchemaPtr schema, enum early_partition p, const char *file, xmlDocPtr doc,
		       struct early_table *t, struct vm_error *err)
{
	xmlNodePtr root = xmlDocGetRootElement(doc);
	struct xml_errors all = { 0 };
	int valid;

	/* the whole file first: when it is valid (the usual case) no entry
	 * needs a check of its own, and what is wrong outside the entries is
	 * only seen here */
	valid = validate_doc(schema, file, doc, collect_error, &all, err);
	if (valid < 0) {
		free(all.v);
		return -1;
	}
	for (size_t i = 0; i < all.n; i++) {
		struct vm_error e = { 0 };

		if (enclosing_vm(all.v[i].node))
			continue;
		entry_error(&e, file, NULL, all.v[i].line, "does not match early_vms.xsd: %s (ignored)",
			    all.v[i].message);
		log_warn("early VMs: %s", e.message);
	}
	free(all.v);

	for (xmlNodePtr vm = root->children; vm; vm = vm->next) {
		cleanup_free char *problem = NULL;
		cleanup_free char *path = NULL;
		unsigned line, names = 0;
		uint32_t cid = 0;

		if (vm->type != XML_ELEMENT_NODE || vm->ns || strcmp((const char *)vm->name, "early_vm") != 0)
			continue;
		line = (unsigned)xmlGetLineNo(vm);
		if (valid == 1 && validate_entry(schema, file, vm, &problem, err) < 0)
			return -1;
		if (!problem)
			problem = entry_rules(p, file, vm, &cid, &path);
		for (xmlNodePtr n = vm->children; n; n = n->next) {
			xmlChar *content;

			if (n->type != XML_ELEMENT_NODE || strcmp((const char *)n->name, "name") != 0)
				continue;
			content = xmlNodeGetContent(n);
			if (content && content[0]) {
				table_add(t, p, file, line, (const char *)content, cid, path, problem);
				names++;
			}
			xmlFree(content);
		}
		if (!names) /* a problem no lookup can name; still logged */
			table_add(t, p, file, line, "", cid, path, problem ? problem : "no name");
	}
	return 0;
}

static const struct early_table *sort_table;

/* By name, then by position: the first declaration of a name comes first. */
static int by_name(const void *a, const void *b)
{
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	int c = strcmp(sort_table->e[i].vm.name, sort_table->e[j].vm.name);

	return c ? c : (i > j) - (i < j);
}

static int by_cid(const void *a, const void *b)
{
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	uint32_t x = sort_table->e[i].vm.cid, y = sort_table->e[j].vm.cid;

	return x != y ? (x > y) - (x < y) : (i > j) - (i < j);
}

static bool entry_usable(const struct early_entry *e)
{
	return !e->problem && !e->dup_of;
}

/*
 * Rules across the partition's entries, once all of its files are read:
 * a name declared twice makes every declaration of it unusable (which one
 * was meant cannot be told); a CID already used by an earlier usable entry
 * makes the later one unusable. Sorting keeps this O(n log n) for files as
 * large as EARLY_XML_MAX.
 */
static void table_finish(struct early_table *t)
{
	size_t *idx = xmalloc((t->n ? t->n : 1) * sizeof(*idx));
	size_t n = 0;

	sort_table = t;
	for (size_t i = 0; i < t->n; i++)
		if (t->e[i].vm.name[0])
			idx[n++] = i;
	qsort(idx, n, sizeof(*idx), by_name);
	for (size_t k = 1; k < n; k++) {
		struct early_entry *prev = &t->e[idx[k - 1]], *e = &t->e[idx[k]];

		if (strcmp(prev->vm.name, e->vm.name) == 0)
			e->dup_of = prev->dup_of ? prev->dup_of : (unsigned)idx[k - 1] + 1;
	}
	for (size_t k = 0; k < n; k++)
		if (t->e[idx[k]].dup_of)
			t->e[t->e[idx[k]].dup_of - 1].dup_of = t->e[idx[k]].dup_of;

	n = 0;
	for (size_t i = 0; i < t->n; i++)
		if (entry_usable(&t->e[i]))
			idx[n++] = i;
	qsort(idx, n, sizeof(*idx), by_cid);
	for (size_t k = 1, first = 0; k < n; k++) {
		struct early_entry *owner = &t->e[idx[first]], *e = &t->e[idx[k]];
		char msg[VM_ERROR_MSG_MAX];

		if (owner->vm.cid != e->vm.cid) {
			first = k;
			continue;
		}
		snprintf(msg, sizeof(msg), "%s:%u: early_vm \"%s\": cid %u is already used by early_vm \"%s\" at %s:%u",
			 e->vm.file, e->vm.line, e->vm.name, e->vm.cid, owner->vm.name, owner->vm.file, owner->vm.line);
		e->problem = xstrdup(msg);
	}
	sort_table = NULL;
	free(idx);
}

/* The message a lookup of the second declaration of a name gets. */
static void dup_error(const struct early_table *t, const struct early_entry *second, struct vm_error *err)
{
	const struct early_vm *first = &t->e[second->dup_of - 1].vm;

	vm_error_set(err, VM_FAILED_PRECONDITION, "%s:%u: early_vm \"%s\": duplicate name, first declared at %s:%u",
		     second->vm.file, second->vm.line, second->vm.name, first->file, first->line);
}

/* Log, once per load, every entry no lookup will find usable. */
static void table_log_problems(const struct early_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct early_entry *e = &t->e[i];
		struct vm_error err = { 0 };

		if (e->problem) {
			/* an entry with several names is one problem */
			if (i > 0 && t->e[i - 1].problem && strcmp(t->e[i - 1].problem, e->problem) == 0)
				continue;
			log_warn("early VMs: %s", e->problem);
		} else if (e->dup_of && e->dup_of - 1 != i) {
			dup_error(t, e, &err);
			log_warn("early VMs: %s", err.message);
		}
	}
}

static size_t table_usable(const struct early_table *t)
{
	size_t n = 0;

	for (size_t i = 0; i < t->n; i++)
		n += entry_usable(&t->e[i]);
	return n;
}

/* All three gates for one file; entries are appended to @t. */
static int parse_buffer(struct early_registry *reg, enum early_partition p, const char *file, const char *data,
			size_t len, struct early_table *t, struct vm_error *err)
{
	xmlDocPtr doc;
	xmlNodePtr root;
	unsigned bad_line;
	size_t bad_off;
	int rc;

	if (len > EARLY_XML_MAX)
		return entry_error(err, file, NULL, 0, "larger than %d bytes", EARLY_XML_MAX);
	if (check_utf8((const unsigned char *)data, len, &bad_line, &bad_off) < 0)
		return entry_error(err, file, NULL, (int)bad_line, "not valid UTF-8 (byte 0x%02x at offset %zu)",
				   (unsigned char)data[bad_off], bad_off);
	doc = parse_xml(file, data, len, err);
	if (!doc)
		return -1;
	root = xmlDocGetRootElement(doc);
	if (root && root->ns && strcmp((const char *)root->name, "early_vms") == 0) {
		char tmp[80];

		rc = entry_error(err, file, NULL, xmlGetLineNo(root),
				 "root element <early_vms> is in namespace \"%s\", expected no namespace",
				 printable(root->ns->href ? (const char *)root->ns->href : "", tmp, sizeof(tmp)));
		xmlFreeDoc(doc);
		return rc;
	}
	if (!root || strcmp((const char *)root->name, "early_vms") != 0) {
		char tmp[80];

		rc = entry_error(err, file, NULL, root ? xmlGetLineNo(root) : 0,
				 "root element is <%s>, expected <early_vms>",
				 root ? printable((const char *)root->name, tmp, sizeof(tmp)) : "");
		xmlFreeDoc(doc);
		return rc;
	}
	rc = apply_rules(reg->schema, p, file, doc, t, err);
	xmlFreeDoc(doc);
	return rc;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Read every early_vms*.xml of @p, sorted by name, into @t. */
static int load_partition_files(struct early_registry *reg, enum early_partition p, struct early_table *t,
				struct vm_error *err)
{
	cleanup_free char *dir_path = xasprintf("%s/%s/etc/avf", reg->root, partitions[p].name);
	char **names = NULL;
	size_t n = 0;
	DIR *dir;
	int rc = 0;

	dir = opendir(dir_path);
	if (!dir) {
		if (errno == ENOENT)
			return 0;
		return vm_error_set_errno(err, VM_FAILED_PRECONDITION, errno, "cannot read %s", dir_path);
	}
	for (;;) {
		struct dirent *de;

		errno = 0;
		de = readdir(dir);
		if (!de)
			break;
		if (fnmatch("early_vms*.xml", de->d_name, FNM_PERIOD) != 0)
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xasprintf("%s/%s", dir_path, de->d_name);
	}
	if (errno) {
		rc = vm_error_set_errno(err, VM_FAILED_PRECONDITION, errno, "cannot read %s", dir_path);
		goto out;
	}
	qsort(names, n, sizeof(*names), name_cmp);

	for (size_t i = 0; i < n; i++) {
		cleanup_free char *data = NULL;
		struct stat st;
		size_t len;

		if (stat(names[i], &st) < 0) {
			rc = vm_error_set_errno(err, VM_FAILED_PRECONDITION, errno, "cannot read %s", names[i]);
			goto out;
		}
		if (!S_ISREG(st.st_mode)) {
			rc = vm_error_set(err, VM_FAILED_PRECONDITION, "%s: not a regular file", names[i]);
			goto out;
		}
		if (read_file(names[i], EARLY_XML_MAX, &data, &len, err) < 0) {
			err->code = VM_FAILED_PRECONDITION;
			rc = -1;
			goto out;
		}
		rc = parse_buffer(reg, p, names[i], data, len, t, err);
		if (rc < 0)
			goto out;
	}
out:
	closedir(dir);
	free_names(names, n);
	return rc;
}

/* Apply the cross-entry rules, log what is unusable, and make @t current. */
static void install_table(struct early_part_state *ps, struct early_table *t)
{
	table_finish(t);
	table_log_problems(t);
	table_clear(&ps->table);
	ps->table = *t;
	*t = (struct early_table){ 0 };
	ps->have_table = true;
	ps->failed = false;
	ps->tried = true;
}

static int registry_read(struct early_registry *reg, enum early_partition p, struct vm_error *err)
{
	struct early_part_state *ps = &reg->parts[p];
	struct early_table t = { 0 };

	if (load_partition_files(reg, p, &t, &ps->load_err) < 0) {
		table_clear(&t);
		ps->tried = true;
		ps->failed = true;
		if (err)
			*err = ps->load_err;
		return -1;
	}
	install_table(ps, &t);
	return 0;
}

int early_registry_load(struct early_registry *reg, enum early_partition p, struct vm_error *err)
{
	struct early_part_state *ps = &reg->parts[p];

	if (!ps->tried)
		return registry_read(reg, p, err);
	if (ps->failed) {
		if (err)
			*err = ps->load_err;
		return -1;
	}
	return 0;
}

int early_registry_reload(struct early_registry *reg, struct vm_error *err)
{
	int failed = 0;

	for (unsigned i = 0; i < EARLY_PARTITION_COUNT; i++) {
		struct vm_error e = { 0 };

		if (registry_read(reg, (enum early_partition)i, &e) == 0)
			continue;
		log_warn("early VMs of %s not (re)loaded: %s", partitions[i].name, e.message);
		if (failed++ == 0 && err)
			*err = e;
	}
	return -failed;
}

int early_registry_load_buffer(struct early_registry *reg, enum early_partition p, const char *file, const void *data,
			       size_t len, struct vm_error *err)
{
	struct early_table t = { 0 };
	int n;

	if ((unsigned)p >= EARLY_PARTITION_COUNT)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "unknown partition %d", (int)p);
	if (parse_buffer(reg, p, file, data, len, &t, err) < 0) {
		table_clear(&t);
		return -1;
	}
	install_table(&reg->parts[p], &t);
	n = (int)table_usable(&reg->parts[p].table);
	return n;
}

int early_registry_count(struct early_registry *reg, enum early_partition p, struct vm_error *err)
{
	if (early_registry_load(reg, p, err) < 0 && !reg->parts[p].have_table)
		return -1;
	return (int)table_usable(&reg->parts[p].table);
}

int early_registry_new(const char *root, const char *xsd_path, struct early_registry **out, struct vm_error *err)
{
	struct early_registry *reg;
	struct xml_capture cap = { 0 };
	xmlSchemaParserCtxtPtr pctxt;
	size_t n;

	if (!xsd_path)
		xsd_path = EARLY_XSD_DEFAULT;
	if (access(xsd_path, R_OK) < 0)
		return vm_error_set_errno(err, VM_FAILED_PRECONDITION, errno, "cannot read schema %s", xsd_path);
	if (xmllib_open(err) < 0)
		return -1;
	pctxt = xmlSchemaNewParserCtxt(xsd_path);
	if (!pctxt)
		return vm_error_set(err, VM_INTERNAL, "cannot create a schema parser for %s", xsd_path);
	xmlSchemaSetParserStructuredErrors(pctxt, capture_error, &cap);
	{
		xmlStructuredErrorFunc old_handler = xmlStructuredError;
		void *old_ctx = xmlStructuredErrorContext;
		xmlSchemaPtr schema;

		xmlSetStructuredErrorFunc(&cap, capture_error);
		schema = xmlSchemaParse(pctxt);
		xmlSetStructuredErrorFunc(old_ctx, old_handler);
		xmlSchemaFreeParserCtxt(pctxt);
		if (!schema) {
			if (cap.have)
				return vm_error_set(err, VM_FAILED_PRECONDITION, "schema %s:%d: %s", xsd_path, cap.line,
						    cap.message);
			return vm_error_set(err, VM_FAILED_PRECONDITION, "schema %s cannot be loaded", xsd_path);
		}
		reg = xzalloc(sizeof(*reg));
		reg->schema = schema;
	}
	reg->root = xstrdup(root ? root : "");
	n = strlen(reg->root);
	while (n > 0 && reg->root[n - 1] == '/')
		reg->root[--n] = '\0';
	*out = reg;
	return 0;
}

void early_registry_free(struct early_registry *reg)
{
	if (!reg)
		return;
	for (unsigned i = 0; i < EARLY_PARTITION_COUNT; i++)
		table_clear(&reg->parts[i].table);
	xmlSchemaFree(reg->schema);
	free(reg->root);
	free(reg);
}

/* ---- callers ---- */

int early_normalize_path(const char *path, enum early_partition *part, char **norm, struct vm_error *err)
{
	static const char *const under_system[] = { "system_ext", "product", "vendor", "odm" };
	cleanup_free char *first = NULL;
	const char *p = path;
	const char *end;

	if (path[0] != '/')
		return vm_error_set(err, VM_PERMISSION_DENIED, "executable path %s is not absolute", path);
	if (strncmp(p, "/system/", 8) == 0) {
		for (size_t i = 0; i < ARRAY_SIZE(under_system); i++) {
			size_t n = strlen(under_system[i]);

			if (strncmp(p + 8, under_system[i], n) == 0 && (p[8 + n] == '/' || !p[8 + n])) {
				p += 7;
				break;
			}
		}
	}
	end = strchrnul(p + 1, '/');
	first = xstrndup(p + 1, (size_t)(end - (p + 1)));
	if (!*end)
		return vm_error_set(err, VM_PERMISSION_DENIED, "executable %s is not on a partition", path);
	if (early_partition_lookup(first, part, err) < 0)
		return -1;
	if (norm)
		*norm = xstrdup(p);
	return 0;
}

int early_find_vm(struct early_registry *reg, const char *caller_path, const char *vm_name, struct early_vm *out,
		  struct vm_error *err)
{
	cleanup_free char *norm = NULL;
	struct early_part_state *ps;
	const struct early_entry *found = NULL;
	enum early_partition p;
	char tmp[80];

	if (early_normalize_path(caller_path, &p, &norm, err) < 0)
		return -1;
	ps = &reg->parts[p];
	if (early_registry_load(reg, p, err) < 0 && !ps->have_table)
		return -1;
	/* only the entries of this name count (AVF's find_early_vm) */
	for (size_t i = 0; i < ps->table.n; i++) {
		const struct early_entry *e = &ps->table.e[i];

		if (!vm_name[0] || strcmp(e->vm.name, vm_name) != 0)
			continue;
		if (e->dup_of && e->dup_of - 1 != i) {
			dup_error(&ps->table, e, err);
			return -1;
		}
		if (!found)
			found = e;
	}
	if (!found)
		return vm_error_set(err, VM_NOT_FOUND, "no early VM \"%s\" is declared for partition %s",
				    printable(vm_name, tmp, sizeof(tmp)), partitions[p].name);
	if (found->problem)
		return vm_error_set(err, VM_FAILED_PRECONDITION, "%s", found->problem);
	if (strcmp(found->vm.path, norm) != 0)
		return vm_error_set(err, VM_PERMISSION_DENIED,
				    "early VM \"%s\" in partition %s must be created by %s, not %s", found->vm.name,
				    partitions[p].name, found->vm.path, norm);
	early_vm_copy(out, &found->vm);
	return 0;
}

int early_caller_exe(const struct caller *c, const char *proc_dir, char **out, struct vm_error *err)
{
	enum early_partition p;
	const char *exe;

	if (caller_exe_check(c, proc_dir, &exe, err) < 0)
		return -1;
	return early_normalize_path(exe, &p, out, err);
}

int early_caller_path_pidfd(const char *root, const char *proc_dir, pid_t pid, int pidfd, char **out,
			    struct vm_error *err)
{
	const struct caller *c = caller_next_of_pid(NULL, pid);
	cleanup_free char *first = NULL;

	/* the root was applied when the caller connected */
	(void)root;
	(void)pidfd;
	if (!c)
		return vm_error_set(err, VM_PERMISSION_DENIED, "caller pid %d was not identified when it connected",
				    (int)pid);
	/* Without the connection, every connection of the process must still
	 * run the file it connected with: one opened before an execve() and
	 * used after it is refused even if another was opened after it. */
	for (; c; c = caller_next_of_pid(c, pid)) {
		cleanup_free char *path = NULL;

		if (early_caller_exe(c, proc_dir, &path, err) < 0)
			return -1;
		if (first && strcmp(first, path) != 0)
			return vm_error_set(err, VM_PERMISSION_DENIED, "caller pid %d connected as both %s and %s",
					    (int)pid, first, path);
		if (!first)
			first = steal_pointer(&path);
	}
	*out = steal_pointer(&first);
	return 0;
}

/* ---- config and run directory ---- */

int early_check_config(const char *vendor_modules, char *const *assigned_devices, size_t n_assigned_devices,
		       struct vm_error *err)
{
	char tmp[80];

	if (vendor_modules && vendor_modules[0])
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "vendor_modules is not allowed for early VMs (got \"%s\")",
				    printable(vendor_modules, tmp, sizeof(tmp)));
	if (n_assigned_devices > 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "assigned_devices is not allowed for early VMs (got %zu, first \"%s\")",
				    n_assigned_devices,
				    printable(assigned_devices[0] ? assigned_devices[0] : "", tmp, sizeof(tmp)));
	return 0;
}

char *early_run_dir(const char *root, uint32_t cid)
{
	const char *r = root ? root : "";
	size_t n = strlen(r);

	while (n > 0 && r[n - 1] == '/')
		n--;
	return xasprintf("%.*s/mnt/vm/early/%u", (int)n, r, cid);
}

/*
 * Another early daemon (one per client in spawn mode) knows nothing of this
 * daemon's VMs, so before a run directory is wiped, look for a process that
 * still serves it: QEMU listens on its QMP socket there, the vsock backend
 * on its vhost-user socket. A socket that accepts a connection (or refuses
 * it only because its backlog is full, or because it is of another type) is
 * alive; ECONNREFUSED means whoever bound it is gone. Non-blocking: a
 * listener never has to accept() for connect() to succeed.
 * Return: 1 with @live set (newly allocated) when one is alive, else 0.
 */
static int run_dir_live_socket(const char *dir, char **live)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int found = 0;

	if (!d)
		return 0;
	while (!found && (de = readdir(d))) {
		struct sockaddr_un addr = { .sun_family = AF_UNIX };
		cleanup_close int fd = -1;
		struct stat st;
		int n;

		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISSOCK(st.st_mode))
			continue;
		n = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", dir, de->d_name);
		if (n < 0 || (size_t)n >= sizeof(addr.sun_path))
			continue;
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			continue;
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 || errno == EAGAIN ||
		    errno == EPROTOTYPE) {
			*live = xstrdup(addr.sun_path);
			found = 1;
		}
	}
	closedir(d);
	return found;
}

/*
 * CID locks. Two early daemons (one per client in spawn mode) know nothing
 * of each other's VMs, and the live-socket check above only sees a VM once
 * its QEMU listens. An flock() on <root>/mnt/vm/early/<cid>.lock, taken
 * before the run directory is touched and held while the VM lives, closes
 * that window: the kernel drops it when the holder closes it or dies, so a
 * crashed daemon never leaves a CID locked. The lock files stay (removing
 * one would let two processes lock two different files of the same name).
 */
char *early_cid_lock_path(const char *root, uint32_t cid)
{
	cleanup_free char *dir = early_run_dir(root, cid);

	return xasprintf("%s.lock", dir);
}

int early_cid_lock(const char *root, uint32_t cid, struct vm_error *err)
{
	cleanup_free char *path = early_cid_lock_path(root, cid);
	cleanup_free char *parent = xstrdup(path);
	int fd, rc;

	*strrchr(parent, '/') = '\0';
	rc = mkdir_p(parent, 0755);
	if (rc < 0)
		return vm_error_set_errno(err, VM_INTERNAL, -rc, "cannot create %s", parent);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return vm_error_set_errno(err, VM_INTERNAL, errno, "cannot open %s", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		close(fd);
		if (e == EWOULDBLOCK)
			return vm_error_set(err, VM_ALREADY_EXISTS,
					    "cid %u is in use by a VM of another early daemon (%s is locked)", cid,
					    path);
		return vm_error_set_errno(err, VM_INTERNAL, e, "cannot lock %s", path);
	}
	return fd;
}

void early_cid_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* The CID locks early_run_dir_prepare() took, until early_run_dir_remove(). */
struct held_lock {
	char *path;
	int fd;
	struct held_lock *next;
};

static struct held_lock *held_locks;

static struct held_lock **held_find(const char *path)
{
	struct held_lock **pp;

	for (pp = &held_locks; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->path, path) == 0)
			break;
	return pp;
}

static void held_release(const char *root, uint32_t cid)
{
	cleanup_free char *path = early_cid_lock_path(root, cid);
	struct held_lock **pp = held_find(path);
	struct held_lock *h = *pp;

	if (!h)
		return;
	*pp = h->next;
	early_cid_unlock(h->fd);
	free(h->path);
	free(h);
}

int early_run_dir_prepare(const char *root, uint32_t cid, char **out, struct vm_error *err)
{
	cleanup_free char *dir = early_run_dir(root, cid);
	cleanup_free char *parent = xstrdup(dir);
	cleanup_free char *live = NULL;
	cleanup_free char *lock_path = early_cid_lock_path(root, cid);
	bool locked_now = false;
	int rc;

	*strrchr(parent, '/') = '\0';
	/* this daemon may hold the lock already, from a VM of this CID that
	 * has died since (its caller checked that no live VM has the CID) */
	if (!*held_find(lock_path)) {
		struct held_lock *h;
		int fd = early_cid_lock(root, cid, err);

		if (fd < 0)
			return -1;
		h = xzalloc(sizeof(*h));
		h->path = steal_pointer(&lock_path);
		h->fd = fd;
		h->next = held_locks;
		held_locks = h;
		locked_now = true;
	}
	if (run_dir_live_socket(dir, &live)) {
		rc = vm_error_set(err, VM_ALREADY_EXISTS,
				  "cid %u is in use by a VM of another early daemon (%s is live)", cid, live);
		goto fail;
	}
	rc = remove_tree(dir);
	if (rc < 0 && rc != -ENOENT && rc != -ENOTDIR) {
		rc = vm_error_set_errno(err, VM_INTERNAL, -rc, "cannot remove %s", dir);
		goto fail;
	}
	rc = mkdir_p(parent, 0755);
	if (rc < 0) {
		rc = vm_error_set_errno(err, VM_INTERNAL, -rc, "cannot create %s", parent);
		goto fail;
	}
	if (mkdir(dir, 0700) < 0) {
		rc = vm_error_set_errno(err, VM_INTERNAL, errno, "cannot create %s", dir);
		goto fail;
	}
	/* mkdir() honours the umask; make the mode exact. */
	if (chmod(dir, 0700) < 0) {
		rc = vm_error_set_errno(err, VM_INTERNAL, errno, "cannot chmod %s", dir);
		goto fail;
	}
	if (out)
		*out = steal_pointer(&dir);
	return 0;
fail:
	if (locked_now)
		held_release(root, cid);
	return rc;
}

int early_run_dir_remove(const char *root, uint32_t cid, struct vm_error *err)
{
	cleanup_free char *dir = early_run_dir(root, cid);
	int rc = remove_tree(dir);

	/* the directory is gone (or no longer ours to keep): the CID is free */
	held_release(root, cid);
	if (rc < 0 && rc != -ENOENT && rc != -ENOTDIR)
		return vm_error_set_errno(err, VM_INTERNAL, -rc, "cannot remove %s", dir);
	return 0;
}
