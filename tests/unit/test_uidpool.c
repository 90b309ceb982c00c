/* test_uidpool.c - the VM uid range: parsing with its refusals, round-robin
 * allocation, exhaustion, release, and re-adoption (mark-used) inside and
 * outside the range.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "server/uidpool.h"

static void refused(const char *s, uid_t self, const char *why)
{
	struct vm_error err = { 0 };
	uint32_t lo = 7, hi = 7;

	cr_assert_eq(uidpool_parse_range(s, self, &lo, &hi, &err), -1, "\"%s\" accepted", s);
	cr_assert_eq(err.code, VM_INVALID_ARGUMENT);
	cr_assert(strstr(err.message, why), "\"%s\": message \"%s\" lacks \"%s\"", s, err.message, why);
	cr_assert(lo == 7 && hi == 7, "outputs written on failure");
}

Test(uidpool, parses_the_default_and_small_ranges)
{
	struct vm_error err = { 0 };
	uint32_t lo, hi;

	cr_assert_eq(uidpool_parse_range(UIDPOOL_DEFAULT_RANGE, 0, &lo, &hi, &err), 0, "%s", err.message);
	cr_assert_eq(lo, UIDPOOL_DEFAULT_MIN);
	cr_assert_eq(hi, UIDPOOL_DEFAULT_MAX);
	cr_assert_eq(hi - lo + 1, 65536);
	cr_assert_eq(uidpool_parse_range("70000-70000", 0, &lo, &hi, &err), 0, "%s", err.message);
	cr_assert(lo == 70000 && hi == 70000);
	/* the daemon's uid just outside is fine */
	cr_assert_eq(uidpool_parse_range("1001-2000", 1000, &lo, &hi, &err), 0, "%s", err.message);
}

Test(uidpool, refuses_malformed_text)
{
	refused("", 0, "expected MIN-MAX");
	refused("1000", 0, "expected MIN-MAX");
	refused("1000-", 0, "expected MIN-MAX");
	refused("-2000", 0, "expected MIN-MAX");
	refused("1000-2000x", 0, "expected MIN-MAX");
	refused(" 1000-2000", 0, "expected MIN-MAX");
	refused("1000- 2000", 0, "expected MIN-MAX");
	refused("+1000-2000", 0, "expected MIN-MAX");
	refused("1000--2000", 0, "expected MIN-MAX");
	refused("99999999999-99999999999", 0, "expected MIN-MAX");
	refused(NULL, 0, "expected MIN-MAX");
}

Test(uidpool, refuses_bad_bounds)
{
	refused("3000-2000", 0, "MIN 3000 is above MAX 2000");
	refused("0-100", 1000, "uid 0 (root)");
	refused("900-1100", 1000, "daemon's own uid 1000");
	refused("1000-1000", 1000, "daemon's own uid 1000");
	refused("65000-66000", 0, "65534 (nobody)");
	refused("65535-65535", 0, "65535");
	refused("2147483000-2147483648", 0, "from 2147483648 up");
	refused("4294967295-4294967295", 0, "from 2147483648 up");
	refused("100000-1200000", 0, "more than the 1048576");
}

Test(uidpool, round_robin_never_two_live_holders)
{
	struct uidpool *p = uidpool_new(70000, 70003);
	struct vm_error err = { 0 };
	uid_t u[4], again;

	for (int i = 0; i < 4; i++) {
		cr_assert_eq(uidpool_alloc(p, &u[i], &err), 0, "%s", err.message);
		cr_assert_eq(u[i], (uid_t)(70000 + i));
		cr_assert(uidpool_in_use(p, u[i]));
	}
	cr_assert_eq(uidpool_used(p), 4);
	cr_assert_eq(uidpool_alloc(p, &again, &err), -1);
	cr_assert_eq(err.code, VM_RESOURCE_EXHAUSTED);
	cr_assert(strstr(err.message, "70000-70003"), "%s", err.message);

	/* a released uid comes back only after the others were passed */
	cr_assert(uidpool_release(p, 70001));
	cr_assert_not(uidpool_release(p, 70001), "double release counted");
	cr_assert_not(uidpool_in_use(p, 70001));
	cr_assert_eq(uidpool_alloc(p, &again, &err), 0);
	cr_assert_eq(again, 70001);
	cr_assert(uidpool_release(p, 70000));
	cr_assert(uidpool_release(p, 70003));
	cr_assert_eq(uidpool_alloc(p, &again, &err), 0);
	cr_assert_eq(again, 70003, "cursor moved past 70001, so 70003 is next, got %u", (unsigned)again);
	cr_assert_eq(uidpool_alloc(p, &again, &err), 0);
	cr_assert_eq(again, 70000);
	cr_assert_eq(uidpool_used(p), 4);
	uidpool_free(p);
}

Test(uidpool, mark_used_for_readoption)
{
	struct uidpool *p = uidpool_new(70000, 70002);
	struct vm_error err = { 0 };
	uid_t u;

	cr_assert_eq(uidpool_mark_used(p, 70001, &err), 0, "%s", err.message);
	cr_assert_eq(uidpool_mark_used(p, 70001, &err), -1);
	cr_assert_eq(err.code, VM_ALREADY_EXISTS);
	cr_assert(strstr(err.message, "70001"), "%s", err.message);
	cr_assert_eq(uidpool_mark_used(p, 0, &err), -1);
	cr_assert_eq(err.code, VM_INVALID_ARGUMENT);
	cr_assert_eq(uidpool_mark_used(p, 65534, &err), -1);
	cr_assert_eq(uidpool_mark_used(p, (uid_t)-1, &err), -1);

	/* outside the range: tracked, reported as such, never handed out */
	cr_assert_eq(uidpool_mark_used(p, 90000, &err), 1, "%s", err.message);
	cr_assert(uidpool_in_use(p, 90000));
	cr_assert_eq(uidpool_mark_used(p, 90000, &err), -1);
	cr_assert_eq(err.code, VM_ALREADY_EXISTS);

	/* the two free uids of the range are still there, then it is full */
	cr_assert_eq(uidpool_alloc(p, &u, &err), 0);
	cr_assert_eq(u, 70000);
	cr_assert_eq(uidpool_alloc(p, &u, &err), 0);
	cr_assert_eq(u, 70002);
	cr_assert_eq(uidpool_alloc(p, &u, &err), -1);
	cr_assert_eq(uidpool_used(p), 4);

	cr_assert(uidpool_release(p, 90000));
	cr_assert_not(uidpool_in_use(p, 90000));
	cr_assert_not(uidpool_release(p, 90001));
	cr_assert_eq(uidpool_used(p), 3);
	uidpool_free(p);
}

Test(uidpool, largest_range_fills_and_wraps)
{
	struct uidpool *p = uidpool_new(1000000, 1000000 + UIDPOOL_MAX_SIZE - 1);
	struct vm_error err = { 0 };
	uint32_t lo, hi;
	uid_t u = 0;

	uidpool_range(p, &lo, &hi);
	cr_assert(lo == 1000000 && hi == 1000000 + UIDPOOL_MAX_SIZE - 1);
	for (uint32_t i = 0; i < UIDPOOL_MAX_SIZE; i++)
		cr_assert_eq(uidpool_alloc(p, &u, &err), 0);
	cr_assert_eq(u, hi);
	cr_assert_eq(uidpool_alloc(p, &u, &err), -1);
	cr_assert(uidpool_release(p, 1000005));
	cr_assert_eq(uidpool_alloc(p, &u, &err), 0);
	cr_assert_eq(u, 1000005);
	uidpool_free(p);
}
