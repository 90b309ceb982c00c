/* attest.h - a VM's runtime measurement registers and its attestation
 * requests (CCA's RSI_MEASUREMENT_EXTEND and RSI_ATTEST_TOKEN), answered
 * with the Service VM (server/servicevm.h).
 *
 * Each VM has a struct attest_vm from CreateVm on: its hash algorithm, its
 * launch measurement (RIM, set by the measured-launch code once computed),
 * its four REMs (zero at launch) and its personalization value (the VM's
 * instance id, zeros if none). VirtualMachineService's ExtendMeasurement
 * and RequestAttestation (server/vms.c) call in here; so does
 * VirtualizationService's GetPlatformKey (server/api.c).
 */
#ifndef VIRTMGR_ATTEST_H
#define VIRTMGR_ATTEST_H

#include <stddef.h>
#include <stdint.h>

#include "lib/ttrpc.h"
#include "protos/virtmgr.pb-c.h"

#define ATTEST_NUM_REMS 4
#define ATTEST_MAX_EXTEND 64
#define ATTEST_MIN_CHALLENGE 32
#define ATTEST_MAX_CHALLENGE 64

struct servicevm;
struct attest_vm;

/**
 * attest_vm_new() - a VM's attestation state
 * @instance_id: 64 bytes, or NULL (personalization value of zeros)
 * @hash_alg: "sha-256" or "sha-384"; NULL or "" = "sha-256"
 * Return: never NULL.
 */
struct attest_vm *attest_vm_new(struct servicevm *svm, const uint8_t *instance_id, const char *hash_alg);
void attest_vm_free(struct attest_vm *a);

/** attest_vm_set_rim() - the launch measurement (@len bytes, the VM's hash size). */
void attest_vm_set_rim(struct attest_vm *a, const uint8_t *rim, size_t len);

/** attest_vm_rim() - the launch measurement (*@len 0 when none was set) and
 * its algorithm ("" then). Return: pointer into @a. */
const uint8_t *attest_vm_rim(const struct attest_vm *a, size_t *len, const char **alg);

/** attest_vm_rem() - REM[@i] (the VM's hash size in *@len). Return: pointer into @a. */
const uint8_t *attest_vm_rem(const struct attest_vm *a, unsigned i, size_t *len);

/* VirtualMachineService handlers: reply (or fail) @call, now or later. */
void attest_extend(struct attest_vm *a, struct ttrpc_call *call, const Virtmgr__V1__ExtendMeasurementRequest *req);
void attest_request(struct attest_vm *a, struct ttrpc_call *call, const Virtmgr__V1__RequestAttestationRequest *req);

/* VirtualizationService.GetPlatformKey: reply @call with the Service VM's public key. */
void attest_platform_key(struct servicevm *svm, struct ttrpc_call *call);

/* ---- surviving a daemon restart (server/vm-persist.c) ---- */
struct statefile;
struct vm_error;

/** attest_vm_on_change() - call @fn(@opaque) after a REM changed, so the VM's record is rewritten. */
void attest_vm_on_change(struct attest_vm *a, void (*fn)(void *opaque), void *opaque);

/** attest_vm_save() - add the hash algorithm, RIM, REMs and personalization value to @sf (nothing before a RIM). */
void attest_vm_save(const struct attest_vm *a, struct statefile *sf);

/**
 * attest_vm_load() - restore what attest_vm_save() wrote (nothing if the
 * record has none, as an older daemon's)
 * Return: 0, or -1 with @err (DATA_LOSS naming the key).
 */
int attest_vm_load(struct attest_vm *a, const struct statefile *sf, struct vm_error *err);

#endif
