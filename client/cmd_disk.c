/* cmd_disk.c - `vmctl disk create|list|resize|rm|import|export`: the
 * caller's disk image store in the daemon (docs/storage.md).
 *
 * Import and export pass the opened FILE to the daemon, whose copy reads or
 * writes it at the descriptor's shared offset; on a TTY a thread here reads
 * that offset a few times a second and draws the progress on stderr, so no
 * progress messages need to cross the socket.
 */
#include "config.h"
#include "client/vmctl.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/json.h"

const char cmd_disk_help[] =
	"Usage: vmctl disk create|list|resize|rm|import|export ...\n"
	"\n"
	"Manage the caller's disk images in the daemon's image store.\n"
	"\n"
	"  vmctl disk create NAME --size SIZE [--format raw|qcow2] [--fs ext4 [--from-dir DIR]]\n"
	"  vmctl disk list\n"
	"  vmctl disk resize NAME SIZE         grow (an ext4 inside grows too)\n"
	"  vmctl disk rm NAME\n"
	"  vmctl disk import NAME FILE [--format raw|qcow2]   (default: qcow2 if FILE is one)\n"
	"  vmctl disk export NAME FILE\n"
	"\n"
	"SIZE is bytes with an optional K, M, G or T suffix (powers of 1024), a\n"
	"multiple of 512. --fs ext4 makes an ext4 filesystem (raw images only);\n"
	"--from-dir copies DIR into it, read by the daemon as the caller. Root\n"
	"sees every owner's images and names another owner's as UID:NAME.\n"
	"import and export show their progress on a terminal. With the global\n"
	"--json, create, resize, import, export print the image and list prints\n"
	"one JSON object per image.\n"
	"\n"
	"Options:\n"
	"  --size SIZE            create: the image's size\n"
	"  --format raw|qcow2     create: the format (default raw); import: FILE's\n"
	"  --fs ext4              create: make an ext4 filesystem (raw only)\n"
	"  --from-dir DIR         create, with --fs ext4: copy DIR into it\n"
	"  -h, --help             this help\n";

static int disk_parse_size(const char *s, uint64_t *out, struct vm_error *err)
{
	unsigned long long v;
	uint64_t mul = 1;
	char *end;

	if (!s || !*s || *s < '0' || *s > '9')
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid size '%s': not a number", s ? s : "");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end && !end[1]) {
		switch (*end) {
		case 'k':
		case 'K':
			mul = 1ull << 10;
			break;
		case 'm':
		case 'M':
			mul = 1ull << 20;
			break;
		case 'g':
		case 'G':
			mul = 1ull << 30;
			break;
		case 't':
		case 'T':
			mul = 1ull << 40;
			break;
		default:
			return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid size '%s': unknown suffix", s);
		}
	} else if (*end) {
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid size '%s': not a number", s);
	}
	if (errno == ERANGE || v > UINT64_MAX / mul)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid size '%s': too large", s);
	if (v == 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid size '%s': must be more than 0", s);
	*out = v * mul;
	return 0;
}

static int disk_parse_format(const char *s, enum vmc_disk_format *f, struct vm_error *err)
{
	if (!strcmp(s, "raw"))
		*f = VMC_DISK_FORMAT_RAW;
	else if (!strcmp(s, "qcow2"))
		*f = VMC_DISK_FORMAT_QCOW2;
	else
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid format '%s': raw or qcow2", s);
	return 0;
}

static const char *disk_format_name(enum vmc_disk_format f)
{
	return f == VMC_DISK_FORMAT_QCOW2 ? "qcow2" : "raw";
}

static void disk_print(const struct vmctl_ctx *ctx, const struct vmc_disk_image *img)
{
	struct json_obj o;

	if (!ctx->json) {
		printf("%s: %s, %" PRIu64 " bytes%s%s\n", img->name, disk_format_name(img->format), img->virtual_size,
		       *img->filesystem ? ", " : "", img->filesystem);
		return;
	}
	json_begin(&o, stdout);
	json_str(&o, "name", img->name);
	json_uint(&o, "owner_uid", img->owner_uid);
	json_str(&o, "format", disk_format_name(img->format));
	json_uint(&o, "virtual_size", img->virtual_size);
	json_uint(&o, "allocated_size", img->allocated_size);
	json_str(&o, "filesystem", img->filesystem);
	json_str(&o, "vm", img->vm);
	json_end(&o);
}

/* ---- progress of import/export on a TTY ---- */

struct disk_progress {
	int fd;
	uint64_t total; /* 0: unknown */
	const char *what;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void *disk_progress_thread(void *arg)
{
	struct disk_progress *p = arg;
	struct timespec ts;

	pthread_mutex_lock(&p->lock);
	while (!p->done) {
		off_t off = lseek(p->fd, 0, SEEK_CUR);

		if (off >= 0 && p->total)
			fprintf(stderr, "\r%s: %" PRIu64 " / %" PRIu64 " MiB (%u%%)", p->what, (uint64_t)off >> 20,
				p->total >> 20, (unsigned)((uint64_t)off * 100 / p->total));
		else if (off >= 0)
			fprintf(stderr, "\r%s: %" PRIu64 " MiB", p->what, (uint64_t)off >> 20);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 250000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
	}
	pthread_mutex_unlock(&p->lock);
	fprintf(stderr, "\r\033[K");
	return NULL;
}

static int disk_transfer(struct vmctl_ctx *ctx, struct vmc_client *cl, bool import, const char *name, const char *file,
			 bool has_format, enum vmc_disk_format format)
{
	struct disk_progress p = { .what = import ? "import" : "export",
				   .lock = PTHREAD_MUTEX_INITIALIZER,
				   .cond = PTHREAD_COND_INITIALIZER };
	struct vmc_error err = { 0 };
	struct vmc_disk_image img;
	pthread_t th;
	bool thread = false;
	bool created = false;
	struct stat st;
	int r;

	if (import) {
		p.fd = open(file, O_RDONLY | O_CLOEXEC);
	} else {
		/* a FILE that existed is overwritten from its start and cut to the
		 * image's length once the export succeeded (an unknown image leaves
		 * it as it was); only a FILE vmctl made is removed on failure */
		p.fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		created = p.fd >= 0;
		if (p.fd < 0 && errno == EEXIST)
			p.fd = open(file, O_WRONLY | O_CLOEXEC);
	}
	if (p.fd < 0) {
		fprintf(stderr, "vmctl: %s: %s\n", file, strerror(errno));
		return VMCTL_EXIT_USAGE;
	}
	if (import && !has_format) {
		char magic[4];

		format = pread(p.fd, magic, 4, 0) == 4 && !memcmp(magic, "QFI\xfb", 4) ? VMC_DISK_FORMAT_QCOW2
										       : VMC_DISK_FORMAT_RAW;
	}
	if (import && fstat(p.fd, &st) == 0 && S_ISREG(st.st_mode))
		p.total = (uint64_t)st.st_size;
	if (isatty(2) && !ctx->json)
		thread = pthread_create(&th, NULL, disk_progress_thread, &p) == 0;
	r = import ? vmc_disk_import(cl, name, p.fd, format, &img, &err) : vmc_disk_export(cl, name, p.fd, &img, &err);
	if (thread) {
		pthread_mutex_lock(&p.lock);
		p.done = true;
		pthread_cond_signal(&p.cond);
		pthread_mutex_unlock(&p.lock);
		pthread_join(th, NULL);
	}
	if (r == 0 && !import && fstat(p.fd, &st) == 0 && S_ISREG(st.st_mode)) {
		off_t end = lseek(p.fd, 0, SEEK_CUR);

		if (end >= 0 && ftruncate(p.fd, end) < 0)
			fprintf(stderr, "vmctl: %s: %s\n", file, strerror(errno));
	}
	close(p.fd);
	if (r < 0) {
		if (created)
			unlink(file);
		return vmctl_rpc_error(&err);
	}
	disk_print(ctx, &img);
	vmc_disk_image_clear(&img);
	return VMCTL_EXIT_OK;
}

static int disk_list(struct vmctl_ctx *ctx, struct vmc_client *cl)
{
	struct vmc_error err = { 0 };
	struct vmc_disk_image *imgs = NULL;
	size_t n = 0;
	int wname = 4;

	if (vmc_disk_list(cl, &imgs, &n, &err) < 0)
		return vmctl_rpc_error(&err);
	if (ctx->json) {
		for (size_t i = 0; i < n; i++)
			disk_print(ctx, &imgs[i]);
		vmc_disk_list_free(imgs, n);
		return VMCTL_EXIT_OK;
	}
	for (size_t i = 0; i < n; i++)
		if ((int)strlen(imgs[i].name) > wname)
			wname = (int)strlen(imgs[i].name);
	printf("%-*s  %6s  %-6s  %14s  %14s  %-4s  %s\n", wname, "NAME", "OWNER", "FORMAT", "SIZE", "ALLOCATED", "FS",
	       "VM");
	for (size_t i = 0; i < n; i++) {
		const struct vmc_disk_image *m = &imgs[i];

		printf("%-*s  %6u  %-6s  %14" PRIu64 "  %14" PRIu64 "  %-4s  %s\n", wname, m->name, m->owner_uid,
		       disk_format_name(m->format), m->virtual_size, m->allocated_size,
		       *m->filesystem ? m->filesystem : "-", *m->vm ? m->vm : "-");
	}
	vmc_disk_list_free(imgs, n);
	return VMCTL_EXIT_OK;
}

int cmd_disk(struct vmctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' }, { "format", required_argument, NULL, 'f' },
		{ "fs", required_argument, NULL, 'F' },	  { "from-dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },	  { NULL, 0, NULL, 0 },
	};
	struct vmc_disk_create_opts co = { 0 };
	struct vm_error perr = { 0 };
	struct vmc_error err = { 0 };
	struct vmc_disk_image img;
	const char *sub, *ops[2] = { NULL, NULL };
	bool has_size = false, has_format = false;
	struct vmc_client *cl;
	unsigned nops = 0, want;
	int c, r;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		if (argc >= 2) {
			fputs(cmd_disk_help, stdout);
			return VMCTL_EXIT_OK;
		}
		vm_error_set(&perr, VM_INVALID_ARGUMENT,
			     "missing subcommand (create, list, resize, rm, import, export)");
		return vmctl_usage_error("disk", &perr);
	}
	sub = argv[1];
	if (!strcmp(sub, "create") || !strcmp(sub, "rm"))
		want = 1;
	else if (!strcmp(sub, "list"))
		want = 0;
	else if (!strcmp(sub, "resize") || !strcmp(sub, "import") || !strcmp(sub, "export"))
		want = 2;
	else {
		vm_error_set(&perr, VM_INVALID_ARGUMENT,
			     "unknown subcommand '%s' (create, list, resize, rm, import, export)", sub);
		return vmctl_usage_error("disk", &perr);
	}
	optind = 0;
	opterr = 0;
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(cmd_disk_help, stdout);
			return VMCTL_EXIT_OK;
		case 's':
			if (disk_parse_size(optarg, &co.size, &perr) < 0)
				return vmctl_usage_error("disk", &perr);
			has_size = true;
			break;
		case 'f':
			if (disk_parse_format(optarg, &co.format, &perr) < 0)
				return vmctl_usage_error("disk", &perr);
			has_format = true;
			break;
		case 'F':
			if (strcmp(optarg, "ext4")) {
				vm_error_set(&perr, VM_INVALID_ARGUMENT, "invalid --fs '%s': only ext4", optarg);
				return vmctl_usage_error("disk", &perr);
			}
			co.filesystem = optarg;
			break;
		case 'd':
			co.from_dir = optarg;
			break;
		default:
			vmctl_getopt_error(c, argv, &perr);
			return vmctl_usage_error("disk", &perr);
		}
	}
	for (int i = optind; i < argc; i++) {
		if (nops == want) {
			vm_error_set(&perr, VM_INVALID_ARGUMENT, "unexpected argument '%s'", argv[i]);
			return vmctl_usage_error("disk", &perr);
		}
		ops[nops++] = argv[i];
	}
	if (nops < want) {
		vm_error_set(&perr, VM_INVALID_ARGUMENT, "disk %s: missing %s", sub, nops ? "SIZE or FILE" : "NAME");
		return vmctl_usage_error("disk", &perr);
	}
	if ((has_size && strcmp(sub, "create")) || (has_format && strcmp(sub, "create") && strcmp(sub, "import")) ||
	    ((co.filesystem || co.from_dir) && strcmp(sub, "create"))) {
		vm_error_set(&perr, VM_INVALID_ARGUMENT, "disk %s: option not valid here", sub);
		return vmctl_usage_error("disk", &perr);
	}
	if (!strcmp(sub, "create") && !has_size) {
		vm_error_set(&perr, VM_INVALID_ARGUMENT, "disk create: --size SIZE is required");
		return vmctl_usage_error("disk", &perr);
	}
	if (co.from_dir && !co.filesystem) {
		vm_error_set(&perr, VM_INVALID_ARGUMENT, "disk create: --from-dir needs --fs ext4");
		return vmctl_usage_error("disk", &perr);
	}
	if (!strcmp(sub, "resize") && disk_parse_size(ops[1], &co.size, &perr) < 0)
		return vmctl_usage_error("disk", &perr);
	/* the daemon reads --from-dir by path: make it absolute here */
	char *abs_dir = co.from_dir ? realpath(co.from_dir, NULL) : NULL;
	if (co.from_dir && abs_dir)
		co.from_dir = abs_dir;

	cl = vmctl_connect(ctx);
	if (!cl) {
		free(abs_dir);
		return VMCTL_EXIT_USAGE;
	}
	co.name = ops[0];
	r = 0;
	if (!strcmp(sub, "list")) {
		r = disk_list(ctx, cl);
	} else if (!strcmp(sub, "import") || !strcmp(sub, "export")) {
		r = disk_transfer(ctx, cl, !strcmp(sub, "import"), ops[0], ops[1], has_format, co.format);
	} else if (!strcmp(sub, "rm")) {
		if (vmc_disk_delete(cl, ops[0], &err) < 0)
			r = vmctl_rpc_error(&err);
		else if (ctx->json) {
			struct json_obj o;

			json_begin(&o, stdout);
			json_str(&o, "name", ops[0]);
			json_bool(&o, "deleted", true);
			json_end(&o);
		}
	} else {
		if (!strcmp(sub, "create"))
			r = vmc_disk_create(cl, &co, &img, &err);
		else
			r = vmc_disk_resize(cl, ops[0], co.size, &img, &err);
		if (r < 0) {
			r = vmctl_rpc_error(&err);
		} else {
			disk_print(ctx, &img);
			vmc_disk_image_clear(&img);
		}
	}
	vmc_close(cl);
	free(abs_dir);
	return r;
}
