/* reaper.h - reap children that nobody watches any more (see reaper.c). */
#ifndef VIRTMGR_REAPER_H
#define VIRTMGR_REAPER_H

#include <ev.h>

void reaper_take(struct ev_loop *loop, int pidfd);
void reaper_drop_all(struct ev_loop *loop);

#endif
