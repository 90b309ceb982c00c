#!/usr/bin/env bash
# Faults with real processes: while a bystander VM keeps running, a second VM
# has its QEMU SIGKILLed, its vsock backend SIGKILLed, its guest kernel
# panicked and its guest rebooted. Each fault must end exactly that VM with
# the right death reason (KILLED, INFRASTRUCTURE_ERROR, CRASH, REBOOT), free
# its run directory and CID, and return the daemon's fd count to what it was
# with the bystander alone; the bystander must stay STARTED and its guest
# keep printing. The CID range holds only two CIDs, so every new victim
# reuses the CID the previous one freed. Detection latencies are printed
# (from the kill to a waiting client's answer), never asserted.
source "$(dirname "$0")/lib.sh"
start_daemon --cid-range 3000-3001

start_bystander 3000

# bystander_ok: still STARTED, same QEMU, and its console still grows.
bystander_ok() {
	local before after
	[[ $(vm_field "$keeper" state) == STARTED ]] || fail "bystander is $(vm_field "$keeper" state)"
	[[ $(vm_field "$keeper" qemu_pid) == "$keeper_pid" ]] || fail "bystander's QEMU changed"
	before=$(wc -l <"$keeper_dir/console.log")
	wait_for 30 bash -c "(( \$(wc -l <'$keeper_dir/console.log') > $before ))" ||
		fail "bystander's guest stopped printing"
}

# start_victim NAME PAYLOAD...: a detached VM, STARTED, on the freed CID.
start_victim() {
	local name=$1; shift
	victim=$(vmctl run --detach --name "$name" -- "$@")
	vmctl wait "$victim" --state STARTED --timeout 180 >/dev/null || fail "$name did not start"
	[[ $(vm_field "$victim" cid) == "$victim_cid" ]] ||
		fail "$name got cid $(vm_field "$victim" cid), not the freed $victim_cid"
	victim_dir=$(vm_field "$victim" run_dir)
}

# after_death NAME REASON: the checks every fault ends with.
after_death() {
	local name=$1 reason=$2 got
	got=$(vm_field "$victim" death_reason)
	[[ $(vm_field "$victim" state) == DEAD && $got == "$reason" ]] ||
		fail "$name: $(vm_field "$victim" state)/$got, expected DEAD/$reason ($(vm_field "$victim" message))"
	[[ ! -e $victim_dir ]] || fail "$name: run dir $victim_dir left behind"
	# the CID is reusable: the next CreateVm in a 2-CID range must get it
	probe=$(vmctl run --detach --name "probe-$name" -- /bin/true 2>/dev/null || true)
	[[ -n $probe ]] || fail "$name: no CreateVm possible after the death (CID not freed?)"
	[[ $(vm_field "probe-$name" cid) == "$victim_cid" ]] || fail "$name: cid $victim_cid not reused"
	vmctl kill "probe-$name" >/dev/null
	wait_for 30 bash -c "[[ \$(ls /proc/$DAEMON_PID/fd | wc -l) -le $baseline ]]" ||
		fail "$name: virtmgrd has $(fd_count "$DAEMON_PID") fds, $baseline before"
	bystander_ok
	# (children of this daemon only: other daemons on the machine may use the CID too)
	wait_for 30 bash -c "! pgrep -P $DAEMON_PID -f -- '--cid $victim_cid( |\$)' >/dev/null" ||
		fail "$name: a vsock backend for cid $victim_cid survives"
}

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# --- 1. QEMU SIGKILLed
start_victim qemu-kill /bin/sleep 600
pid=$(vm_field "$victim" qemu_pid)
vmctl wait "$victim" --timeout 60 >/dev/null &
waiter=$!
sleep 0.5   # let the waiter's WaitVm reach the daemon
t0=$(date +%s%N)
kill -9 "$pid"
wait "$waiter" || fail "qemu-kill: vmctl wait failed"
echo "# QEMU SIGKILL -> DEAD reported to a waiting client after $(ms_since "$t0") ms"
after_death qemu-kill KILLED
ok "QEMU SIGKILLed: that VM DEAD/KILLED, bystander untouched, run dir/CID/fds freed"

# --- 2. vsock backend SIGKILLed
start_victim backend-kill /bin/sleep 600
backend=$(pgrep -P "$DAEMON_PID" -f -- "--cid $victim_cid( |\$)" || true)
[[ -n $backend && $backend != *$'\n'* ]] || fail "backend-kill: no single backend child with --cid $victim_cid ($backend)"
bystander_backend=$(pgrep -P "$DAEMON_PID" -f -- "--cid $keeper_cid( |\$)")
pid=$(vm_field "$victim" qemu_pid)
vmctl wait "$victim" --timeout 60 >/dev/null &
waiter=$!
sleep 0.5
t0=$(date +%s%N)
kill -9 "$backend"
wait "$waiter" || fail "backend-kill: vmctl wait failed"
echo "# vsock backend SIGKILL -> DEAD reported to a waiting client after $(ms_since "$t0") ms"
wait_for 30 bash -c "! kill -0 $pid 2>/dev/null" || fail "backend-kill: QEMU $pid survives"
msg=$(vm_field "$victim" message)
grep -q "vsock backend" <<<"$msg" || fail "backend-kill: message does not name the backend: $msg"
after_death backend-kill INFRASTRUCTURE_ERROR
kill -0 "$bystander_backend" || fail "the bystander's backend died"
ok "vsock backend SIGKILLed: DEAD/INFRASTRUCTURE_ERROR ($msg), bystander untouched"

# --- 3. guest kernel panic (pvpanic)
t0=$(date +%s%N)
start_victim panic /bin/sh -c 'sleep 1; echo c > /proc/sysrq-trigger'
vmctl wait "$victim" --timeout 120 >/dev/null || fail "panic: VM not DEAD"
echo "# guest panic: STARTED -> DEAD in $(ms_since "$t0") ms (including a 1 s sleep and the boot)"
after_death panic CRASH
ok "guest kernel panic: DEAD/CRASH, bystander untouched"

# --- 4. guest reboot -f
start_victim reboot /bin/sh -c 'sleep 1; reboot -f'
vmctl wait "$victim" --timeout 120 >/dev/null || fail "reboot: VM not DEAD"
after_death reboot REBOOT
ok "guest reboot -f: DEAD/REBOOT, bystander untouched"

vmctl kill "$keeper" >/dev/null
echo "$NTESTS passed, 0 failed"
