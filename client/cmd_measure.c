/* cmd_measure.c - `vmctl measure`: the launch measurement virtmgrd will
 * compute for `vmctl run` with the same options, computed here, offline,
 * with the daemon's own code (server/measure.c), printed as lowercase hex.
 *
 * The options are vmctl run's (parsed by cmd_run_parse(), so the two
 * cannot drift), after two of measure's own, which come first: --hash-alg, and
 * --guest-dir, where the daemon's default kernel and initramfs are (the
 * daemon's --guest-dir; default the installed guest directory). A disk
 * given with ",measured" is hashed here from its path; one from the image
 * store cannot be read offline and is refused.
 */
#include "config.h"
#include "client/cmd_attest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "client/json.h"
#include "server/measure.h"

const char cmd_measure_help[] =
	"Usage: vmctl measure [--hash-alg sha-256|sha-384] [--guest-dir DIR] [RUN OPTIONS] [--] [CMD [ARGS...]]\n"
	"\n"
	"Print the launch measurement (RIM) that virtmgrd computes for a VM started\n"
	"with `vmctl run RUN OPTIONS CMD ARGS`, as lowercase hex, without a daemon.\n"
	"Kernel, initrd and disks marked ,measured are read from their paths.\n"
	"\n"
	"Options:\n"
	"  --hash-alg ALG    sha-256 (default) or sha-384\n"
	"  --guest-dir DIR   where the default kernel and initramfs are\n"
	"                    (virtmgrd's --guest-dir; default " PKGDATADIR
	"/guest)\n"
	"  -h, --help        this help\n"
	"\n"
	"--hash-alg and --guest-dir come first; all options of vmctl run follow.\n"
	"Those that are not measured (--name, --console, --detach, ...) do not\n"
	"change the value.\n";

/* Open @path for measuring. Return: fd, or -1 after printing the error. */
static int open_input(const char *what, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		fprintf(stderr, "vmctl: measure: %s %s: %s\n", what, path, strerror(errno));
	return fd;
}

int cmd_measure(struct vmctl_ctx *ctx, int argc, char **argv)
{
	const char *alg = "sha-256", *guest_dir = PKGDATADIR "/guest";
	struct vm_error perr = { 0 };
	struct cmd_run_opts o;
	struct measure_input in = { 0 };
	struct measure_disk disks[16];
	char **args, label[32], errbuf[512], hex[2 * MEASURE_MAX + 1];
	uint8_t rim[MEASURE_MAX];
	size_t len, nd = 0;
	int nargs = 0, r, ret = VMCTL_EXIT_FAILED, i;

	/* measure's own options come first (so that nothing of the payload,
	 * which may follow run's options without a "--", is taken for one);
	 * the rest are run's */
	args = xcalloc((size_t)argc + 1, sizeof(*args));
	args[nargs++] = argv[0];
	for (i = 1; i < argc && (!strcmp(argv[i], "--hash-alg") || !strcmp(argv[i], "--guest-dir")); i += 2) {
		if (i + 1 >= argc) {
			vm_error_set(&perr, VM_INVALID_ARGUMENT, "%s needs a value", argv[i]);
			free(args);
			return vmctl_usage_error("measure", &perr);
		}
		if (argv[i][2] == 'h')
			alg = argv[i + 1];
		else
			guest_dir = argv[i + 1];
	}
	for (; i < argc; i++)
		args[nargs++] = argv[i];
	if (!*alg || measure_hash_size(alg) == 0) {
		vm_error_set(&perr, VM_INVALID_ARGUMENT, "invalid --hash-alg '%s': expected sha-256 or sha-384", alg);
		ret = vmctl_usage_error("measure", &perr);
		goto out_args;
	}
	r = cmd_run_parse(nargs, args, &o, &perr);
	if (r == VMCTL_PARSE_HELP) {
		fputs(cmd_measure_help, stdout);
		ret = VMCTL_EXIT_OK;
		goto out_opts;
	}
	if (r < 0) {
		ret = vmctl_usage_error("measure", &perr);
		goto out_opts;
	}

	in.hash_alg = alg;
	in.memory_mib = o.cfg.memory_mib ? o.cfg.memory_mib : MEASURE_DEFAULT_MEMORY_MIB;
	in.cpus = o.cfg.cpus ? o.cfg.cpus : MEASURE_DEFAULT_CPUS;
	in.kernel_fd = in.initrd_fd = -1;
	for (size_t k = 0; k < 16; k++)
		disks[k].fd = -1;
	if (o.cfg.kernel) {
		in.kernel_fd = open_input("kernel", o.cfg.kernel);
		if (in.kernel_fd < 0)
			goto out;
		if (o.cfg.initrd && (in.initrd_fd = open_input("initrd", o.cfg.initrd)) < 0)
			goto out;
	} else {
		char *k = xasprintf("%s/vmlinuz", guest_dir), *ir;

		in.kernel_fd = open_input("default kernel", k);
		free(k);
		if (in.kernel_fd < 0)
			goto out;
		ir = o.cfg.initrd ? xstrdup(o.cfg.initrd) : xasprintf("%s/initramfs.img", guest_dir);
		in.initrd_fd = open_input("initrd", ir);
		free(ir);
		if (in.initrd_fd < 0)
			goto out;
	}
	in.cmdline = o.cfg.cmdline;
	in.argv = o.cfg.payload_args;
	in.argc = o.cfg.n_payload_args;
	in.env = o.cfg.payload_env;
	in.envc = o.cfg.n_payload_env;
	in.cwd = o.cfg.payload_cwd;
	in.has_user = o.cfg.has_payload_user;
	in.uid = o.cfg.payload_uid;
	in.gid = o.cfg.payload_gid;
	for (size_t k = 0; k < o.cfg.n_disks; k++) {
		const struct vmc_disk *d = &o.cfg.disks[k];

		if (!d->measured)
			continue;
		if (!d->read_only) {
			fprintf(stderr, "vmctl: measure: disks[%zu]: a measured disk must be read-only (add ,ro)\n", k);
			goto out;
		}
		if (!d->path) {
			fprintf(stderr,
				"vmctl: measure: disks[%zu]: image \"%s\" of the store cannot be measured "
				"offline; give its path\n",
				k, d->image ? d->image : "");
			goto out;
		}
		if (nd == 16)
			break;
		if (d->label)
			snprintf(label, sizeof(label), "%s", d->label);
		else
			snprintf(label, sizeof(label), "disk%zu", k);
		disks[nd].label = xstrdup(label);
		disks[nd].fd = open_input("disk", d->path);
		if (disks[nd++].fd < 0)
			goto out;
	}
	in.disks = disks;
	in.ndisks = nd;
	if (measure_launch(&in, rim, &len, errbuf, sizeof(errbuf)) < 0) {
		fprintf(stderr, "vmctl: measure: %s\n", errbuf);
		goto out;
	}
	measure_hex(rim, len, hex);
	if (ctx->json) {
		struct json_obj jo;

		json_begin(&jo, stdout);
		json_str(&jo, "measurement", hex);
		json_str(&jo, "measurement_alg", alg);
		json_end(&jo);
	} else {
		printf("%s\n", hex);
	}
	ret = VMCTL_EXIT_OK;
out:
	if (in.kernel_fd >= 0)
		close(in.kernel_fd);
	if (in.initrd_fd >= 0)
		close(in.initrd_fd);
	for (size_t k = 0; k < nd; k++) {
		if (disks[k].fd >= 0)
			close(disks[k].fd);
		free((char *)disks[k].label);
	}
out_opts:
	cmd_run_opts_release(&o);
out_args:
	free(args);
	return ret;
}
