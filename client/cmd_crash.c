/* cmd_crash.c - `vmctl crashes [VM]` and `vmctl crash show|get|rm ID`: the
 * crash reports the daemon keeps (docs/crash-reports.md).
 *
 * The daemon hands out the core as it stored it (gzip, through an fd);
 * vmctl inflates it, never past the size the report names. `crash show`
 * makes the backtrace here on the host, as systemd-coredump does, with
 * elfutils' libdwfl: the core's notes give the registers, its memory the
 * stack, and the crashed executable (the guest's file, found on the host
 * with --binary or under --sysroot) the unwind tables and symbols.
 */
#include "config.h"
#include "client/vmctl.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "client/json.h"
#include "lib/ttrpc.h"
#include "protos/virtmgr.pb-c.h"
/* after ev.h (through lib/ttrpc.h): <elf.h> defines EV_NONE and EV_CURRENT as macros */
#include <elfutils/libdwfl.h>

#define CRASH_SERVICE "virtmgr.v1.VirtualizationService"
#define CRASH_MAX_FRAMES 64

const char cmd_crashes_help[] =
	"Usage: vmctl crashes [VM]\n"
	"\n"
	"List the crash reports the daemon keeps: every one the caller may see,\n"
	"or those of VM (an id or name; the VM may be gone). With --json, one\n"
	"object per report.\n";

const char cmd_crash_help[] =
	"Usage: vmctl crash show|get|rm ID ...\n"
	"\n"
	"  vmctl crash show ID [--binary FILE | --sysroot DIR] [--no-backtrace]\n"
	"  vmctl crash get ID FILE     write the uncompressed ELF core to FILE\n"
	"  vmctl crash rm ID\n"
	"\n"
	"show prints the report and, for a process crash whose executable is at\n"
	"hand, a backtrace made from the core with elfutils: the executable is\n"
	"FILE (--binary), DIR plus the guest path (--sysroot), else the guest\n"
	"path itself on this host. A kernel report prints the console's last\n"
	"lines. With --json, show prints one object (the backtrace as an array\n"
	"of frames).\n"
	"\n"
	"Options:\n"
	"  --binary FILE          the crashed executable, on this host\n"
	"  --sysroot DIR          a tree holding the guest's files (an unpacked image)\n"
	"  --no-backtrace         metadata only\n"
	"  -h, --help             this help\n";

int cmd_crash_parse_limit(const char *s, uint64_t *out, struct vm_error *err)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	if (shift)
		end++;
	if (errno || end == s || *end || s[0] == '-' || v > (1ull << 40) >> shift || (v << shift) < 4096)
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "invalid --crash-core-limit '%s': expected 4K..1T bytes (K, M, G suffixes)", s);
	*out = (uint64_t)v << shift;
	return 0;
}

/* A ttrpc connection of our own on the socket vmctl_connect() reaches. */
struct crash_conn {
	struct vmc_client *cl;
	struct ttrpc_client *tc;
	uint64_t timeout_ns;
};

static int crash_open(const struct vmctl_ctx *ctx, struct crash_conn *c)
{
	int fd;

	c->cl = vmctl_connect(ctx);
	if (!c->cl)
		return -1;
	fd = fcntl(vmc_client_fd(c->cl), F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		fprintf(stderr, "vmctl: dup: %s\n", strerror(errno));
		vmc_close(c->cl);
		return -1;
	}
	c->tc = ttrpc_client_from_fd(fd);
	c->timeout_ns = ctx->timeout_ms * 1000000ull;
	return 0;
}

static void crash_close(struct crash_conn *c)
{
	ttrpc_client_free(c->tc);
	vmc_close(c->cl);
}

static int rpc_fail(const struct vm_error *e)
{
	struct vmc_error ve = { 0 };

	ve.code = (enum vmc_status)e->code;
	snprintf(ve.message, sizeof(ve.message), "%s", e->message);
	return vmctl_rpc_error(&ve);
}

static const char *sig_name(int sig, char *buf, size_t size)
{
	const char *n = sig > 0 ? sigabbrev_np(sig) : NULL;

	if (n)
		snprintf(buf, size, "SIG%s", n);
	else
		snprintf(buf, size, "%d", sig);
	return buf;
}

static void report_json_fields(struct json_obj *o, const Virtmgr__V1__CrashReport *r)
{
	char sb[32];

	json_str(o, "id", r->id);
	json_str(o, "kind", r->kind == VIRTMGR__V1__CRASH_KIND__CRASH_KIND_KERNEL ? "kernel" : "user");
	json_str(o, "vm_id", r->vm_id);
	json_str(o, "vm_name", r->vm_name);
	json_uint(o, "owner_uid", r->owner_uid);
	json_uint(o, "cid", r->cid);
	json_int(o, "pid", r->pid);
	json_int(o, "tid", r->tid);
	json_uint(o, "uid", r->uid);
	json_uint(o, "gid", r->gid);
	json_int(o, "signal", r->signal);
	json_str(o, "signal_name", r->signal ? sig_name(r->signal, sb, sizeof(sb)) : "");
	json_str(o, "executable", r->executable);
	json_str(o, "comm", r->comm);
	json_uint(o, "crash_time_ns", r->crash_time_ns);
	json_uint(o, "received_ns", r->received_ns);
	json_uint(o, "core_size", r->core_size);
	json_uint(o, "core_stored", r->core_stored);
	json_bool(o, "core_truncated", r->core_truncated);
	if (r->kind == VIRTMGR__V1__CRASH_KIND__CRASH_KIND_KERNEL)
		json_str(o, "kernel_text", r->kernel_text);
}

/* ------------------------------------------------------------ crashes */

int cmd_crashes(struct vmctl_ctx *ctx, int argc, char **argv)
{
	Virtmgr__V1__ListCrashReportsRequest req = VIRTMGR__V1__LIST_CRASH_REPORTS_REQUEST__INIT;
	Virtmgr__V1__ListCrashReportsResponse *resp = NULL;
	struct vm_error err = { 0 };
	struct crash_conn c;

	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(cmd_crashes_help, stdout);
		return VMCTL_EXIT_OK;
	}
	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		vm_error_set(&err, VM_INVALID_ARGUMENT, "crashes takes at most one VM, not \"%s\"", argv[argc - 1]);
		return vmctl_usage_error("crashes", &err);
	}
	req.vm = argc == 2 ? argv[1] : "";
	if (crash_open(ctx, &c) < 0)
		return VMCTL_EXIT_USAGE;
	if (ttrpc_client_call(c.tc, CRASH_SERVICE, "ListCrashReports", &req.base, NULL, 0,
			      &virtmgr__v1__list_crash_reports_response__descriptor, (ProtobufCMessage **)&resp, NULL,
			      NULL, c.timeout_ns, &err) < 0) {
		crash_close(&c);
		return rpc_fail(&err);
	}
	crash_close(&c);
	if (!ctx->json)
		printf("%-16s  %-20s  %-6s  %7s  %-8s  %-23s  %s\n", "ID", "VM", "KIND", "PID", "SIGNAL", "RECEIVED",
		       "EXECUTABLE");
	for (size_t i = 0; i < resp->n_reports; i++) {
		const Virtmgr__V1__CrashReport *r = resp->reports[i];
		bool kernel = r->kind == VIRTMGR__V1__CRASH_KIND__CRASH_KIND_KERNEL;
		char tb[64], sb[32];

		if (ctx->json) {
			struct json_obj o;

			json_begin(&o, stdout);
			report_json_fields(&o, r);
			json_end(&o);
			continue;
		}
		printf("%-16s  %-20s  %-6s  %7d  %-8s  %-23s  %s%s\n", r->id, r->vm_name, kernel ? "kernel" : "user",
		       r->pid, kernel ? "-" : sig_name(r->signal, sb, sizeof(sb)),
		       vmctl_format_time(r->received_ns, tb, sizeof(tb)),
		       kernel ? "-" : (*r->executable ? r->executable : r->comm),
		       r->core_truncated ? " (truncated)" : "");
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return VMCTL_EXIT_OK;
}

/* ------------------------------------------------------------ the core */

/* Inflate the gzip stream on @in into @out, at most @limit bytes. Return: 0 or -1 (printed). */
static int inflate_core(int in, int out, uint64_t limit)
{
	gzFile gz = gzdopen(in, "rb");
	static char buf[1 << 16];
	uint64_t total = 0;
	int n;

	if (!gz) {
		close(in);
		fprintf(stderr, "vmctl: cannot read the core: %s\n", strerror(errno));
		return -1;
	}
	while ((n = gzread(gz, buf, sizeof(buf))) > 0) {
		if (total + (uint64_t)n > limit) {
			fprintf(stderr, "vmctl: the core inflates past the %" PRIu64 " bytes its report names\n",
				limit);
			gzclose(gz);
			return -1;
		}
		if (write_all(out, buf, (size_t)n) < 0) {
			fprintf(stderr, "vmctl: writing the core: %s\n", strerror(errno));
			gzclose(gz);
			return -1;
		}
		total += (uint64_t)n;
	}
	if (n < 0) {
		int zerr;
		const char *msg = gzerror(gz, &zerr);

		/* a truncated core was cut by the guest: what came is still a core */
		fprintf(stderr, "vmctl: the stored core is damaged: %s\n", msg);
		gzclose(gz);
		return -1;
	}
	gzclose(gz);
	return 0;
}

static int get_report(const struct vmctl_ctx *ctx, const char *id, Virtmgr__V1__GetCrashReportResponse **resp,
		      int *core_fd)
{
	Virtmgr__V1__CrashReportRef req = VIRTMGR__V1__CRASH_REPORT_REF__INIT;
	struct vm_error err = { 0 };
	struct crash_conn c;
	int fds[TTRPC_MAX_FDS];
	size_t nfds = TTRPC_MAX_FDS;

	*core_fd = -1;
	req.id = (char *)id;
	if (crash_open(ctx, &c) < 0)
		return VMCTL_EXIT_USAGE;
	if (ttrpc_client_call(c.tc, CRASH_SERVICE, "GetCrashReport", &req.base, NULL, 0,
			      &virtmgr__v1__get_crash_report_response__descriptor, (ProtobufCMessage **)resp, fds,
			      &nfds, c.timeout_ns, &err) < 0) {
		crash_close(&c);
		return rpc_fail(&err);
	}
	crash_close(&c);
	for (size_t i = 0; i < nfds; i++) {
		if ((*resp)->core && (*resp)->core->index == i)
			*core_fd = fds[i];
		else
			close(fds[i]);
	}
	return VMCTL_EXIT_OK;
}

/* ------------------------------------------------------------ backtrace */

struct bt {
	Dwfl *dwfl;
	FILE *out;
	struct json_obj *json;
	FILE *jbuf; /* frames as a JSON array, for --json */
	int nframes;
	pid_t tid;
};

static int frame_cb(Dwfl_Frame *state, void *arg)
{
	struct bt *b = arg;
	Dwarf_Addr pc, adj;
	bool activation;
	Dwfl_Module *mod;
	const char *sym = NULL, *modname = NULL;
	GElf_Off off = 0;
	GElf_Sym s;

	if (!dwfl_frame_pc(state, &pc, &activation))
		return DWARF_CB_ABORT;
	adj = activation ? pc : pc - 1;
	mod = dwfl_addrmodule(b->dwfl, adj);
	if (mod) {
		modname = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
		sym = dwfl_module_addrinfo(mod, adj, &off, &s, NULL, NULL, NULL);
	}
	if (b->jbuf) {
		struct json_obj o;

		fprintf(b->jbuf, "%s", b->nframes ? "," : "");
		json_begin(&o, b->jbuf);
		json_int(&o, "n", b->nframes);
		json_uint(&o, "pc", pc);
		json_str(&o, "function", sym ? sym : "");
		json_uint(&o, "offset", off);
		json_str(&o, "module", modname ? modname : "");
		fprintf(b->jbuf, "}");
	} else {
		fprintf(b->out, "  #%-2d 0x%016" PRIx64 " %s", b->nframes, (uint64_t)pc, sym ? sym : "n/a");
		if (sym)
			fprintf(b->out, "+0x%" PRIx64, (uint64_t)off);
		fprintf(b->out, " (%s)\n", modname ? modname : "?");
	}
	return ++b->nframes >= CRASH_MAX_FRAMES ? DWARF_CB_ABORT : DWARF_CB_OK;
}

static int thread_cb(Dwfl_Thread *thread, void *arg)
{
	struct bt *b = arg;
	pid_t tid = dwfl_thread_tid(thread);

	/* the crashing thread only (the first the core lists, or %i) */
	if (b->tid && tid != b->tid)
		return DWARF_CB_OK;
	if (!b->jbuf)
		fprintf(b->out, "backtrace of thread %d:\n", (int)tid);
	dwfl_thread_getframes(thread, frame_cb, b);
	return DWARF_CB_ABORT;
}

/* Return: 0, or -1 with a reason in @why. */
static int backtrace(int core_fd, const char *exe, pid_t tid, FILE *out, FILE *jbuf, char *why, size_t wsize)
{
	static const Dwfl_Callbacks cbs = {
		.find_elf = dwfl_build_id_find_elf,
		.find_debuginfo = dwfl_standard_find_debuginfo,
	};
	struct bt b = { .out = out, .jbuf = jbuf, .tid = tid };
	Elf *elf;
	int r = -1;

	elf_version(EV_CURRENT);
	elf = elf_begin(core_fd, ELF_C_READ_MMAP, NULL);
	if (!elf) {
		snprintf(why, wsize, "the core is not ELF: %s", elf_errmsg(-1));
		return -1;
	}
	b.dwfl = dwfl_begin(&cbs);
	if (dwfl_core_file_report(b.dwfl, elf, exe) < 0) {
		snprintf(why, wsize, "dwfl_core_file_report: %s", dwfl_errmsg(-1));
		goto out;
	}
	dwfl_report_end(b.dwfl, NULL, NULL);
	if (dwfl_core_file_attach(b.dwfl, elf) < 0) {
		snprintf(why, wsize, "dwfl_core_file_attach: %s", dwfl_errmsg(-1));
		goto out;
	}
	if (dwfl_getthreads(b.dwfl, thread_cb, &b) < 0 && !b.nframes) {
		snprintf(why, wsize, "unwinding: %s", dwfl_errmsg(-1));
		goto out;
	}
	if (!b.nframes && b.tid) {
		/* the tid was not in the core's notes: take the first thread */
		b.tid = 0;
		dwfl_getthreads(b.dwfl, thread_cb, &b);
	}
	r = 0;
out:
	dwfl_end(b.dwfl);
	elf_end(elf);
	return r;
}

/*
 * The backtrace is made in a child process, as systemd-coredump does: the
 * core comes from a guest, and libdw parsing it must not take vmctl down
 * (nor leave its allocations in vmctl). The child writes "OK\n" or
 * "ERR <why>\n", then the frames, to a pipe.
 * Return: 0 with *@text (caller frees), or -1 with @why.
 */
static int backtrace_isolated(int core_fd, const char *exe, pid_t tid, bool json, char **text, char *why, size_t wsize)
{
	size_t cap = 1 << 20, len = 0;
	char *buf;
	int p[2], status = 0;
	pid_t pid;
	ssize_t n;

	fflush(stdout);
	if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		snprintf(why, wsize, "cannot start the unwinder: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		FILE *out = fdopen(p[1], "w");
		char w[512] = "";
		char *frames = NULL;
		size_t flen = 0;
		FILE *mem = open_memstream(&frames, &flen);
		int r;

		close(p[0]);
		r = backtrace(core_fd, exe, tid, mem, json ? mem : NULL, w, sizeof(w));
		fclose(mem);
		if (r < 0)
			fprintf(out, "ERR %s\n", w);
		else
			fprintf(out, "OK\n%s", frames ? frames : "");
		fflush(out);
		_exit(0);
	}
	close(p[1]);
	buf = xmalloc(cap + 1);
	while (len < cap && ((n = read(p[0], buf + len, cap - len)) > 0 || (n < 0 && errno == EINTR)))
		if (n > 0)
			len += (size_t)n;
	buf[len] = '\0';
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!strncmp(buf, "OK\n", 3)) {
		memmove(buf, buf + 3, len - 2);
		*text = buf;
		return 0;
	}
	if (!strncmp(buf, "ERR ", 4)) {
		buf[strcspn(buf, "\n")] = '\0';
		snprintf(why, wsize, "%s", buf + 4);
	} else if (WIFSIGNALED(status)) {
		snprintf(why, wsize, "the unwinder died of signal %d", WTERMSIG(status));
	} else {
		snprintf(why, wsize, "the unwinder gave no answer");
	}
	free(buf);
	return -1;
}

/* The executable on this host, or NULL (with @why). */
static char *find_binary(const char *binary, const char *sysroot, const char *guest_path, char *why, size_t wsize)
{
	char *p;

	if (binary)
		return access(binary, R_OK) == 0
			       ? xstrdup(binary)
			       : (snprintf(why, wsize, "--binary %s: %s", binary, strerror(errno)), NULL);
	if (!*guest_path) {
		snprintf(why, wsize, "the guest did not say which executable crashed");
		return NULL;
	}
	p = sysroot ? xasprintf("%s/%s", sysroot, guest_path) : xstrdup(guest_path);
	if (access(p, R_OK) == 0)
		return p;
	snprintf(why, wsize, "%s is not on this host (give --binary or --sysroot)", p);
	free(p);
	return NULL;
}

static int crash_show(struct vmctl_ctx *ctx, const char *id, const char *binary, const char *sysroot, bool no_backtrace)
{
	Virtmgr__V1__GetCrashReportResponse *resp = NULL;
	const Virtmgr__V1__CrashReport *r;
	int core_fd = -1, mem = -1, rc;
	char why[512] = "", tb[64], sb[32];
	bool kernel, have_bt = false;
	char *bt_json = NULL;

	rc = get_report(ctx, id, &resp, &core_fd);
	if (rc != VMCTL_EXIT_OK)
		return rc;
	r = resp->report;
	if (!r) {
		fprintf(stderr, "vmctl: the daemon's answer holds no report\n");
		if (core_fd >= 0)
			close(core_fd);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		return VMCTL_EXIT_RPC;
	}
	kernel = r->kind == VIRTMGR__V1__CRASH_KIND__CRASH_KIND_KERNEL;
	if (!kernel && !no_backtrace && core_fd >= 0) {
		cleanup_free char *exe = find_binary(binary, sysroot, r->executable, why, sizeof(why));

		mem = memfd_create("vmctl-core", MFD_CLOEXEC);
		if (mem < 0) {
			snprintf(why, sizeof(why), "memfd_create: %s", strerror(errno));
			close(steal_fd(&core_fd));
		} else if (inflate_core(steal_fd(&core_fd), mem, r->core_size) < 0) {
			snprintf(why, sizeof(why), "the core could not be read");
		} else if (exe) {
			/* JSON frames or text lines, printed after the metadata */
			have_bt = backtrace_isolated(mem, exe, r->tid, ctx->json, &bt_json, why, sizeof(why)) == 0;
		}
	}
	if (core_fd >= 0)
		close(core_fd);
	if (mem >= 0)
		close(mem);
	if (ctx->json) {
		struct json_obj o;

		json_begin(&o, stdout);
		report_json_fields(&o, r);
		if (have_bt) {
			fprintf(stdout, ",\"backtrace\":[%s]", bt_json ? bt_json : "");
		} else if (!kernel && !no_backtrace) {
			json_str(&o, "backtrace_error", why);
		}
		json_end(&o);
		free(bt_json);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		return VMCTL_EXIT_OK;
	}
	printf("id: %s\n", r->id);
	printf("kind: %s\n", kernel ? "kernel" : "user");
	printf("vm: %s (%s), cid %u, owner uid %u\n", r->vm_name, r->vm_id, r->cid, r->owner_uid);
	printf("received: %s\n", vmctl_format_time(r->received_ns, tb, sizeof(tb)));
	if (!kernel) {
		printf("pid: %d\ntid: %d\nuid: %u\ngid: %u\n", r->pid, r->tid, r->uid, r->gid);
		printf("signal: %s (%d)\n", sig_name(r->signal, sb, sizeof(sb)), r->signal);
		printf("executable: %s\ncomm: %s\n", r->executable, r->comm);
		printf("crash time: %s\n", vmctl_format_time(r->crash_time_ns, tb, sizeof(tb)));
		printf("core: %" PRIu64 " bytes (%" PRIu64 " stored)%s\n", r->core_size, r->core_stored,
		       r->core_truncated ? ", truncated by the guest's cap" : "");
		if (have_bt)
			fputs(bt_json ? bt_json : "", stdout);
		else if (!no_backtrace)
			printf("backtrace: unavailable: %s\n", why);
	} else {
		printf("console (last lines):\n%s%s", r->kernel_text,
		       *r->kernel_text && r->kernel_text[strlen(r->kernel_text) - 1] != '\n' ? "\n" : "");
	}
	free(bt_json);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return VMCTL_EXIT_OK;
}

static int crash_get(struct vmctl_ctx *ctx, const char *id, const char *file)
{
	Virtmgr__V1__GetCrashReportResponse *resp = NULL;
	int core_fd = -1, out, rc;

	rc = get_report(ctx, id, &resp, &core_fd);
	if (rc != VMCTL_EXIT_OK)
		return rc;
	if (core_fd < 0) {
		fprintf(stderr, "vmctl: crash report %s has no core (a kernel report?)\n", id);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		return VMCTL_EXIT_RPC;
	}
	out = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		fprintf(stderr, "vmctl: cannot create %s: %s\n", file, strerror(errno));
		close(core_fd);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		return VMCTL_EXIT_USAGE;
	}
	rc = inflate_core(core_fd, out, resp->report ? resp->report->core_size : 0);
	if (close(out) < 0 && rc == 0) {
		fprintf(stderr, "vmctl: writing %s: %s\n", file, strerror(errno));
		rc = -1;
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return rc < 0 ? VMCTL_EXIT_RPC : VMCTL_EXIT_OK;
}

static int crash_rm(struct vmctl_ctx *ctx, const char *id)
{
	Virtmgr__V1__CrashReportRef req = VIRTMGR__V1__CRASH_REPORT_REF__INIT;
	ProtobufCMessage *resp = NULL;
	struct vm_error err = { 0 };
	struct crash_conn c;

	req.id = (char *)id;
	if (crash_open(ctx, &c) < 0)
		return VMCTL_EXIT_USAGE;
	if (ttrpc_client_call(c.tc, CRASH_SERVICE, "DeleteCrashReport", &req.base, NULL, 0,
			      &virtmgr__v1__empty__descriptor, &resp, NULL, NULL, c.timeout_ns, &err) < 0) {
		crash_close(&c);
		return rpc_fail(&err);
	}
	crash_close(&c);
	protobuf_c_message_free_unpacked(resp, NULL);
	return VMCTL_EXIT_OK;
}

int cmd_crash(struct vmctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "binary", required_argument, NULL, 'b' },
		{ "sysroot", required_argument, NULL, 's' },
		{ "no-backtrace", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *binary = NULL, *sysroot = NULL, *sub;
	bool no_bt = false;
	struct vm_error err = { 0 };
	int o;

	optind = 1;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (o) {
		case 'b':
			binary = optarg;
			break;
		case 's':
			sysroot = optarg;
			break;
		case 'n':
			no_bt = true;
			break;
		case 'h':
			fputs(cmd_crash_help, stdout);
			return VMCTL_EXIT_OK;
		default:
			vm_error_set(&err, VM_INVALID_ARGUMENT, "unknown option \"%s\"", argv[optind - 1]);
			return vmctl_usage_error("crash", &err);
		}
	}
	/* options may also follow the operands */
	int nargs = 0;
	char *args[3];
	for (int i = optind; i < argc; i++) {
		if (!strcmp(argv[i], "--binary") && i + 1 < argc) {
			binary = argv[++i];
		} else if (!strcmp(argv[i], "--sysroot") && i + 1 < argc) {
			sysroot = argv[++i];
		} else if (!strcmp(argv[i], "--no-backtrace")) {
			no_bt = true;
		} else if (nargs < 3) {
			args[nargs++] = argv[i];
		} else {
			vm_error_set(&err, VM_INVALID_ARGUMENT, "too many arguments");
			return vmctl_usage_error("crash", &err);
		}
	}
	sub = nargs ? args[0] : "";
	if (!strcmp(sub, "show") && nargs == 2)
		return crash_show(ctx, args[1], binary, sysroot, no_bt);
	if (!strcmp(sub, "get") && nargs == 3)
		return crash_get(ctx, args[1], args[2]);
	if (!strcmp(sub, "rm") && nargs == 2)
		return crash_rm(ctx, args[1]);
	if (!*sub)
		vm_error_set(&err, VM_INVALID_ARGUMENT, "crash: missing subcommand (show, get or rm)");
	else if (strcmp(sub, "show") && strcmp(sub, "get") && strcmp(sub, "rm"))
		vm_error_set(&err, VM_INVALID_ARGUMENT, "crash: unknown subcommand \"%s\"", sub);
	else
		vm_error_set(&err, VM_INVALID_ARGUMENT, "crash %s: wrong number of arguments", sub);
	return vmctl_usage_error("crash", &err);
}
