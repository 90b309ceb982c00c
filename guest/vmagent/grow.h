/* grow.h - Agent.StorageGrowFilesystem, online resize in the guest (grow.c). */
#ifndef VIRTMGR_AGENT_GROW_H
#define VIRTMGR_AGENT_GROW_H

#include "lib/ttrpc.h"

struct agent;

/** agent_grow_register() - add StorageGrowFilesystem to the Agent service on @srv. Return: nothing. */
void agent_grow_register(struct agent *a, struct ttrpc_server *srv);

#endif
