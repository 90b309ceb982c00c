#!/usr/bin/env bash
# Soak test: for SOAK_MINUTES (or VIRTMGR_SOAK_MINUTES) minutes, three
# workers create, start, stop and kill real guests (payloads with exit
# codes, graceful stops, kills before and after boot, owners SIGKILLed, QEMU
# SIGKILLed from outside) while a fourth keeps up RPC load with short-lived
# and misbehaving clients (tests/integration/client_churn). At the end:
# every VM the daemon still lists is DEAD with a death reason, no QEMU or
# vsock backend is left, the run directory is empty, and virtmgrd's fd count
# is back to its start and its RSS grew by less than 8 MiB (both printed).
#
#   make soak SOAK_MINUTES=10       # any length
#   VIRTMGR_SOAK_MINUTES=1 make check   # a short run as part of make check
# Without either variable it exits 77 (skipped): make check stays fast.
minutes=${SOAK_MINUTES:-${VIRTMGR_SOAK_MINUTES:-}}
if [[ -z $minutes ]]; then
	echo "soak: set SOAK_MINUTES (make soak) or VIRTMGR_SOAK_MINUTES (make check) to run it"
	exit 77
fi
source "$(dirname "$0")/integration/lib.sh"
CHURN=$top_builddir/tests/integration/client_churn
[[ $minutes =~ ^[0-9]+$ && $minutes -gt 0 ]] || fail "SOAK_MINUTES=$minutes is not a positive number of minutes"

asan_measure_rss
start_daemon --cid-range 5000-5009 --max-vms 10 --boot-timeout 240
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$DAEMON_PID/status"; }
"$CHURN" "$SOCK" churn 60 >/dev/null   # warm-up before the baseline
fd0=$(fd_count "$DAEMON_PID")
rss0=$(rss)
end=$((SECONDS + minutes * 60))
FAILS=$T/soak.fail
: >"$FAILS"
soak_fail() { echo "FAIL: $*" >>"$FAILS"; }

# vm_worker N: one VM at a time, each with a random life.
vm_worker() {
	local w=$1 i=0 action name id code rc pid owner
	set +e
	while ((SECONDS < end)); do
		i=$((i + 1))
		name=w$w-$i
		action=$((RANDOM % 5))
		echo "$action" >>"$T/actions"
		case $action in
		0)  # owned run to completion: the payload's exit code comes back
			code=$((RANDOM % 4))
			vmctl run --name "$name" -- /bin/sh -c "sleep $((RANDOM % 3)); exit $code" >/dev/null 2>"$T/$name.err"
			rc=$?
			((rc == code)) || soak_fail "$name: vmctl run exited $rc, payload $code: $(tail -2 "$T/$name.err")"
			;;
		1)  # detached, graceful stop once started
			id=$(vmctl run --detach --name "$name" -- /bin/sleep 600) || { soak_fail "$name: create"; continue; }
			vmctl wait "$id" --state STARTED --timeout 300 >/dev/null || soak_fail "$name: not STARTED"
			vmctl stop "$id" --timeout 30 >/dev/null || soak_fail "$name: stop failed"
			;;
		2)  # detached, killed at once (often before it boots)
			id=$(vmctl run --detach --name "$name" -- /bin/sleep 600) || { soak_fail "$name: create"; continue; }
			sleep "0.$((RANDOM % 10))"
			vmctl kill "$id" >/dev/null || soak_fail "$name: kill failed"
			;;
		3)  # the owner dies
			"$VMCTL_BIN" --socket "$SOCK" run --name "$name" -- /bin/sleep 600 >/dev/null 2>&1 &
			owner=$!
			sleep "$((RANDOM % 4)).$((RANDOM % 10))"
			kill -9 "$owner" 2>/dev/null
			wait "$owner" 2>/dev/null
			;;
		4)  # QEMU SIGKILLed from outside
			id=$(vmctl run --detach --name "$name" -- /bin/sleep 600) || { soak_fail "$name: create"; continue; }
			vmctl wait "$id" --state STARTED --timeout 300 >/dev/null || soak_fail "$name: not STARTED"
			pid=$(vm_field "$id" qemu_pid)
			[[ -n $pid && $pid != 0 ]] && kill -9 "$pid"
			vmctl wait "$id" --timeout 60 >/dev/null || soak_fail "$name: not DEAD after SIGKILL of QEMU"
			[[ $(vm_field "$id" death_reason) == KILLED ]] || soak_fail "$name: QEMU SIGKILL: $(vm_field "$id" death_reason)"
			;;
		esac
	done
}

rpc_worker() {
	local rounds=0
	set +e
	while ((SECONDS < end)); do
		"$CHURN" "$SOCK" churn 30 >/dev/null || soak_fail "client_churn failed"
		vmctl --json list >/dev/null || soak_fail "ListVms failed"
		vmctl version >/dev/null || soak_fail "GetDaemonInfo failed"
		rounds=$((rounds + 1))
	done
	echo "$rounds" >"$T/rpc-rounds"
}

echo "# soak: $minutes minute(s), 3 VM workers + 1 RPC worker; virtmgrd at $fd0 fds, $rss0 KiB RSS"
pids=()
for w in 1 2 3; do
	vm_worker "$w" &
	pids+=($!)
done
rpc_worker &
pids+=($!)
for p in "${pids[@]}"; do wait "$p" || true; done

# ---- invariants
kill -0 "$DAEMON_PID" || fail "virtmgrd died during the soak"
[[ ! -s $FAILS ]] || fail "$(wc -l <"$FAILS") failure(s) during the soak:"$'\n'"$(head -20 "$FAILS")"
vmctl --json list >"$T/list.json"
python3 - "$T/list.json" <<'EOF' || fail "VMs left alive or without a death reason: $(cat "$T/list.json")"
import json, sys
bad = []
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    vm = json.loads(line)
    if vm.get("state") != "DEAD" or vm.get("death_reason") in (None, "", "NONE", "UNSPECIFIED"):
        bad.append((vm.get("name"), vm.get("state"), vm.get("death_reason")))
sys.exit(1 if bad else 0)
EOF
reasons=$(grep -o '"death_reason":"[A-Z_]*"' "$T/list.json" | sort | uniq -c | tr -s ' \n' ' ')
wait_for 60 bash -c "! pgrep -f 'qemu-syste[m].*$T/' >/dev/null" || fail "orphan QEMU: $(pgrep -af "qemu-syste[m].*$T/")"
wait_for 60 bash -c "! pgrep -P $DAEMON_PID >/dev/null" || fail "children of virtmgrd left: $(pgrep -aP "$DAEMON_PID")"
[[ -z $(ls -A "$T/run/vms" 2>/dev/null) ]] || fail "run directories left: $(ls -A "$T/run/vms")"
wait_for 60 bash -c "[[ \$(ls /proc/$DAEMON_PID/fd | wc -l) -le $fd0 ]]" ||
	fail "fd leak: $fd0 fds before, $(fd_count "$DAEMON_PID") after"
fd1=$(fd_count "$DAEMON_PID")
rss1=$(rss)
nvms=$(wc -l <"$T/actions")
echo "# $nvms VMs (by action: $(sort "$T/actions" | uniq -c | tr -s ' \n' ' ')), $(cat "$T/rpc-rounds" 2>/dev/null || echo 0) RPC rounds"
echo "# listed dead VMs by reason: $reasons"
echo "# virtmgrd: fds $fd0 -> $fd1, RSS $rss0 -> $rss1 KiB"
# An ASan build keeps allocator regions and shadow pages it never returns
# (its quarantine is off here), so its bound is wider; 8 MiB otherwise.
rss_bound=8192
ldd "$VIRTMGRD" 2>/dev/null | grep libasan >/dev/null && rss_bound=32768
((rss1 - rss0 < rss_bound)) || fail "RSS grew by $((rss1 - rss0)) KiB (bound $rss_bound KiB)"
ok "soak: $nvms VMs and RPC load for $minutes min; all dead with reasons, no orphans, fds $fd0 -> $fd1, RSS +$((rss1 - rss0)) KiB"
echo "$NTESTS passed, 0 failed"
