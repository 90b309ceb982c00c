/* cmd_logs.c - `vmctl logs VM [--kind console|guest|qemu] [-f]`: OpenLog
 * hands back read-only fds of the log file in the VM's run directory and of
 * the files the daemon rotated out of it (virtmgrd --log-max-size,
 * --log-keep), oldest first; vmctl copies them to stdout in that order.
 * With -f it keeps reading the current file like `tail -f`: at end of file
 * it sleeps a little and retries, and stops once the VM is DEAD (or gone)
 * and the file has no more bytes. When the file it follows stops growing it
 * asks OpenLog again: a current file with another inode means the log was
 * rotated under it, so it drains the old fd, prints the files rotated after
 * it, and follows the new one. qemu.log is rotated by copy-and-truncate
 * (same inode, shorter file): then it reads the file again from its start.
 */
#include "config.h"
#include "client/vmctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

const char cmd_logs_help[] =
	"Usage: vmctl logs [--kind console|guest|qemu] [-f] VM\n"
	"\n"
	"Print a log of VM (an id or a name): the console output (default), the\n"
	"guest's log records, or QEMU's own output.\n"
	"\n"
	"Options:\n"
	"  -k, --kind KIND   console, guest or qemu (default: console)\n"
	"  -f, --follow      keep printing new output until the VM is dead (or Ctrl-C)\n"
	"  -h, --help        this help\n";

int cmd_logs_parse(int argc, char **argv, struct cmd_logs_opts *o, struct vm_error *err)
{
	static const struct option opts[] = {
		{ "kind", required_argument, NULL, 'k' },
		{ "follow", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, k;

	o->vm = NULL;
	o->kind = VMC_LOG_CONSOLE;
	o->follow = false;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":k:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			k = vmc_log_kind_from_name(optarg);
			if (k < 0)
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "invalid --kind '%s': expected console, guest or qemu", optarg);
			o->kind = (enum vmc_log_kind)k;
			break;
		case 'f':
			o->follow = true;
			break;
		case 'h':
			return VMCTL_PARSE_HELP;
		default:
			return vmctl_getopt_error(c, argv, err);
		}
	}
	return vmctl_parse_vm_operand(argc, argv, optind, &o->vm, err);
}

/* Copy what @fd has now. Return: the bytes copied, -1 on error. */
static ssize_t copy_available(int fd)
{
	char buf[65536];
	ssize_t total = 0;

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return total;
		if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
			return -1;
		total += n;
	}
}

static bool same_file(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Copy the rotated files fds[from..n-2], close fds[0..n-2]. */
static int copy_older(int *fds, int n, int from)
{
	int r = 0;

	for (int i = 0; i < n - 1; i++) {
		if (i >= from && r == 0 && copy_available(fds[i]) < 0)
			r = -1;
		close(fds[i]);
	}
	return r;
}

/*
 * The file *cur follows stopped growing: if OpenLog's current file is
 * another one, the log was rotated under it. Drain *cur, print what was
 * rotated after it, and make *cur the new current file.
 * Return: 0, or -1 with errno (output) or @err (RPC) set.
 */
static int follow_rotation(struct vmc_client *cl, const struct cmd_logs_opts *o, int *cur, struct vmc_error *err)
{
	int fds[VMC_LOG_FILES_MAX];
	int n, from = 0, r;
	struct stat st;
	off_t pos;

	/* copy-and-truncate (qemu.log): the same file, now shorter than where we are */
	pos = lseek(*cur, 0, SEEK_CUR);
	if (fstat(*cur, &st) == 0 && pos > st.st_size)
		lseek(*cur, 0, SEEK_SET);
	memset(err, 0, sizeof(*err));
	n = vmc_open_log_all(cl, o->vm, o->kind, fds, ARRAY_SIZE(fds), err);
	if (n < 0)
		return -1;
	if (same_file(fds[n - 1], *cur)) {
		copy_older(fds, n, n);
		close(fds[n - 1]);
		return 0;
	}
	/* nothing is written to the old file any more: what it has is all there is */
	r = copy_available(*cur) < 0 ? -1 : 0;
	while (from < n - 1 && !same_file(fds[from], *cur))
		from++;
	if (from == n - 1) {
		fprintf(stderr, "vmctl: logs: output was rotated away before it could be read\n");
		from = 0;
	} else {
		from++;
	}
	if (copy_older(fds, n, r < 0 ? n : from) < 0)
		r = -1;
	close(*cur);
	*cur = fds[n - 1];
	return r;
}

int cmd_logs(struct vmctl_ctx *ctx, int argc, char **argv)
{
	const struct timespec pause = { .tv_sec = 0, .tv_nsec = 250 * 1000 * 1000 };
	struct vm_error perr = { 0 };
	struct vmc_error err = { 0 };
	int fds[VMC_LOG_FILES_MAX];
	struct cmd_logs_opts o;
	struct vmc_client *cl;
	int r, n, fd;

	r = cmd_logs_parse(argc, argv, &o, &perr);
	if (r < 0)
		return vmctl_usage_error("logs", &perr);
	if (r == VMCTL_PARSE_HELP) {
		fputs(cmd_logs_help, stdout);
		return VMCTL_EXIT_OK;
	}
	cl = vmctl_connect(ctx);
	if (!cl)
		return VMCTL_EXIT_USAGE;
	n = vmc_open_log_all(cl, o.vm, o.kind, fds, ARRAY_SIZE(fds), &err);
	if (n < 0) {
		vmc_close(cl);
		return vmctl_rpc_error(&err);
	}
	fd = fds[n - 1];
	if (copy_older(fds, n, 0) < 0) {
		fprintf(stderr, "vmctl: logs: %s\n", strerror(errno));
		close(fd);
		vmc_close(cl);
		return VMCTL_EXIT_RPC;
	}
	for (;;) {
		struct vmc_vm_info vm;
		ssize_t got;
		bool gone;

		got = copy_available(fd);
		if (got < 0) {
			fprintf(stderr, "vmctl: logs: %s\n", strerror(errno));
			r = VMCTL_EXIT_RPC;
			break;
		}
		r = VMCTL_EXIT_OK;
		if (!o.follow)
			break;
		/* the state is asked after reading: bytes written before death are never lost */
		if (vmc_get_vm_info(cl, o.vm, &vm, &err) < 0) {
			gone = err.code == VMC_STATUS_NOT_FOUND;
			if (!gone) {
				r = vmctl_rpc_error(&err);
				break;
			}
		} else {
			gone = vm.state == VMC_STATE_DEAD;
			vmc_vm_info_clear(&vm);
		}
		if (gone) {
			if (copy_available(fd) < 0)
				r = VMCTL_EXIT_RPC;
			break;
		}
		/* an OpenLog that fails here (the VM died since) is seen by the next state check */
		if (got == 0 && follow_rotation(cl, &o, &fd, &err) < 0 && !err.code) {
			fprintf(stderr, "vmctl: logs: %s\n", strerror(errno));
			r = VMCTL_EXIT_RPC;
			break;
		}
		if (got == 0)
			nanosleep(&pause, NULL);
	}
	close(fd);
	vmc_close(cl);
	return r;
}
