/* test_diskstore.c - the image store's bookkeeping that the VM core relies
 * on, in a real temp directory: image names, diskstore_image_path() for
 * each format, and diskstore_set_in_use()/diskstore_clear_in_use() (one VM
 * per image, the same VM twice is fine, release by the wrong VM ignored).
 * The calls themselves are tested against a real daemon in
 * tests/integration/disk_store.sh.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/diskstore.h"

static char tmp[] = "/tmp/test_diskstore.XXXXXX";
static struct diskstore *store;

static void touch(const char *name)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/images/%u/%s", tmp, (unsigned)getuid(), name);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s", path);
	close(fd);
}

static void setup(void)
{
	char dir[512];

	cr_assert_not_null(mkdtemp(tmp));
	snprintf(dir, sizeof(dir), "%s/images", tmp);
	cr_assert_eq(mkdir(dir, 0755), 0);
	snprintf(dir, sizeof(dir), "%s/images/%u", tmp, (unsigned)getuid());
	cr_assert_eq(mkdir(dir, 0711), 0);
	store = diskstore_new(EV_DEFAULT, tmp);
	touch("data.img");
	touch("scratch.qcow2");
}

static void teardown(void)
{
	char cmd[600];

	diskstore_free(store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(diskstore, .init = setup, .fini = teardown);

Test(diskstore, names)
{
	cr_assert(diskstore_name_valid("a"));
	cr_assert(diskstore_name_valid("data-1.v2_x"));
	cr_assert(diskstore_name_valid("0123456789012345678901234567890123456789012345678901234567890123"));
	cr_assert_not(diskstore_name_valid("01234567890123456789012345678901234567890123456789012345678901234"));
	cr_assert_not(diskstore_name_valid(""));
	cr_assert_not(diskstore_name_valid(NULL));
	cr_assert_not(diskstore_name_valid(".hidden"));
	cr_assert_not(diskstore_name_valid("a/b"));
	cr_assert_not(diskstore_name_valid("a:b"));
	cr_assert_not(diskstore_name_valid("sp ace"));
}

Test(diskstore, image_path_by_format)
{
	struct vm_error err = { 0 };
	char *p;
	int f = -1;

	p = diskstore_image_path(store, getuid(), "data", &f, &err);
	cr_assert_not_null(p, "%s", err.message);
	cr_assert(strstr(p, "/data.img"));
	cr_assert_eq(f, VIRTMGR__V1__DISK_FORMAT__DISK_FORMAT_RAW);
	free(p);
	p = diskstore_image_path(store, getuid(), "scratch", &f, &err);
	cr_assert_not_null(p, "%s", err.message);
	cr_assert_eq(f, VIRTMGR__V1__DISK_FORMAT__DISK_FORMAT_QCOW2);
	free(p);
	cr_assert_null(diskstore_image_path(store, getuid(), "nope", &f, &err));
	cr_assert_eq(err.code, VM_NOT_FOUND);
	cr_assert_str_eq(err.message, "no disk image \"nope\"");
	cr_assert_null(diskstore_image_path(store, getuid() + 1, "data", &f, &err), "another owner's image");
	cr_assert_null(diskstore_image_path(store, getuid(), "../x", &f, &err));
	cr_assert_eq(err.code, VM_INVALID_ARGUMENT);
}

Test(diskstore, one_vm_per_image)
{
	struct vm_error err = { 0 };

	cr_assert_eq(diskstore_set_in_use(store, getuid(), "data", "vm-a", &err), 0, "%s", err.message);
	cr_assert_eq(diskstore_set_in_use(store, getuid(), "data", "vm-a", &err), 0, "the same VM again");
	cr_assert_eq(diskstore_set_in_use(store, getuid(), "data", "vm-b", &err), -1);
	cr_assert_eq(err.code, VM_FAILED_PRECONDITION);
	cr_assert(strstr(err.message, "disk image data is used by VM vm-a"), "%s", err.message);
	/* another image of the same owner is free */
	cr_assert_eq(diskstore_set_in_use(store, getuid(), "scratch", "vm-b", &err), 0, "%s", err.message);
	/* a release by a VM that does not hold it changes nothing */
	diskstore_clear_in_use(store, getuid(), "data", "vm-b");
	cr_assert_eq(diskstore_set_in_use(store, getuid(), "data", "vm-b", &err), -1);
	diskstore_clear_in_use(store, getuid(), "data", "vm-a");
	cr_assert_eq(diskstore_set_in_use(store, getuid(), "data", "vm-b", &err), 0, "%s", err.message);
	cr_assert_eq(diskstore_set_in_use(store, getuid(), "nope", "vm-b", &err), -1);
	cr_assert_eq(err.code, VM_NOT_FOUND);
}
