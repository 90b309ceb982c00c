/* test_rootfs.c - VmConfig.root checked against the VM's disks and shares
 * (server/rootfs.c): a disk label or a share tag, types, writable roots on
 * read-only sources, and the strings the guest gets. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/rootfs.h"

static struct qemu_disk disks[2];

static void setup(void)
{
	memset(disks, 0, sizeof(disks));
	snprintf(disks[0].label, sizeof(disks[0].label), "root");
	snprintf(disks[1].label, sizeof(disks[1].label), "ro");
	disks[1].read_only = true;
}

TestSuite(rootfs, .init = setup);

static int check(const char *source, const char *fstype, bool writable, Virtmgr__V1__Share **shares, size_t nshares,
		 struct vm_error *err)
{
	Virtmgr__V1__VmConfig c = VIRTMGR__V1__VM_CONFIG__INIT;
	Virtmgr__V1__RootFilesystem r = VIRTMGR__V1__ROOT_FILESYSTEM__INIT;

	r.source = (char *)source;
	r.fstype = (char *)fstype;
	r.writable = writable;
	c.root = &r;
	c.shares = shares;
	c.n_shares = nshares;
	return rootfs_check(&c, disks, 2, err);
}

Test(rootfs, disks)
{
	struct vm_error err = { 0 };

	cr_assert_eq(check("root", "", false, NULL, 0, &err), 0, "%s", err.message);
	cr_assert_eq(check("root", "erofs", false, NULL, 0, &err), 0, "%s", err.message);
	cr_assert_eq(check("root", "ext4", true, NULL, 0, &err), 0, "%s", err.message);
	cr_assert_lt(check("nosuch", "", false, NULL, 0, &err), 0);
	cr_assert(strstr(err.message, "source \"nosuch\" is not the label of a disk or the tag of a share"), "%s",
		  err.message);
	cr_assert_lt(check("root", "xfs", false, NULL, 0, &err), 0);
	cr_assert(strstr(err.message, "file system type \"xfs\""), "%s", err.message);
	cr_assert_lt(check("ro", "ext4", true, NULL, 0, &err), 0);
	cr_assert(strstr(err.message, "disk ro is read-only"), "%s", err.message);
	cr_assert_lt(check("root", "squashfs", true, NULL, 0, &err), 0);
	cr_assert_lt(check("", "", false, NULL, 0, &err), 0);
	cr_assert_eq(err.code, VM_INVALID_ARGUMENT);
}

Test(rootfs, shares_and_strings)
{
	Virtmgr__V1__Share s0 = VIRTMGR__V1__SHARE__INIT, s1 = VIRTMGR__V1__SHARE__INIT;
	Virtmgr__V1__Share *shares[] = { &s0, &s1 };
	Virtmgr__V1__VmConfig c = VIRTMGR__V1__VM_CONFIG__INIT;
	Virtmgr__V1__RootFilesystem r = VIRTMGR__V1__ROOT_FILESYSTEM__INIT;
	struct vm_error err = { 0 };
	char **v;

	s0.tag = "";
	s1.tag = "tree";
	s1.read_only = true;
	cr_assert_eq(check("share0", "", true, shares, 2, &err), 0, "%s", err.message); /* default tag */
	cr_assert_eq(check("tree", "", false, shares, 2, &err), 0, "%s", err.message);
	cr_assert_lt(check("tree", "", true, shares, 2, &err), 0);
	cr_assert(strstr(err.message, "share tree is read-only"), "%s", err.message);

	c.shares = shares;
	c.n_shares = 2;
	cr_assert_null(rootfs_strings(&c));
	r.source = "tree";
	c.root = &r;
	v = rootfs_strings(&c);
	cr_assert_str_eq(v[0], "tree");
	cr_assert_str_eq(v[1], "virtiofs");
	cr_assert_str_eq(v[2], "ro");
	cr_assert_null(v[3]);
	for (size_t i = 0; i < 3; i++)
		free(v[i]);
	free(v);
	r.source = "root";
	r.writable = true;
	v = rootfs_strings(&c);
	cr_assert_str_eq(v[1], "ext4");
	cr_assert_str_eq(v[2], "rw");
	for (size_t i = 0; i < 3; i++)
		free(v[i]);
	free(v);
}
