/* grow.c - Agent.StorageGrowFilesystem: the guest's half of an online resize.
 *
 * Design. The host has grown a disk (QMP block_resize) and asks the agent to
 * grow what is mounted from it. The virtio-blk driver learns of the new
 * capacity from a configuration interrupt, a moment after QMP answered, so
 * the agent polls the device's size (BLKGETSIZE64) on a timer until it
 * reaches the size the host asked for (or a deadline passes), then finds
 * the device's mount in /proc/self/mountinfo by major:minor and, for ext2/3/4
 * mounted writable, grows it in place with the kernel's EXT4_IOC_RESIZE_FS
 * (the ext4 driver does online resize itself: no e2fsprogs in the guest).
 * A disk mounted nowhere, or with another file system, only grows as a
 * device; the answer says which. The request comes from the host and is
 * still checked: the label must be a valid serial, the size bounded.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "guest/vmagent/agent.h"
#include "guest/vmagent/grow.h"
#include "lib/log.h"

#ifndef EXT4_IOC_RESIZE_FS
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, uint64_t)
#endif

#define GROW_SERVICE "virtmgr.v1.Agent"
#define GROW_POLL_S 0.05
#define GROW_WAIT_S 10.0
#define GROW_MAX_SIZE (16ull << 40) /* the image store's limit */

struct grow_wait {
	struct agent *a;
	struct ttrpc_call *call; /* NULL once the host went away */
	char dev[PATH_MAX];
	uint64_t size;
	double waited;
	ev_timer timer;
};

static bool grow_label_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n >= 1 && n <= 20 &&
	       s[strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")] == '\0';
}

static int grow_dev_size(const char *dev, uint64_t *size, dev_t *rdev)
{
	struct stat st;
	int fd = open(dev, O_RDONLY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode))
		r = -ENOTBLK;
	else if (ioctl(fd, BLKGETSIZE64, size) < 0)
		r = -errno;
	*rdev = st.st_rdev;
	close(fd);
	return r;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void grow_unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
		    s[3] <= '7') {
			*o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* The first writable mount of @rdev: 1 with @mnt and @fstype, 0 if none. */
static int grow_find_mount(dev_t rdev, char *mnt, size_t mlen, char *fstype, size_t flen)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		char point[4096], opts[1024], fs[64];
		const char *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*u %*u %u:%u %*s %4095s %1023s", &maj, &min, point, opts) != 4 ||
		    sscanf(sep + 3, "%63s", fs) != 1)
			continue;
		if (makedev(maj, min) != rdev || strncmp(opts, "rw", 2) || (opts[2] && opts[2] != ','))
			continue;
		grow_unescape(point);
		snprintf(mnt, mlen, "%s", point);
		snprintf(fstype, flen, "%s", fs);
		found = 1;
	}
	fclose(f);
	return found;
}

static void grow_finish(struct grow_wait *w, uint64_t devsize, dev_t rdev)
{
	Virtmgr__V1__StorageGrowResponse resp = VIRTMGR__V1__STORAGE_GROW_RESPONSE__INIT;
	char mnt[PATH_MAX] = "", fstype[64] = "";
	struct statfs sf;

	resp.device_size = devsize;
	resp.mount_point = mnt;
	resp.fstype = fstype;
	if (grow_find_mount(rdev, mnt, sizeof(mnt), fstype, sizeof(fstype)) &&
	    (!strcmp(fstype, "ext4") || !strcmp(fstype, "ext3") || !strcmp(fstype, "ext2"))) {
		int fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		uint64_t blocks;

		if (fd < 0 || fstatfs(fd, &sf) < 0 || sf.f_bsize <= 0) {
			ttrpc_call_fail(w->call, VM_INTERNAL, "grow %s: cannot open its mount %s: %s", w->dev, mnt,
					strerror(errno));
			if (fd >= 0)
				close(fd);
			return;
		}
		blocks = devsize / (uint64_t)sf.f_bsize;
		if (ioctl(fd, EXT4_IOC_RESIZE_FS, &blocks) < 0) {
			int e = errno;

			close(fd);
			ttrpc_call_fail(w->call, vm_status_from_errno(e),
					"grow the %s file system on %s (%s) to %" PRIu64 " blocks: %s", fstype, mnt,
					w->dev, blocks, strerror(e));
			return;
		}
		if (fstatfs(fd, &sf) == 0)
			resp.fs_size = (uint64_t)sf.f_blocks * (uint64_t)sf.f_bsize;
		close(fd);
		agent_log(w->a, "%s grown online to %" PRIu64 " bytes, %s on %s to %" PRIu64 " bytes", w->dev, devsize,
			  fstype, mnt, resp.fs_size);
	}
	ttrpc_call_reply(w->call, &resp.base, NULL, 0);
}

static void grow_cancel_cb(struct ttrpc_call *call, void *opaque)
{
	struct grow_wait *w = opaque;

	(void)call;
	w->call = NULL;
}

static void grow_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct grow_wait *w = t->data;
	uint64_t size = 0;
	dev_t rdev = 0;
	int r;

	(void)revents;
	r = w->call ? grow_dev_size(w->dev, &size, &rdev) : -ECANCELED;
	if (r == 0 && size < w->size && w->waited < GROW_WAIT_S) {
		w->waited += GROW_POLL_S;
		return; /* the capacity change has not arrived yet */
	}
	ev_timer_stop(loop, t);
	if (!w->call) {
		free(w);
		return;
	}
	ttrpc_call_set_cancel(w->call, NULL, NULL);
	if (r < 0)
		ttrpc_call_fail(w->call, vm_status_from_errno(-r), "grow %s: %s", w->dev, strerror(-r));
	else if (size < w->size)
		ttrpc_call_fail(w->call, VM_DEADLINE_EXCEEDED,
				"grow %s: the device is %" PRIu64 " bytes after %.0f s, not the %" PRIu64 " asked for",
				w->dev, size, GROW_WAIT_S, w->size);
	else
		grow_finish(w, size, rdev);
	free(w);
}

static void grow_handler(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__StorageGrowRequest *req = (const Virtmgr__V1__StorageGrowRequest *)msg;
	struct agent *a = opaque;
	struct grow_wait *w;
	struct stat st;

	if (!grow_label_valid(req->label)) {
		ttrpc_call_fail(call, VM_INVALID_ARGUMENT, "label: not [A-Za-z0-9._-]{1,20}");
		return;
	}
	if (req->size > GROW_MAX_SIZE) {
		ttrpc_call_fail(call, VM_INVALID_ARGUMENT, "size: %" PRIu64 " bytes exceed 16 TiB", req->size);
		return;
	}
	w = xzalloc(sizeof(*w));
	w->a = a;
	w->call = call;
	w->size = req->size;
	snprintf(w->dev, sizeof(w->dev), "/dev/disk/by-id/virtio-%s", req->label);
	if (stat(w->dev, &st) < 0)
		agent_disks_link(a);
	if (stat(w->dev, &st) < 0) {
		ttrpc_call_fail(call, VM_NOT_FOUND, "no disk with the label %s (%s)", req->label, w->dev);
		free(w);
		return;
	}
	ttrpc_call_set_cancel(call, grow_cancel_cb, w);
	ev_timer_init(&w->timer, grow_timer_cb, 0., GROW_POLL_S);
	w->timer.data = w;
	ev_timer_start(a->loop, &w->timer);
}

void agent_grow_register(struct agent *a, struct ttrpc_server *srv)
{
	ttrpc_server_add_method(srv, GROW_SERVICE, "StorageGrowFilesystem",
				&virtmgr__v1__storage_grow_request__descriptor, grow_handler, a);
}
