/* net.h - a VM's network device (docs/network.md): VmConfig.network checked
 * into a struct net_vm, the passt process of a `user` mode VM started,
 * watched and re-adopted, the addresses handed to the guest through the
 * config device tree, and VmInfo.network.
 *
 * `user` mode: one passt per VM, under the VM's uid like the vsock backend,
 * connected to QEMU through a socketpair made by the daemon (passt --fd,
 * QEMU -netdev stream with addr.type=fd), so neither needs a path. passt
 * quits when QEMU's end closes (--one-off): a QEMU that dies while the
 * daemon is down takes its passt with it. The guest gets fixed addresses
 * (10.0.2.15/24, gateway 10.0.2.2 which passt maps to the host's loopback,
 * DNS 10.0.2.3 forwarded to the host's resolver); no DHCP in the guest.
 */
#ifndef VIRTMGR_NET_H
#define VIRTMGR_NET_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/util.h"
#include "protos/virtmgr.pb-c.h"

struct sandbox;
struct statefile;
struct qemu_config;

#define NET_MAX_PORTS 16
#define NET_PASST_BINARY "/usr/bin/passt"
#define NET_USER_ADDRESS "10.0.2.15"
#define NET_USER_PREFIX 24
#define NET_USER_GATEWAY "10.0.2.2"
#define NET_USER_DNS "10.0.2.3"
#define NET_USER_MTU 65520		       /* passt's own default */
#define NET_PASST_MAC "02:76:6d:ff:ff:fe"      /* the gateway's, as the guest sees it */
#define NET_TAP_DEFAULT_POOL "100.115.92.0/24" /* patchpanel's VM range */
#define NET_TAP_MTU 1500
#define NET_NFT_BINARY "/usr/sbin/nft"

/* tap mode's address pool: one /30 per VM (host end = 2nd address, VM =
 * 3rd, as patchpanel does), and whether the host side could be set up. */
struct net_pool {
	char cidr[24];
	uint32_t base; /* host byte order */
	unsigned prefix;
	uint32_t nslots;
	bool tried; /* net_pool_setup() ran (at the first tap VM) */
	bool ready;
	char why[200]; /* when not ready: why tap mode is unavailable */
};

enum net_mode {
	NET_MODE_NONE = 0,
	NET_MODE_USER,
	NET_MODE_TAP,
};

struct net_forward {
	char host_address[16]; /* dotted IPv4, "" = every address */
	uint16_t host_port, guest_port;
	bool udp;
};

/* @message says why passt is gone. */
typedef void (*net_failed_cb)(void *opaque, const char *message);

struct net_vm {
	enum net_mode mode;
	uint8_t mac[6];
	struct net_forward fwd[NET_MAX_PORTS];
	size_t nfwd;
	/* VmInfo.network, built once from the above (pointers into this struct) */
	char mac_str[18], address_str[24];
	char *dns_list[1];
	Virtmgr__V1__NetworkInfo info;
	Virtmgr__V1__PortForward info_ports[NET_MAX_PORTS];
	Virtmgr__V1__PortForward *info_port_ptrs[NET_MAX_PORTS];
	/* runtime */
	struct ev_loop *loop;
	int qemu_fd; /* QEMU's end of the passt socketpair until QEMU runs; -1 */
	pid_t passt_pid;
	int passt_pidfd; /* -1 when none */
	bool reaped;
	ev_io io;
	ev_timer grace;
	net_failed_cb failed;
	void *opaque;
	char log_path[256]; /* passt's log in the run directory */
	char death[512];
	/* tap mode */
	uint32_t tap_slot;
	uint32_t tap_host, tap_vm; /* host byte order */
	char tap_name[16];
	int tap_fd; /* until QEMU runs; -1 */
	char gateway_str[16], dns_str[16];
};

/**
 * net_pool_parse() - check --net-pool CIDR
 * @p: filled (not ready yet)
 * @cidr: "A.B.C.D/N" with N in 8..30 and no host bits set
 * @err: what is wrong with it
 * Return: 0, or -1 with @err filled.
 */
int net_pool_parse(struct net_pool *p, const char *cidr, struct vm_error *err);

/**
 * net_pool_setup() - the host side of tap mode, at the first tap VM: IPv4
 * forwarding on, the nftables table inet virtmgr replaced by a fresh one
 * (NAT for the pool, no forwarding between VM taps)
 * @p: as parsed; ready set, or why filled
 * Return: nothing (tap mode is then refused with @p->why).
 */
void net_pool_setup(struct net_pool *p);

/**
 * net_tap_assign() - give a tap mode VM a /30 of the pool
 * @n: configured with net_config(), mode tap (else nothing happens)
 * @pool: the daemon's pool, set up here the first time (net_pool_setup())
 * @in_use: whether a live VM holds slot @slot
 * @opaque: for @in_use
 * @err: names network.mode (no privilege) or the pool (exhausted)
 * Return: 0, or -1 with @err filled.
 */
int net_tap_assign(struct net_vm *n, uint32_t cid, struct net_pool *pool, bool (*in_use)(void *opaque, uint32_t slot),
		   void *opaque, struct vm_error *err);

/**
 * net_init() - a VM without a network device, every fd -1
 * @n: the VM's network state
 * Return: nothing.
 */
void net_init(struct net_vm *n);

/**
 * net_config() - check VmConfig.network and fill @n
 * @n: as from net_init()
 * @c: VmConfig.network, or NULL (mode none)
 * @cid: the VM's CID (the default MAC is derived from it)
 * @err: names the field that is wrong ("network.mode", "network.ports[1].host_port")
 * Return: 0, or -1 with @err filled.
 */
int net_config(struct net_vm *n, const Virtmgr__V1__NetworkConfig *c, uint32_t cid, struct vm_error *err);

/**
 * net_start() - before QEMU starts: start passt for a `user` mode VM and
 * keep QEMU's end of its socket in @n->qemu_fd
 * @n: the VM's network state
 * @loop: the daemon's loop (passt's exit is watched there)
 * @run_dir: the VM's run directory (passt.log goes there)
 * @confine: the VM's sandbox (passt installs its own seccomp filter)
 * @failed: called once when passt exits while the VM runs
 * @opaque: for @failed
 * @err: what failed, naming the port or passt's own message
 * Return: 0 (also for mode none), or -1 with @err filled and nothing running.
 */
int net_start(struct net_vm *n, struct ev_loop *loop, const char *run_dir, const struct sandbox *confine,
	      net_failed_cb failed, void *opaque, struct vm_error *err);

/**
 * net_qemu_config() - the network device of @n for QEMU's command line
 * @n: started with net_start()
 * @qc: gets net_fd and net_mac
 * Return: nothing.
 */
void net_qemu_config(struct net_vm *n, struct qemu_config *qc);

/**
 * net_qemu_started() - QEMU holds its end now: close the daemon's copy
 * @n: the VM's network state
 * Return: nothing.
 */
void net_qemu_started(struct net_vm *n);

/**
 * net_fdt_strings() - the "network" property of the guest's config tree:
 * "key=value" strings (mac, address, gateway, mtu, dns)
 * @n: the VM's network state
 * @out: NULL-terminated list, freed by the caller with each string; NULL
 *       for mode none
 * Return: the number of strings.
 */
size_t net_fdt_strings(const struct net_vm *n, char ***out);

/**
 * net_info() - VmInfo.network of @n
 * Return: NULL for mode none, else a message owned by @n.
 */
Virtmgr__V1__NetworkInfo *net_info(struct net_vm *n);

/**
 * net_persist() - what re-adoption needs, into the VM's state file
 * Return: nothing.
 */
void net_persist(const struct net_vm *n, struct statefile *sf);

/**
 * net_adopt() - after a daemon restart: the configuration from the state
 * file and passt watched again when it still runs
 * @n: as from net_init()
 * @sf: the VM's state file
 * @cid: the VM's CID
 * @pool: the daemon's tap pool (a tap VM's slot is taken again)
 * @loop, @failed, @opaque: as for net_start()
 * @alive: false when passt is gone (the message is in @n->death)
 * Return: 0, or -1 when the state file's network entries are malformed.
 */
int net_adopt(struct net_vm *n, const struct statefile *sf, uint32_t cid, const struct net_pool *pool,
	      struct ev_loop *loop, net_failed_cb failed, void *opaque, bool *alive, struct vm_error *err);

/**
 * net_release() - stop watching, terminate passt and reap it later, close
 * the fds
 * @n: the VM's network state (its configuration stays for VmInfo)
 * Return: nothing.
 */
void net_release(struct net_vm *n);

/**
 * net_forget() - stop watching but leave passt running (the daemon exits
 * and a detached VM lives on)
 * Return: nothing.
 */
void net_forget(struct net_vm *n);

#endif
