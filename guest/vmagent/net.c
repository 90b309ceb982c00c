/* net.c - the guest's side of the VM's network (maitred's
 * ConfigureNetwork; docs/network.md): loopback up, hostname = the VM's
 * name, and, when the config tree has a "network" property, the virtio-net
 * interface with that MAC configured with ioctls: IPv4 address and prefix,
 * MTU, up, a default route through the gateway, and the DNS servers written
 * to /etc/resolv.conf atomically. No DHCP client: the host decided the
 * addresses (server/net.h). The virtio_net module is in the image's load
 * order (guest/mkimage.sh), so the interface exists once PID 1 has loaded
 * the modules; it is still waited for briefly, found by its MAC.
 *
 * Everything in the property came from the host but is checked as any
 * config input: a malformed value is an error naming it.
 */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "guest/vmagent/agent.h"
#include "guest/vmagent/net.h"

#define NET_MAX_DNS 3

struct net_settings {
	char mac[18];
	struct in_addr addr, gateway;
	unsigned prefix;
	unsigned mtu;
	struct in_addr dns[NET_MAX_DNS];
	size_t ndns;
	bool has_addr, has_gateway;
};

static int parse_settings(const struct agent_config *cfg, struct net_settings *s, struct vm_error *err)
{
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < cfg->n_network; i++) {
		const char *kv = cfg->network[i], *eq = strchr(kv, '=');
		const char *v = eq + 1;
		size_t klen = (size_t)(eq - kv);
		char buf[64];

		if (klen == 3 && !strncmp(kv, "mac", 3)) {
			unsigned b[6];
			char end;

			if (strlen(v) != 17 ||
			    sscanf(v, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &end) != 6)
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "network: mac \"%s\" is not a MAC address", v);
			snprintf(s->mac, sizeof(s->mac), "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4],
				 b[5]);
		} else if (klen == 7 && !strncmp(kv, "address", 7)) {
			char *slash;
			unsigned long p;

			snprintf(buf, sizeof(buf), "%s", v);
			slash = strchr(buf, '/');
			if (!slash)
				return vm_error_set(err, VM_INVALID_ARGUMENT, "network: address \"%s\" has no /prefix",
						    v);
			*slash = '\0';
			p = strtoul(slash + 1, &slash, 10);
			if (*slash || p < 1 || p > 30 || inet_pton(AF_INET, buf, &s->addr) != 1)
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "network: address \"%s\" is not an IPv4 address/prefix (1..30)", v);
			s->prefix = (unsigned)p;
			s->has_addr = true;
		} else if (klen == 7 && !strncmp(kv, "gateway", 7)) {
			if (inet_pton(AF_INET, v, &s->gateway) != 1)
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "network: gateway \"%s\" is not an IPv4 address", v);
			s->has_gateway = true;
		} else if (klen == 3 && !strncmp(kv, "mtu", 3)) {
			char *end;
			unsigned long m = strtoul(v, &end, 10);

			if (*end || m < 68 || m > 65535)
				return vm_error_set(err, VM_INVALID_ARGUMENT, "network: mtu \"%s\" is not in 68..65535",
						    v);
			s->mtu = (unsigned)m;
		} else if (klen == 3 && !strncmp(kv, "dns", 3)) {
			if (s->ndns == NET_MAX_DNS)
				return vm_error_set(err, VM_INVALID_ARGUMENT, "network: more than %d dns servers",
						    NET_MAX_DNS);
			if (inet_pton(AF_INET, v, &s->dns[s->ndns]) != 1)
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "network: dns \"%s\" is not an IPv4 address", v);
			s->ndns++;
		}
		/* unknown keys: from a newer host, ignored */
	}
	if (!s->mac[0] || !s->has_addr)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "network: mac and address are required");
	return 0;
}

/* The interface whose address is @mac, waiting up to about 5 s for it. */
static int find_ifname(const char *mac, char *name, size_t size)
{
	for (int tries = 0; tries < 50; tries++) {
		DIR *d = opendir("/sys/class/net");
		struct dirent *e;

		while (d && (e = readdir(d))) {
			char path[300], addr[32] = "";
			FILE *f;

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/sys/class/net/%s/address", e->d_name);
			f = fopen(path, "re");
			if (!f)
				continue;
			if (fgets(addr, sizeof(addr), f))
				addr[strcspn(addr, "\n")] = '\0';
			fclose(f);
			if (!strcasecmp(addr, mac) && strlen(e->d_name) < size) {
				snprintf(name, size, "%s", e->d_name);
				closedir(d);
				return 0;
			}
		}
		if (d)
			closedir(d);
		nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
	}
	return -1;
}

static int if_up(int sk, const char *ifname)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	if (ioctl(sk, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP;
	return ioctl(sk, SIOCSIFFLAGS, &ifr);
}

static int set_addr(int sk, const char *ifname, unsigned long req, struct in_addr a)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	sin->sin_family = AF_INET;
	sin->sin_addr = a;
	return ioctl(sk, req, &ifr);
}

static int write_resolv_conf(const struct net_settings *s)
{
	char buf[256];
	size_t off = 0;
	int fd;

	off += (size_t)snprintf(buf, sizeof(buf), "# written by vmagent from the VM's configuration\n");
	for (size_t i = 0; i < s->ndns; i++) {
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &s->dns[i], a, sizeof(a));
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "nameserver %s\n", a);
	}
	mkdir("/etc", 0755);
	fd = open("/etc/resolv.conf.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (write(fd, buf, off) != (ssize_t)off || fsync(fd) < 0) {
		close(fd);
		unlink("/etc/resolv.conf.tmp");
		return -1;
	}
	close(fd);
	return rename("/etc/resolv.conf.tmp", "/etc/resolv.conf");
}

int agent_net_setup(struct agent *a, const struct agent_config *cfg, struct vm_error *err)
{
	struct net_settings s;
	char ifname[IFNAMSIZ];
	cleanup_close int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (sk < 0)
		return vm_error_errno(err, errno, "network: socket");
	if (if_up(sk, "lo") < 0)
		agent_log(a, "network: lo up: %s", strerror(errno));
	if (cfg->name && *cfg->name && sethostname(cfg->name, MIN(strlen(cfg->name), (size_t)64)) < 0)
		agent_log(a, "network: hostname %s: %s", cfg->name, strerror(errno));
	if (!cfg->network)
		return 0;
	if (parse_settings(cfg, &s, err) < 0)
		return -1;
	if (find_ifname(s.mac, ifname, sizeof(ifname)) < 0)
		return vm_error_set(err, VM_FAILED_PRECONDITION,
				    "network: no interface with MAC %s (virtio_net loaded?)", s.mac);
	struct in_addr mask = { .s_addr = htonl(s.prefix ? ~0u << (32 - s.prefix) : 0) };
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	ifr.ifr_mtu = (int)s.mtu;
	if (set_addr(sk, ifname, SIOCSIFADDR, s.addr) < 0 || set_addr(sk, ifname, SIOCSIFNETMASK, mask) < 0)
		return vm_error_errno(err, errno, "network: address of %s", ifname);
	if (s.mtu && ioctl(sk, SIOCSIFMTU, &ifr) < 0)
		return vm_error_errno(err, errno, "network: mtu %u of %s", s.mtu, ifname);
	if (if_up(sk, ifname) < 0)
		return vm_error_errno(err, errno, "network: bringing %s up", ifname);
	if (s.has_gateway) {
		struct rtentry rt = { 0 };
		struct sockaddr_in *dst = (struct sockaddr_in *)&rt.rt_dst;
		struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway;
		struct sockaddr_in *gm = (struct sockaddr_in *)&rt.rt_genmask;

		dst->sin_family = gw->sin_family = gm->sin_family = AF_INET;
		gw->sin_addr = s.gateway;
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		rt.rt_dev = ifname;
		if (ioctl(sk, SIOCADDRT, &rt) < 0 && errno != EEXIST)
			return vm_error_errno(err, errno, "network: default route via the gateway on %s", ifname);
	}
	if (write_resolv_conf(&s) < 0)
		return vm_error_errno(err, errno, "network: /etc/resolv.conf");
	agent_log(a, "network: %s (%s) configured", ifname, s.mac);
	return 0;
}
