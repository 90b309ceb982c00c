/* cmd_top.c - `vmctl top`: a refreshing table of every VM the caller may
 * see, like virt-top or `docker stats`. Each round lists the VMs
 * (ListVms), reads each live one's statistics (GetVmStats) and turns the
 * difference from the previous reading into rates: CPU % of one host CPU,
 * disk and vsock bytes per second. On a terminal the screen is redrawn in
 * place; otherwise each round is printed as plain lines (with --json one
 * object per VM), so the output can be piped or logged.
 */
#include "config.h"
#include "client/vmctl.h"

#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/json.h"

const char cmd_top_help[] =
	"Usage: vmctl top [-d SEC] [-n N]\n"
	"\n"
	"Show every VM you may see with what it uses, refreshed every SEC seconds:\n"
	"state, CPU % (of one host CPU, all its host processes), host memory\n"
	"resident (RSS), guest memory in use as the guest reports it, disk read\n"
	"and write rates, and vsock bytes per second. On a terminal the table is\n"
	"redrawn in place (Ctrl-C ends); when stdout is not a terminal each round\n"
	"is printed as plain lines after a line \"--- TIME\". Rates need two\n"
	"readings: the first round comes after one interval.\n"
	"\n"
	"Options:\n"
	"  -d, --delay SEC        seconds between rounds (default 2, fractions allowed)\n"
	"  -n, --iterations N     stop after N rounds (default: until interrupted)\n"
	"  -h, --help             this help\n"
	"With the global --json, prints each VM of each round as one JSON object\n"
	"(GetVmStats' fields plus name, state and the rates).\n";

int cmd_top_parse(int argc, char **argv, struct cmd_top_opts *o, struct vm_error *err)
{
	static const struct option opts[] = {
		{ "delay", required_argument, NULL, 'd' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct cmd_top_opts){ .delay_ms = 2000 };
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+d:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (vmctl_parse_seconds(optarg, "--delay", &o->delay_ms, err) < 0)
				return -1;
			if (o->delay_ms < 100)
				return vm_error_set(err, VM_INVALID_ARGUMENT, "--delay: at least 0.1 seconds, not '%s'",
						    optarg);
			break;
		case 'n':
			if (vmctl_parse_u32(optarg, "--iterations", &o->iterations, err) < 0)
				return -1;
			break;
		case 'h':
			return VMCTL_PARSE_HELP;
		default:
			return vmctl_getopt_error(c, argv, err);
		}
	}
	if (optind < argc)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "unexpected argument '%s'", argv[optind]);
	return VMCTL_PARSE_OK;
}

/* One VM's reading kept for the next round. */
struct top_prev {
	char *id;
	uint64_t ts, cpu, disk_rd, disk_wr, vsock;
	bool seen;
};

struct top_row {
	struct vmc_vm_info *info;
	bool has_stats;
	struct vmc_vm_stats st;
	double cpu_pct, rd_rate, wr_rate, vsock_rate; /* < 0: no earlier reading */
};

static struct top_prev *prev_find(struct top_prev **prev, size_t *n, const char *id)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*prev)[i].id, id))
			return &(*prev)[i];
	*prev = xrealloc(*prev, (*n + 1) * sizeof(**prev));
	(*prev)[*n] = (struct top_prev){ .id = xstrdup(id) };
	return &(*prev)[(*n)++];
}

static void human(char *buf, size_t size, double bytes)
{
	static const char *const units[] = { "B", "K", "M", "G", "T" };
	unsigned u = 0;

	while (bytes >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, size, u ? "%.1f%s" : "%.0f%s", bytes, units[u]);
}

static void rate(char *buf, size_t size, double r)
{
	if (r < 0) {
		snprintf(buf, size, "-");
		return;
	}
	human(buf, size, r);
	strncat(buf, "/s", size - strlen(buf) - 1);
}

static void print_json_row(const struct top_row *r)
{
	printf("{\"id\":");
	json_write_string(stdout, r->info->id);
	printf(",\"name\":");
	json_write_string(stdout, r->info->name);
	printf(",\"state\":");
	json_write_string(stdout, vmc_state_name(r->info->state));
	if (r->cpu_pct >= 0)
		printf(",\"cpu_percent\":%.1f,\"disk_read_bytes_per_s\":%.0f,\"disk_write_bytes_per_s\":%.0f,"
		       "\"vsock_bytes_per_s\":%.0f",
		       r->cpu_pct, r->rd_rate, r->wr_rate, r->vsock_rate);
	if (r->has_stats) {
		printf(",\"stats\":");
		vmctl_print_stats_json(stdout, &r->st);
	}
	printf("}\n");
}

static void print_round(const struct vmctl_ctx *ctx, struct top_row *rows, size_t n, bool tty)
{
	char when[64];
	time_t now = time(NULL);
	struct tm tm;
	int wname = 4;

	if (ctx->json) {
		for (size_t i = 0; i < n; i++)
			print_json_row(&rows[i]);
		fflush(stdout);
		return;
	}
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
	if (tty)
		printf("\033[H\033[2Jvmctl top - %s - %zu VM%s\n\n", when, n, n == 1 ? "" : "s");
	else
		printf("--- %s\n", when);
	for (size_t i = 0; i < n; i++)
		if ((int)strlen(rows[i].info->name) > wname)
			wname = (int)strlen(rows[i].info->name);
	printf("%-12s  %-*s  %-11s  %6s  %8s  %15s  %10s  %10s  %10s\n", "ID", wname, "NAME", "STATE", "CPU%", "RSS",
	       "GUEST MEM", "DISK RD", "DISK WR", "VSOCK");
	for (size_t i = 0; i < n; i++) {
		const struct top_row *r = &rows[i];
		char cpu[16] = "-", rss[16] = "-", gm[40] = "-", rd[24], wr[24], vs[24], used[16], total[16];

		if (r->cpu_pct >= 0)
			snprintf(cpu, sizeof(cpu), "%.1f", r->cpu_pct);
		if (r->has_stats) {
			human(rss, sizeof(rss), (double)r->st.rss_bytes);
			if (r->st.guest_stats_valid && r->st.guest_total_bytes >= r->st.guest_available_bytes) {
				human(used, sizeof(used),
				      (double)(r->st.guest_total_bytes - r->st.guest_available_bytes));
				human(total, sizeof(total), (double)r->st.guest_total_bytes);
				snprintf(gm, sizeof(gm), "%s/%s", used, total);
			}
		}
		rate(rd, sizeof(rd), r->rd_rate);
		rate(wr, sizeof(wr), r->wr_rate);
		rate(vs, sizeof(vs), r->vsock_rate);
		printf("%-12s  %-*s  %-11s  %6s  %8s  %15s  %10s  %10s  %10s\n", r->info->id, wname, r->info->name,
		       vmc_state_name(r->info->state), cpu, rss, gm, rd, wr, vs);
	}
	fflush(stdout);
}

/* Read every visible VM and fill the rates from @prev. Return: 0 or -1 with @err. */
static int top_round(struct vmc_client *cl, struct top_prev **prev, size_t *nprev, struct vmc_vm_info **vms,
		     size_t *nvms, struct top_row **rows, struct vmc_error *err)
{
	if (vmc_list_vms(cl, vms, nvms, err) < 0)
		return -1;
	*rows = xcalloc(*nvms + 1, sizeof(**rows));
	for (size_t i = 0; i < *nvms; i++) {
		struct top_row *r = &(*rows)[i];
		struct vmc_error e2 = { 0 };
		struct top_prev *p;
		uint64_t rd = 0, wr = 0, vs;
		double dt;

		r->info = &(*vms)[i];
		r->cpu_pct = r->rd_rate = r->wr_rate = r->vsock_rate = -1;
		if (r->info->state == VMC_STATE_DEAD || r->info->state == VMC_STATE_NOT_STARTED)
			continue;
		/* a VM that dies between the two calls just has no figures */
		if (vmc_get_vm_stats(cl, r->info->id, &r->st, &e2) < 0)
			continue;
		r->has_stats = true;
		for (size_t k = 0; k < r->st.n_disks; k++) {
			rd += r->st.disks[k].read_bytes;
			wr += r->st.disks[k].write_bytes;
		}
		vs = r->st.vsock_rx_bytes + r->st.vsock_tx_bytes;
		p = prev_find(prev, nprev, r->info->id);
		if (p->seen && r->st.timestamp_ns > p->ts && r->st.cpu_ns >= p->cpu) {
			dt = (double)(r->st.timestamp_ns - p->ts) / 1e9;
			r->cpu_pct = (double)(r->st.cpu_ns - p->cpu) / 1e9 / dt * 100.0;
			r->rd_rate = rd >= p->disk_rd ? (double)(rd - p->disk_rd) / dt : 0;
			r->wr_rate = wr >= p->disk_wr ? (double)(wr - p->disk_wr) / dt : 0;
			r->vsock_rate = vs >= p->vsock ? (double)(vs - p->vsock) / dt : 0;
		}
		*p = (struct top_prev){ .id = p->id,
					.ts = r->st.timestamp_ns,
					.cpu = r->st.cpu_ns,
					.disk_rd = rd,
					.disk_wr = wr,
					.vsock = vs,
					.seen = true };
	}
	return 0;
}

static void top_round_free(struct vmc_vm_info *vms, size_t n, struct top_row *rows)
{
	for (size_t i = 0; i < n; i++)
		if (rows[i].has_stats)
			vmc_vm_stats_clear(&rows[i].st);
	free(rows);
	vmc_vm_info_array_free(vms, n);
}

int cmd_top(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vm_error perr = { 0 };
	struct vmc_error err = { 0 };
	struct cmd_top_opts o;
	struct top_prev *prev = NULL;
	size_t nprev = 0;
	struct vmc_client *cl;
	bool tty = isatty(STDOUT_FILENO);
	int r, ret = VMCTL_EXIT_OK;

	r = cmd_top_parse(argc, argv, &o, &perr);
	if (r < 0)
		return vmctl_usage_error("top", &perr);
	if (r == VMCTL_PARSE_HELP) {
		fputs(cmd_top_help, stdout);
		return VMCTL_EXIT_OK;
	}
	cl = vmctl_connect(ctx);
	if (!cl)
		return VMCTL_EXIT_USAGE;
	/* the first reading only primes the rates */
	for (uint32_t round = 0; !o.iterations || round <= o.iterations; round++) {
		struct vmc_vm_info *vms = NULL;
		struct top_row *rows = NULL;
		size_t n = 0;

		if (top_round(cl, &prev, &nprev, &vms, &n, &rows, &err) < 0) {
			ret = vmctl_rpc_error(&err);
			break;
		}
		if (round > 0)
			print_round(ctx, rows, n, tty && !ctx->json);
		top_round_free(vms, n, rows);
		if (o.iterations && round == o.iterations)
			break;
		poll(NULL, 0, (int)o.delay_ms);
	}
	for (size_t i = 0; i < nprev; i++)
		free(prev[i].id);
	free(prev);
	vmc_close(cl);
	return ret;
}
