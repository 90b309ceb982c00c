#!/usr/bin/env bash
# virtmgrd SIGKILLed and restarted: detached VMs keep running and are adopted
# again (same id, CID, QEMU; QMP control and events work; the console is
# captured again and takes input), the owned VM whose
# owner connection died with the daemon is stopped and cleaned up, and a
# corrupt or half-written state file does not stop the daemon from starting.
source "$(dirname "$0")/lib.sh"
start_daemon

# keep prints a heartbeat and echoes what is typed on its console
keep=$(vmctl run --detach --name keep -- /bin/sh -c \
	'i=0; while :; do echo hb $i; i=$((i + 1)); sleep 1; done & while read l; do echo got:$l; done')
"$VMCTL_BIN" --socket "$SOCK" run --name owned -- /bin/sleep 600 >/dev/null 2>&1 &
owner=$!
vmctl wait "$keep" --state STARTED --timeout 180 >/dev/null || fail "keep did not start"
wait_for 180 state_is owned STARTED || fail "owned did not start"
keep_pid=$(vm_field "$keep" qemu_pid)
keep_cid=$(vm_field "$keep" cid)
owned_pid=$(vm_field owned qemu_pid)
owned_dir=$(vm_field owned run_dir)

# a state file cut short and one that is garbage, beside the real ones
mkdir -p "$T/run/vms/65000" "$T/run/vms/65001"
printf 'virtmgr-vm-state 1\nid=0123456789ab\nname=torn\ncid=650' >"$T/run/vms/65000/vm.state"
head -c 300 /dev/urandom >"$T/run/vms/65001/vm.state"

kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=
wait "$owner" 2>/dev/null || true
kill -0 "$keep_pid" || fail "the detached VM's QEMU died with the daemon"
ok "daemon SIGKILLed: the detached VM's QEMU keeps running"

start_daemon
[[ $(vm_field "$keep" state) == STARTED ]] || fail "keep not adopted: $(vmctl --json list)"
[[ $(vm_field "$keep" qemu_pid) == "$keep_pid" && $(vm_field "$keep" cid) == "$keep_cid" ]] ||
	fail "adopted VM changed: $(vmctl --json info "$keep")"
vmctl list | grep keep >/dev/null || fail "vmctl list does not show the adopted VM"
ok "restarted daemon adopted the detached VM (same id, CID $keep_cid, QEMU $keep_pid)"

# its console: output captured again (console.log grows, vmctl logs shows it), input reaches the guest
keep_log=$(vm_field "$keep" run_dir)/console.log
hb=$(grep -c '^hb ' "$keep_log" || true)
wait_for 60 bash -c "(( \$(grep -c '^hb ' '$keep_log') > $hb + 2 ))" ||
	fail "the adopted VM's console is not captured after the restart"
(echo typed-after-restart; sleep 120) | vmctl console "$keep" >"$T/console.out" 2>&1 &
console_client=$!
wait_for 60 grep -q '^got:typed-after-restart' "$keep_log" || fail "console input does not reach the adopted VM"
kill "$console_client" 2>/dev/null || true
wait "$console_client" 2>/dev/null || true
vmctl logs "$keep" | grep '^got:typed-after-restart' >/dev/null || fail "vmctl logs lacks the typed line"
ok "the adopted VM's console is captured again ($hb heartbeats before, more after) and takes input"

wait_for 30 bash -c "! kill -0 $owned_pid 2>/dev/null" || fail "the orphaned owned VM's QEMU still runs"
wait_for 30 test ! -e "$owned_dir" || fail "$owned_dir left behind"
ok "the owned VM whose owner died was stopped and its run dir removed"

[[ ! -e $T/run/vms/65000 && ! -e $T/run/vms/65001 ]] || fail "corrupt state dirs left behind"
grep -q "not adopting $T/run/vms/65000" "$T/daemon.log" || fail "no warning for the torn state file"
ok "torn and garbage state files are reported and removed; start-up goes on"

# QMP control and events work on the adopted VM: a graceful stop
vmctl stop "$keep" --timeout 60 >/dev/null
[[ $(vm_field "$keep" state) == DEAD && $(vm_field "$keep" death_reason) == SHUTDOWN ]] ||
	fail "stop after adoption: $(vmctl --json info "$keep")"
# the adopted QEMU is no longer our child: PID 1 reaps it, so it may linger as a zombie
wait_for 30 bash -c "! grep -qs '^State:[[:space:]]*[RSDT]' /proc/$keep_pid/status" ||
	fail "QEMU $keep_pid survived the stop"
ok "StopVm on the adopted VM: DEAD/SHUTDOWN"

# a clean daemon exit leaves detached VMs running too
keep2=$(vmctl run --detach --name keep2 -- /bin/sleep 600)
vmctl wait "$keep2" --state STARTED --timeout 180 >/dev/null
pid2=$(vm_field "$keep2" qemu_pid)
stop_daemon
kill -0 "$pid2" || fail "SIGTERM to the daemon killed a detached VM"
start_daemon
[[ $(vm_field "$keep2" state) == STARTED ]] || fail "keep2 not adopted after a clean restart"
vmctl kill "$keep2" >/dev/null
ok "after a clean daemon exit the detached VM is adopted too"
echo "$NTESTS passed, 0 failed"
