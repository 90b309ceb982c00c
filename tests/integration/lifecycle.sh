#!/usr/bin/env bash
# VM lifecycle with real guests under the daemon: payload exit codes through
# vmctl, concurrent VMs with distinct CIDs, graceful stop, kill, QEMU killed
# from outside, bad and corrupt kernels, owner disconnect vs detach, and no
# fd leak over repeated create/start/kill cycles.
source "$(dirname "$0")/lib.sh"
start_daemon

# --- payload exit codes come back as vmctl's exit status
for code in 0 42; do
	set +e
	out=$(vmctl run --name "exit$code" -- /bin/sh -c "echo payload-says-hi; exit $code" 2>"$T/err")
	rc=$?
	set -e
	[[ $rc -eq $code ]] || fail "vmctl run exited $rc, payload exit was $code: $(cat "$T/err")"
	grep -q payload-says-hi <<<"$out" || fail "payload output missing from the console stream"
done
ok "payload exit codes 0 and 42 are vmctl's exit status; console streamed"

# --- three VMs at once, distinct CIDs
ids=()
for i in 1 2 3; do
	ids+=("$(vmctl run --detach --name "multi$i" -- /bin/sleep 600)")
done
for id in "${ids[@]}"; do
	vmctl wait "$id" --state STARTED --timeout 120 >/dev/null || fail "vm $id did not start"
done
cids=$(for id in "${ids[@]}"; do vm_field "$id" cid; done | sort -u | wc -l)
[[ $cids -eq 3 ]] || fail "3 VMs share CIDs"
[[ $(vmctl --json list | grep -c '"state":"STARTED"') -ge 3 ]] || fail "list does not show 3 STARTED VMs"
ok "3 VMs run at once with distinct CIDs"

# --- graceful stop (power button), then kill
run_dir=$(vm_field "${ids[0]}" run_dir)
[[ -d $run_dir ]] || fail "run dir $run_dir missing"
[[ $(stat -c %a "$run_dir") == 700 ]] || fail "run dir $run_dir is not mode 0700"
vmctl stop "${ids[0]}" --timeout 30 >/dev/null
[[ $(vm_field "${ids[0]}" death_reason) == SHUTDOWN ]] || fail "stop: death reason $(vm_field "${ids[0]}" death_reason)"
[[ ! -e $run_dir ]] || fail "run dir $run_dir left behind after stop"
ok "StopVm powers the guest off: DEAD/SHUTDOWN, run dir removed"

vmctl kill "${ids[1]}" >/dev/null
[[ $(vm_field "${ids[1]}" state) == DEAD && $(vm_field "${ids[1]}" death_reason) == KILLED ]] ||
	fail "kill: $(vmctl --json info "${ids[1]}")"
ok "KillVm: DEAD/KILLED"

# --- QEMU killed from outside
victim=${ids[2]}
pid=$(vm_field "$victim" qemu_pid)
cid=$(vm_field "$victim" cid)
run_dir=$(vm_field "$victim" run_dir)
t0=$(date +%s%N)
kill -9 "$pid"
wait_for 30 state_is "$victim" DEAD || fail "not DEAD after SIGKILL of QEMU"
t1=$(date +%s%N)
[[ $(vm_field "$victim" death_reason) == KILLED ]] || fail "external SIGKILL: $(vm_field "$victim" death_reason)"
[[ ! -e $run_dir ]] || fail "run dir $run_dir left behind"
echo "# QEMU SIGKILL -> DEAD seen by a polling client after $(((t1 - t0) / 1000000)) ms"
# the CID is free again: with the range reduced to what is left, a new VM may take it
ok "QEMU SIGKILLed from outside: DEAD/KILLED, run dir freed"

# --- bad kernel path, corrupt kernel
set +e
msg=$(vmctl run --kernel /nonexistent/vmlinuz -- /bin/true 2>&1)
rc=$?
set -e
[[ $rc -eq 125 ]] || fail "bad kernel path: vmctl exited $rc"
grep -q NOT_FOUND <<<"$msg" && grep -q "kernel" <<<"$msg" || fail "bad kernel path: $msg"
ok "missing kernel -> NOT_FOUND naming the field ($msg)"

head -c 3000000 /dev/urandom >"$T/garbage-kernel"
set +e
vmctl run --name corrupt --events --kernel "$T/garbage-kernel" --initrd "$GUEST_DIR/initramfs.img" \
	--boot-timeout 20 -- /bin/true >/dev/null 2>"$T/err"
rc=$?
set -e
# 125 = START_FAILED, 129 = HANGUP (docs/vmctl.md)
[[ $rc -eq 125 || $rc -eq 129 ]] || fail "corrupt kernel: vmctl exited $rc: $(cat "$T/err")"
grep -Eq "START_FAILED|HANGUP" "$T/err" || fail "corrupt kernel: no death reason shown: $(cat "$T/err")"
ok "corrupt kernel -> vmctl $rc: $(grep -E 'START_FAILED|HANGUP' "$T/err" | head -1 | head -c 200)"

# --- owner disconnect kills owned VMs, not detached ones
detached=$(vmctl run --detach --name keeper -- /bin/sleep 600)
"$VMCTL_BIN" --socket "$SOCK" run --name owned -- /bin/sleep 600 >/dev/null 2>&1 &
owner=$!
wait_for 120 state_is owned STARTED || fail "owned VM did not start"
owned_pid=$(vm_field owned qemu_pid)
kill -9 "$owner"
wait "$owner" 2>/dev/null || true
wait_for 30 bash -c "! kill -0 $owned_pid 2>/dev/null" || fail "owned VM's QEMU survived its owner"
vmctl wait "$detached" --state STARTED --timeout 120 >/dev/null
[[ $(vm_field "$detached" state) == STARTED ]] || fail "detached VM did not survive"
vmctl kill "$detached" >/dev/null
ok "owner disconnect kills its VM; a detached VM survives its creator"

# --- no fd leak over 50 create/start/kill cycles
before=$(fd_count "$DAEMON_PID")
for i in $(seq 50); do
	id=$(vmctl run --detach --name "cycle$i" -- /bin/true)
	vmctl kill "$id" >/dev/null
done
# each killed VM's backend is reaped through a pidfd once it has exited:
# let the last ones finish (a hang guard, not a timing assertion)
fds_settled() { [[ $(fd_count "$DAEMON_PID") -le $before ]]; }
wait_for 30 fds_settled || true
after=$(fd_count "$DAEMON_PID")
echo "# virtmgrd fds: $before before, $after after 50 cycles"
[[ $after -le $before ]] || fail "fd leak: $before -> $after"
ok "no fd leak over 50 create/start/kill cycles ($before -> $after fds)"

echo "$NTESTS passed, 0 failed"
