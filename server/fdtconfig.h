/* fdtconfig.h - the VM's configuration as a flattened device tree, built
 * with libfdt and handed to the guest through QEMU's fw_cfg (file
 * "opt/virtmgr/config"). vmagent parses it with libfdt (guest/config.c).
 *
 * Layout (all strings NUL-terminated, string lists as in DT "a\0b\0"):
 *   / { compatible = "virtmgr,config-v1";
 *       virtmgr {
 *         vm-id = "<id>";  name = "<name>";  cid = <u32>;
 *         instance-id = [64 bytes];              (optional)
 *         payload-args = "argv0", "argv1", ...;  (optional: no payload = shell)
 *         payload-env = "K=V", ...;              (optional)
 *         payload-cwd = "/dir";                  (optional)
 *         payload-user = <uid gid>;              (optional: the payload's guest user; else root)
 *         mounts = "source", "target", "fstype", "ro"|"rw", "options", ...;
 *                                                (optional: 5 strings a mount, in order)
 *         marker-key = [32 bytes];               (optional: the boot's console marker key, marker.h)
 *         agent-port = <u32>;  host-port = <u32>; (VirtualMachineService port on CID 2)
 *         debug = <u32>;
 *         crash-core-limit = /bits/ 64 <u64>;   (optional: crash reports' core cap)
 *         shares = "tag", "/guest/path", "ro"|"rw", ...; (optional: virtiofs mounts)
 *         root = "source", "fstype", "ro"|"rw";  (optional: the payload's / , docs/storage.md)
 *       };
 *   };
 */
#ifndef VIRTMGR_FDTCONFIG_H
#define VIRTMGR_FDTCONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/util.h"

#define FDTCONFIG_FW_CFG_NAME "opt/virtmgr/config"
#define FDTCONFIG_COMPATIBLE "virtmgr,config-v1"
#define FDTCONFIG_MAX_SIZE (256u << 10)
#define VIRTMGR_AGENT_PORT 9100
#define FDTCONFIG_MARKER_KEY_LEN 32 /* MARKER_KEY_LEN */

struct fdtconfig {
	const char *vm_id;
	const char *name;
	uint32_t cid;
	const uint8_t *instance_id; /* 64 bytes or NULL */
	char *const *payload_args;
	size_t n_payload_args;
	char *const *payload_env;
	size_t n_payload_env;
	const char *payload_cwd; /* NULL or "" = none */
	char *const *mounts;	 /* 5 strings a mount: source, target, fstype, "ro"/"rw", options */
	size_t n_mounts;
	bool has_payload_user;
	uint32_t payload_uid, payload_gid;
	const uint8_t *marker_key; /* FDTCONFIG_MARKER_KEY_LEN bytes or NULL */
	uint32_t agent_port;
	uint32_t host_port;
	uint32_t debug;
	uint64_t crash_core_limit; /* "crash-core-limit" (u64), written when not 0 */
	/* "shares": tag, guest path, "ro" or "rw" for each share, as one
	 * string list (3 strings a share) */
	char *const *shares;
	size_t n_shares; /* strings, a multiple of 3 */
	/* "root": source, fstype, "ro"|"rw" (3 strings), or NULL */
	char *const *root;
	/* "network": "key=value" strings (mac, address, gateway, mtu, dns;
	 * server/net.h), absent when the VM has no network device */
	char *const *network;
	size_t n_network;
};

/**
 * fdtconfig_build() - serialize @cfg into a new flattened device tree
 * @blob: newly allocated blob (free())
 * @len: its size
 * Return: 0, or -1 with @err (INVALID_ARGUMENT when it exceeds FDTCONFIG_MAX_SIZE).
 */
int fdtconfig_build(const struct fdtconfig *cfg, void **blob, size_t *len, struct vm_error *err);

#endif
