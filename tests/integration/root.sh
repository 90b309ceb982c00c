#!/bin/bash
# root.sh - VmConfig.root with real guests (TCG): a root image built here
# from the host's own files (dash and coreutils programs, the libraries ldd
# names and the dynamic loader, with mke2fs -d) runs those programs as the
# payload's / ; the default read-only root keeps the image unchanged (writes
# go to the tmpfs overlay, the disk is read-only), /tmp is writable; vmctl
# exec sessions see the same root (and its /etc/passwd); a writable root
# keeps what the payload wrote, clean; and the errors: a bad file system
# type, a root that cannot be mounted (DEAD/INVALID_PAYLOAD_CONFIG naming
# it), an unknown image; nothing left behind. Waits use hang guards only.
source "$(dirname "$0")/lib.sh"
LIMIT=${GUEST_BOOT_LIMIT:-600}
tmp=$T
command -v mke2fs >/dev/null || { echo "SKIP: no mke2fs (e2fsprogs)"; exit 77; }

# --- a root tree from the host's files: programs, their libraries, the loader
source "$(dirname "$0")/rootfs-lib.sh"
root=$tmp/tree
rootfs_tree "$root" cat touch sleep ls readlink id || fail "rootfs_tree"
interp=$(ldd /bin/dash | grep -oE '/[^ ]*ld-linux[^ ]*' | head -1)
[[ -n $interp && -e $root$interp ]] || fail "the dynamic loader of /bin/dash was not copied: $(ldd /bin/dash)"
mke2fs -q -t ext4 -d "$root" "$tmp/root.img" 64M || fail "mke2fs -d"
cp "$tmp/root.img" "$tmp/rw.img"
truncate -s 16M "$tmp/blank.img"
truncate -s 16M "$tmp/data.img"
mke2fs -q -t ext4 "$tmp/data.img"

start_daemon --accel tcg --state-dir "$T/state"
export VIRTMGR_SOCKET=$SOCK
V() { timeout "$LIMIT" "$VMCTL_BIN" "$@"; }

# 1. the image's own programs, with the image's loader and libraries
rc=0
V run --name r1 --root "$tmp/root.img" -- /bin/sh -c '
	cat /etc/marker
	[ -e /bin/busybox ] || echo no-initramfs
	cat /proc/self/maps
	echo in-tmp >/tmp/t && cat /tmp/t
	echo overlay >/written && echo wrote-overlay
	ls /proc/1/ >/dev/null && echo proc-ok
	ls /dev/null /dev/pts >/dev/null && echo dev-ok' >"$tmp/r1.out" 2>"$tmp/r1.err" || rc=$?
[[ $rc == 0 ]] || fail "root payload: exit $rc; $(cat "$tmp/r1.err" "$tmp/r1.out")"
for want in image-root-marker no-initramfs in-tmp proc-ok dev-ok "$interp"; do
	grep -qF -- "$want" "$tmp/r1.out" || fail "root payload: no '$want' in: $(cat "$tmp/r1.out" "$tmp/r1.err")"
done
ok "a dynamically linked program from the root image runs with the image's loader, /proc, /dev and /tmp inside"

# 2. read-only by default: the overlay takes the write, the image does not change
grep -q wrote-overlay "$tmp/r1.out" || fail "the tmpfs overlay did not take a write: $(cat "$tmp/r1.out")"
debugfs -R 'stat /written' "$tmp/root.img" 2>&1 | grep -q 'File not found' ||
	fail "a write to the read-only root reached the image"
cmp -s "$tmp/root.img" "$tmp/rw.img" || fail "the read-only root image changed"
rc=0
V run --root "$tmp/root.img" -- /bin/sh -c 'echo x >/dev/disk/by-id/virtio-root && echo DEVICE-WRITTEN' \
	>"$tmp/r2.out" 2>"$tmp/r2.err" || rc=$?
grep -q DEVICE-WRITTEN "$tmp/r2.out" && fail "the root disk was writable in the guest"
ok "a read-only root leaves the image unchanged (tmpfs overlay, read-only disk); /tmp is writable"

# 3. exec sessions see the root too, and the image's /etc/passwd
V run --detach --name rx --root "$tmp/root.img" -- /bin/sleep 600 >/dev/null
V wait rx --state STARTED --timeout 300 >/dev/null || fail "rx did not start"
out=$(V exec rx -- /bin/sh -c 'cat /etc/marker; [ -e /bin/busybox ] || echo no-initramfs') ||
	fail "exec in the root failed: $out"
[[ $out == image-root-marker$'\n'no-initramfs ]] || fail "exec does not see the root: '$out'"
out=$(V exec --user 1000 rx -- /bin/sh -c 'echo "$HOME"; id -u') || fail "exec as 1000 failed: $out"
[[ $out == /home/u$'\n'1000 ]] || fail "exec --user 1000: '$out', expected the image's home /home/u"
V stop rx >/dev/null || fail "stop rx"
V wait rx >/dev/null || true
ok "vmctl exec sessions run in the root, users from the image's /etc/passwd"

# 4. a writable root keeps what the payload wrote, and is clean when the VM is dead
rc=0
V run --root "$tmp/rw.img,rw" --disk "$tmp/data.img,label=data" --mount data:/data -- \
	/bin/sh -c 'echo persisted >/persist && echo on-data >/data/f' >"$tmp/r4.out" 2>"$tmp/r4.err" || rc=$?
[[ $rc == 0 ]] || fail "writable root: exit $rc; $(cat "$tmp/r4.err")"
debugfs -R 'cat /persist' "$tmp/rw.img" 2>/dev/null | grep -q persisted || fail "the writable root lost the write"
e2fsck -fn "$tmp/rw.img" >"$tmp/fsck" 2>&1 || fail "the writable root is not clean: $(cat "$tmp/fsck")"
debugfs -R 'cat /f' "$tmp/data.img" 2>/dev/null | grep -q on-data || fail "the mount inside the root lost the write"
e2fsck -fn "$tmp/data.img" >"$tmp/fsck" 2>&1 || fail "the data disk is not clean: $(cat "$tmp/fsck")"
ok "a writable root (,rw) keeps the payload's writes; a mount lands inside the root; both clean once dead"

# 5. errors
rc=0
V run --root "$tmp/root.img,fs=xfs" -- /bin/true 2>"$tmp/e1.err" || rc=$?
[[ $rc != 0 ]] && grep -q 'root: file system type "xfs"' "$tmp/e1.err" || fail "bad fstype: exit $rc; $(cat "$tmp/e1.err")"
rc=0
V run --events --root "$tmp/blank.img" -- /bin/true >"$tmp/e2.out" 2>"$tmp/e2.err" || rc=$?
[[ $rc == 126 ]] || fail "unmountable root: exit $rc, expected 126 (INVALID_PAYLOAD_CONFIG); $(cat "$tmp/e2.err")"
grep -q 'died: INVALID_PAYLOAD_CONFIG: .*root disk root: mount /dev/disk/by-id/virtio-root on .* (ext4): Invalid argument' \
	"$tmp/e2.err" || fail "unmountable root: $(cat "$tmp/e2.err")"
rc=0
V run --root nosuchimage -- /bin/true 2>"$tmp/e3.err" || rc=$?
[[ $rc != 0 ]] && grep -q 'no disk image "nosuchimage"' "$tmp/e3.err" || fail "unknown image: $(cat "$tmp/e3.err")"
ok "a bad file system type, an unmountable root and an unknown image give their errors"

# 6. nothing left behind
pgrep -f "qemu-system.*$T/" >/dev/null && fail "QEMU processes are left"
ok "nothing left behind"
