/* agent_config.h - vmagent's view of the VM configuration device tree that
 * virtmgrd builds (server/fdtconfig.h has the layout) and QEMU hands to the
 * guest as fw_cfg file "opt/virtmgr/config".
 *
 * The blob comes from the host and is untrusted: agent_config_parse() checks
 * the header, the size, the compatible string and every property's type and
 * length before anything is used, and names the first bad property.
 */
#ifndef VIRTMGR_AGENT_CONFIG_H
#define VIRTMGR_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/util.h"

#define AGENT_CONFIG_FW_CFG_PATH "/sys/firmware/qemu_fw_cfg/by_name/opt/virtmgr/config/raw"
#define AGENT_CONFIG_COMPATIBLE "virtmgr,config-v1"
#define AGENT_CONFIG_MAX_SIZE (256u << 10)
#define AGENT_CONFIG_MAX_STRING 4096u /* vm-id, name, payload-cwd */
#define AGENT_CONFIG_MAX_LIST 1024u   /* entries of payload-args / payload-env */
#define AGENT_CONFIG_MAX_MOUNTS 16u
#define AGENT_CONFIG_MAX_MOUNT_STRING 256u /* each string of a mount */
#define AGENT_DEFAULT_PORT 9100
#define AGENT_CONFIG_MAX_SHARES 8u
#define AGENT_CONFIG_MAX_TAG 32u
#define AGENT_CONFIG_MAX_NET 16u

struct agent_config {
	char *vm_id;
	char *name;
	uint32_t cid;
	bool has_instance_id;
	uint8_t instance_id[64];
	char **payload_args; /* NULL-terminated; NULL when absent */
	size_t n_payload_args;
	char **payload_env; /* NULL-terminated; NULL when absent */
	size_t n_payload_env;
	char *payload_cwd;     /* NULL when absent */
	char **mounts;	       /* 5 strings a mount (source, target, fstype, "ro"/"rw", options); NULL when absent */
	size_t n_mounts;       /* mounts, not strings */
	bool has_payload_user; /* else the payload runs as root */
	uint32_t payload_uid, payload_gid;
	bool has_marker_key; /* sign console markers (server/marker.h) */
	uint8_t marker_key[32];
	uint32_t agent_port;
	uint32_t host_port;
	uint32_t debug;
	uint64_t crash_core_limit; /* 0 = AGENT_CRASH_CORE_LIMIT (crash.c) */
	/* host folders to mount (guest/vmagent/shares.c): tag, guest path,
	 * "ro"|"rw" for each, checked; NULL when absent */
	char **shares;
	size_t n_shares; /* shares, not strings */
	/* the payload's root file system (guest/vmagent/root.c): source (disk
	 * label or share tag), fstype, "ro"|"rw", checked; NULL when absent */
	char **root;
	/* the network device's settings (guest/vmagent/net.c): "key=value"
	 * strings, at most AGENT_CONFIG_MAX_NET, each shorter than 64
	 * bytes; NULL when the VM has no network */
	char **network;
	size_t n_network;
};

/**
 * agent_config_parse() - validate and decode a configuration blob
 * @blob: the bytes as read (not necessarily aligned)
 * @len: their number
 * @cfg: filled on success (release with agent_config_clear())
 * @err: on failure, INVALID_ARGUMENT with "<property>: <what is wrong>"
 * Return: 0, or -1 with @err; @cfg is left cleared on failure.
 */
int agent_config_parse(const void *blob, size_t len, struct agent_config *cfg, struct vm_error *err);

/**
 * agent_config_read() - read the fw_cfg file at @path
 * Return: 1 with *blob and *len (free *blob) when it exists, 0 when the file
 *         does not exist, -1 with @err when it cannot be read or is larger
 *         than AGENT_CONFIG_MAX_SIZE.
 */
int agent_config_read(const char *path, void **blob, size_t *len, struct vm_error *err);

/** agent_config_clear() - free what @cfg holds and zero it. */
void agent_config_clear(struct agent_config *cfg);

#endif
