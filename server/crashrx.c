/* crashrx.c - decoding a crash upload stream (crashrx.h). */
#include "config.h"
#include "server/crashrx.h"

#include <stdio.h>
#include <stdlib.h>

#include "guest/crash/upload.h"
#include "lib/util.h"

void crash_rx_init(struct crash_rx *rx)
{
	*rx = (struct crash_rx){ .body = xmalloc(CRASH_UPLOAD_MAX_FRAME) };
}

void crash_rx_release(struct crash_rx *rx)
{
	free(steal_pointer(&rx->body));
}

uint8_t *crash_rx_space(struct crash_rx *rx, size_t *len)
{
	if (rx->hgot < 4) {
		*len = 4 - rx->hgot;
		return rx->hdr + rx->hgot;
	}
	*len = rx->len - rx->bgot;
	return rx->body + rx->bgot;
}

void crash_rx_free(Virtmgr__V1__CrashUpload *msg)
{
	if (msg)
		virtmgr__v1__crash_upload__free_unpacked(msg, NULL);
}

enum crash_rx_result crash_rx_advance(struct crash_rx *rx, size_t n, Virtmgr__V1__CrashUpload **msg, char *why,
				      size_t wsize)
{
	Virtmgr__V1__CrashUpload *m;

	*msg = NULL;
	if (rx->hgot < 4) {
		rx->hgot += n;
		if (rx->hgot < 4)
			return CRASH_RX_MORE;
		rx->len = (uint32_t)rx->hdr[0] << 24 | (uint32_t)rx->hdr[1] << 16 | (uint32_t)rx->hdr[2] << 8 |
			  rx->hdr[3];
		if (rx->len > CRASH_UPLOAD_MAX_FRAME) {
			snprintf(why, wsize, "a frame of %u bytes (at most %u)", rx->len, CRASH_UPLOAD_MAX_FRAME);
			return CRASH_RX_ERROR;
		}
		rx->bgot = 0;
		if (rx->len)
			return CRASH_RX_MORE;
	} else {
		rx->bgot += n;
		if (rx->bgot < rx->len)
			return CRASH_RX_MORE;
	}
	rx->hgot = 0;
	m = virtmgr__v1__crash_upload__unpack(NULL, rx->len, rx->body);
	if (!m) {
		snprintf(why, wsize, "a frame is not a CrashUpload");
		return CRASH_RX_ERROR;
	}
	if (!rx->have_header && !m->header) {
		crash_rx_free(m);
		snprintf(why, wsize, "the first frame is not a header");
		return CRASH_RX_ERROR;
	}
	if (rx->have_header && m->header) {
		crash_rx_free(m);
		snprintf(why, wsize, "a second header");
		return CRASH_RX_ERROR;
	}
	rx->have_header = true;
	*msg = m;
	return CRASH_RX_FRAME;
}
