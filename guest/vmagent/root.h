/* root.h - vmagent's root file system for the payload and Exec sessions (root.c). */
#ifndef VIRTMGR_AGENT_ROOT_H
#define VIRTMGR_AGENT_ROOT_H

#include <stdbool.h>

#include "guest/vmagent/agent_config.h"
#include "lib/util.h"

struct agent;

/**
 * agent_root_setup() - mount the configured root with /proc, /sys, /dev,
 * /tmp and /run inside it, and rebase the configured mounts' targets and
 * shares' paths into it; nothing when the configuration has no root
 * @err: INVALID_ARGUMENT naming the root, the step and the kernel's error
 * Return: 0, or -1 with @err (what was mounted stays, for agent_root_release()).
 */
int agent_root_setup(struct agent *a, struct vm_error *err);

/** agent_root_dir() - Return: the root's directory in the initramfs, or NULL without a root. */
const char *agent_root_dir(const struct agent *a);

/**
 * agent_root_enter() - in a forked child: chroot() into the root and chdir("/")
 * Return: 0 (also without a root), or the errno of the step that failed.
 */
int agent_root_enter(const struct agent *a);

/** agent_root_is_share() - Return: true if share @tag is the root (mounted as the root, not at its path). */
bool agent_root_is_share(const struct agent_config *c, const char *tag);

/**
 * agent_root_bind_file() - show the initramfs's file @path (e.g.
 * /etc/resolv.conf, written by net.c) at the same path inside the root,
 * read-only, as container runtimes do; an empty file is made there first
 * if the image has none. Nothing without a root.
 * @err: INVALID_ARGUMENT naming the file and the kernel's error
 * Return: 0, or -1 with @err.
 */
int agent_root_bind_file(struct agent *a, const char *path, struct vm_error *err);

/**
 * agent_root_release() - sync, then unmount the root's tree in reverse
 * order; a busy one after killing every other process, else remounted
 * read-only. Only for a machine about to go down.
 * Return: nothing.
 */
void agent_root_release(struct agent *a);

#endif
