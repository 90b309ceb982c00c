/* fuzz_crash_upload.c - the host's decoder of crash uploads
 * (server/crashrx.c), which reads what a guest sends on vsock port 7779.
 * The first input byte picks the read sizes (1..256, varying), so frame
 * boundaries fall everywhere; every frame that comes out must be in order
 * (a header first, never a second one) and bounded.
 */
#include "config.h"

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "guest/crash/upload.h"
#include "server/crashrx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct crash_rx rx;
	unsigned step, frames = 0;
	char why[160];

	if (size < 1)
		return 0;
	step = data[0];
	data++;
	size--;
	crash_rx_init(&rx);
	while (size) {
		Virtmgr__V1__CrashUpload *m = NULL;
		size_t want, n;
		uint8_t *space = crash_rx_space(&rx, &want);
		enum crash_rx_result r;

		assert(want > 0 && want <= CRASH_UPLOAD_MAX_FRAME);
		n = 1 + (step++ % 256);
		if (n > want)
			n = want;
		if (n > size)
			n = size;
		memcpy(space, data, n);
		data += n;
		size -= n;
		r = crash_rx_advance(&rx, n, &m, why, sizeof(why));
		if (r == CRASH_RX_ERROR) {
			assert(!m && why[0]);
			break;
		}
		if (r == CRASH_RX_FRAME) {
			assert(m);
			assert(frames > 0 || m->header);
			assert(frames == 0 || !m->header);
			assert(m->core.len <= CRASH_UPLOAD_MAX_FRAME);
			frames++;
			crash_rx_free(m);
		}
	}
	crash_rx_release(&rx);
	return 0;
}
