/* api.h - VirtualizationService, served by virtmgrd to host clients. */
#ifndef VIRTMGR_API_H
#define VIRTMGR_API_H

#include "server/daemon.h"

/** api_register() - add every VirtualizationService method to d->api. */
void api_register(struct daemon *d);

struct vm;
/**
 * api_allowed() - the regular-mode permission check (root, the daemon's
 * user, or a member of the configured group); fails @call otherwise
 * Return: true if the caller may use the API.
 */
bool api_allowed(struct daemon *d, struct ttrpc_call *call);
/**
 * api_find() - the VM @ref names that the caller may see; fails @call with
 * NOT_FOUND (or INVALID_ARGUMENT for an empty @ref) otherwise
 * Return: the VM, or NULL.
 */
struct vm *api_find(struct daemon *d, struct ttrpc_call *call, const char *ref);

#endif
