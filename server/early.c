/* early.c - early VM declarations, caller identity and run directories.
 *
 * Declarations live in <root>/<partition>/etc/avf/early_vms*.xml. Each file
 * goes through three gates, and a partition's table is replaced only when
 * every one of its files passes all of them:
 *   1. bytes: valid UTF-8 without NUL, at most EARLY_XML_MAX;
 *   2. XML: well-formed, no DOCTYPE (so no entities and no DTD loading: the
 *      parser runs without XML_PARSE_NOENT/DTDLOAD, with XML_PARSE_NONET and
 *      an external-entity loader that refuses everything), root <early_vms>,
 *      valid against early_vms.xsd;
 *   3. rules the schema cannot express: CID fits and lies in the partition's
 *      range, the path is canonical and on the partition, names and CIDs are
 *      unique across the partition's files.
 * libxml2 reports through a structured error handler into the vm_error, so
 * messages read "<file>:<line>: early_vm \"<name>\": <what>" and nothing goes
 * to stderr. Tables are loaded on first use per partition and cached until
 * early_registry_reload() (SIGHUP).
 *
 * The caller is identified by the executable of its process; the pid comes
 * from SO_PEERCRED (or SO_PEERPIDFD), and a pidfd taken at connect time
 * proves after the readlink of /proc/<pid>/exe that the pid still names the
 * same process (see early_caller_path_pidfd()).
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/early.h"
#include "server/xmllib.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

#if LIBXML_VERSION >= 21200
#define EARLY_XML_ERROR const xmlError
#else
#define EARLY_XML_ERROR xmlError
#endif

static const struct {
	const char *name;
	uint32_t lo, hi;
} partitions[EARLY_PARTITION_COUNT] = {
	[EARLY_SYSTEM] = { "system", 100, 199 },
	[EARLY_SYSTEM_EXT] = { "system_ext", 200, 299 },
	[EARLY_PRODUCT] = { "product", 200, 299 },
	[EARLY_VENDOR] = { "vendor", 300, 399 },
	[EARLY_ODM] = { "odm", 300, 399 },
};

struct early_table {
	struct early_vm *vms;
	size_t n;
};

struct early_part_state {
	bool tried;              /* files read at least once since the last reload */
	bool have_table;         /* @table holds a successfully loaded set */
	bool failed;             /* the last load failed with @load_err */
	struct early_table table;
	struct vm_error load_err;
};

struct early_registry {
	char *root;              /* "" for the real root, no trailing slash */
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
	for (size_t i = 0; i < t->n; i++)
		early_vm_clear(&t->vms[i]);
	free(t->vms);
	t->vms = NULL;
	t->n = 0;
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
static void refuse_doctype(void *ctx, const xmlChar *name, const xmlChar *external_id,
			   const xmlChar *system_id)
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

static int entry_error(struct vm_error *err, const char *file, xmlNodePtr vm, int line,
		       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* "<file>:<line>: <entry>: <what>", FAILED_PRECONDITION. */
static int entry_error(struct vm_error *err, const char *file, xmlNodePtr vm, int line,
		       const char *fmt, ...)
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

static int capture_to_error(struct vm_error *err, const char *file, const struct xml_capture *cap,
			    const char *what)
{
	xmlNodePtr vm = enclosing_vm(cap->node);
	int line = cap->line > 0 ? cap->line : (cap->node ? xmlGetLineNo(cap->node) : 0);

	if (!cap->have)
		return entry_error(err, file, NULL, 0, "%s", what);
	if (cap->count > 1)
		return entry_error(err, file, vm, line, "%s: %s (and %u more)", what, cap->message,
				   cap->count - 1);
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
	doc = xmlCtxtReadMemory(ctxt, data, (int)len, file, NULL, XML_PARSE_NONET | XML_PARSE_NOWARNING |
				 XML_PARSE_BIG_LINES);
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

static int validate_xml(xmlSchemaPtr schema, const char *file, xmlDocPtr doc, struct vm_error *err)
{
	struct xml_capture cap = { 0 };
	xmlStructuredErrorFunc old_handler = xmlStructuredError;
	void *old_ctx = xmlStructuredErrorContext;
	xmlSchemaValidCtxtPtr vctxt = xmlSchemaNewValidCtxt(schema);
	int rc;

	if (!vctxt)
		return vm_error_set(err, VM_INTERNAL, "%s: cannot create a schema validator", file);
	xmlSchemaSetValidStructuredErrors(vctxt, capture_error, &cap);
	xmlSetStructuredErrorFunc(&cap, capture_error);
	rc = xmlSchemaValidateDoc(vctxt, doc);
	xmlSetStructuredErrorFunc(old_ctx, old_handler);
	xmlSchemaFreeValidCtxt(vctxt);
	if (rc == 0)
		return 0;
	if (rc < 0)
		return vm_error_set(err, VM_INTERNAL, "%s: schema validation failed internally", file);
	return capture_to_error(err, file, &cap, "does not match early_vms.xsd");
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

static const struct early_vm *table_find_name(const struct early_table *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->vms[i].name, name) == 0)
			return &t->vms[i];
	return NULL;
}

static const struct early_vm *table_find_cid(const struct early_table *t, uint32_t cid)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->vms[i].cid == cid)
			return &t->vms[i];
	return NULL;
}

/* Append the entries of @doc to @t (which holds the partition's earlier files). */
static int apply_rules(enum early_partition p, const char *file, xmlDocPtr doc, struct early_table *t,
		       struct vm_error *err)
{
	xmlNodePtr root = xmlDocGetRootElement(doc);
	const char *pname = partitions[p].name;

	for (xmlNodePtr vm = root->children; vm; vm = vm->next) {
		cleanup_free char *name = NULL;
		cleanup_free char *cid_text = NULL;
		cleanup_free char *path = NULL;
		cleanup_free char *norm = NULL;
		const struct early_vm *other;
		enum early_partition path_part;
		int line, rc;
		uint32_t cid;
		char tmp[80];

		if (vm->type != XML_ELEMENT_NODE)
			continue;
		line = (int)xmlGetLineNo(vm);
		name = node_text(vm, "name");
		cid_text = node_text(vm, "cid");
		path = node_text(vm, "path");

		rc = parse_cid(cid_text, &cid);
		if (rc == -ERANGE)
			return entry_error(err, file, vm, line, "cid %s is too large",
					   printable(cid_text, tmp, sizeof(tmp)));
		if (rc < 0)
			return entry_error(err, file, vm, line, "cid \"%s\" is not a non-negative integer",
					   printable(cid_text, tmp, sizeof(tmp)));
		if (cid < partitions[p].lo || cid > partitions[p].hi)
			return entry_error(err, file, vm, line, "cid %u is outside %s's range %u..%u", cid,
					   pname, partitions[p].lo, partitions[p].hi);
		if (!path_is_canonical(path))
			return entry_error(err, file, vm, line,
					   "path %s is not canonical (empty, . or .. component)", path);
		if (early_normalize_path(path, &path_part, &norm, NULL) < 0 || path_part != p ||
		    strcmp(norm, path) != 0)
			return entry_error(err, file, vm, line,
					   "path %s is not on partition %s (expected /%s/...)", path, pname,
					   pname);
		other = table_find_name(t, name);
		if (other)
			return entry_error(err, file, vm, line, "duplicate name, first declared at %s:%u",
					   other->file, other->line);
		other = table_find_cid(t, cid);
		if (other)
			return entry_error(err, file, vm, line,
					   "cid %u is already used by early_vm \"%s\" at %s:%u", cid,
					   other->name, other->file, other->line);

		t->vms = xrealloc(t->vms, (t->n + 1) * sizeof(*t->vms));
		t->vms[t->n++] = (struct early_vm){
			.partition = p,
			.name = steal_pointer(&name),
			.cid = cid,
			.path = steal_pointer(&path),
			.file = xstrdup(file),
			.line = (unsigned)line,
		};
	}
	return 0;
}

/* All three gates for one file; entries are appended to @t. */
static int parse_buffer(struct early_registry *reg, enum early_partition p, const char *file,
			const char *data, size_t len, struct early_table *t, struct vm_error *err)
{
	xmlDocPtr doc;
	xmlNodePtr root;
	unsigned bad_line;
	size_t bad_off;
	int rc;

	if (len > EARLY_XML_MAX)
		return entry_error(err, file, NULL, 0, "larger than %d bytes", EARLY_XML_MAX);
	if (check_utf8((const unsigned char *)data, len, &bad_line, &bad_off) < 0)
		return entry_error(err, file, NULL, (int)bad_line,
				   "not valid UTF-8 (byte 0x%02x at offset %zu)",
				   (unsigned char)data[bad_off], bad_off);
	doc = parse_xml(file, data, len, err);
	if (!doc)
		return -1;
	root = xmlDocGetRootElement(doc);
	if (root && root->ns && strcmp((const char *)root->name, "early_vms") == 0) {
		char tmp[80];

		rc = entry_error(err, file, NULL, xmlGetLineNo(root),
				 "root element <early_vms> is in namespace \"%s\", expected no namespace",
				 printable(root->ns->href ? (const char *)root->ns->href : "", tmp,
					   sizeof(tmp)));
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
	rc = validate_xml(reg->schema, file, doc, err);
	if (rc == 0)
		rc = apply_rules(p, file, doc, t, err);
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
static int load_partition_files(struct early_registry *reg, enum early_partition p,
				struct early_table *t, struct vm_error *err)
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

static void install_table(struct early_part_state *ps, struct early_table *t)
{
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

int early_registry_load_buffer(struct early_registry *reg, enum early_partition p, const char *file,
			       const void *data, size_t len, struct vm_error *err)
{
	struct early_table t = { 0 };
	int n;

	if ((unsigned)p >= EARLY_PARTITION_COUNT)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "unknown partition %d", (int)p);
	if (parse_buffer(reg, p, file, data, len, &t, err) < 0) {
		table_clear(&t);
		return -1;
	}
	n = (int)t.n;
	install_table(&reg->parts[p], &t);
	return n;
}

int early_registry_count(struct early_registry *reg, enum early_partition p, struct vm_error *err)
{
	if (early_registry_load(reg, p, err) < 0 && !reg->parts[p].have_table)
		return -1;
	return (int)reg->parts[p].table.n;
}

int early_registry_new(const char *root, const char *xsd_path, struct early_registry **out,
		       struct vm_error *err)
{
	struct early_registry *reg;
	struct xml_capture cap = { 0 };
	xmlSchemaParserCtxtPtr pctxt;
	size_t n;

	if (!xsd_path)
		xsd_path = EARLY_XSD_DEFAULT;
	if (access(xsd_path, R_OK) < 0)
		return vm_error_set_errno(err, VM_FAILED_PRECONDITION, errno, "cannot read schema %s",
					  xsd_path);
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
				return vm_error_set(err, VM_FAILED_PRECONDITION, "schema %s:%d: %s", xsd_path,
						    cap.line, cap.message);
			return vm_error_set(err, VM_FAILED_PRECONDITION, "schema %s cannot be loaded",
					    xsd_path);
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

int early_normalize_path(const char *path, enum early_partition *part, char **norm,
			 struct vm_error *err)
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
		return vm_error_set(err, VM_PERMISSION_DENIED, "executable %s is not on a partition",
				    path);
	if (early_partition_lookup(first, part, err) < 0)
		return -1;
	if (norm)
		*norm = xstrdup(p);
	return 0;
}

int early_find_vm(struct early_registry *reg, const char *caller_path, const char *vm_name,
		  struct early_vm *out, struct vm_error *err)
{
	cleanup_free char *norm = NULL;
	struct early_part_state *ps;
	const struct early_vm *vm;
	enum early_partition p;

	if (early_normalize_path(caller_path, &p, &norm, err) < 0)
		return -1;
	ps = &reg->parts[p];
	if (early_registry_load(reg, p, err) < 0 && !ps->have_table)
		return -1;
	vm = table_find_name(&ps->table, vm_name);
	if (!vm) {
		char tmp[80];

		return vm_error_set(err, VM_NOT_FOUND, "no early VM \"%s\" is declared for partition %s",
				    printable(vm_name, tmp, sizeof(tmp)), partitions[p].name);
	}
	if (strcmp(vm->path, norm) != 0)
		return vm_error_set(err, VM_PERMISSION_DENIED,
				    "early VM \"%s\" in partition %s must be created by %s, not %s", vm->name,
				    partitions[p].name, vm->path, norm);
	early_vm_copy(out, vm);
	return 0;
}

int early_caller_path(const char *root, const char *proc_dir, pid_t pid, char **out,
		      struct vm_error *err)
{
	static const char deleted[] = " (deleted)";
	cleanup_free char *link = xasprintf("%s/%d/exe", proc_dir ? proc_dir : "/proc", (int)pid);
	cleanup_free char *canon_root = NULL;
	char target[PATH_MAX + 1];
	const char *rest;
	struct stat st;
	ssize_t n;
	size_t len;

	n = readlink(link, target, sizeof(target));
	if (n < 0)
		return vm_error_set_errno(err, errno == ENOENT ? VM_NOT_FOUND : VM_PERMISSION_DENIED,
					  errno, "cannot identify the executable of pid %d (%s)", (int)pid,
					  link);
	if ((size_t)n >= sizeof(target))
		return vm_error_set(err, VM_PERMISSION_DENIED, "executable of pid %d has too long a path",
				    (int)pid);
	target[n] = '\0';
	len = (size_t)n;
	if ((len > strlen(deleted) && strcmp(target + len - strlen(deleted), deleted) == 0) ||
	    (stat(link, &st) == 0 && st.st_nlink == 0))
		return vm_error_set(err, VM_PERMISSION_DENIED, "executable of pid %d was deleted: %s",
				    (int)pid, target);

	rest = target;
	if (root && root[0] && strcmp(root, "/") != 0) {
		size_t rlen;

		canon_root = realpath(root, NULL);
		if (!canon_root)
			return vm_error_set_errno(err, VM_INTERNAL, errno, "cannot resolve root %s", root);
		rlen = strlen(canon_root);
		if (strcmp(canon_root, "/") != 0) {
			if (strncmp(target, canon_root, rlen) != 0 || target[rlen] != '/')
				return vm_error_set(err, VM_PERMISSION_DENIED,
						    "executable %s of pid %d is outside the root %s", target,
						    (int)pid, canon_root);
			rest = target + rlen;
		}
	}
	{
		enum early_partition p;

		return early_normalize_path(rest, &p, out, err);
	}
}

static int pidfd_alive(int pidfd)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0);
}

int early_peer_pidfd(int sock, pid_t *pid, int *pidfd, struct vm_error *err)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd = -1;

	/* SO_PEERPIDFD first: it pins the process that connected. */
	len = sizeof(fd);
	if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) < 0 || fd < 0) {
		if (errno != ENOPROTOOPT && errno != EINVAL && errno != ESRCH)
			return vm_error_set_errno(err, VM_INTERNAL, errno, "SO_PEERPIDFD");
		fd = -1;
	}
	len = sizeof(cred);
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		return vm_error_set_errno(err, VM_INTERNAL, e, "SO_PEERCRED");
	}
	if (cred.pid <= 0) {
		if (fd >= 0)
			close(fd);
		return vm_error_set(err, VM_PERMISSION_DENIED, "peer has no pid in this pid namespace");
	}
	if (fd < 0) {
		fd = (int)syscall(SYS_pidfd_open, cred.pid, 0);
		if (fd < 0)
			return vm_error_set_errno(err, errno == ESRCH ? VM_NOT_FOUND : VM_INTERNAL, errno,
						  "pidfd_open(%d)", (int)cred.pid);
	}
	*pid = cred.pid;
	*pidfd = fd;
	return 0;
}

int early_caller_path_pidfd(const char *root, const char *proc_dir, pid_t pid, int pidfd,
			    char **out, struct vm_error *err)
{
	cleanup_free char *path = NULL;

	if (pidfd_alive(pidfd) < 0) {
		if (errno != ESRCH)
			return vm_error_set_errno(err, VM_INTERNAL, errno, "pidfd_send_signal(pid %d)", (int)pid);
		return vm_error_set(err, VM_PERMISSION_DENIED, "caller pid %d has exited", (int)pid);
	}
	if (early_caller_path(root, proc_dir, pid, &path, err) < 0)
		return -1;
	/* The readlink above went by pid; it named our process only if that
	 * process is still alive now (its pid cannot have been reused). */
	if (pidfd_alive(pidfd) < 0)
		return vm_error_set(err, VM_PERMISSION_DENIED,
				    "caller pid %d exited while it was being identified", (int)pid);
	*out = steal_pointer(&path);
	return 0;
}

/* ---- config and run directory ---- */

int early_check_config(const char *vendor_modules, char *const *assigned_devices,
		       size_t n_assigned_devices, struct vm_error *err)
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
				    printable(assigned_devices[0] ? assigned_devices[0] : "", tmp,
					      sizeof(tmp)));
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

int early_run_dir_prepare(const char *root, uint32_t cid, char **out, struct vm_error *err)
{
	cleanup_free char *dir = early_run_dir(root, cid);
	cleanup_free char *parent = xstrdup(dir);
	cleanup_free char *live = NULL;
	int rc;

	*strrchr(parent, '/') = '\0';
	if (run_dir_live_socket(dir, &live))
		return vm_error_set(err, VM_ALREADY_EXISTS,
				    "cid %u is in use by a VM of another early daemon (%s is live)", cid, live);
	rc = remove_tree(dir);
	if (rc < 0 && rc != -ENOENT && rc != -ENOTDIR)
		return vm_error_set_errno(err, VM_INTERNAL, -rc, "cannot remove %s", dir);
	rc = mkdir_p(parent, 0755);
	if (rc < 0)
		return vm_error_set_errno(err, VM_INTERNAL, -rc, "cannot create %s", parent);
	if (mkdir(dir, 0700) < 0)
		return vm_error_set_errno(err, VM_INTERNAL, errno, "cannot create %s", dir);
	/* mkdir() honours the umask; make the mode exact. */
	if (chmod(dir, 0700) < 0)
		return vm_error_set_errno(err, VM_INTERNAL, errno, "cannot chmod %s", dir);
	if (out)
		*out = steal_pointer(&dir);
	return 0;
}

int early_run_dir_remove(const char *root, uint32_t cid, struct vm_error *err)
{
	cleanup_free char *dir = early_run_dir(root, cid);
	int rc = remove_tree(dir);

	if (rc < 0 && rc != -ENOENT && rc != -ENOTDIR)
		return vm_error_set_errno(err, VM_INTERNAL, -rc, "cannot remove %s", dir);
	return 0;
}
