/* shares.h - vmagent's virtiofs mounts of VmConfig.shares (shares.c). */
#ifndef VIRTMGR_AGENT_SHARES_H
#define VIRTMGR_AGENT_SHARES_H

#include "guest/vmagent/agent_config.h"
#include "lib/util.h"

struct agent;

/**
 * agent_shares_mount() - mount every share of @cfg at its guest path
 * @a: the agent (for its console log)
 * @cfg: a parsed configuration
 * @err: INVALID_ARGUMENT naming the share, the path and the kernel's error
 * Return: 0, or -1 with @err filled at the first share that failed.
 */
int agent_shares_mount(struct agent *a, const struct agent_config *cfg, struct vm_error *err);

/**
 * agent_shares_unmount() - sync, then detach every share of @cfg
 * Return: nothing; failures are logged.
 */
void agent_shares_unmount(struct agent *a, const struct agent_config *cfg);

#endif
