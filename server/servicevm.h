/* servicevm.h - the singleton Service VM (AVF's service_vm_manager): the VM
 * that holds the attestation keys and signs tokens, started on the first
 * request that needs it, stopped when idle, restarted if it died.
 *
 * Requests are CBOR items of the Service VM protocol (docs/attestation.md,
 * "The Service VM"): the caller gives the inner Request ({"Reverse": bstr},
 * "GetPlatformKey", {"SignRealmToken": {...}}) and the variant name the
 * answer must carry; the callback gets that variant's value, or an error.
 * Requests are served one at a time, in order.
 */
#ifndef VIRTMGR_SERVICEVM_H
#define VIRTMGR_SERVICEVM_H

#include <cbor.h>
#include <stdint.h>

#include "lib/util.h"
#include "protos/virtmgr.pb-c.h"
#include "server/daemon.h"

#define SERVICEVM_DEFAULT_IDLE_S 30
#define SERVICEVM_NAME "servicevm"

struct servicevm;
struct servicevm_req;

/* @value: the answer's value (borrowed, valid during the call), or NULL with @err. */
typedef void (*servicevm_cb)(void *opaque, cbor_item_t *value, const struct vm_error *err);

/**
 * servicevm_new() - the daemon's Service VM manager (nothing starts yet)
 * @idle_s: stop the Service VM after this many seconds without a request; 0 = never
 * Return: never NULL.
 */
struct servicevm *servicevm_new(struct daemon *d, unsigned idle_s);

/** servicevm_free() - fail every waiting request (UNAVAILABLE); the VM is the core's to stop. */
void servicevm_free(struct servicevm *s);

/**
 * servicevm_request() - send @req (a Request, consumed) to the Service VM, starting it if needed
 * @expect: the answer's variant name ("Reverse", "GetPlatformKey", ...)
 * Return: a handle for servicevm_cancel(); @cb runs exactly once, from the
 *         loop (never from inside this call), unless cancelled.
 */
struct servicevm_req *servicevm_request(struct servicevm *s, cbor_item_t *req, const char *expect, servicevm_cb cb,
					void *opaque);

/** servicevm_cancel() - the callback of @r never runs. */
void servicevm_cancel(struct servicevm_req *r);

/** servicevm_fill_info() - DaemonInfo.service_vm; strings and bytes point into @s. */
void servicevm_fill_info(struct servicevm *s, Virtmgr__V1__ServiceVmInfo *info);

/**
 * servicevm_platform_sw() - the platform's software components for a
 * SignRealmToken request: [[type, sha-256, version], ...] for virtmgrd's
 * own binary and the Service VM image.
 * Return: a new CBOR array.
 */
cbor_item_t *servicevm_platform_sw(struct servicevm *s);

#endif
