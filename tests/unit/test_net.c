/* test_net.c - VmConfig.network checked by server/net.c: modes, forwarded
 * ports and MACs, each bad value refused with an error naming the field;
 * the defaults (MAC from the CID, the user-mode addresses) as the guest's
 * config tree strings and VmInfo.network; a forwarded port that is in use
 * or privileged refused by net_start() before any passt runs.
 */
#include "config.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/net.h"

static Virtmgr__V1__PortForward pf(const char *addr, uint32_t h, uint32_t g, const char *proto)
{
	Virtmgr__V1__PortForward p = VIRTMGR__V1__PORT_FORWARD__INIT;

	p.host_address = (char *)addr;
	p.host_port = h;
	p.guest_port = g;
	p.protocol = (char *)proto;
	return p;
}

/* net_config() on mode @mode with @n ports; the error message or "" */
static int configure(struct net_vm *n, const char *mode, Virtmgr__V1__PortForward *ports, size_t np, const char *mac,
		     struct vm_error *err)
{
	Virtmgr__V1__NetworkConfig c = VIRTMGR__V1__NETWORK_CONFIG__INIT;
	Virtmgr__V1__PortForward *pp[NET_MAX_PORTS + 2];

	for (size_t i = 0; i < np; i++)
		pp[i] = &ports[i];
	c.mode = (char *)mode;
	c.ports = pp;
	c.n_ports = np;
	c.mac = (char *)mac;
	net_init(n);
	memset(err, 0, sizeof(*err));
	return net_config(n, &c, 0x123456, err);
}

Test(net, none_and_absent)
{
	struct net_vm n;
	struct vm_error err = { 0 };

	net_init(&n);
	cr_assert_eq(net_config(&n, NULL, 3, &err), 0);
	cr_assert_null(net_info(&n));
	cr_assert_eq(configure(&n, "none", NULL, 0, NULL, &err), 0);
	cr_assert_null(net_info(&n));
	char **s;
	cr_assert_eq(net_fdt_strings(&n, &s), 0);
	cr_assert_null(s);
}

Test(net, user_defaults)
{
	struct net_vm n;
	struct vm_error err;
	Virtmgr__V1__PortForward p[2] = { pf("", 8080, 80, ""), pf("127.0.0.1", 5353, 53, "udp") };
	char **s;

	cr_assert_eq(configure(&n, "user", p, 2, "", &err), 0, "%s", err.message);
	Virtmgr__V1__NetworkInfo *i = net_info(&n);
	cr_assert_not_null(i);
	cr_assert_str_eq(i->mode, "user");
	cr_assert_str_eq(i->mac, "02:76:6d:12:34:56");
	cr_assert_str_eq(i->address, "10.0.2.15/24");
	cr_assert_str_eq(i->gateway, "10.0.2.2");
	cr_assert_eq(i->n_ports, 2);
	cr_assert_str_eq(i->ports[0]->protocol, "tcp");
	cr_assert_str_eq(i->ports[1]->protocol, "udp");
	cr_assert_str_eq(i->ports[1]->host_address, "127.0.0.1");
	cr_assert_eq(net_fdt_strings(&n, &s), 5);
	cr_assert_str_eq(s[0], "mac=02:76:6d:12:34:56");
	cr_assert_str_eq(s[1], "address=10.0.2.15/24");
	cr_assert_str_eq(s[2], "gateway=10.0.2.2");
	cr_assert_null(s[5]);
	for (size_t k = 0; s[k]; k++)
		free(s[k]);
	free(s);
	cr_assert_eq(configure(&n, "user", NULL, 0, "52:54:00:AB:cd:01", &err), 0, "%s", err.message);
	cr_assert_str_eq(net_info(&n)->mac, "52:54:00:ab:cd:01");
}

static void refused(const char *mode, Virtmgr__V1__PortForward *p, size_t np, const char *mac, const char *want)
{
	struct net_vm n;
	struct vm_error err;

	cr_assert_lt(configure(&n, mode, p, np, mac, &err), 0, "accepted: %s", want);
	cr_assert_not_null(strstr(err.message, want), "\"%s\" does not say \"%s\"", err.message, want);
}

Test(net, bad_input_names_the_field)
{
	Virtmgr__V1__PortForward p[NET_MAX_PORTS + 1];

	refused("bridge", NULL, 0, NULL, "network.mode: unknown mode \"bridge\"");
	p[0] = pf("", 8080, 80, "");
	refused("tap", p, 1, NULL, "network.ports: only in user mode");
	p[0] = pf("", 0, 80, "");
	refused("user", p, 1, NULL, "network.ports[0].host_port: 0 is not in 1..65535");
	p[0] = pf("", 8080, 70000, "");
	refused("user", p, 1, NULL, "network.ports[0].guest_port");
	p[0] = pf("localhost", 8080, 80, "");
	refused("user", p, 1, NULL, "network.ports[0].host_address: \"localhost\" is not an IPv4 address");
	p[0] = pf("", 8080, 80, "sctp");
	refused("user", p, 1, NULL, "network.ports[0].protocol: \"sctp\" is not tcp or udp");
	p[0] = pf("", 8080, 80, "");
	p[1] = pf("127.0.0.1", 8080, 81, "tcp");
	refused("user", p, 2, NULL, "network.ports[1].host_port: 8080/tcp is forwarded twice");
	for (size_t i = 0; i < NET_MAX_PORTS + 1; i++)
		p[i] = pf("", (uint32_t)(20000 + i), 80, "");
	refused("user", p, NET_MAX_PORTS + 1, NULL, "network.ports: 17, at most 16");
	refused("user", NULL, 0, "02:76:6d:00:00", "network.mac");
	refused("user", NULL, 0, "03:00:00:00:00:01", "network.mac: 03:00:00:00:00:01 is a multicast address");
	p[0] = pf("", 8080, 80, "");
	refused("none", p, 1, NULL, "network.ports: given without a network");
}

Test(net, start_refuses_privileged_and_busy_ports)
{
	struct net_vm n;
	struct vm_error err;
	Virtmgr__V1__PortForward p[1];
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	p[0] = pf("", 80, 80, "");
	cr_assert_eq(configure(&n, "user", p, 1, NULL, &err), 0);
	cr_assert_lt(net_start(&n, NULL, "/nonexistent", NULL, NULL, NULL, &err), 0);
	cr_assert_not_null(strstr(err.message, "network.ports[0].host_port: 80 is below"), "%s", err.message);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	p[0] = pf("127.0.0.1", ntohs(sa.sin_port), 80, "");
	cr_assert_eq(configure(&n, "user", p, 1, NULL, &err), 0);
	cr_assert_lt(net_start(&n, NULL, "/nonexistent", NULL, NULL, NULL, &err), 0);
	cr_assert_not_null(strstr(err.message, "is already in use"), "%s", err.message);
	cr_assert_eq(n.passt_pid, -1);
	close(fd);
}

static bool slots_taken[64];
static bool taken(void *opaque, uint32_t slot)
{
	return slot < 64 && slots_taken[slot];
}

Test(net, tap_pool)
{
	struct net_pool pool;
	struct net_vm n;
	struct vm_error err = { 0 };

	cr_assert_lt(net_pool_parse(&pool, "10.0.0.0", &err), 0);
	cr_assert_lt(net_pool_parse(&pool, "10.0.0.1/24", &err), 0);
	cr_assert_not_null(strstr(err.message, "host bits"), "%s", err.message);
	cr_assert_lt(net_pool_parse(&pool, "10.0.0.0/31", &err), 0);
	cr_assert_lt(net_pool_parse(&pool, "300.0.0.0/24", &err), 0);
	cr_assert_eq(net_pool_parse(&pool, "100.115.92.0/29", &err), 0, "%s", err.message);
	cr_assert_eq(pool.nslots, 2);
	/* not set up: tap refused, naming the field and why */
	snprintf(pool.why, sizeof(pool.why), "no privilege here");
	pool.tried = true;
	cr_assert_eq(configure(&n, "tap", NULL, 0, NULL, &err), 0, "%s", err.message);
	cr_assert_lt(net_tap_assign(&n, 2048, &pool, taken, NULL, &err), 0);
	cr_assert_not_null(strstr(err.message, "network.mode: tap is unavailable: no privilege here"), "%s",
			   err.message);
	pool.ready = true;
	slots_taken[0] = true;
	cr_assert_eq(net_tap_assign(&n, 2048, &pool, taken, NULL, &err), 0, "%s", err.message);
	Virtmgr__V1__NetworkInfo *i = net_info(&n);
	/* slot 1: 100.115.92.4/30, host end .5, VM .6 */
	cr_assert_str_eq(i->address, "100.115.92.6/30");
	cr_assert_str_eq(i->gateway, "100.115.92.5");
	cr_assert_eq(i->mtu, 1500);
	cr_assert_str_eq(n.tap_name, "vmtap2048");
	slots_taken[1] = true;
	cr_assert_eq(configure(&n, "tap", NULL, 0, NULL, &err), 0);
	cr_assert_lt(net_tap_assign(&n, 2049, &pool, taken, NULL, &err), 0);
	cr_assert_not_null(strstr(err.message, "pool 100.115.92.0/29 is exhausted"), "%s", err.message);
}
