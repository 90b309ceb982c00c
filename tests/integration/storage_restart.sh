#!/bin/bash
# storage_restart.sh - storage across a daemon restart (virtmgrd SIGKILLed
# and started again), with real guests: an adopted VM keeps its disk
# reservations (the one-writer rule for a store image and for a host file;
# `disk list` names it; root's UID:NAME of another owner's image) and can
# still be resized online; its virtiofsd is watched again (killed -> the VM
# stops naming it); a virtiofsd that died while the daemon was down stops
# the VM; and a VM whose QEMU died meanwhile leaves no virtiofsd behind.
# Waits use hang guards only.
source "$(dirname "$0")/lib.sh"
[[ -x ${VIRTMGR_VIRTIOFSD:-/usr/lib/qemu/virtiofsd} ]] || { echo "SKIP: no virtiofsd (qemu-system-common)"; exit 77; }
[[ $(id -u) == 0 ]] || { echo "SKIP: needs root to run VMs as another uid"; exit 77; }
LIMIT=${GUEST_BOOT_LIMIT:-600}
owner=60002
gid=$(getent group nogroup | cut -d: -f3)
[[ -n $gid ]] || fail "group nogroup does not exist"
daemon() { start_daemon --accel tcg --group nogroup --state-dir "$T/state"; chmod 0666 "$SOCK"; }
crash() { kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=; }
V() { timeout "$LIMIT" "$VMCTL_BIN" --socket "$SOCK" "$@"; }
daemon
vmctl_others=$(for_other_users client/vmctl)
as() { timeout "$LIMIT" setpriv --reuid "$owner" --regid "$gid" --clear-groups "$vmctl_others" --socket "$SOCK" "$@"; }
virtiofsds() { pgrep -f "source=$1" || true; }

# --- disks: a store image (root's own), another owner's image (UID:NAME), a host file
V disk create d1 --size 32M --fs ext4 >/dev/null || fail "disk create d1"
as disk create theirs --size 16M --fs ext4 >/dev/null || fail "disk create theirs (as $owner)"
truncate -s 16M "$T/file.img"
mkfs.ext4 -q -F "$T/file.img" 2>/dev/null || /sbin/mkfs.ext4 -q -F "$T/file.img"
id=$(V run --detach --name holder --disk d1 --disk "$owner:theirs" --disk "$T/file.img,label=f" \
	--mount d1:/d --mount theirs:/t -- /bin/sleep 600)
V wait holder --state STARTED --timeout 300 >/dev/null || fail "holder did not start"
as disk list | grep -q "theirs .*$id" || fail "the owner's disk list does not show root's VM: $(as disk list)"

# --- shares: a VM of $owner with a share, watched, and one to lose its virtiofsd while the daemon is down
mkdir -p "$T/sa" "$T/sb" "$T/sc"
chown "$owner:$gid" "$T/sa" "$T/sb" "$T/sc"
sa=$(as run --detach --name sa --share "$T/sa:/mnt/s" -- /bin/sleep 600)
sb=$(as run --detach --name sb --share "$T/sb:/mnt/s" -- /bin/sleep 600)
sc=$(as run --detach --name sc --share "$T/sc:/mnt/s" -- /bin/sleep 600)
for v in sa sb sc; do as wait "$v" --state STARTED --timeout 300 >/dev/null || fail "$v did not start"; done
sb_fsd=$(virtiofsds "$T/sb")
sc_qemu=$(vm_field sc qemu_pid)
[[ -n $(virtiofsds "$T/sa") && -n $sb_fsd && -n $(virtiofsds "$T/sc") ]] || fail "no virtiofsd for the shares"

crash
kill -9 $sb_fsd              # its virtiofsd dies while the daemon is down
kill -9 "$sc_qemu"           # and sc's QEMU
daemon
ok "daemon SIGKILLed and restarted with VMs holding disks and shares"

# reservations came back
V disk list | grep -q "d1 .*$id" || fail "disk list after the restart: $(V disk list)"
rc=0
V run --disk d1 -- /bin/true 2>"$T/e1" || rc=$?
[[ $rc != 0 ]] && grep -q "FAILED_PRECONDITION.*$id" "$T/e1" || fail "store image after restart: exit $rc; $(cat "$T/e1")"
rc=0
V run --disk "$T/file.img" -- /bin/true 2>"$T/e2" || rc=$?
[[ $rc != 0 ]] && grep -q "attached writable to VM $id" "$T/e2" || fail "host file after restart: exit $rc; $(cat "$T/e2")"
rc=0
as disk rm theirs 2>"$T/e3" || rc=$?
[[ $rc != 0 ]] && grep -q "used by VM $id" "$T/e3" || fail "UID:NAME image after restart: exit $rc; $(cat "$T/e3")"
ok "an adopted VM keeps its disks: store image, another owner's image (UID:NAME), host file"

out=$(V disk resize d1 64M 2>&1) || fail "online resize after the restart: $out"
kib=$(V exec holder -- /bin/sh -c 'df -kP /d | tail -1' | awk '{print $2}')
((kib > 50000)) || fail "the guest sees $kib KiB after growing d1 to 64 MiB"
ok "and it is resized online after the restart ($kib KiB)"
V stop holder >/dev/null || fail "stop holder"
V wait holder >/dev/null || true
V disk list | grep -q "d1 .*$id" && fail "d1 still in use after its VM died"
as disk rm theirs >/dev/null || fail "theirs not free after root's VM died"
ok "the images are free once the adopted VM is dead"

# sb: its virtiofsd died while the daemon was down
wait_for 60 state_is "$sb" DEAD || fail "sb outlived its virtiofsd"
[[ $(vm_field "$sb" death_reason) == INFRASTRUCTURE_ERROR ]] && grep -q "virtiofsd (pid .*) for share share0" <<<"$(vm_field "$sb" message)" ||
	fail "sb: $(vm_field "$sb" death_reason) $(vm_field "$sb" message)"
# sc: its QEMU died: not adopted, its virtiofsd terminated
no_fsd_c() { [[ -z $(virtiofsds "$T/sc") ]]; }
wait_for 30 no_fsd_c || fail "sc's virtiofsd outlived its QEMU: $(virtiofsds "$T/sc")"
ok "a virtiofsd dead meanwhile stops its VM ($(vm_field "$sb" message)); a VM gone meanwhile leaves no virtiofsd"

# sa: adopted with its virtiofsd, which is watched again
as exec sa -- /bin/sh -c 'echo after-restart >/mnt/s/f' || fail "the share of the adopted VM does not work"
[[ $(cat "$T/sa/f") == after-restart ]] || fail "the share's write did not reach the host"
kill -9 $(virtiofsds "$T/sa")
wait_for 60 state_is "$sa" DEAD || fail "sa outlived its adopted virtiofsd"
[[ $(vm_field "$sa" death_reason) == INFRASTRUCTURE_ERROR ]] && grep -q "virtiofsd (pid .*) for share share0" <<<"$(vm_field "$sa" message)" ||
	fail "sa: $(vm_field "$sa" death_reason) $(vm_field "$sa" message)"
ok "an adopted virtiofsd is watched again: its death stops the VM ($(vm_field "$sa" message))"
pgrep -f "qemu-system.*$T/" >/dev/null && fail "QEMU processes are left"
echo "1..$NTESTS"
