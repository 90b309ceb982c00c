/* net.c - a VM's network device: VmConfig.network checked, passt started
 * and supervised for `user` mode, the guest's addresses, VmInfo.network
 * (see net.h and docs/network.md).
 *
 * passt is started like the vsock backend: forked by the daemon, confined
 * with sandbox_enter() under the VM's uid (no capabilities, NO_NEW_PRIVS;
 * passt installs its own seccomp filter and namespaces), its end of a
 * socketpair at fd 3 (--fd 3). The child writes one line to a close-on-exec
 * report pipe when it cannot confine itself; the parent reads until EOF (the
 * exec went ahead). passt's exit is seen through a pidfd; while the VM runs
 * it means the guest lost its network, so the VM is stopped with a message
 * naming passt and its last log line.
 *
 * Forwarded host ports are checked before passt starts, so that a port in
 * use or below the host's unprivileged port start is an error naming the
 * entry rather than a warning in passt's log: passt runs without
 * capabilities and could not bind a privileged port anyway.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/reaper.h"
#include "server/net.h"
#include "server/qemu.h"
#include "server/sandbox.h"
#include "server/statefile.h"

static const char *passt_binary(void)
{
	const char *env = getenv("VIRTMGR_PASST");

	return env && *env ? env : NET_PASST_BINARY;
}

void net_init(struct net_vm *n)
{
	memset(n, 0, sizeof(*n));
	n->qemu_fd = -1;
	n->passt_pid = -1;
	n->passt_pidfd = -1;
}

static const char *mode_name(enum net_mode m)
{
	switch (m) {
	case NET_MODE_USER:
		return "user";
	case NET_MODE_TAP:
		return "tap";
	case NET_MODE_NONE:
		break;
	}
	return "none";
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char end;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6 ||
	    strlen(s) != 17)
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

/* The host's lowest port an unprivileged process may bind. */
static unsigned unprivileged_port_start(void)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start", "re");
	unsigned v = 1024;

	if (f) {
		if (fscanf(f, "%u", &v) != 1)
			v = 1024;
		fclose(f);
	}
	return v;
}

static void build_info(struct net_vm *n)
{
	Virtmgr__V1__NetworkInfo *i = &n->info;

	virtmgr__v1__network_info__init(i);
	snprintf(n->mac_str, sizeof(n->mac_str), "%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0], n->mac[1], n->mac[2],
		 n->mac[3], n->mac[4], n->mac[5]);
	snprintf(n->address_str, sizeof(n->address_str), "%s/%d", NET_USER_ADDRESS, NET_USER_PREFIX);
	n->dns_list[0] = NET_USER_DNS;
	i->mode = (char *)mode_name(n->mode);
	i->mac = n->mac_str;
	i->address = n->address_str;
	i->gateway = NET_USER_GATEWAY;
	i->n_dns = 1;
	i->dns = n->dns_list;
	i->mtu = NET_USER_MTU;
	for (size_t k = 0; k < n->nfwd; k++) {
		Virtmgr__V1__PortForward *p = &n->info_ports[k];

		virtmgr__v1__port_forward__init(p);
		p->host_address = n->fwd[k].host_address;
		p->host_port = n->fwd[k].host_port;
		p->guest_port = n->fwd[k].guest_port;
		p->protocol = n->fwd[k].udp ? "udp" : "tcp";
		n->info_port_ptrs[k] = p;
	}
	i->n_ports = n->nfwd;
	i->ports = n->info_port_ptrs;
}

static int check_forward(const Virtmgr__V1__PortForward *p, size_t k, struct net_forward *f, struct vm_error *err)
{
	const char *proto = p->protocol && *p->protocol ? p->protocol : "tcp";
	const char *addr = p->host_address ? p->host_address : "";
	struct in_addr ia;

	if (strcmp(proto, "tcp") && strcmp(proto, "udp"))
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "network.ports[%zu].protocol: \"%.16s\" is not tcp or udp", k, proto);
	if (*addr && (strlen(addr) >= sizeof(f->host_address) || inet_pton(AF_INET, addr, &ia) != 1))
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "network.ports[%zu].host_address: \"%.64s\" is not an IPv4 address", k, addr);
	if (p->host_port < 1 || p->host_port > 65535)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "network.ports[%zu].host_port: %u is not in 1..65535", k,
				    p->host_port);
	if (p->guest_port < 1 || p->guest_port > 65535)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "network.ports[%zu].guest_port: %u is not in 1..65535", k,
				    p->guest_port);
	snprintf(f->host_address, sizeof(f->host_address), "%s", addr);
	f->host_port = (uint16_t)p->host_port;
	f->guest_port = (uint16_t)p->guest_port;
	f->udp = !strcmp(proto, "udp");
	return 0;
}

int net_config(struct net_vm *n, const Virtmgr__V1__NetworkConfig *c, uint32_t cid, struct vm_error *err)
{
	const char *mode = c && c->mode ? c->mode : "";

	if (!*mode || !strcmp(mode, "none"))
		n->mode = NET_MODE_NONE;
	else if (!strcmp(mode, "user"))
		n->mode = NET_MODE_USER;
	else if (!strcmp(mode, "tap"))
		return vm_error_set(err, VM_UNIMPLEMENTED,
				    "network.mode: \"tap\" is not available in this virtmgrd (use \"user\")");
	else
		return vm_error_set(err, VM_INVALID_ARGUMENT, "network.mode: unknown mode \"%.32s\" (none, user, tap)",
				    mode);
	if (n->mode == NET_MODE_NONE) {
		if (c && (c->n_ports || (c->mac && *c->mac)))
			return vm_error_set(err, VM_INVALID_ARGUMENT, "network.%s: given without a network (mode none)",
					    c->n_ports ? "ports" : "mac");
		return 0;
	}
	if (c->n_ports > NET_MAX_PORTS)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "network.ports: %zu, at most %d", c->n_ports,
				    NET_MAX_PORTS);
	if (c->mac && *c->mac) {
		if (parse_mac(c->mac, n->mac) < 0)
			return vm_error_set(err, VM_INVALID_ARGUMENT,
					    "network.mac: \"%.32s\" is not a MAC address (xx:xx:xx:xx:xx:xx)", c->mac);
		if (n->mac[0] & 1)
			return vm_error_set(err, VM_INVALID_ARGUMENT, "network.mac: %s is a multicast address", c->mac);
	} else {
		/* locally administered, "vm", then the CID: unique among live VMs */
		uint8_t d[6] = { 0x02, 0x76, 0x6d, (uint8_t)(cid >> 16), (uint8_t)(cid >> 8), (uint8_t)cid };

		memcpy(n->mac, d, sizeof(d));
	}
	for (size_t k = 0; k < c->n_ports; k++) {
		if (check_forward(c->ports[k], k, &n->fwd[k], err) < 0)
			return -1;
		for (size_t j = 0; j < k; j++)
			if (n->fwd[j].host_port == n->fwd[k].host_port && n->fwd[j].udp == n->fwd[k].udp)
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "network.ports[%zu].host_port: %u/%s is forwarded twice", k,
						    n->fwd[k].host_port, n->fwd[k].udp ? "udp" : "tcp");
		n->nfwd = k + 1;
	}
	build_info(n);
	return 0;
}

/* A forwarded port must be free now and bindable without privilege. */
static int check_port_free(const struct net_forward *f, size_t k, struct vm_error *err)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(f->host_port) };
	unsigned start = unprivileged_port_start();
	int one = 1;

	if (f->host_port < start)
		return vm_error_set(
			err, VM_PERMISSION_DENIED,
			"network.ports[%zu].host_port: %u is below %u (ip_unprivileged_port_start) and passt "
			"runs without privileges",
			k, f->host_port, start);
	if (f->host_address[0])
		inet_pton(AF_INET, f->host_address, &sa.sin_addr);
	cleanup_close int fd = socket(AF_INET, (f->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, errno, "network.ports[%zu]: socket", k);
	/* as passt binds: SO_REUSEADDR, so TIME_WAIT leftovers do not count */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		if (e == EADDRINUSE)
			return vm_error_set(err, VM_FAILED_PRECONDITION,
					    "network.ports[%zu].host_port: %s%s%u/%s is already in use", k,
					    f->host_address, f->host_address[0] ? ":" : "", f->host_port,
					    f->udp ? "udp" : "tcp");
		return vm_error_set_errno(err, VM_FAILED_PRECONDITION, e, "network.ports[%zu].host_address: bind %s:%u",
					  k, f->host_address[0] ? f->host_address : "0.0.0.0", f->host_port);
	}
	return 0;
}

/* Whether the host has an IPv4 default route (passt's outbound interface);
 * without one (a fresh network namespace) passt is told to use lo. */
static bool have_default_route(void)
{
	FILE *f = fopen("/proc/net/route", "re");
	char line[256], ifname[64];
	unsigned long dst;
	bool found = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %lx", ifname, &dst) == 2 && dst == 0) {
			found = true;
			break;
		}
	fclose(f);
	return found;
}

/* The last line of passt's log, for a message about its death. */
static void log_tail(const char *path, char *out, size_t size)
{
	char buf[1024];
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	out[0] = '\0';
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0;
	r = pread(fd, buf, sizeof(buf) - 1, from);
	close(fd);
	if (r <= 0)
		return;
	buf[r] = '\0';
	while (r > 0 && (buf[r - 1] == '\n' || buf[r - 1] == '\r'))
		buf[--r] = '\0';
	char *last = strrchr(buf, '\n');
	const char *from_line = last ? last + 1 : buf;
	size_t l = MIN(strlen(from_line), size - 1);

	/* the banner passt writes at start says nothing about its death */
	if (!strncmp(from_line, "passt ", 6))
		return;

	memcpy(out, from_line, l);
	out[l] = '\0';
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

static void grace_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct net_vm *n = t->data;

	if (n->failed)
		n->failed(n->opaque, n->death);
}

static void passt_exit_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct net_vm *n = io->data;
	siginfo_t si = { 0 };
	char tail[256];
	int r;

	r = waitid(P_PIDFD, (id_t)n->passt_pidfd, &si, WEXITED | WNOHANG);
	if (r < 0 && errno == EAGAIN)
		return;
	ev_io_stop(loop, io);
	n->reaped = r == 0;
	log_tail(n->log_path, tail, sizeof(tail));
	if (r < 0 || si.si_pid == 0)
		snprintf(n->death, sizeof(n->death), "passt (pid %d), the VM's network, exited%s%s", (int)n->passt_pid,
			 tail[0] ? ": " : "", tail);
	else
		snprintf(n->death, sizeof(n->death), "passt (pid %d), the VM's network, %s %d%s%s", (int)n->passt_pid,
			 si.si_code == CLD_EXITED ? "exited with status" : "was killed by signal", si.si_status,
			 tail[0] ? ": " : "", tail);
	log_warn("%s", n->death);
	/* a clean exit is passt seeing QEMU close its end: QEMU's own exit
	 * usually arrives first and says more */
	ev_timer_init(&n->grace, grace_cb, r == 0 && si.si_code == CLD_EXITED && si.si_status == 0 ? 5.0 : 0.25, 0);
	n->grace.data = n;
	ev_timer_start(loop, &n->grace);
}

static void watch(struct net_vm *n, struct ev_loop *loop, net_failed_cb failed, void *opaque)
{
	n->loop = loop;
	n->failed = failed;
	n->opaque = opaque;
	ev_io_init(&n->io, passt_exit_cb, n->passt_pidfd, EV_READ);
	n->io.data = n;
	ev_io_start(loop, &n->io);
}

/* passt's argv; the strings are freed by the caller through @store. */
static void passt_argv(const struct net_vm *n, char **argv, size_t cap, char **store, size_t *nstore)
{
	size_t a = 0;

#define ARG(s) (argv[a++] = (char *)(s))
#define OWN(...) (argv[a++] = store[(*nstore)++] = xasprintf(__VA_ARGS__))
	ARG(passt_binary());
	ARG("--foreground");
	ARG("--quiet");
	ARG("--ipv4-only");
	ARG("--fd");
	ARG("3");
	ARG("--log-file");
	ARG(n->log_path);
	ARG("--address");
	ARG(NET_USER_ADDRESS);
	ARG("--netmask");
	OWN("%d", NET_USER_PREFIX);
	ARG("--gateway");
	ARG(NET_USER_GATEWAY);
	ARG("--mtu");
	OWN("%d", NET_USER_MTU);
	ARG("--dns");
	ARG(NET_USER_DNS);
	ARG("--dns-forward");
	ARG(NET_USER_DNS);
	/* passt's own MAC, else the outbound interface's: lo has none */
	ARG("--mac-addr");
	ARG(NET_PASST_MAC);
	if (!have_default_route()) {
		ARG("--interface");
		ARG("lo");
	}
	for (size_t k = 0; k < n->nfwd; k++) {
		const struct net_forward *f = &n->fwd[k];

		ARG(f->udp ? "--udp-ports" : "--tcp-ports");
		OWN("%s%s%u:%u", f->host_address, f->host_address[0] ? "/" : "", f->host_port, f->guest_port);
	}
	ARG(NULL);
#undef ARG
#undef OWN
	(void)cap;
}

int net_start(struct net_vm *n, struct ev_loop *loop, const char *run_dir, const struct sandbox *confine,
	      net_failed_cb failed, void *opaque, struct vm_error *err)
{
	char *argv[32 + 2 * NET_MAX_PORTS];
	char *store[4 + NET_MAX_PORTS];
	size_t nstore = 0;
	cleanup_close int exe_fd = -1, rep_r = -1, rep_w = -1, passt_end = -1, qemu_end = -1;
	int sp[2], pp[2];
	pid_t pid;

	if (n->mode != NET_MODE_USER)
		return 0;
	for (size_t k = 0; k < n->nfwd; k++)
		if (check_port_free(&n->fwd[k], k, err) < 0)
			return -1;
	exe_fd = open(passt_binary(), O_PATH | O_CLOEXEC);
	if (exe_fd < 0)
		return vm_error_set_errno(err, VM_FAILED_PRECONDITION, errno,
					  "network.mode: user mode needs passt (%s, Debian package passt)",
					  passt_binary());
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return vm_error_errno(err, errno, "socketpair for passt");
	passt_end = sp[0];
	qemu_end = sp[1];
	if (pipe2(pp, O_CLOEXEC) < 0)
		return vm_error_errno(err, errno, "pipe for passt");
	rep_r = pp[0];
	rep_w = pp[1];
	snprintf(n->log_path, sizeof(n->log_path), "%s/passt.log", run_dir);
	passt_argv(n, argv, ARRAY_SIZE(argv), store, &nstore);
	pid = fork();
	if (pid < 0) {
		int e = errno;

		for (size_t i = 0; i < nstore; i++)
			free(store[i]);
		return vm_error_errno(err, e, "fork for passt");
	}
	if (pid == 0) {
		/* child: only async-signal-safe calls until exec */
		sigset_t none;
		int devnull = open("/dev/null", O_RDWR);
		int rep = fcntl(rep_w, F_DUPFD_CLOEXEC, 10);
		int exe = fcntl(exe_fd, F_DUPFD_CLOEXEC, 10);
		int s = fcntl(passt_end, F_DUPFD, 10);

		setsid();
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		if (rep < 0 || exe < 0 || s < 0 || dup2(s, 3) < 0)
			_exit(127);
		int keep[] = { 0, 1, 2, 3, exe, rep };
		fd_close_from(4, keep, ARRAY_SIZE(keep));
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (confine) {
			struct sandbox sb = *confine;

			sb.filter = NULL; /* passt installs its own */
			sb.report_fd = rep;
			if (sandbox_enter(&sb) < 0)
				_exit(SANDBOX_EXIT_FAILED);
		}
		syscall(SYS_execveat, exe, "", argv, environ, AT_EMPTY_PATH);
		{
			static const char what[] = "cannot execute passt: ";
			const char *name = strerrorname_np(errno);

			if (write(rep, what, sizeof(what) - 1) < 0 ||
			    write(rep, name ? name : "?", name ? strlen(name) : 1) < 0) {
				/* nothing left to tell */
			}
		}
		_exit(127);
	}
	for (size_t i = 0; i < nstore; i++)
		free(store[i]);
	close(steal_fd(&rep_w));
	close(steal_fd(&passt_end));
	char why[256];
	if (sandbox_report_read(rep_r, pid, why, sizeof(why)))
		return vm_error_set(err, VM_FAILED_PRECONDITION, "network: passt could not start: %s", why);
	n->passt_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (n->passt_pidfd < 0) {
		int e = errno;

		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return vm_error_errno(err, e, "pidfd_open for passt");
	}
	fd_set_cloexec(n->passt_pidfd, true);
	n->passt_pid = pid;
	n->reaped = false;
	n->qemu_fd = steal_fd(&qemu_end);
	watch(n, loop, failed, opaque);
	log_info("passt pid %d: user-mode network %s, mac %s, %zu forwarded port%s", (int)pid, n->address_str,
		 n->mac_str, n->nfwd, n->nfwd == 1 ? "" : "s");
	return 0;
}

void net_qemu_config(struct net_vm *n, struct qemu_config *qc)
{
	qc->net_fd = -1;
	qc->net_mac = NULL;
	if (n->mode == NET_MODE_NONE)
		return;
	qc->net_fd = n->qemu_fd;
	qc->net_mac = n->mac_str;
}

void net_qemu_started(struct net_vm *n)
{
	if (n->qemu_fd >= 0)
		close(steal_fd(&n->qemu_fd));
}

size_t net_fdt_strings(const struct net_vm *n, char ***out)
{
	char **v;

	*out = NULL;
	if (n->mode == NET_MODE_NONE)
		return 0;
	v = xcalloc(6, sizeof(*v));
	v[0] = xasprintf("mac=%s", n->mac_str);
	v[1] = xasprintf("address=%s", n->address_str);
	v[2] = xasprintf("gateway=%s", NET_USER_GATEWAY);
	v[3] = xasprintf("mtu=%d", NET_USER_MTU);
	v[4] = xasprintf("dns=%s", NET_USER_DNS);
	*out = v;
	return 5;
}

Virtmgr__V1__NetworkInfo *net_info(struct net_vm *n)
{
	return n->mode == NET_MODE_NONE ? NULL : &n->info;
}

void net_persist(const struct net_vm *n, struct statefile *sf)
{
	char ports[NET_MAX_PORTS * 40 + 1] = "";
	size_t off = 0;
	uint64_t st;

	if (n->mode == NET_MODE_NONE)
		return;
	statefile_set(sf, "net_mode", mode_name(n->mode));
	statefile_set(sf, "net_mac", n->mac_str);
	for (size_t k = 0; k < n->nfwd; k++) {
		const struct net_forward *f = &n->fwd[k];

		off += (size_t)snprintf(ports + off, sizeof(ports) - off, "%s%s/%s/%u/%u", k ? " " : "",
					f->udp ? "udp" : "tcp", f->host_address[0] ? f->host_address : "*",
					f->host_port, f->guest_port);
	}
	if (n->nfwd)
		statefile_set(sf, "net_ports", ports);
	if (n->passt_pid > 0 && !n->reaped && n->passt_pidfd >= 0 && proc_start_time(n->passt_pid, &st) == 0) {
		statefile_set_u64(sf, "passt_pid", (uint64_t)n->passt_pid);
		statefile_set_u64(sf, "passt_start_time", st);
	}
}

int net_adopt(struct net_vm *n, const struct statefile *sf, uint32_t cid, struct ev_loop *loop, net_failed_cb failed,
	      void *opaque, bool *alive, struct vm_error *err)
{
	Virtmgr__V1__NetworkConfig c = VIRTMGR__V1__NETWORK_CONFIG__INIT;
	Virtmgr__V1__PortForward pf[NET_MAX_PORTS], *pp[NET_MAX_PORTS];
	char addr[NET_MAX_PORTS][16], proto[NET_MAX_PORTS][4];
	const char *ports = statefile_get(sf, "net_ports");
	uint64_t pid, st, now;

	*alive = true;
	c.mode = (char *)statefile_get(sf, "net_mode");
	if (!c.mode)
		return 0;
	c.mac = (char *)statefile_get(sf, "net_mac");
	for (const char *p = ports; p && *p && c.n_ports < NET_MAX_PORTS;) {
		size_t k = c.n_ports;
		unsigned hp, gp;
		int used = 0;

		virtmgr__v1__port_forward__init(&pf[k]);
		if (sscanf(p, "%3[a-z]/%15[0-9.*]/%u/%u%n", proto[k], addr[k], &hp, &gp, &used) != 4)
			return vm_error_set(err, VM_INVALID_ARGUMENT, "net_ports: malformed entry \"%.40s\"", p);
		pf[k].protocol = proto[k];
		pf[k].host_address = strcmp(addr[k], "*") ? addr[k] : "";
		pf[k].host_port = hp;
		pf[k].guest_port = gp;
		pp[k] = &pf[k];
		c.n_ports = k + 1;
		p += used;
		p += strspn(p, " ");
	}
	c.ports = pp;
	if (net_config(n, &c, cid, err) < 0)
		return -1;
	if (n->mode != NET_MODE_USER)
		return 0;
	snprintf(n->death, sizeof(n->death), "passt died while virtmgrd was down");
	if (statefile_get_u64(sf, "passt_pid", INT32_MAX, &pid, NULL) < 0 ||
	    statefile_get_u64(sf, "passt_start_time", UINT64_MAX, &st, NULL) < 0) {
		*alive = false;
		return 0;
	}
	n->passt_pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (n->passt_pidfd < 0 || proc_start_time((pid_t)pid, &now) < 0 || now != st) {
		snprintf(n->death, sizeof(n->death), "passt (pid %d), the VM's network, died while virtmgrd was down",
			 (int)pid);
		if (n->passt_pidfd >= 0)
			close(steal_fd(&n->passt_pidfd));
		*alive = false;
		return 0;
	}
	fd_set_cloexec(n->passt_pidfd, true);
	n->passt_pid = (pid_t)pid;
	watch(n, loop, failed, opaque);
	return 0;
}

static void stop_watching(struct net_vm *n)
{
	if (n->loop && ev_is_active(&n->io))
		ev_io_stop(n->loop, &n->io);
	if (n->loop && ev_is_active(&n->grace))
		ev_timer_stop(n->loop, &n->grace);
	if (n->qemu_fd >= 0)
		close(steal_fd(&n->qemu_fd));
}

void net_release(struct net_vm *n)
{
	stop_watching(n);
	if (n->passt_pidfd >= 0 && !n->reaped) {
		syscall(SYS_pidfd_send_signal, n->passt_pidfd, SIGTERM, NULL, 0);
		if (n->loop)
			reaper_take(n->loop, steal_fd(&n->passt_pidfd));
	}
	if (n->passt_pidfd >= 0)
		close(steal_fd(&n->passt_pidfd));
	n->passt_pid = -1;
}

void net_forget(struct net_vm *n)
{
	stop_watching(n);
	if (n->passt_pidfd >= 0)
		close(steal_fd(&n->passt_pidfd));
	n->passt_pid = -1;
}
