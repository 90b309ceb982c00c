/* disk_initpart.c - InitializeWritablePartition through libvirtmgr-client:
 * `disk_initpart SOCKET FILE SIZE FS` opens FILE (created if missing),
 * passes the fd to the daemon and reports the daemon's answer. The daemon
 * never sees FILE's path. Exit 0 on success, 1 with the error on stderr.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "client/virtmgr-client.h"

int main(int argc, char **argv)
{
	struct vmc_error err = { 0 };
	struct vmc_client *cl;
	int fd, r;

	if (argc != 5) {
		fprintf(stderr, "usage: disk_initpart SOCKET FILE SIZE FS\n");
		return 2;
	}
	fd = open(argv[2], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(argv[2]);
		return 2;
	}
	cl = vmc_connect(argv[1], &err);
	if (!cl) {
		fprintf(stderr, "connect: %s\n", err.message);
		return 2;
	}
	r = vmc_disk_init_partition(cl, fd, strtoull(argv[3], NULL, 10), argv[4], &err);
	vmc_close(cl);
	close(fd);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", vmc_status_name(err.code), err.message);
		return 1;
	}
	return 0;
}
