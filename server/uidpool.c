/* uidpool.c - per-VM uid allocation; the rules and the default range are in
 * uidpool.h.
 *
 * A bitmap over the range (at most UIDPOOL_MAX_SIZE bits) and a cursor for
 * round-robin; uids re-adopted from outside the range sit in a small array,
 * since only a changed configuration produces them.
 */
#include "config.h"
#include "server/uidpool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct uidpool {
	uint32_t min, max;
	uint32_t next;	/* where the next search starts */
	uint32_t nused; /* bits set */
	uint8_t *bits;
	uid_t *outside; /* re-adopted uids outside [min, max] */
	size_t noutside;
};

static bool is_special(uint32_t u)
{
	return u == 0 || u == 65534 || u == 65535;
}

static int parse_u32(const char *s, const char **end, uint32_t *out)
{
	unsigned long long v;
	char *e;

	/* strtoull accepts a sign and leading blanks; a uid is digits only */
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &e, 10);
	if (errno || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	*end = e;
	return 0;
}

int uidpool_parse_range(const char *s, uid_t self, uint32_t *min, uint32_t *max, struct vm_error *err)
{
	const char *p;
	uint32_t lo, hi;

	if (!s || parse_u32(s, &p, &lo) < 0 || *p != '-' || parse_u32(p + 1, &p, &hi) < 0 || *p)
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "VM uid range \"%s\": expected MIN-MAX, two decimal uids below %u", s ? s : "",
				    UIDPOOL_LIMIT);
	if (lo > hi)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "VM uid range %s: MIN %u is above MAX %u", s, lo, hi);
	if (hi >= UIDPOOL_LIMIT)
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "VM uid range %s: uids from %u up are refused (signed-int and (uid_t)-1 "
				    "trouble)",
				    s, UIDPOOL_LIMIT);
	if (hi - lo >= UIDPOOL_MAX_SIZE)
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "VM uid range %s: %u uids, more than the %u a range may hold", s, hi - lo + 1,
				    UIDPOOL_MAX_SIZE);
	if (lo == 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "VM uid range %s holds uid 0 (root)", s);
	if ((uint32_t)self >= lo && (uint32_t)self <= hi)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "VM uid range %s holds the daemon's own uid %u", s,
				    (unsigned)self);
	if (lo <= 65535 && hi >= 65534)
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "VM uid range %s holds 65534 (nobody) or 65535 (16-bit -1)", s);
	*min = lo;
	*max = hi;
	return 0;
}

struct uidpool *uidpool_new(uint32_t min, uint32_t max)
{
	struct uidpool *pool = xzalloc(sizeof(*pool));
	size_t n = (size_t)(max - min) + 1;

	pool->min = min;
	pool->max = max;
	pool->next = min;
	pool->bits = xcalloc((n + 7) / 8, 1);
	return pool;
}

void uidpool_free(struct uidpool *pool)
{
	if (!pool)
		return;
	free(pool->bits);
	free(pool->outside);
	free(pool);
}

static bool in_range(const struct uidpool *pool, uint32_t u)
{
	return u >= pool->min && u <= pool->max;
}

static bool bit_get(const struct uidpool *pool, uint32_t u)
{
	uint32_t i = u - pool->min;

	return pool->bits[i / 8] & (1u << (i % 8));
}

static void bit_put(struct uidpool *pool, uint32_t u, bool on)
{
	uint32_t i = u - pool->min;

	if (on)
		pool->bits[i / 8] |= (uint8_t)(1u << (i % 8));
	else
		pool->bits[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

static ssize_t outside_find(const struct uidpool *pool, uid_t uid)
{
	for (size_t i = 0; i < pool->noutside; i++)
		if (pool->outside[i] == uid)
			return (ssize_t)i;
	return -1;
}

int uidpool_alloc(struct uidpool *pool, uid_t *uid, struct vm_error *err)
{
	uint32_t size = pool->max - pool->min + 1;
	uint32_t u = pool->next;

	if (pool->nused - (uint32_t)pool->noutside >= size)
		return vm_error_set(err, VM_RESOURCE_EXHAUSTED, "every uid of the VM uid range %u-%u is in use",
				    pool->min, pool->max);
	/* a free bit exists, so this ends within one lap */
	while (bit_get(pool, u))
		u = u == pool->max ? pool->min : u + 1;
	bit_put(pool, u, true);
	pool->nused++;
	pool->next = u == pool->max ? pool->min : u + 1;
	*uid = (uid_t)u;
	return 0;
}

int uidpool_mark_used(struct uidpool *pool, uid_t uid, struct vm_error *err)
{
	uint32_t u = (uint32_t)uid;

	if (is_special(u) || u >= UIDPOOL_LIMIT)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "uid %u cannot be a VM's uid", u);
	if (uidpool_in_use(pool, uid))
		return vm_error_set(err, VM_ALREADY_EXISTS, "uid %u is already held by another VM", u);
	pool->nused++;
	if (in_range(pool, u)) {
		bit_put(pool, u, true);
		return 0;
	}
	pool->outside = xrealloc(pool->outside, (pool->noutside + 1) * sizeof(*pool->outside));
	pool->outside[pool->noutside++] = uid;
	return 1;
}

bool uidpool_release(struct uidpool *pool, uid_t uid)
{
	uint32_t u = (uint32_t)uid;
	ssize_t i;

	if (in_range(pool, u)) {
		if (!bit_get(pool, u))
			return false;
		bit_put(pool, u, false);
		pool->nused--;
		return true;
	}
	i = outside_find(pool, uid);
	if (i < 0)
		return false;
	pool->outside[i] = pool->outside[--pool->noutside];
	pool->nused--;
	return true;
}

bool uidpool_in_use(const struct uidpool *pool, uid_t uid)
{
	uint32_t u = (uint32_t)uid;

	if (in_range(pool, u))
		return bit_get(pool, u);
	return outside_find(pool, uid) >= 0;
}

uint32_t uidpool_used(const struct uidpool *pool)
{
	return pool->nused;
}

void uidpool_range(const struct uidpool *pool, uint32_t *min, uint32_t *max)
{
	*min = pool->min;
	*max = pool->max;
}
