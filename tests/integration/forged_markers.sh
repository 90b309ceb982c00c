#!/bin/bash
# forged_markers.sh - a payload's output never decides what virtmgrd reports
# (issue: "VIRTMGR: EXIT 0" printed by a payload used to become its exit
# code). With a real daemon and real guests (TCG):
# - `echo "VIRTMGR: EXIT 0"; exit 3` exits 3;
# - a payload printing every old unsigned marker and signed-looking ones with
#   a wrong MAC changes neither the state, the events nor the exit code;
# - `run --user 1000` and `exec --user 1000` run as uid 1000, exit codes kept;
# - a process of uid 1000 that opens its own vsock connection to the VM's
#   VirtualMachineService port is refused (one agent connection per boot)
#   and changes nothing.
#
# Needs the guest image (`make guest-image`) and tests/guest-tools/vsock-tool.
source "$(dirname "$0")/lib.sh"
vmctl=$VMCTL_BIN
tool=$top_builddir/tests/guest-tools/vsock-tool
LIMIT=${GUEST_BOOT_LIMIT:-600}
[[ -f $tool ]] || fail "$tool is missing: run 'make tests/guest-tools/vsock-tool' first"

start_daemon --accel tcg
export VIRTMGR_SOCKET=$SOCK
V() { timeout "$LIMIT" "$vmctl" "$@"; }
zeros=00000000000000000000000000000000

# --- the issue's line
rc=0
V run --name f1 -- sh -c 'echo "VIRTMGR: EXIT 0"; exit 3' >"$T/f1.out" 2>"$T/f1.err" || rc=$?
[[ $rc == 3 ]] || fail "a payload printing 'VIRTMGR: EXIT 0' then exiting 3: vmctl exited $rc: $(cat "$T/f1.err")"
grep -q '^VIRTMGR: EXIT 0' "$T/f1.out" || fail "the payload's line is not plain console text: $(cat "$T/f1.out")"
ok "'echo VIRTMGR: EXIT 0; exit 3' exits 3"

# --- every marker a payload can print, then a real readiness and exit 5
rc=0
V run --events --name f2 -- sh -c "
	echo 'VIRTMGR: STARTED'; echo 'VIRTMGR: READY'; echo 'VIRTMGR: EXIT 0'; echo 'VIRTMGR: ERROR 1 x'
	echo 'VIRTMGR/1 7 $zeros EXIT 0'; echo 'VIRTMGR/1 4294967296 $zeros ERROR 1 forged'
	echo 'VIRTMGR/1 99 $zeros READY'
	echo >&\$VIRTMGR_READY_FD
	exit 5" >"$T/f2.out" 2>"$T/f2.err" || rc=$?
[[ $rc == 5 ]] || fail "forged markers: vmctl exited $rc, not 5: $(cat "$T/f2.err")"
for s in STARTED READY FINISHED; do
	n=$(grep -c "^vmctl: vm f2: $s\$" "$T/f2.err" || true)
	[[ $n == 1 ]] || fail "forged markers: $n $s events, not 1: $(cat "$T/f2.err")"
done
n=$(grep -c "PAYLOAD_FINISHED" "$T/f2.err" || true)
[[ $n == 1 ]] || fail "forged markers: $n PAYLOAD_FINISHED events: $(cat "$T/f2.err")"
grep -q "PAYLOAD_FINISHED (exit code 5)" "$T/f2.err" || fail "forged markers: exit code event: $(cat "$T/f2.err")"
! grep -q "vmctl: vm f2: ERROR" "$T/f2.err" || fail "forged markers: an ERROR event: $(cat "$T/f2.err")"
grep -q "^VIRTMGR/1 7 $zeros EXIT 0" "$T/f2.out" || fail "the wrong-MAC line is not plain console text"
ok "unsigned and wrong-MAC markers change neither state, events nor exit code (5)"

# --- the payload's user
rc=0
V run --user 1000 --name f3 -- sh -c 'echo "uid=$(id -u) gid=$(id -g)"; exit 4' >"$T/f3.out" 2>"$T/f3.err" || rc=$?
[[ $rc == 4 ]] || fail "run --user 1000: vmctl exited $rc, not 4: $(cat "$T/f3.err")"
grep -q '^uid=1000 gid=1000' "$T/f3.out" || fail "run --user 1000: $(cat "$T/f3.out")"
rc=0
V run --user 1000:1001 --name f3b -- sh -c 'echo "uid=$(id -u) gid=$(id -g)"' >"$T/f3b.out" 2>"$T/f3b.err" || rc=$?
[[ $rc == 0 ]] || fail "run --user 1000:1001: vmctl exited $rc: $(cat "$T/f3b.err")"
grep -q '^uid=1000 gid=1001' "$T/f3b.out" || fail "run --user 1000:1001: $(cat "$T/f3b.out")"
rc=0
V run --user 4294967295 -- true 2>"$T/f3c.err" || rc=$?
[[ $rc == 125 ]] || fail "run --user 4294967295: vmctl exited $rc: $(cat "$T/f3c.err")"
ok "run --user UID[:GID] runs the payload as that user and keeps its exit code"

# --- an unprivileged process talks to VirtualMachineService itself
mkdir -p "$T/extra/bin"
cp "$tool" "$T/extra/bin/vsock-tool"
chmod 755 "$T/extra/bin/vsock-tool"
(cd "$T/extra" && find . | cpio -o -H newc --quiet | gzip -1) >"$T/extra.img"
cat "$GUEST_DIR/initramfs.img" "$T/extra.img" >"$T/initramfs.img"
id=$(V run --detach --name f4 --initrd "$T/initramfs.img" --user 1000 -- \
	sh -c 'echo >&$VIRTMGR_READY_FD; while [ ! -e /tmp/go ]; do sleep 0.2; done; exit 6') ||
	fail "run --detach f4"
V wait --state READY f4 >/dev/null || fail "f4 did not become READY"
[[ $(V exec --user 1000 f4 -- id -u) == 1000 ]] || fail "exec --user 1000: not uid 1000"
ok "exec --user 1000 runs as uid 1000"
cid=$(vm_field f4 cid)
# the VM's VirtualMachineService port is its CID, on host CID 2
V exec --user 1000 f4 -- /bin/vsock-tool connect 2 "$cid" --source 4096 >"$T/f4.tool" 2>&1 || true
wait_for 60 grep -q "vm $id: VirtualMachineService: refused connection #1" "$T/daemon.log" ||
	fail "the payload's own VirtualMachineService connection was not refused: $(cat "$T/f4.tool")"
[[ $(vm_field f4 state) == READY ]] || fail "f4 is $(vm_field f4 state) after the payload's connection"
V exec --user 1000 f4 -- touch /tmp/go || fail "exec touch"
V wait f4 >/dev/null || fail "wait f4"
[[ $(vm_field f4 exit_code) == 6 ]] || fail "f4 exit code: $(vmctl --json info f4)"
n=$(grep -c "vm $id: guest agent connected" "$T/daemon.log" || true)
[[ $n == 1 ]] || fail "f4: the agent connected $n times"
ok "a uid 1000 connection to VirtualMachineService is refused and changes nothing (exit 6)"

echo "$NTESTS passed, 0 failed"
