/* vsock_dev.h - the virtio-vsock device: connections between the guest and
 * host Unix sockets (Firecracker's hybrid convention), driven by the rx/tx
 * virtqueues that the vhost-user layer hands over.
 */
#ifndef VIRTMGR_VSOCK_DEV_H
#define VIRTMGR_VSOCK_DEV_H

#include <ev.h>
#include <stdint.h>

#include "lib/util.h"
#include "server/vsock/virtq.h"

#define VSOCK_QUEUE_RX 0
#define VSOCK_QUEUE_TX 1
/* bytes of guest data buffered per connection while the host reader is slow */
#define VSOCK_DEV_BUF_ALLOC (256 * 1024)
#define VSOCK_DEV_MAX_CONNS 1024

struct vsock_dev;

/* Called when the guest broke the device; the process must stop. */
typedef void (*vsock_dev_fatal_fn)(void *opaque, const char *why);

/**
 * vsock_dev_new() - create the device and listen on @uds for host clients
 * @listen_fd: an already listening socket for @uds, or -1 to create it
 * Return: the device, or NULL with @err filled.
 */
struct vsock_dev *vsock_dev_new(struct ev_loop *loop, uint64_t guest_cid, const char *uds, int listen_fd,
				struct virtq *rx, struct virtq *tx, vsock_dev_fatal_fn fatal, void *opaque,
				struct vm_error *err);

/** vsock_dev_kick() - the driver added buffers to queue @idx (or it started). */
void vsock_dev_kick(struct vsock_dev *dev, unsigned idx);

/** vsock_dev_reset() - drop every connection (the device was reset). */
void vsock_dev_reset(struct vsock_dev *dev);

/*
 * Byte counters the device keeps for its supervisor (virtmgrd reads them
 * through a shared memfd, --stats-fd): [0] bytes read from host sockets
 * and sent to the guest, [1] bytes of guest data written to host sockets.
 */
#define VSOCK_DEV_STATS_SIZE (2 * sizeof(uint64_t))
/** vsock_dev_set_counters() - count into @counters (two u64, shared memory) from now on. */
void vsock_dev_set_counters(struct vsock_dev *dev, uint64_t *counters);

/** vsock_dev_free() - close everything, unlink nothing (the caller owns paths). */
void vsock_dev_free(struct vsock_dev *dev);

#endif
