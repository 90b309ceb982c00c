/* cmd_attest.h - `vmctl measure` (client/cmd_measure.c) and
 * `vmctl attest verify` (client/cmd_attest.c); `vmctl attest` itself and
 * `attest platform-key` are in client/cmd_attest_key.c.
 */
#ifndef VIRTMGR_CMD_ATTEST_H
#define VIRTMGR_CMD_ATTEST_H

#include <stddef.h>
#include <stdint.h>

#include "client/vmctl.h"

extern const char cmd_measure_help[];
extern const char cmd_attest_verify_help[];

/** cmd_measure() - `vmctl measure [RUN OPTIONS] [-- CMD ARGS...]`. Return: exit code. */
int cmd_measure(struct vmctl_ctx *ctx, int argc, char **argv);

/** cmd_attest_verify() - `vmctl attest verify TOKEN ...` (@argv[0] is "verify"). Return: exit code. */
int cmd_attest_verify(struct vmctl_ctx *ctx, int argc, char **argv);

/**
 * vmctl_parse_hex() - @s (an even number of hex digits, at most @max bytes)
 * into @out. Return: the byte count, or -1 with @err naming @what.
 */
long vmctl_parse_hex(const char *s, const char *what, uint8_t *out, size_t max, struct vm_error *err);

#endif
