#!/usr/bin/env bash
# SuspendVm / ResumeVm keep the guest's vsock connections: pausing makes
# QEMU stop the vhost-user device (GET_VRING_BASE) and restart it on resume
# (SET_VRING_BASE with the same index), which the vsock backend must not
# take for a device reset. A `vmctl exec` stream (a host-initiated vsock
# connection to the guest agent) spans the pause and is used in both
# directions after it; the agent's own connection to VirtualMachineService
# stays up (one "agent connected", no "agent died"); the payload's exit is
# still reported.
source "$(dirname "$0")/lib.sh"
start_daemon

vm=$(vmctl run --detach --name napper -- /bin/sh -c 'echo napper-up; read l </dev/console; exit 5')
vmctl wait "$vm" --state STARTED --timeout 180 >/dev/null || fail "the VM did not start"

mkfifo "$T/in"
vmctl exec "$vm" -- /bin/sh -c 'echo before; read l; echo got:$l' <"$T/in" >"$T/out" 2>"$T/err" &
exec_pid=$!
exec 3>"$T/in"
wait_for 120 grep -q '^before$' "$T/out" || fail "exec printed nothing: $(cat "$T/err")"

vmctl suspend "$vm" >/dev/null || fail "suspend"
[[ $(vm_field "$vm" suspended) == True ]] || fail "not suspended: $(vmctl --json info "$vm")"
sleep 2 # paused for a while (nothing is timed)
vmctl resume "$vm" >/dev/null || fail "resume"
[[ $(vm_field "$vm" suspended) == False ]] || fail "still suspended: $(vmctl --json info "$vm")"
ok "suspended and resumed"

trap '' PIPE # an exec that died must fail below, not kill this script
echo typed-after-resume >&3 || true
exec 3>&-
rc=0
wait "$exec_pid" || rc=$?
[[ $rc == 0 ]] || fail "exec across the pause: exit $rc: $(cat "$T/out" "$T/err")"
grep -q '^got:typed-after-resume$' "$T/out" || fail "exec across the pause: $(cat "$T/out" "$T/err")"
ok "a vsock stream opened before the pause carries data both ways after it"

n=$(grep -c "vm $vm: guest agent connected" "$T/daemon.log" || true)
[[ $n == 1 ]] || fail "the agent connected $n times (its connection did not survive the pause)"
! grep -q "vm $vm.*agent died" "$T/daemon.log" || fail "the daemon saw the agent die: $(grep "agent died" "$T/daemon.log")"
ok "the guest agent's connection survived the pause"

# the agent still reports: the payload's exit code arrives through it
vmctl console "$vm" >/dev/null 2>&1 < <(echo go; sleep 60) &
console_pid=$!
vmctl wait "$vm" --timeout 120 >/dev/null || fail "the VM did not end after the console input"
kill "$console_pid" 2>/dev/null || true
wait "$console_pid" 2>/dev/null || true
[[ $(vm_field "$vm" exit_code) == 5 ]] || fail "exit code after the pause: $(vmctl --json info "$vm")"
ok "the payload's exit code (5) is reported after the pause"
echo "$NTESTS passed, 0 failed"
