/* marker.h - console markers a payload cannot forge.
 *
 * vmagent reports the payload's progress on the console as well as over
 * VirtualMachineService, for the time before vsock is up and for guests
 * without vsock. The console is also the payload's stdout, so a marker is
 * believed only if it carries a MAC made with a per-boot key that virtmgrd
 * generated, handed to the guest in the configuration device tree
 * (fdtconfig "marker-key") and that vmagent never hands to the payload:
 *
 *   VIRTMGR/1 <seq> <mac> STARTED
 *   VIRTMGR/1 <seq> <mac> READY
 *   VIRTMGR/1 <seq> <mac> EXIT <0..255>
 *   VIRTMGR/1 <seq> <mac> ERROR <0..255> <message>
 *
 * <seq> is a decimal counter (1, 2, ... in the agent; PID 1 of the default
 * image uses MARKER_SEQ_PID1 and up), <mac> the first 16 bytes, in lower-case
 * hex, of HMAC-SHA256(key, "virtmgr-marker-v1\n<seq> <verb and arguments>").
 * The verifier accepts a line only when the MAC matches (compared in
 * constant time) and <seq> is above the last accepted one, so a payload
 * that somehow saw earlier markers (a console log shared back into the
 * guest) can neither replay them nor make new ones. Why a MAC and not the
 * bare key: docs/guest.md, "Trust model".
 *
 * The same module formats markers (vmagent links it) and parses them
 * (virtmgrd), so both ends share one definition of the format.
 */
#ifndef VIRTMGR_MARKER_H
#define VIRTMGR_MARKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/util.h"

#define MARKER_KEY_LEN 32
#define MARKER_MAC_LEN 16 /* bytes of the HMAC kept in a line */
#define MARKER_PREFIX "VIRTMGR/1 "
/* Longest marker line without its newline; fits virtmgrd's 256-byte console
 * line buffer. ERROR messages are cut to MARKER_MESSAGE_MAX bytes (the full
 * text travels in NotifyError). */
#define MARKER_LINE_MAX 255
#define MARKER_MESSAGE_MAX 160
/* First sequence number of PID 1's own markers: above anything the agent
 * process (which starts at 1) can have used, since PID 1 speaks only after
 * the agent is gone. */
#define MARKER_SEQ_PID1 (UINT64_C(1) << 32)

struct marker_key {
	uint8_t bytes[MARKER_KEY_LEN];
};

enum marker_kind {
	MARKER_NONE, /* plain console text */
	MARKER_STARTED,
	MARKER_READY,
	MARKER_EXIT,
	MARKER_ERROR,
};

struct marker {
	enum marker_kind kind;
	int code;			      /* EXIT: the exit code; ERROR: a virtmgr.v1.ErrorCode */
	char message[MARKER_MESSAGE_MAX + 1]; /* ERROR only; NUL-terminated */
};

/* One boot's verifier: the key and the last sequence number accepted. */
struct marker_verifier {
	struct marker_key key;
	uint64_t last_seq;
};

/**
 * marker_key_generate() - a fresh random key (getrandom) for one boot
 * @key: filled on success
 * @err: INTERNAL naming getrandom on failure
 * Return: 0, or -1 with @err.
 */
int marker_key_generate(struct marker_key *key, struct vm_error *err);

/**
 * marker_key_to_hex() - @key as 64 lower-case hex digits and a NUL, for a
 * state file that must survive a daemon restart
 * Return: @out.
 */
char *marker_key_to_hex(const struct marker_key *key, char out[2 * MARKER_KEY_LEN + 1]);

/**
 * marker_key_from_hex() - the reverse of marker_key_to_hex()
 * Return: 0, or -1 with @err (INVALID_ARGUMENT) when @hex is not 64 hex digits.
 */
int marker_key_from_hex(struct marker_key *key, const char *hex, struct vm_error *err);

/**
 * marker_verifier_init() - start verifying the markers of a boot made with @key
 * Return: nothing.
 */
void marker_verifier_init(struct marker_verifier *v, const struct marker_key *key);

/**
 * marker_parse() - decide whether one console line is a genuine marker
 * @v: the boot's verifier; its last_seq advances when a marker is accepted
 * @line: the line without its newline (a trailing '\r' is ignored); need
 *        not be NUL-terminated
 * @len: its length
 * @out: filled when a marker is accepted; kind MARKER_NONE otherwise
 *
 * Anything that is not a well-formed marker with the right MAC and a
 * sequence number above the last accepted one (a payload's imitation, a
 * truncated or overlong line, a replay) is plain text: MARKER_NONE.
 * Return: @out->kind.
 */
enum marker_kind marker_parse(struct marker_verifier *v, const char *line, size_t len, struct marker *out);

/**
 * marker_format() - the marker line for one report
 * @key: the boot's key
 * @seq: its sequence number (strictly increasing within the boot, > 0)
 * @kind: MARKER_STARTED, MARKER_READY, MARKER_EXIT or MARKER_ERROR
 * @code: EXIT: 0..255; ERROR: 0..255 (an ErrorCode)
 * @message: ERROR only: cut to MARKER_MESSAGE_MAX bytes at a UTF-8
 *           boundary, control characters replaced by '?'
 * @buf: receives the line, without newline, NUL-terminated
 * @size: at least MARKER_LINE_MAX + 1
 * Return: the line's length, or 0 if @kind, @code or @size is invalid.
 */
size_t marker_format(const struct marker_key *key, uint64_t seq, enum marker_kind kind, int code, const char *message,
		     char *buf, size_t size);

/**
 * marker_hmac_sha256() - HMAC-SHA256 (RFC 2104, FIPS 180-4) of @msg under @key
 * Return: nothing; @out receives the 32-byte MAC.
 */
/**
 * marker_sha256_fd() - SHA-256 of what is left to read on @fd (the guest
 * agent measures the payload's executable with it: it has no libcrypto)
 * Return: 0, or -1 with errno.
 */
int marker_sha256_fd(int fd, uint8_t out[32]);

void marker_hmac_sha256(const uint8_t *key, size_t key_len, const void *msg, size_t len, uint8_t out[32]);

#endif
