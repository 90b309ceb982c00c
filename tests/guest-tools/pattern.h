/* pattern.h - the byte stream the guest tools (tests/guest-tools/vsock-tool,
 * bench/vsock/vport-tool) send and check: a xorshift64 sequence from a
 * seed, summed with FNV-1a, so both ends agree on bytes without storing
 * them. Header-only: the tools are static binaries without libvirtmgr. */
#ifndef VIRTMGR_TESTS_GUEST_TOOLS_PATTERN_H
#define VIRTMGR_TESTS_GUEST_TOOLS_PATTERN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct sum {
	uint64_t h, n;
};

static inline void sum_add(struct sum *s, const uint8_t *p, size_t len)
{
	uint64_t h = s->h;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	s->h = h;
	s->n += len;
}

static inline void gen_fill(uint64_t *state, uint8_t *p, size_t len)
{
	uint64_t x = *state;

	for (size_t i = 0; i < len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, len - i < 8 ? len - i : 8);
	}
	*state = x;
}

#endif
