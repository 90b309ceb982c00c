#!/usr/bin/env bash
# Faults of the guest agent with real guests (default image, user-mode
# vsock): while a bystander VM keeps running, a victim VM's payload SIGKILLs
# its own agent process (its parent; PID 1 of the guest is vmagent's init
# half, which survives). PID 1 must notice, print the ERROR marker and power
# off, so that the victim ends DEAD/PAYLOAD_ERROR with the error naming the
# agent's death, not SHUTDOWN; its run directory and CID must be freed, the
# daemon's fd count must come back to the bystander-only value, and the
# bystander must stay STARTED with its guest still printing. A SIGTERM to
# the agent process, by contrast, is an orderly power-off. The latency
# from the trigger (a line written to the victim's console, which the
# payload waits for) to a waiting client's answer is printed, never asserted.
source "$(dirname "$0")/lib.sh"
start_daemon --cid-range 3100-3101

start_bystander 3100

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# --- the payload SIGKILLs the agent process when a line arrives on the console
victim=$(vmctl run --detach --name victim -- /bin/sh -c \
	'echo "agent pid $PPID"; echo >&$VIRTMGR_READY_FD; read -r go; echo "killing $PPID"; kill -9 $PPID; sleep 600')
vmctl wait "$victim" --state READY --timeout 180 >/dev/null || fail "victim did not become READY"
[[ $(vm_field "$victim" cid) == "$victim_cid" ]] || fail "victim got cid $(vm_field "$victim" cid), not $victim_cid"
victim_dir=$(vm_field "$victim" run_dir)
victim_qemu=$(vm_field "$victim" qemu_pid)
wait_for 60 grep -q '^agent pid [0-9]' "$victim_dir/console.log" || fail "the victim's payload did not start"
agent_pid=$(grep -m1 '^agent pid' "$victim_dir/console.log" | tr -d '\r' | awk '{print $3}')
((agent_pid > 1)) || fail "the payload's parent is pid '$agent_pid', not the agent process under PID 1"
# PID 1 of the guest is vmagent's init half; the payload's parent is the agent process
[[ $(vmctl exec "$victim" -- /bin/sh -c 'echo $PPID; cat /proc/1/comm') == "$agent_pid"$'\n'init ]] ||
	fail "exec sessions and the payload do not share the agent process $agent_pid under /init"
ok "the victim's payload and exec sessions run under the agent process (pid $agent_pid), a child of PID 1"

# The console is the payload's stdin: the trigger goes in through AttachConsole.
mkfifo "$T/console.in"
vmctl console "$victim" <"$T/console.in" >"$T/console.out" 2>&1 &
console_pid=$!
exec {trigger}>"$T/console.in"
vmctl wait "$victim" --timeout 120 >"$T/wait.out" &
waiter=$!
sleep 1   # let AttachConsole and the waiter's WaitVm reach the daemon
t0=$(date +%s%N)
echo go >&$trigger
wait "$waiter" || fail "vmctl wait failed: $(cat "$T/wait.out")"
echo "# agent SIGKILLed in the guest -> DEAD reported to a waiting client after $(ms_since "$t0") ms (from the console trigger)"
exec {trigger}>&-
wait "$console_pid" || true
grep -q "killing $agent_pid" "$T/console.out" || fail "the payload never killed the agent: $(tail -5 "$T/console.out")"

state=$(vm_field "$victim" state)
reason=$(vm_field "$victim" death_reason)
[[ $state == DEAD && $reason == PAYLOAD_ERROR ]] ||
	fail "victim is $state/$reason, expected DEAD/PAYLOAD_ERROR ($(vm_field "$victim" message))"
# signed with the boot's key (PID 1's sequence numbers start at 2^32)
grep -qE "VIRTMGR/1 [0-9]+ [0-9a-f]+ ERROR 0 the guest agent process died \(killed by SIGKILL\)" "$T/console.out" ||
	fail "no ERROR marker naming the agent's death on the console: $(tail -5 "$T/console.out")"
grep -q "vm $victim: guest error 0: the guest agent process died (killed by SIGKILL)" "$T/daemon.log" ||
	fail "virtmgrd did not take the agent's death as a guest error"
[[ $(vm_field "$victim" message) == "guest error 0: the guest agent process died (killed by SIGKILL)" ]] ||
	fail "the dead VM's message does not name the agent's death: $(vm_field "$victim" message)"
ok "agent SIGKILLed by the payload: PID 1 reports it, the VM is DEAD/PAYLOAD_ERROR (not SHUTDOWN)"

# --- what the death must free, and the bystander
[[ ! -e $victim_dir ]] || fail "run dir $victim_dir left behind"
wait_for 30 bash -c "! kill -0 $victim_qemu 2>/dev/null" || fail "the victim's QEMU $victim_qemu survives"
wait_for 30 bash -c "! pgrep -P $DAEMON_PID -f -- '--cid $victim_cid( |\$)' >/dev/null" ||
	fail "a vsock backend for cid $victim_cid survives"
# The CID is reusable: in a 2-CID range the next CreateVm must get it. The
# probe is also the control case: its payload SIGTERMs the agent process,
# which is an orderly power-off request (the payload gets SIGTERM), not a
# death: DEAD/SHUTDOWN with exit code 143 and no guest error.
probe=$(vmctl run --detach --name probe -- /bin/sh -c 'echo >&$VIRTMGR_READY_FD; kill $PPID; sleep 600' 2>/dev/null || true)
[[ -n $probe ]] || fail "no CreateVm possible after the death (CID not freed?)"
[[ $(vm_field "$probe" cid) == "$victim_cid" ]] || fail "cid $victim_cid not reused"
vmctl wait "$probe" --timeout 180 >/dev/null || fail "probe did not end"
[[ $(vm_field "$probe" death_reason) == SHUTDOWN && $(vm_field "$probe" exit_code) == 143 ]] ||
	fail "probe: $(vm_field "$probe" death_reason), exit code $(vm_field "$probe" exit_code), expected SHUTDOWN, 143"
! grep -q "vm $probe: guest error" "$T/daemon.log" || fail "probe: the orderly stop was taken for an agent death"
wait_for 30 bash -c "[[ \$(ls /proc/$DAEMON_PID/fd | wc -l) -le $baseline ]]" ||
	fail "virtmgrd has $(fd_count "$DAEMON_PID") fds, $baseline with the bystander alone"
ok "run dir, QEMU, vsock backend and CID $victim_cid freed; virtmgrd back to $baseline fds"
ok "control: SIGTERM to the agent process is an orderly power-off (DEAD/SHUTDOWN, exit code 143), not a death"

[[ $(vm_field "$keeper" state) == STARTED ]] || fail "bystander is $(vm_field "$keeper" state)"
[[ $(vm_field "$keeper" qemu_pid) == "$keeper_pid" ]] || fail "bystander's QEMU changed"
before=$(wc -l <"$keeper_dir/console.log")
wait_for 30 bash -c "(( \$(wc -l <'$keeper_dir/console.log') > $before ))" || fail "bystander's guest stopped printing"
# its agent still answers
[[ $(vmctl exec "$keeper" -- echo alive) == alive ]] || fail "the bystander's agent does not answer"
ok "bystander untouched: STARTED, same QEMU, still printing, its agent answers"

vmctl kill "$keeper" >/dev/null
echo "$NTESTS passed, 0 failed"
