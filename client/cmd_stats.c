/* cmd_stats.c - `vmctl stats VM`: one GetVmStats reading of a VM - CPU time
 * and RSS of its host processes, the balloon and the guest's own memory
 * view, block I/O per disk, network and vsock bytes - as lines or, with
 * --json, one nested JSON object.
 */
#include "config.h"
#include "client/vmctl.h"

#include <inttypes.h>
#include <stdio.h>

#include "client/json.h"

const char cmd_stats_help[] =
	"Usage: vmctl stats VM\n"
	"\n"
	"Show what VM uses now (GetVmStats): CPU time and resident memory of its\n"
	"host processes (QEMU, the vsock backend, virtiofsd), guest memory as the\n"
	"balloon reports it and as the guest sees it (total, free, available),\n"
	"bytes and operations per disk, bytes per network interface, and bytes\n"
	"through the vsock backend. VM is an id or a name. Figures are counters\n"
	"since the VM started; `vmctl top` shows rates.\n"
	"\n"
	"Options:\n"
	"  -h, --help   this help\n"
	"With the global --json, prints one JSON object (fields as in the API).\n";

static void pkv(FILE *f, bool *first, const char *key)
{
	fprintf(f, "%s\"%s\":", *first ? "" : ",", key);
	*first = false;
}

#define JU(key, val)                                     \
	do {                                             \
		pkv(f, &first, key);                     \
		fprintf(f, "%" PRIu64, (uint64_t)(val)); \
	} while (0)
#define JS(key, val)                         \
	do {                                 \
		pkv(f, &first, key);         \
		json_write_string(f, (val)); \
	} while (0)
#define JB(key, val)                                \
	do {                                        \
		pkv(f, &first, key);                \
		fputs((val) ? "true" : "false", f); \
	} while (0)

void vmctl_print_stats_json(FILE *f, const struct vmc_vm_stats *st)
{
	bool first = true;

	fputc('{', f);
	JS("vm", st->vm);
	JU("timestamp_ns", st->timestamp_ns);
	JU("cpu_ns", st->cpu_ns);
	JU("rss_bytes", st->rss_bytes);
	JU("memory_bytes", st->memory_bytes);
	JU("cpus", st->cpus);
	pkv(f, &first, "processes");
	fputc('[', f);
	for (size_t i = 0; i < st->n_processes; i++) {
		const struct vmc_process_stats *p = &st->processes[i];

		fputs(i ? ",{" : "{", f);
		first = true;
		JS("name", p->name);
		JU("pid", (uint64_t)p->pid);
		JU("cpu_user_ns", p->cpu_user_ns);
		JU("cpu_system_ns", p->cpu_system_ns);
		JU("rss_bytes", p->rss_bytes);
		JU("read_bytes", p->read_bytes);
		JU("write_bytes", p->write_bytes);
		fputc('}', f);
	}
	fputc(']', f);
	first = false;
	pkv(f, &first, "disks");
	fputc('[', f);
	for (size_t i = 0; i < st->n_disks; i++) {
		const struct vmc_disk_stats *d = &st->disks[i];

		fputs(i ? ",{" : "{", f);
		first = true;
		JS("label", d->label);
		JU("read_bytes", d->read_bytes);
		JU("write_bytes", d->write_bytes);
		JU("read_ops", d->read_ops);
		JU("write_ops", d->write_ops);
		JU("flush_ops", d->flush_ops);
		fputc('}', f);
	}
	fputc(']', f);
	first = false;
	pkv(f, &first, "nets");
	fputc('[', f);
	for (size_t i = 0; i < st->n_nets; i++) {
		const struct vmc_net_stats *n = &st->nets[i];

		fputs(i ? ",{" : "{", f);
		first = true;
		JS("name", n->name);
		JU("rx_bytes", n->rx_bytes);
		JU("tx_bytes", n->tx_bytes);
		JU("rx_packets", n->rx_packets);
		JU("tx_packets", n->tx_packets);
		fputc('}', f);
	}
	fputc(']', f);
	first = false;
	pkv(f, &first, "balloon");
	fputc('{', f);
	first = true;
	JB("present", st->balloon);
	JU("actual_bytes", st->balloon_actual_bytes);
	JU("target_bytes", st->balloon_target_bytes);
	JB("guest_stats_valid", st->guest_stats_valid);
	JU("guest_total_bytes", st->guest_total_bytes);
	JU("guest_free_bytes", st->guest_free_bytes);
	JU("guest_available_bytes", st->guest_available_bytes);
	JU("guest_stats_age_s", st->guest_stats_age_s);
	fputc('}', f);
	first = false;
	JU("vsock_rx_bytes", st->vsock_rx_bytes);
	JU("vsock_tx_bytes", st->vsock_tx_bytes);
	fputc('}', f);
}

#undef JU
#undef JS
#undef JB

static double mib(uint64_t b)
{
	return (double)b / (1024.0 * 1024.0);
}

static void print_stats(const struct vmc_vm_stats *st)
{
	printf("vm:            %s\n", st->vm);
	printf("cpu time:      %.3f s\n", (double)st->cpu_ns / 1e9);
	printf("host memory:   %.1f MiB resident\n", mib(st->rss_bytes));
	for (size_t i = 0; i < st->n_processes; i++) {
		const struct vmc_process_stats *p = &st->processes[i];

		printf("  %-10s pid %-7d cpu %.3f s (user %.3f, system %.3f)  rss %.1f MiB\n", p->name, p->pid,
		       (double)(p->cpu_user_ns + p->cpu_system_ns) / 1e9, (double)p->cpu_user_ns / 1e9,
		       (double)p->cpu_system_ns / 1e9, mib(p->rss_bytes));
	}
	printf("guest memory:  %.0f MiB, %u vCPU%s\n", mib(st->memory_bytes), st->cpus, st->cpus == 1 ? "" : "s");
	if (st->balloon)
		printf("balloon:       %.0f MiB left to the guest%s\n", mib(st->balloon_actual_bytes),
		       st->balloon_target_bytes ? "" : " (no target set)");
	else
		printf("balloon:       -\n");
	if (st->guest_stats_valid)
		printf("guest view:    total %.1f MiB, free %.1f MiB, available %.1f MiB (%" PRIu64 " s old)\n",
		       mib(st->guest_total_bytes), mib(st->guest_free_bytes), mib(st->guest_available_bytes),
		       st->guest_stats_age_s);
	else
		printf("guest view:    not reported yet\n");
	for (size_t i = 0; i < st->n_disks; i++) {
		const struct vmc_disk_stats *d = &st->disks[i];

		printf("disk %-8s read %" PRIu64 " B (%" PRIu64 " ops), written %" PRIu64 " B (%" PRIu64
		       " ops), %" PRIu64 " flushes\n",
		       d->label, d->read_bytes, d->read_ops, d->write_bytes, d->write_ops, d->flush_ops);
	}
	for (size_t i = 0; i < st->n_nets; i++) {
		const struct vmc_net_stats *n = &st->nets[i];

		printf("net %-9s rx %" PRIu64 " B (%" PRIu64 " packets), tx %" PRIu64 " B (%" PRIu64 " packets)\n",
		       n->name, n->rx_bytes, n->rx_packets, n->tx_bytes, n->tx_packets);
	}
	printf("vsock:         to guest %" PRIu64 " B, from guest %" PRIu64 " B\n", st->vsock_rx_bytes,
	       st->vsock_tx_bytes);
}

int cmd_stats(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vm_error perr = { 0 };
	struct vmc_error err = { 0 };
	struct vmc_vm_stats st;
	struct cmd_vm_opts o;
	struct vmc_client *cl;
	int r;

	r = cmd_vm_parse(argc, argv, true, &o, &perr);
	if (r < 0)
		return vmctl_usage_error("stats", &perr);
	if (r == VMCTL_PARSE_HELP) {
		fputs(cmd_stats_help, stdout);
		return VMCTL_EXIT_OK;
	}
	cl = vmctl_connect(ctx);
	if (!cl)
		return VMCTL_EXIT_USAGE;
	r = vmc_get_vm_stats(cl, o.vm, &st, &err);
	vmc_close(cl);
	if (r < 0)
		return vmctl_rpc_error(&err);
	if (ctx->json) {
		vmctl_print_stats_json(stdout, &st);
		putchar('\n');
	} else
		print_stats(&st);
	vmc_vm_stats_clear(&st);
	return VMCTL_EXIT_OK;
}
