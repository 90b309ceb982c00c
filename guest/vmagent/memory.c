/* memory.c - free page reporting tuned for small guests.
 *
 * virtio_balloon registers free page reporting at the page block order
 * (2 MiB on x86), and Linux reports a zone only while it has more than
 * its low watermark plus 32 blocks of that order free: 64 MiB beyond the
 * watermark, which a guest of 96 MiB never has, so nothing it frees would
 * come back. At order 4 (64 KiB) the margin is 2 MiB. The order is a
 * writable parameter of the built-in page_reporting; Linux 6.1 resets it
 * when the balloon driver registers, so it is written after the modules
 * are loaded. Reporting runs when a free merges into a block of the
 * order, so a short allocation is made and freed to start it for memory
 * that was freed earlier in boot. docs/operations.md, "Resources and
 * metrics".
 */
#include "config.h"
#include "guest/vmagent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE_REPORTING_ORDER_PARAM "/sys/module/page_reporting/parameters/page_reporting_order"
/* 2^4 pages = 64 KiB */
#define AGENT_PAGE_REPORTING_ORDER "4"
/* what is allocated and freed to start reporting */
#define AGENT_REPORTING_PRIME_BYTES (4u << 20)

void agent_memory_setup(struct agent *a)
{
	int fd = open(PAGE_REPORTING_ORDER_PARAM, O_WRONLY | O_CLOEXEC);
	void *p;

	if (fd < 0) {
		/* a kernel without free page reporting, or no balloon */
		if (errno != ENOENT)
			agent_log(a, "open %s: %s", PAGE_REPORTING_ORDER_PARAM, strerror(errno));
		return;
	}
	if (write(fd, AGENT_PAGE_REPORTING_ORDER, 1) != 1)
		agent_log(a, "write %s: %s", PAGE_REPORTING_ORDER_PARAM, strerror(errno));
	close(fd);
	p = mmap(NULL, AGENT_REPORTING_PRIME_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return;
	memset(p, 1, AGENT_REPORTING_PRIME_BYTES);
	munmap(p, AGENT_REPORTING_PRIME_BYTES);
}
