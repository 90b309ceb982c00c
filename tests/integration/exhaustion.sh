#!/usr/bin/env bash
# Resource exhaustion against real daemons: a low fd limit (prlimit
# --nofile=64:64), a run directory on a full 1 MiB tmpfs, and the
# --max-vms, --max-connections and --max-streams limits. In each case the
# clients already connected keep working, what goes beyond the limit gets a
# clear refusal, the daemon does not spin (its CPU time over a few seconds of
# refused connections is printed and must stay under half the wall time), and
# it recovers once the pressure is gone.
source "$(dirname "$0")/lib.sh"
CHURN=$top_builddir/tests/integration/client_churn

# Runs under errexit: every step must succeed or be excused.
exhaustion_cleanup() {
	local rc=$?
	if [[ -n ${HOLD_PID:-} ]]; then kill "$HOLD_PID" 2>/dev/null || true; fi
	if [[ -n $DAEMON_PID ]]; then
		kill "$DAEMON_PID" 2>/dev/null || true
		wait "$DAEMON_PID" 2>/dev/null || true
		DAEMON_PID=
	fi
	pkill -9 -f "qemu-system.*$T/" 2>/dev/null || true
	if mountpoint -q "$T/full" 2>/dev/null; then umount -l "$T/full" || true; fi
	(exit "$rc") || cleanup    # lib.sh's cleanup takes the status from $?
	cleanup
}
trap exhaustion_cleanup EXIT

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# hold_open N: a client_churn holding N connections as a coprocess;
# sets HELD (how many the daemon accepted).
hold_open() {
	coproc HOLD { "$CHURN" "$SOCK" hold "$1"; }
	read -r -t 300 -u "${HOLD[0]}" word HELD || fail "the holding client said nothing"
	[[ $word == held ]] || fail "holding client: $word $HELD"
}
# hold_again: every held connection makes one more call; prints how many worked.
hold_again() {
	local word n
	echo again >&"${HOLD[1]}"
	read -r -t 60 -u "${HOLD[0]}" word n || fail "the holding client did not answer"
	echo "$n"
}
hold_close() {
	local pid=$HOLD_PID
	exec {HOLD[1]}>&-
	wait "$pid" || true
}

# ---------------------------------------------------------------- fd limit
real=$VIRTMGRD
VIRTMGRD=$T/virtmgrd-nofile64
printf '#!/bin/sh\nexec prlimit --nofile=64:64 %q "$@"\n' "$real" >"$VIRTMGRD"
chmod +x "$VIRTMGRD"
start_daemon
VIRTMGRD=$real
grep -q "RLIMIT_NOFILE is 64" "$T/daemon.log" || fail "the daemon did not fit its connection limit to RLIMIT_NOFILE"
hold_open 100
echo "# RLIMIT_NOFILE 64: $HELD of 100 connections accepted, daemon at $(fd_count "$DAEMON_PID") fds"
((HELD > 0 && HELD < 64)) || fail "fd limit 64: $HELD connections accepted"
t0=$(cpu_ticks "$DAEMON_PID")
probes=0 refused=0
end=$((SECONDS + 4))
while ((SECONDS < end)); do
	out=$("$CHURN" "$SOCK" probe 2000) || { [[ $out == refused* ]] && refused=$((refused + 1)); }
	probes=$((probes + 1))
done
t1=$(cpu_ticks "$DAEMON_PID")
hz=$(getconf CLK_TCK)
cpu_ms=$(((t1 - t0) * 1000 / hz))
echo "# $refused of $probes new connections refused in 4 s; the daemon used $cpu_ms ms of CPU meanwhile"
((refused == probes)) || fail "a connection beyond the fd budget was not refused ($refused of $probes)"
((cpu_ms < 2000)) || fail "the daemon used $cpu_ms ms of CPU in 4 s of refused connections: busy loop?"
again=$(hold_again)
((again == HELD)) || fail "only $again of the $HELD held connections still work"
ok "fd limit 64: $HELD connections served, the rest refused at once ($cpu_ms ms CPU in 4 s), held ones keep working"
hold_close
wait_for 30 "$CHURN" "$SOCK" probe 2000 >/dev/null || fail "no recovery once the clients left"
vmctl version >/dev/null
ok "fd limit 64: new clients served again once the held connections closed"
stop_daemon

# ---------------------------------------------------------------- full run dir
mkdir -p "$T/full"
mount -t tmpfs -o size=1m,mode=0755 tmpfs "$T/full"
start_daemon --run-dir "$T/full/run"
# a VM that keeps printing while its file system fills up
chatty=$(vmctl run --detach --name chatty -- /bin/sh -c 'i=0; while :; do echo tick $i ................................................................................................................................; i=$((i+1)); sleep 0.3; done')
vmctl wait "$chatty" --state STARTED --timeout 180 >/dev/null || fail "chatty VM did not start"
chatty_log=$(vm_field "$chatty" run_dir)/console.log
wait_for 60 grep -q '^tick 1' "$chatty_log" || fail "chatty VM prints nothing"
dd if=/dev/zero of="$T/full/filler" bs=4k 2>/dev/null || true
echo "# tmpfs: $(df -k --output=avail "$T/full" | tail -1 | tr -d ' ') KiB free after filling"
set +e
msg=$(vmctl run --detach --name full -- /bin/true 2>&1)
rc=$?
set -e
((rc == 125)) || fail "StartVm on a full run dir: vmctl exited $rc: $msg"
grep -q RESOURCE_EXHAUSTED <<<"$msg" && grep -q "$T/full/run" <<<"$msg" ||
	fail "StartVm on a full run dir: unclear error: $msg"
[[ $(vm_field full state)/$(vm_field full death_reason) == DEAD/START_FAILED ]] ||
	fail "the refused VM is $(vm_field full state)/$(vm_field full death_reason)"
[[ $(ls -A "$T/full/run/vms") == "$(vm_field "$chatty" cid)" ]] || fail "left in the full run dir: $(ls -A "$T/full/run/vms")"
vmctl version >/dev/null || fail "the daemon does not answer after the failed start"
ok "full run dir: StartVm refused ($msg), nothing left behind, daemon serving"
wait_for 60 grep -q "writing console.log: No space left on device" "$T/daemon.log" ||
	fail "console.log writes on a full file system are not reported"
sleep 3     # more console output meets the full file system
n=$(grep -c "writing console.log" "$T/daemon.log")
((n == 1)) || fail "a full file system logged $n warnings instead of one"
[[ $(vm_field "$chatty" state) == STARTED ]] || fail "the running VM did not survive its full file system"
ok "full run dir under a running VM: one warning, the VM keeps running"
rm -f "$T/full/filler"
wait_for 60 grep -q "console.log is written again" "$T/daemon.log" || fail "console.log not resumed after space was freed"
before=$(wc -l <"$chatty_log")
wait_for 30 bash -c "(( \$(wc -l <'$chatty_log') > $before ))" || fail "console.log does not grow again"
vmctl kill "$chatty" >/dev/null
ok "space freed: console.log written again ($(grep -o '[0-9]* bytes were lost' "$T/daemon.log"))"
id=$(vmctl run --detach --name roomy -- /bin/sleep 600)
vmctl wait "$id" --state STARTED --timeout 180 >/dev/null || fail "no VM starts once there is room again"
vmctl kill "$id" >/dev/null
ok "full run dir: VMs start again once space is freed"
stop_daemon
wait_for 30 umount "$T/full" 2>/dev/null || { fuser -vm "$T/full" >&2 || true; fail "the full tmpfs stays busy after the daemon stopped"; }

# ---------------------------------------------------------------- configured limits
start_daemon --max-vms 2 --max-connections 5 --max-streams 4
a=$(vmctl run --detach --name a -- /bin/sleep 600)
b=$(vmctl run --detach --name b -- /bin/sleep 600)
set +e
msg=$(vmctl run --detach --name c -- /bin/sleep 600 2>&1)
rc=$?
set -e
((rc == 125)) && grep -q RESOURCE_EXHAUSTED <<<"$msg" && grep -q "maximum of 2 VMs" <<<"$msg" ||
	fail "third VM with --max-vms 2: vmctl $rc: $msg"
ok "--max-vms 2: the third CreateVm gets $msg"
vmctl kill "$b" >/dev/null
c=$(vmctl run --detach --name c -- /bin/sleep 600) || fail "no VM after one of two was killed"
ok "--max-vms 2: room again once a VM is dead"

out=$("$CHURN" "$SOCK" streams 10 "$a")
echo "# 10 WatchVm streams on one connection with --max-streams 4: $(head -1 <<<"$out")"
[[ $(head -1 <<<"$out") == "ok 4 refused 6" ]] || fail "--max-streams 4: $out"
grep -q "too many concurrent calls on this connection (limit 4)" <<<"$out" || fail "--max-streams: $out"
ok "--max-streams 4: streams 5..10 refused with RESOURCE_EXHAUSTED ($(tail -1 <<<"$out"))"

hold_open 10
((HELD == 5)) || fail "--max-connections 5: $HELD of 10 connections accepted"
out=$("$CHURN" "$SOCK" probe 2000) && fail "a sixth connection was served"
[[ $out == refused* ]] || fail "sixth connection: $out"
[[ $(hold_again) == 5 ]] || fail "held connections stopped working"
hold_close
wait_for 30 "$CHURN" "$SOCK" probe 2000 >/dev/null || fail "no recovery under --max-connections"
grep -q "connection limit (5) reached" "$T/daemon.log" || fail "the refusal is not logged"
ok "--max-connections 5: the sixth connection refused at once ($out), logged; served again after"

vmctl kill "$a" >/dev/null
vmctl kill "$c" >/dev/null
echo "$NTESTS passed, 0 failed"
