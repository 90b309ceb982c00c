/* modload.c - load the kernel modules a list file names.
 *
 * The guest images carry no modprobe logic of their own: guest/mkimage.sh
 * resolves the dependencies on the host and writes list files of absolute
 * module paths in load order (/lib/modules/load-order for boot,
 * /lib/modules/fs/TYPE per file system). vmagent's PID 1, its mounts and
 * the Service VM's program load them with finit_module(2) through this one
 * reader.
 */
#include "config.h"
#include "guest/modload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int modload_list(const char *list, modload_report_fn report, void *opaque)
{
	FILE *f = fopen(list, "re");
	char line[512];

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		int fd;

		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] != '/')
			continue;
		fd = open(line, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			report(opaque, line, errno);
			continue;
		}
		if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
			report(opaque, line, errno);
		close(fd);
	}
	fclose(f);
	return 0;
}
