/* api.h - VirtualizationService, served by virtmgrd to host clients. */
#ifndef VIRTMGR_API_H
#define VIRTMGR_API_H

#include "server/daemon.h"

/** api_register() - add every VirtualizationService method to d->api. */
void api_register(struct daemon *d);

#endif
