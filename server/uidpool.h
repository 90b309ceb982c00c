/* uidpool.h - the uids (and equal gids) that VMs' processes run under.
 *
 * When virtmgrd is root, each VM's QEMU and vsock backend run under a uid of
 * that VM's own, taken from a configured range (`--vm-uid-range MIN-MAX`),
 * so one VM's processes cannot signal, ptrace or read another's. The pool
 * hands them out the way CIDs are handed out: round-robin from the last one
 * given (a uid just released is the last to be reused, which leaves the
 * longest time for anything it left behind to go), never two live VMs with
 * one uid. A VM's gid is the same number as its uid.
 *
 * On restart the daemon re-adopts running VMs and marks their persisted uids
 * used before it allocates any new one. A re-adopted uid outside the current
 * range (the operator changed the range between two runs) is still tracked,
 * so it is not handed out again should a later range cover it.
 *
 * Default range: 1879048192-1879113727 (0x70000000 + 64 Ki). Every lower
 * block is taken by something on a stock Debian host: regular users
 * (1000-60000), systemd's DynamicUser (61184-65519), nobody (65534),
 * subordinate ids that useradd hands to each user for rootless containers
 * (login.defs: SUB_UID_MIN 100000 .. SUB_UID_MAX 600100000, 65536 per user,
 * so 200000-265535 belongs to the second and third users who run podman)
 * and systemd-nspawn's container ranges (524288-1879048191). systemd's
 * UIDS-GIDS.md lists 1879048192-2147352575 as unused; uids from 2^31 up
 * break programs that keep uids in signed ints.
 */
#ifndef VIRTMGR_UIDPOOL_H
#define VIRTMGR_UIDPOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/util.h"

#define UIDPOOL_DEFAULT_MIN 1879048192u
#define UIDPOOL_DEFAULT_MAX 1879113727u
#define UIDPOOL_DEFAULT_RANGE "1879048192-1879113727"
/* a range holds at most this many uids (a 128 KiB bitmap) */
#define UIDPOOL_MAX_SIZE (1u << 20)
/* uids from here on are refused: signed-int users and (uid_t)-1 */
#define UIDPOOL_LIMIT 0x80000000u

struct uidpool;

/**
 * uidpool_parse_range() - read "MIN-MAX" as given to --vm-uid-range
 * @s: the text
 * @self: the daemon's own uid, which the range must not contain
 * @min: filled with MIN
 * @max: filled with MAX (inclusive)
 * @err: INVALID_ARGUMENT with a message naming the problem
 *
 * Refused: anything but two decimal numbers joined by '-', MIN > MAX, a
 * range holding 0, @self, 65534 (nobody) or 65535 (16-bit -1), one reaching
 * UIDPOOL_LIMIT, or one larger than UIDPOOL_MAX_SIZE.
 * Return: 0, or -1 with @err filled.
 */
int uidpool_parse_range(const char *s, uid_t self, uint32_t *min, uint32_t *max, struct vm_error *err);

/**
 * uidpool_new() - a pool over [@min, @max], all free
 *
 * The bounds must have passed uidpool_parse_range().
 * Return: the pool (aborts on out-of-memory).
 */
struct uidpool *uidpool_new(uint32_t min, uint32_t max);

/** uidpool_free() - free @pool (NULL is fine). */
void uidpool_free(struct uidpool *pool);

/**
 * uidpool_alloc() - take the next free uid, round-robin
 * @pool: the pool
 * @uid: filled with the uid (the VM's gid is the same number)
 * @err: RESOURCE_EXHAUSTED naming the range when every uid is in use
 * Return: 0, or -1 with @err filled.
 */
int uidpool_alloc(struct uidpool *pool, uid_t *uid, struct vm_error *err);

/**
 * uidpool_mark_used() - record that a re-adopted VM runs under @uid
 * @pool: the pool
 * @uid: the VM's persisted uid
 * @err: ALREADY_EXISTS when another live VM holds @uid; INVALID_ARGUMENT
 *       for 0, 65534, 65535 or a uid from UIDPOOL_LIMIT up
 *
 * A uid outside the range is accepted and tracked on the side (the range
 * changed between two runs of the daemon); the caller may log it.
 * Return: 0 when @uid is in the range, 1 when it is outside it, -1 with
 * @err filled.
 */
int uidpool_mark_used(struct uidpool *pool, uid_t uid, struct vm_error *err);

/**
 * uidpool_release() - give @uid back once its VM's processes are gone
 * @pool: the pool
 * @uid: a uid from uidpool_alloc() or uidpool_mark_used()
 *
 * Releasing a uid that is not in use is a no-op, so a teardown path may
 * release twice.
 * Return: true when @uid was in use.
 */
bool uidpool_release(struct uidpool *pool, uid_t uid);

/** uidpool_in_use() - whether a live VM holds @uid. Return: true if so. */
bool uidpool_in_use(const struct uidpool *pool, uid_t uid);

/** uidpool_used() - how many uids are held (range and outside). Return: count. */
uint32_t uidpool_used(const struct uidpool *pool);

/** uidpool_range() - the pool's bounds, for GetDaemonInfo and logs. Return: nothing. */
void uidpool_range(const struct uidpool *pool, uint32_t *min, uint32_t *max);

#endif
