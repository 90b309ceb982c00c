#!/bin/bash
# vmctl_run.sh - vmctl with real guests (TCG) through a real virtmgrd:
# `run` streams the console and exits with the payload's exit code; --events;
# --console FILE; --detach + list + info + wait + suspend/resume + logs +
# stop; SIGTERM to an attached `run` stops the VM and exits 143; a VM that
# never boots (boot timeout) maps its death reason to the documented code.
#
# Needs the guest image (`make guest-image`). Waits use hang guards only.
source "$(dirname "$0")/lib.sh"
vmctl=$VMCTL_BIN
py=$(command -v python3)
LIMIT=${GUEST_BOOT_LIMIT:-600}
tmp=$T

start_daemon --accel tcg
export VIRTMGR_SOCKET=$SOCK
V() { timeout "$LIMIT" "$vmctl" "$@"; }

# attached run: console on stdout, payload exit code
rc=0
V run --name r1 --events -- /bin/sh -c 'echo hello-from-payload; exit 7' >"$tmp/r1.out" 2>"$tmp/r1.err" || rc=$?
[[ $rc == 7 ]] || fail "run: exit $rc, expected the payload's 7; $(cat "$tmp/r1.err")"
grep -q hello-from-payload "$tmp/r1.out" || fail "run: payload output missing from stdout"
grep -q '^vmctl: vm r1: STARTED$' "$tmp/r1.err" || fail "run --events: no STARTED event: $(cat "$tmp/r1.err")"
grep -q '^vmctl: vm r1: DEAD$' "$tmp/r1.err" || fail "run --events: no DEAD event"
ok "run exits with the payload's exit code, console on stdout, events on stderr"

rc=0
V run --name r2 --console "$tmp/r2.console" --env GREETING=hi-env -- /bin/sh -c 'echo $GREETING' \
	>"$tmp/r2.out" 2>"$tmp/r2.err" || rc=$?
[[ $rc == 0 ]] || fail "run --console: exit $rc; $(cat "$tmp/r2.err")"
grep -q hi-env "$tmp/r2.console" || fail "run --console FILE: output not in the file"
grep -q hi-env "$tmp/r2.out" && fail "run --console FILE: output also on stdout"
ok "run --console FILE, --env"

# detached VM: survives vmctl, visible to list/info/wait/logs, stopped by stop
id=$(V run --detach --name d1 -- /bin/sh -c 'echo detached-up; sleep 600')
[[ -n $id ]] || fail "run --detach printed no id"
V wait --state STARTED d1 >/dev/null || fail "wait --state STARTED"
V list >"$tmp/list"
grep -Eq "^$id +d1 +[0-9]+ +STARTED" "$tmp/list" || fail "list: $(cat "$tmp/list")"
V --json list >"$tmp/list.json"
"$py" - "$tmp/list.json" "$id" <<'PY' || fail "list --json: $(cat "$tmp/list.json")"
import json, sys
vms = [json.loads(l) for l in open(sys.argv[1])]
d1 = [v for v in vms if v["id"] == sys.argv[2]]
assert len(d1) == 1 and d1[0]["name"] == "d1" and d1[0]["detached"] is True, vms
assert d1[0]["state"] in ("STARTED", "READY") and d1[0]["exit_code"] is None, d1
PY
V info d1 | grep "^detached: *yes$" >/dev/null || fail "info d1"
V suspend d1 | grep suspended >/dev/null || fail "suspend"
V resume d1 >/dev/null || fail "resume"
# the payload's line reaches the console log (hang guard: the loop ends within LIMIT)
for ((i = 0; i < LIMIT * 5; i++)); do
	V logs d1 | grep detached-up >/dev/null && break
	sleep 0.2
done
V logs d1 | grep detached-up >/dev/null || fail "logs d1 lacks the payload's output"
V logs --kind qemu d1 >/dev/null || fail "logs --kind qemu"
rc=0
V wait --timeout 0.1 d1 2>"$tmp/wait.err" || rc=$?
[[ $rc == 1 ]] && grep -q '^vmctl: DEADLINE_EXCEEDED: ' "$tmp/wait.err" || fail "wait --timeout: $rc $(cat "$tmp/wait.err")"
V logs -f d1 >"$tmp/follow.out" 2>"$tmp/follow.err" &
fpid=$!
# it has the log open once it printed what is there (hang guard only)
for ((i = 0; i < LIMIT * 50; i++)); do
	grep -q detached-up "$tmp/follow.out" && break
	kill -0 "$fpid" 2>/dev/null || break
	sleep 0.02
done
V stop --timeout 30 d1 | grep '^d1: DEAD' >/dev/null || fail "stop d1"
# logs -f ends by itself once the VM is dead
rc=0
wait "$fpid" || rc=$?
[[ $rc == 0 ]] || fail "logs -f: exit $rc: $(cat "$tmp/follow.err")"
grep -q detached-up "$tmp/follow.out" || fail "logs -f lacks the payload's output"
ok "detach, list, info, suspend/resume, logs, logs -f, wait, stop"

# SIGTERM to an attached run: the VM is stopped, vmctl exits 143
"$vmctl" run --name s1 -- /bin/sh -c 'echo s1-up; sleep 600' >"$tmp/s1.out" 2>"$tmp/s1.err" &
rpid=$!
# the background vmctl creates s1 when it gets to it (hang guard only)
for ((i = 0; i < LIMIT * 50; i++)); do
	"$vmctl" info s1 >/dev/null 2>&1 && break
	kill -0 "$rpid" 2>/dev/null || fail "run s1 exited early: $(cat "$tmp/s1.err")"
	sleep 0.02
done
V wait --state STARTED s1 >/dev/null || fail "wait s1"
kill -TERM "$rpid"
rc=0
wait "$rpid" || rc=$?
[[ $rc == 143 ]] || fail "run after SIGTERM: exit $rc, expected 143; $(cat "$tmp/s1.err")"
rc=0
V info s1 >/dev/null 2>&1 || rc=$?
[[ $rc == 1 ]] || fail "s1 still known after its run was stopped (exit $rc)"
ok "SIGTERM stops the VM, exit 143"

# a guest that never starts (not a kernel) dies; the death reason's code comes back
head -c 4096 /dev/zero >"$tmp/bad-kernel"
rc=0
V run --name bad --kernel "$tmp/bad-kernel" --boot-timeout 5 >"$tmp/bad.out" 2>"$tmp/bad.err" || rc=$?
case $rc in
125 | 129 | 134 | 123) ;;
*) fail "run of a broken kernel: exit $rc (expected 125 START_FAILED, 129 HANGUP, 134 CRASH or 123); $(cat "$tmp/bad.err")" ;;
esac
ok "a VM that cannot boot exits with its death reason's code ($rc)"

kill "$DAEMON_PID"
wait "$DAEMON_PID" || fail "virtmgrd exit status $? on SIGTERM"
DAEMON_PID=
pid=
echo PASS
