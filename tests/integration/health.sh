#!/usr/bin/env bash
# A hung guest is noticed (server/vm-health.c), with real guests: the daemon
# calls Agent/Ping every second and declares a guest unresponsive after 3
# unanswered checks in a row.
#  (a) on_hang kill: the payload (guest root, a child of the agent process:
#      $PPID) SIGSTOPs the agent. The VM gets an ERROR event "guest
#      unresponsive" and dies with WATCHDOG; `vmctl run` exits 121.
#  (b) on_hang none: the same ERROR event, the VM stays alive (its message
#      says so), and `vmctl stop` still ends it (SHUTDOWN).
#  (c) a CPU-bound payload, busy for 8 checks, is not a hang: it finishes
#      with its own exit code and no ERROR event.
# The waits are generous (TCG guests on a loaded machine): what is asserted
# is that the event and the death happen, not how fast; the time taken is
# printed.
source "$(dirname "$0")/lib.sh"
start_daemon --cid-range 3300-3309 --health-interval 1 --health-misses 3

# The payload becomes READY, then stops its parent, the agent process (not
# PID 1, vmagent's init half: docs/guest.md), and sleeps.
stop_agent='echo >&$VIRTMGR_READY_FD; sleep 2; echo "stopping agent $PPID"; kill -STOP $PPID; sleep 1000'

# --- (a) on_hang kill
t0=$SECONDS
vmctl run --events --on-hang kill --name hung-kill -- /bin/sh -c "$stop_agent" \
	>"$T/a.console" 2>"$T/a.events" &
runner=$!
wait_for 180 grep -q '^stopping agent [0-9]' "$T/a.console" || fail "(a) the payload did not stop its agent: $(tail -5 "$T/a.console")"
t1=$SECONDS
rc=0
timeout 60 tail --pid="$runner" -f /dev/null || fail "(a) the VM is still alive 60 s after its agent was stopped"
wait "$runner" || rc=$?
grep -q "ERROR 0: guest unresponsive" "$T/a.events" || fail "(a) no ERROR event 'guest unresponsive': $(cat "$T/a.events")"
grep -Eq "DIED \(WATCHDOG\)|died: WATCHDOG" "$T/a.events" || fail "(a) the VM did not die with WATCHDOG: $(cat "$T/a.events")"
((rc == 121)) || fail "(a) vmctl run exited $rc, expected 121 (WATCHDOG)"
grep -q "guest unresponsive.*killing it (on_hang kill)" "$T/daemon.log" || fail "(a) the daemon did not log the hang"
echo "# (a) agent stopped -> DEAD/WATCHDOG after $((SECONDS - t1)) s (boot and payload: $((t1 - t0)) s)"
ok "on_hang kill: a stopped agent gives an ERROR 'guest unresponsive' event and DEAD/WATCHDOG (exit code 121)"

# --- (b) on_hang none: the event, the VM stays, vmctl stop ends it
vmctl run --events --on-hang none --name hung-none -- /bin/sh -c "$stop_agent" \
	>"$T/b.console" 2>"$T/b.events" &
runner=$!
wait_for 180 grep -q '^stopping agent [0-9]' "$T/b.console" || fail "(b) the payload did not stop its agent: $(tail -5 "$T/b.console")"
wait_for 60 grep -q "ERROR 0: guest unresponsive" "$T/b.events" ||
	fail "(b) no ERROR event 'guest unresponsive' within 60 s: $(cat "$T/b.events")"
sleep 3         # a few more checks: none of them may kill it
[[ $(vm_field hung-none state) == READY ]] || fail "(b) the VM is $(vm_field hung-none state), not READY"
[[ $(vm_field hung-none message) == "guest unresponsive"* ]] ||
	fail "(b) the VM's message does not say it is unresponsive: $(vm_field hung-none message)"
grep -q "guest unresponsive.*leaving it running (on_hang none)" "$T/daemon.log" || fail "(b) the daemon did not log the hang"
[[ $(grep -c "ERROR 0: guest unresponsive" "$T/b.events") == 1 ]] || fail "(b) the hang was reported more than once"
ok "on_hang none: the ERROR event, once, and the VM stays READY"
vmctl stop --timeout 5 hung-none >/dev/null || fail "(b) vmctl stop failed"
rc=0
wait "$runner" || rc=$?
((rc == 0)) || fail "(b) vmctl run exited $rc after vmctl stop, expected 0 (SHUTDOWN): $(cat "$T/b.events")"
! grep -q "WATCHDOG" "$T/b.events" || fail "(b) a WATCHDOG death with on_hang none"
ok "on_hang none: vmctl stop still ends the hung VM (SHUTDOWN)"

# --- (c) a busy payload is not a hung guest
busy='sh -c "while :; do :; done" & b=$!; echo busy; sleep 8; kill $b; echo done; exit 4'
rc=0
vmctl run --events --name busy -- /bin/sh -c "$busy" >"$T/c.console" 2>"$T/c.events" || rc=$?
grep -q '^done' "$T/c.console" || fail "(c) the busy payload did not run to its end: $(tail -5 "$T/c.console")"
((rc == 4)) || fail "(c) vmctl run exited $rc, expected the payload's 4: $(cat "$T/c.events")"
! grep -q "ERROR" "$T/c.events" || fail "(c) a busy payload tripped the health check: $(cat "$T/c.events")"
! grep -q "vm [0-9a-f]* (busy, .*guest unresponsive" "$T/daemon.log" || fail "(c) the daemon took the busy guest for hung"
ok "a CPU-bound payload busy for 8 checks finishes with its own exit code (4), no ERROR event"

echo "$NTESTS passed, 0 failed"
