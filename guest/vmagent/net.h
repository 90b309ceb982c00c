/* net.h - the guest's network configuration (guest/vmagent/net.c). */
#ifndef VIRTMGR_AGENT_NET_H
#define VIRTMGR_AGENT_NET_H

#include "guest/vmagent/agent_config.h"
#include "lib/util.h"

struct agent;

/**
 * agent_net_setup() - loopback up, hostname = the VM's name, and the
 * interface of @cfg->network configured (address, MTU, default route,
 * /etc/resolv.conf)
 * @a: the agent (for its log)
 * @cfg: the VM's configuration
 * @err: names the setting or the step that failed
 * Return: 0, or -1 with @err filled.
 */
int agent_net_setup(struct agent *a, const struct agent_config *cfg, struct vm_error *err);

#endif
