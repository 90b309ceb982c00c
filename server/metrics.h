/* metrics.h - `virtmgrd --metrics ADDR`: /metrics in the Prometheus text
 * exposition format over HTTP (libmicrohttpd), on a Unix socket or a
 * loopback TCP address. docs/operations.md, "Resources and metrics".
 */
#ifndef VIRTMGR_METRICS_H
#define VIRTMGR_METRICS_H

#include "lib/util.h"
#include "server/daemon.h"

/* Concurrent scrapers served at once; more wait in the listen backlog. */
#define METRICS_MAX_CONNECTIONS 16
/* An HTTP connection idle this long is closed (seconds). */
#define METRICS_CONNECTION_TIMEOUT_S 10

/**
 * metrics_start() - serve /metrics on @addr: an absolute path (a Unix
 * socket, created mode 0600) or HOST:PORT with HOST a loopback address
 * (127.0.0.0/8, localhost, [::1]); driven by d->loop, nothing else
 * Return: 0 with d->metrics set, or -1 with @err naming @addr.
 */
int metrics_start(struct daemon *d, const char *addr, struct vm_error *err);

/** metrics_stop() - close the endpoint (unlinks its Unix socket). */
void metrics_stop(struct daemon *d);

/**
 * metrics_render() - the whole exposition text for @d
 * Return: a NUL-terminated string the caller frees; *@len its length.
 */
char *metrics_render(struct daemon *d, size_t *len);

#endif
