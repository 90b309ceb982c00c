#!/usr/bin/env bash
# shares.sh - host folders shared with real guests (virtiofs): a share is
# mounted and writable and what the guest writes is the owner's on the host;
# a read-only share refuses writes; a host directory is the payload's root
# (--root DIR); a folder the caller cannot read (or that
# does not exist) is refused at CreateVm, naming it; a virtiofsd that dies
# stops its VM with a message naming it; and nothing (virtiofsd, its sockets,
# the daemon's fds) outlives a VM that ended or was killed.
#
# The VMs belong to an unprivileged uid (setpriv): virtiofsd runs as a VM's
# owner, and the daemon refuses to serve shares of root's VMs.
source "$(dirname "$0")/lib.sh"
[[ -x ${VIRTMGR_VIRTIOFSD:-/usr/lib/qemu/virtiofsd} ]] || { echo "SKIP: no virtiofsd (qemu-system-common)"; exit 77; }
[[ $(id -u) == 0 ]] || { echo "SKIP: needs root to run VMs as another uid"; exit 77; }
LIMIT=${GUEST_BOOT_LIMIT:-600}
owner=60002
group=nogroup
gid=$(getent group "$group" | cut -d: -f3)
[[ -n $gid ]] || fail "group $group does not exist"

start_daemon --accel tcg --group "$group"
chmod 0666 "$SOCK"
vmctl_others=$(for_other_users client/vmctl)
as() { timeout "$LIMIT" setpriv --reuid "$owner" --regid "$gid" --clear-groups "$vmctl_others" --socket "$SOCK" "$@"; }
virtiofsds() { pgrep -f "source=$T/" || true; }
sleep 1
base_fds=$(fd_count "$DAEMON_PID")

mkdir -p "$T/rw" "$T/ro" "$T/secret"
chown "$owner:$gid" "$T/rw"
echo host-data >"$T/ro/present"
chmod 0700 "$T/secret"

# a writable share: the guest reads and writes, the host sees the owner's file
rc=0
as run --share "$T/rw:/mnt/data" -- /bin/sh -c \
	'echo from-guest >/mnt/data/made-in-guest && cat /mnt/data/made-in-guest && grep -q " /mnt/data virtiofs " /proc/mounts' \
	>"$T/rw.out" 2>"$T/rw.err" || rc=$?
[[ $rc == 0 ]] || fail "rw share: exit $rc: $(cat "$T/rw.err") $(tail -20 "$T/rw.out")"
[[ $(cat "$T/rw/made-in-guest" 2>/dev/null) == from-guest ]] || fail "rw share: the host does not see the guest's file"
[[ $(stat -c %u "$T/rw/made-in-guest") == "$owner" ]] ||
	fail "rw share: the file is owned by uid $(stat -c %u "$T/rw/made-in-guest"), not the VM's owner $owner"
ok "a share is mounted, writable, and the guest's files are the owner's on the host"

# read-only: the write fails in the guest and the folder is unchanged
snap() { find "$1" -printf '%p %s %T@ %u\n' | sort; }
before=$(snap "$T/ro")
rc=0
as run --share "$T/ro:/mnt/ro,ro,tag=rotag" -- /bin/sh -c \
	'cat /mnt/ro/present; if echo x >/mnt/ro/new; then echo WRITE-SUCCEEDED; exit 3; fi; echo write-refused
	 mount -o remount,rw /mnt/ro && echo remounted-rw
	 if echo x >/mnt/ro/new; then echo HOST-WRITE-SUCCEEDED; exit 4; fi; echo host-refused' \
	>"$T/ro.out" 2>"$T/ro.err" || rc=$?
[[ $rc == 0 ]] || fail "ro share: exit $rc: $(cat "$T/ro.err") $(tail -20 "$T/ro.out")"
grep -q host-data "$T/ro.out" || fail "ro share: the guest cannot read the folder"
grep -q write-refused "$T/ro.out" || fail "ro share: no refusal seen"
grep -q remounted-rw "$T/ro.out" && grep -q host-refused "$T/ro.out" ||
	fail "ro share: no rw remount in the guest, or virtiofsd accepted a write: $(tail -5 "$T/ro.out")"
[[ ! -e $T/ro/new && $(snap "$T/ro") == "$before" ]] || fail "ro share: the host folder changed"
ok "a read-only share refuses the guest's writes, also once remounted rw in the guest (virtiofsd's side), and the host folder is unchanged"

# a host directory as the payload's root (vmctl run --root DIR): a share
# tagged root that vmagent mounts as / under a tmpfs overlay
source "$(dirname "$0")/rootfs-lib.sh"
rootfs_tree "$T/rootdir" cat || fail "rootfs_tree"
# the owner's files: virtiofsd's user namespace maps only the owner, and the
# guest cannot execute files of unmapped host users (docs/storage.md)
chown -R "$owner:$gid" "$T/rootdir"
rc=0
as run --root "$T/rootdir" -- /bin/sh -c \
	'cat /etc/marker; [ -e /bin/busybox ] || echo no-initramfs; echo x >/made && echo overlay-write' \
	>"$T/root.out" 2>"$T/root.err" || rc=$?
[[ $rc == 0 ]] || fail "directory root: exit $rc: $(cat "$T/root.err") $(tail -20 "$T/root.out")"
grep -q image-root-marker "$T/root.out" && grep -q no-initramfs "$T/root.out" && grep -q overlay-write "$T/root.out" ||
	fail "directory root: $(tail -20 "$T/root.out")"
[[ ! -e $T/rootdir/made ]] || fail "directory root: a write reached the read-only host directory"
ok "a host directory is the payload's root (read-only share under a tmpfs overlay)"

# the caller's permissions decide, at CreateVm
set +e
msg=$(as run --detach --share "$T/secret:/mnt/s" -- /bin/true 2>&1)
rc=$?
set -e
[[ $rc != 0 ]] && grep -q PERMISSION_DENIED <<<"$msg" && grep -qF "$T/secret" <<<"$msg" ||
	fail "unreadable folder: rc $rc: $msg"
set +e
msg=$(as run --detach --share "$T/nope:/mnt/s" -- /bin/true 2>&1)
rc=$?
set -e
[[ $rc != 0 ]] && grep -q NOT_FOUND <<<"$msg" && grep -qF "$T/nope" <<<"$msg" || fail "missing folder: rc $rc: $msg"
ok "a folder the caller cannot read, or that does not exist, is refused naming it"

# virtiofsd dies -> the VM is stopped, saying so
id=$(as run --detach --name vfs-kill --share "$T/rw:/mnt/data" -- /bin/sh -c 'echo up; sleep 600')
as wait --state STARTED "$id" >/dev/null || fail "vfs-kill did not start"
pid=$(sed -n 's/.*virtiofsd pid \([0-9]*\) for share share0.*/\1/p' "$T/daemon.log" | tail -1)
[[ -n $pid ]] && kill -0 "$pid" || fail "no virtiofsd pid in the daemon log"
kill -KILL "$pid"
wait_for 60 state_is "$id" DEAD || fail "the VM outlived its virtiofsd"
[[ $(vm_field "$id" death_reason) == INFRASTRUCTURE_ERROR ]] || fail "death reason $(vm_field "$id" death_reason)"
grep -q "virtiofsd (pid $pid) for share share0" <<<"$(vm_field "$id" message)" ||
	fail "message does not name virtiofsd: $(vm_field "$id" message)"
ok "a virtiofsd that dies stops its VM: $(vm_field "$id" message)"

# a killed VM leaves nothing behind
id=$(as run --detach --name vfs-gone --share "$T/rw:/mnt/data" --share "$T/ro:/mnt/ro,ro" -- /bin/sleep 600)
as wait --state STARTED "$id" >/dev/null || fail "vfs-gone did not start"
[[ -n $(virtiofsds) ]] || fail "no virtiofsd runs for a VM with shares"
as kill "$id" >/dev/null
wait_for 60 state_is "$id" DEAD || fail "vfs-gone not DEAD"
no_virtiofsd() { [[ -z $(virtiofsds) ]]; }
fds_back() { (($(fd_count "$DAEMON_PID") <= base_fds)); }
wait_for 30 no_virtiofsd || fail "virtiofsd left behind: $(virtiofsds)"
left=$(find "$T/run" -name 'virtiofs-*.sock' 2>/dev/null)
[[ -z $left ]] || fail "sockets left behind: $left"
wait_for 10 fds_back ||
	fail "the daemon holds $(fd_count "$DAEMON_PID") fds, $base_fds before"
ok "no virtiofsd, socket or fd is left after the VMs died or were killed"

echo "1..$NTESTS"
