/* crashrx.h - the host's decoder of a crash upload stream (the frames of
 * guest/crash/upload.h): lengths bounded, each frame unpacked, and the
 * order checked (a header first and once). Pure: no fds, no loop, so the
 * fuzz target drives the same code as vm-crash.c.
 */
#ifndef VIRTMGR_CRASHRX_H
#define VIRTMGR_CRASHRX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protos/virtmgr.pb-c.h"

struct crash_rx {
	uint8_t hdr[4];
	size_t hgot;
	uint32_t len;
	size_t bgot;
	uint8_t *body; /* CRASH_UPLOAD_MAX_FRAME bytes */
	bool have_header;
};

enum crash_rx_result {
	CRASH_RX_MORE,	/* read again */
	CRASH_RX_FRAME, /* *msg holds a frame in order (free with crash_rx_free()) */
	CRASH_RX_ERROR, /* @why says what is wrong; the stream is done */
};

void crash_rx_init(struct crash_rx *rx);
void crash_rx_release(struct crash_rx *rx);
/** crash_rx_space() - where the next read goes. Return: the buffer; *@len: bytes wanted (> 0). */
uint8_t *crash_rx_space(struct crash_rx *rx, size_t *len);
/**
 * crash_rx_advance() - @n bytes (at most what crash_rx_space() asked for)
 * were read into the space
 * Return: CRASH_RX_MORE, CRASH_RX_FRAME with *@msg, or CRASH_RX_ERROR with @why.
 */
enum crash_rx_result crash_rx_advance(struct crash_rx *rx, size_t n, Virtmgr__V1__CrashUpload **msg, char *why,
				      size_t wsize);
void crash_rx_free(Virtmgr__V1__CrashUpload *msg);

#endif
