#!/bin/bash
# disks.sh - data disks and vmagent's mounts with real guests (TCG): a VM
# writes to an ext4 disk it mounts by label and a second VM reads it back
# from the disk attached read-only; a qcow2 image; labels independent of
# the order of the disks; and the errors: an unknown label, a bad file
# system type, a mount that fails in the guest (DEAD, a message naming the
# mount), a qcow2 with a backing file, the same writable disk for two live
# VMs (FAILED_PRECONDITION naming the first); nothing left behind.
#
# Images are made here without the image store: truncate + mkfs.ext4, and
# qemu-img convert for the qcow2. Waits use hang guards only.
source "$(dirname "$0")/lib.sh"
LIMIT=${GUEST_BOOT_LIMIT:-600}
tmp=$T
command -v mkfs.ext4 >/dev/null || { echo "SKIP: no mkfs.ext4 (e2fsprogs)"; exit 77; }
command -v qemu-img >/dev/null || { echo "SKIP: no qemu-img (qemu-utils)"; exit 77; }

start_daemon --accel tcg --state-dir "$T/state"
export VIRTMGR_SOCKET=$SOCK
V() { timeout "$LIMIT" "$VMCTL_BIN" "$@"; }

truncate -s 64M "$tmp/d.img"
mkfs.ext4 -q -F "$tmp/d.img"
truncate -s 16M "$tmp/e.img"
mkfs.ext4 -q -F -L other "$tmp/e.img"
truncate -s 16M "$tmp/blank.img"

# 1. a VM writes a file on the disk labelled "data", then powers off
rc=0
V run --name w1 --disk "$tmp/d.img,label=data" --mount data:/mnt/data -- \
	/bin/sh -c 'echo written-by-w1 >/mnt/data/hello && ls /dev/disk/by-id/' >"$tmp/w1.out" 2>"$tmp/w1.err" || rc=$?
[[ $rc == 0 ]] || fail "writer: exit $rc; $(cat "$tmp/w1.err") $(cat "$tmp/w1.out")"
grep -q virtio-data "$tmp/w1.out" || fail "writer: no /dev/disk/by-id/virtio-data: $(cat "$tmp/w1.out")"
ok "a VM mounts its disk by label and writes to it"

# 2. a second VM, the disk read-only, reads it back
rc=0
V run --name r1 --disk "$tmp/d.img,ro,label=data" --mount data:/mnt/data,ro -- \
	/bin/sh -c 'cat /mnt/data/hello; touch /mnt/data/nope && echo WROTE' >"$tmp/r1.out" 2>"$tmp/r1.err" || rc=$?
grep -q written-by-w1 "$tmp/r1.out" || fail "reader: the file is not there: $(cat "$tmp/r1.out" "$tmp/r1.err")"
grep -q WROTE "$tmp/r1.out" && fail "reader: wrote to a read-only mount"
ok "a second VM reads it back from the read-only disk"

# 3. the host sees it too: the file system was unmounted cleanly
e2fsck -fn "$tmp/d.img" >"$tmp/fsck" 2>&1 || fail "the image is not clean after the VM died: $(cat "$tmp/fsck")"
debugfs -R 'cat /hello' "$tmp/d.img" 2>/dev/null | grep -q written-by-w1 || fail "the host does not see the file"
ok "the image is clean and holds the file when the VM is dead"

# 4. labels do not depend on the order of the disks
for order in "data other" "other data"; do
	args=()
	for l in $order; do
		case $l in
		data) args+=(--disk "$tmp/d.img,ro,label=data") ;;
		other) args+=(--disk "$tmp/e.img,ro,label=other") ;;
		esac
	done
	rc=0
	V run "${args[@]}" --mount data:/a,ro --mount other:/b,ro -- \
		/bin/sh -c 'cat /a/hello; ls /b' >"$tmp/o.out" 2>"$tmp/o.err" || rc=$?
	[[ $rc == 0 ]] && grep -q written-by-w1 "$tmp/o.out" && grep -q lost+found "$tmp/o.out" ||
		fail "order '$order': exit $rc; $(cat "$tmp/o.out" "$tmp/o.err")"
done
ok "labels find the same disks in either order"

# 5. a qcow2 image
qemu-img convert -O qcow2 "$tmp/d.img" "$tmp/d.qcow2"
rc=0
V run --disk "$tmp/d.qcow2,format=qcow2,label=q" --mount q:/q -- \
	/bin/sh -c 'cat /q/hello && echo via-qcow2 >/q/second' >"$tmp/q.out" 2>"$tmp/q.err" || rc=$?
[[ $rc == 0 ]] && grep -q written-by-w1 "$tmp/q.out" || fail "qcow2: exit $rc; $(cat "$tmp/q.out" "$tmp/q.err")"
qemu-img convert -O raw "$tmp/d.qcow2" "$tmp/back.img"
debugfs -R 'cat /second' "$tmp/back.img" 2>/dev/null | grep -q via-qcow2 || fail "qcow2: the write is not in the image"
ok "a qcow2 image is read and written"

# 6. a qcow2 naming a backing file is refused
qemu-img create -q -f qcow2 -b "$tmp/d.qcow2" -F qcow2 "$tmp/overlay.qcow2"
rc=0
V run --disk "$tmp/overlay.qcow2,format=qcow2" -- /bin/true >"$tmp/b.out" 2>"$tmp/b.err" || rc=$?
[[ $rc != 0 ]] && grep -q "backing file" "$tmp/b.err" || fail "backing file: exit $rc; $(cat "$tmp/b.err")"
ok "a qcow2 with a backing file is refused"

# 7. errors before the VM exists: unknown label, bad file system type
rc=0
V run --disk "$tmp/d.img,label=data" --mount nosuch:/x -- /bin/true 2>"$tmp/u.err" || rc=$?
[[ $rc != 0 ]] && grep -q 'source "nosuch" is not the label of a disk' "$tmp/u.err" ||
	fail "unknown label: exit $rc; $(cat "$tmp/u.err")"
rc=0
V run --disk "$tmp/d.img,label=data" --mount data:/x,fs=zfs -- /bin/true 2>"$tmp/f.err" || rc=$?
[[ $rc != 0 ]] && grep -q 'file system type "zfs"' "$tmp/f.err" || fail "bad fstype: exit $rc; $(cat "$tmp/f.err")"
rc=0
V run --disk "$tmp/d.img,label=bad,label" -- /bin/true 2>"$tmp/l.err" || rc=$?
[[ $rc != 0 ]] || fail "a bad label was accepted"
ok "unknown label, bad file system type and bad label are refused"

# 8. a mount that fails in the guest: DEAD, INVALID_PAYLOAD_CONFIG, the mount named
rc=0
V run --events --name badfs --disk "$tmp/blank.img,label=blank" --mount blank:/mnt/blank -- /bin/true \
	>"$tmp/m.out" 2>"$tmp/m.err" || rc=$?
[[ $rc == 126 ]] || fail "failed mount: exit $rc, expected 126 (INVALID_PAYLOAD_CONFIG); $(cat "$tmp/m.err")"
grep -q 'died: INVALID_PAYLOAD_CONFIG: .*mount blank on /mnt/blank (ext4): Invalid argument' "$tmp/m.err" ||
	fail "failed mount: $(cat "$tmp/m.err")"
ok "a mount that fails ends the VM DEAD with a message naming it"

# 9. one writable disk, two live VMs
id=$(V run --detach --name holder --disk "$tmp/e.img,label=e" --mount e:/e -- /bin/sh -c 'sleep 600')
V wait --state STARTED holder >/dev/null || fail "holder did not start"
rc=0
V run --name second --disk "$tmp/e.img" -- /bin/true 2>"$tmp/busy.err" || rc=$?
[[ $rc != 0 ]] && grep -q "attached writable to VM $id" "$tmp/busy.err" ||
	fail "in use: exit $rc; $(cat "$tmp/busy.err")"
grep -qi "precondition" "$tmp/busy.err" || fail "in use: not FAILED_PRECONDITION: $(cat "$tmp/busy.err")"
rc=0
V run --name third --disk "$tmp/e.img,ro" -- /bin/true 2>"$tmp/busy2.err" || rc=$?
[[ $rc != 0 ]] || fail "in use: a read-only attachment of a disk a VM writes was accepted"
V stop holder >/dev/null || fail "stop holder"
V wait holder >/dev/null || true
e2fsck -fn "$tmp/e.img" >"$tmp/fsck2" 2>&1 || fail "stopped VM left its disk unclean: $(cat "$tmp/fsck2")"
rc=0
V run --name fourth --disk "$tmp/e.img" -- /bin/true 2>"$tmp/free.err" || rc=$?
[[ $rc == 0 ]] || fail "the disk is not free once its VM is dead: $(cat "$tmp/free.err")"
ok "a writable disk is attached to one live VM at a time; a stopped VM unmounts it"

# 10. a store image, by name: label and format from the store, one VM at a time
V disk create sdata --size 32M --fs ext4 >/dev/null || fail "disk create sdata"
V disk create sq --size 32M --format qcow2 >/dev/null || fail "disk create sq"
rc=0
V run --disk sdata --disk sq --mount sdata:/s -- /bin/sh -c 'echo from-store >/s/f; cat /sys/block/vdb/serial' \
	>"$tmp/s.out" 2>"$tmp/s.err" || rc=$?
[[ $rc == 0 ]] && grep -q '^sq' "$tmp/s.out" || fail "store image: exit $rc; $(cat "$tmp/s.out" "$tmp/s.err")"
id=$(V run --detach --name sholder --disk sdata,ro --mount sdata:/s,ro -- /bin/sh -c 'cat /s/f; sleep 600')
V wait --state STARTED sholder >/dev/null || fail "sholder did not start"
rc=0
V run --disk sdata -- /bin/true 2>"$tmp/s2.err" || rc=$?
[[ $rc != 0 ]] && grep -q "$id" "$tmp/s2.err" || fail "store image in use: exit $rc; $(cat "$tmp/s2.err")"
V disk list | grep -q "sdata.*$id" || fail "disk list does not show the VM using sdata: $(V disk list)"
V stop sholder >/dev/null || fail "stop sholder"
V wait sholder >/dev/null || true
V disk list | grep -q "sdata.*$id" && fail "sdata still in use after its VM died"
rc=0
V run --disk nosuchimage -- /bin/true 2>"$tmp/s3.err" || rc=$?
[[ $rc != 0 ]] && grep -q 'no disk image "nosuchimage"' "$tmp/s3.err" || fail "unknown image: $(cat "$tmp/s3.err")"
ok "store images by name: default label, format, one VM at a time, unknown image"

# 11. nothing left behind
pgrep -f "qemu-system.*$T/" >/dev/null && fail "QEMU processes are left"
ok "nothing left behind"
