#!/bin/bash
# disk_grow.sh - online resize with a real guest (TCG): `vmctl disk resize`
# of a store image that a running VM has mounted grows the device (QMP
# block_resize) and the ext4 inside it (vmagent, EXT4_IOC_RESIZE_FS): the
# guest sees the larger file system and can fill it, and the image is clean
# once the VM is dead. A read-only attachment and shrinking are refused.
# Waits use hang guards only.
source "$(dirname "$0")/lib.sh"
LIMIT=${GUEST_BOOT_LIMIT:-600}
command -v e2fsck >/dev/null || PATH=$PATH:/sbin:/usr/sbin
start_daemon --accel tcg --state-dir "$T/state"
export VIRTMGR_SOCKET=$SOCK
V() { timeout "$LIMIT" "$VMCTL_BIN" "$@"; }
kib() { V exec grower -- /bin/sh -c 'df -kP /g | tail -1' | awk '{print $2}'; }

V disk create grow --size 32M --fs ext4 >/dev/null || fail "disk create grow"
id=$(V run --detach --name grower --disk grow --mount grow:/g -- /bin/sleep 600)
V wait grower --state STARTED --timeout 300 >/dev/null || fail "grower did not start"
before=$(kib)
((before > 20000 && before < 33000)) || fail "the 32 MiB file system has $before KiB"
rc=0
V exec grower -- /bin/sh -c 'dd if=/dev/zero of=/g/big bs=1M count=48 2>/dev/null' || rc=$?
[[ $rc != 0 ]] || fail "48 MiB fit on a 32 MiB file system"
V exec grower -- rm -f /g/big

out=$(V disk resize grow 96M 2>&1) || fail "online resize: $out"
after=$(kib)
((after > 80000)) || fail "the guest sees $after KiB after growing to 96 MiB (before: $before)"
V exec grower -- /bin/sh -c 'dd if=/dev/zero of=/g/big bs=1M count=48 2>/dev/null && sync' ||
	fail "48 MiB do not fit on the grown file system"
V disk list | grep -q "grow .* 100663296 .*$id" || fail "disk list: $(V disk list)"
ok "a mounted image grows online: the guest's ext4 went from $before to $after KiB"

rc=0
V disk resize grow 64M 2>"$T/shrink.err" || rc=$?
[[ $rc != 0 ]] && grep -q 'shrinking it to 67108864 is not supported' "$T/shrink.err" ||
	fail "shrink while in use: exit $rc; $(cat "$T/shrink.err")"
V stop grower >/dev/null || fail "stop grower"
V wait grower >/dev/null || true
e2fsck -fn "$T/state/images/0/grow.img" >"$T/fsck" 2>&1 || fail "the grown image is not clean: $(cat "$T/fsck")"
ok "shrinking is refused; the grown image is clean once the VM is dead"

V disk create rog --size 32M --fs ext4 >/dev/null || fail "disk create rog"
V run --detach --name roer --disk rog,ro --mount rog:/g,ro -- /bin/sleep 600 >/dev/null
V wait roer --state STARTED --timeout 300 >/dev/null || fail "roer did not start"
rc=0
V disk resize rog 64M 2>"$T/ro.err" || rc=$?
[[ $rc != 0 ]] && grep -q 'attached read-only to VM' "$T/ro.err" || fail "read-only resize: exit $rc; $(cat "$T/ro.err")"
V stop roer >/dev/null || true
V wait roer >/dev/null || true
out=$(V disk resize rog 64M 2>&1) || fail "offline resize after the VM died: $out"
ok "an image attached read-only is not resized while the VM runs; offline it is"
pgrep -f "qemu-system.*$T/" >/dev/null && fail "QEMU processes are left"
echo "1..$NTESTS"
