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
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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
	n->tap_fd = -1;
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
	if (n->mode == NET_MODE_TAP) {
		struct in_addr vm = { .s_addr = htonl(n->tap_vm) }, host = { .s_addr = htonl(n->tap_host) };
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &vm, a, sizeof(a));
		snprintf(n->address_str, sizeof(n->address_str), "%s/30", a);
		inet_ntop(AF_INET, &host, n->gateway_str, sizeof(n->gateway_str));
	} else {
		snprintf(n->address_str, sizeof(n->address_str), "%s/%d", NET_USER_ADDRESS, NET_USER_PREFIX);
		snprintf(n->gateway_str, sizeof(n->gateway_str), "%s", NET_USER_GATEWAY);
		snprintf(n->dns_str, sizeof(n->dns_str), "%s", NET_USER_DNS);
	}
	n->dns_list[0] = n->dns_str;
	i->mode = (char *)mode_name(n->mode);
	i->mac = n->mac_str;
	i->address = n->address_str;
	i->gateway = n->gateway_str;
	i->n_dns = n->dns_str[0] ? 1 : 0;
	i->dns = n->dns_list;
	i->mtu = n->mode == NET_MODE_TAP ? NET_TAP_MTU : NET_USER_MTU;
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
		n->mode = NET_MODE_TAP;
	else
		return vm_error_set(err, VM_INVALID_ARGUMENT, "network.mode: unknown mode \"%.32s\" (none, user, tap)",
				    mode);
	if (n->mode == NET_MODE_NONE) {
		if (c && (c->n_ports || (c->mac && *c->mac)))
			return vm_error_set(err, VM_INVALID_ARGUMENT, "network.%s: given without a network (mode none)",
					    c->n_ports ? "ports" : "mac");
		return 0;
	}
	if (n->mode == NET_MODE_TAP && c->n_ports)
		return vm_error_set(
			err, VM_INVALID_ARGUMENT,
			"network.ports: only in user mode (in tap mode the guest is reachable at its address)");
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
	if (n->mode == NET_MODE_USER)
		build_info(n);
	return 0;
}

int net_pool_parse(struct net_pool *p, const char *cidr, struct vm_error *err)
{
	char buf[32], *slash, *end;
	struct in_addr a;
	unsigned long prefix;

	memset(p, 0, sizeof(*p));
	if (strlen(cidr) >= sizeof(p->cidr))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "\"%.40s\" is not an IPv4 CIDR", cidr);
	snprintf(buf, sizeof(buf), "%s", cidr);
	slash = strchr(buf, '/');
	if (!slash)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "\"%s\" is not an IPv4 CIDR (A.B.C.D/N)", cidr);
	*slash = '\0';
	errno = 0;
	prefix = strtoul(slash + 1, &end, 10);
	if (inet_pton(AF_INET, buf, &a) != 1 || !slash[1] || *end || errno)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "\"%s\" is not an IPv4 CIDR (A.B.C.D/N)", cidr);
	if (prefix < 8 || prefix > 30)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "\"%s\": the prefix must be 8..30 (a /30 per VM)", cidr);
	p->base = ntohl(a.s_addr);
	p->prefix = (unsigned)prefix;
	if (p->base & ~(~0u << (32 - p->prefix)))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "\"%s\" has host bits set", cidr);
	p->nslots = 1u << (30 - p->prefix);
	snprintf(p->cidr, sizeof(p->cidr), "%s", cidr);
	return 0;
}

/* nft -f - with @ruleset on its stdin; 0 or -1 with @why filled. */
static int nft_apply(const char *ruleset, char *why, size_t size)
{
	int in[2], out[2];
	pid_t pid;
	int status = 0;
	char buf[256] = "";
	ssize_t r, got = 0;

	if (access(NET_NFT_BINARY, X_OK) < 0) {
		snprintf(why, size, "%s: %s (Debian package nftables)", NET_NFT_BINARY, strerror(errno));
		return -1;
	}
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		snprintf(why, size, "pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(why, size, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(out[1], 2);
		execl(NET_NFT_BINARY, "nft", "-f", "-", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	if (write(in[1], ruleset, strlen(ruleset)) < 0) {
		/* nft's status says what went wrong */
	}
	close(in[1]);
	while ((r = read(out[0], buf + got, sizeof(buf) - 1 - (size_t)got)) > 0 && got < (ssize_t)sizeof(buf) - 1)
		got += r;
	buf[got] = '\0';
	close(out[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		for (char *c = buf; *c; c++)
			if (*c == '\n')
				*c = ' ';
		snprintf(why, size, "nft -f failed: %s", buf);
		return -1;
	}
	return 0;
}

void net_pool_setup(struct net_pool *p)
{
	char rules[1024];
	int fd;

	p->tried = true;
	if (geteuid() != 0) {
		snprintf(p->why, sizeof(p->why), "tap mode needs virtmgrd running as root (CAP_NET_ADMIN)");
		return;
	}
	/* the whole ruleset of our own table, replaced at each start: leftovers
	 * of a previous daemon go with it, and nothing in it is per VM */
	snprintf(rules, sizeof(rules),
		 "table inet virtmgr\n"
		 "delete table inet virtmgr\n"
		 "table inet virtmgr {\n"
		 "\tchain forward {\n"
		 "\t\ttype filter hook forward priority 0; policy accept;\n"
		 "\t\tiifname \"vmtap*\" oifname \"vmtap*\" drop\n"
		 "\t}\n"
		 "\tchain postrouting {\n"
		 "\t\ttype nat hook postrouting priority 100; policy accept;\n"
		 "\t\tip saddr %s oifname != \"vmtap*\" masquerade\n"
		 "\t}\n"
		 "}\n",
		 p->cidr);
	if (nft_apply(rules, p->why, sizeof(p->why)) < 0)
		return;
	fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "1", 1) != 1)
		log_warn("tap mode: cannot turn on IPv4 forwarding: %s (guests reach only the host)", strerror(errno));
	if (fd >= 0)
		close(fd);
	p->ready = true;
	log_info("tap mode: address pool %s (%u VMs), nftables table inet virtmgr", p->cidr, p->nslots);
}

/* The host's first IPv4 nameserver, for a tap mode guest; "" if none. */
static void host_dns(char *out, size_t size)
{
	FILE *f = fopen("/etc/resolv.conf", "re");
	char line[256], a[16];
	struct in_addr ia;

	out[0] = '\0';
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "nameserver %15s", a) == 1 && inet_pton(AF_INET, a, &ia) == 1 &&
		    (ntohl(ia.s_addr) >> 24) != 127) {
			snprintf(out, size, "%s", a);
			break;
		}
	if (f)
		fclose(f);
}

static void tap_set_slot(struct net_vm *n, const struct net_pool *pool, uint32_t slot, uint32_t cid)
{
	n->tap_slot = slot;
	n->tap_host = pool->base + 4 * slot + 1;
	n->tap_vm = pool->base + 4 * slot + 2;
	snprintf(n->tap_name, sizeof(n->tap_name), "vmtap%u", cid);
	host_dns(n->dns_str, sizeof(n->dns_str));
	build_info(n);
}

int net_tap_assign(struct net_vm *n, uint32_t cid, struct net_pool *pool, bool (*in_use)(void *opaque, uint32_t slot),
		   void *opaque, struct vm_error *err)
{
	if (n->mode != NET_MODE_TAP)
		return 0;
	/* the host is changed only once tap mode is used */
	if (pool && !pool->tried)
		net_pool_setup(pool);
	if (!pool || !pool->ready)
		return vm_error_set(err, VM_FAILED_PRECONDITION, "network.mode: tap is unavailable: %s",
				    pool ? pool->why : "no address pool");
	for (uint32_t slot = 0; slot < pool->nslots; slot++)
		if (!in_use(opaque, slot)) {
			tap_set_slot(n, pool, slot, cid);
			return 0;
		}
	return vm_error_set(err, VM_RESOURCE_EXHAUSTED,
			    "network.mode: tap: the address pool %s is exhausted (%u VMs, see --net-pool)", pool->cidr,
			    pool->nslots);
}

static int ifr_ioctl(int sk, unsigned long req, const char *name, uint32_t addr, short up)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	if (req == SIOCSIFFLAGS) {
		if (ioctl(sk, SIOCGIFFLAGS, &ifr) < 0)
			return -1;
		ifr.ifr_flags |= up;
		return ioctl(sk, SIOCSIFFLAGS, &ifr);
	}
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(addr);
	return ioctl(sk, req, &ifr);
}

/* The tap, its host end address and up; QEMU gets the fd. Not persistent:
 * it goes away with the last fd, i.e. with QEMU. */
static int tap_start(struct net_vm *n, struct vm_error *err)
{
	struct ifreq ifr = { 0 };
	cleanup_close int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	cleanup_close int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return vm_error_set_errno(err, VM_FAILED_PRECONDITION, errno, "network.mode: tap: /dev/net/tun");
	if (sk < 0)
		return vm_error_errno(err, errno, "network: socket");
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", n->tap_name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		return vm_error_set_errno(err, errno == EPERM ? VM_PERMISSION_DENIED : VM_FAILED_PRECONDITION, errno,
					  "network.mode: tap: creating %s", n->tap_name);
	if (ifr_ioctl(sk, SIOCSIFADDR, n->tap_name, n->tap_host, 0) < 0 ||
	    ifr_ioctl(sk, SIOCSIFNETMASK, n->tap_name, ~0u << 2, 0) < 0 ||
	    ifr_ioctl(sk, SIOCSIFFLAGS, n->tap_name, 0, IFF_UP) < 0)
		return vm_error_set_errno(err, VM_FAILED_PRECONDITION, errno, "network: tap %s: address %s",
					  n->tap_name, n->gateway_str);
	n->tap_fd = steal_fd(&fd);
	log_info("tap %s: host %s, guest %s", n->tap_name, n->gateway_str, n->address_str);
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

	if (n->mode == NET_MODE_TAP)
		return tap_start(n, err);
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
	qc->net_fd = n->mode == NET_MODE_TAP ? n->tap_fd : n->qemu_fd;
	qc->net_tap = n->mode == NET_MODE_TAP;
	qc->net_mac = n->mac_str;
}

void net_qemu_started(struct net_vm *n)
{
	if (n->qemu_fd >= 0)
		close(steal_fd(&n->qemu_fd));
	if (n->tap_fd >= 0)
		close(steal_fd(&n->tap_fd));
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
	v[2] = xasprintf("gateway=%s", n->gateway_str);
	v[3] = xasprintf("mtu=%d", n->mode == NET_MODE_TAP ? NET_TAP_MTU : NET_USER_MTU);
	if (n->dns_str[0])
		v[4] = xasprintf("dns=%s", n->dns_str);
	*out = v;
	return n->dns_str[0] ? 5 : 4;
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
	if (n->mode == NET_MODE_TAP)
		statefile_set_u64(sf, "net_tap_slot", n->tap_slot);
	if (n->passt_pid > 0 && !n->reaped && n->passt_pidfd >= 0 && proc_start_time(n->passt_pid, &st) == 0) {
		statefile_set_u64(sf, "passt_pid", (uint64_t)n->passt_pid);
		statefile_set_u64(sf, "passt_start_time", st);
	}
}

int net_adopt(struct net_vm *n, const struct statefile *sf, uint32_t cid, const struct net_pool *pool,
	      struct ev_loop *loop, net_failed_cb failed, void *opaque, bool *alive, struct vm_error *err)
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
	if (n->mode == NET_MODE_TAP) {
		uint64_t slot;

		/* the tap lives with QEMU; only the slot must stay taken */
		if (!pool || statefile_get_u64(sf, "net_tap_slot", pool->nslots - 1, &slot, err) < 0)
			return vm_error_set(err, VM_INVALID_ARGUMENT, "net_tap_slot: missing or outside the pool");
		tap_set_slot(n, pool, (uint32_t)slot, cid);
		return 0;
	}
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
