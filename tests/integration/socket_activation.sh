#!/bin/bash
# socket_activation.sh - virtmgrd started the way systemd's virtmgrd.socket
# starts it: tests/integration/sd_activate.py binds the socket and execs the
# daemon with the listening socket at fd 3, LISTEN_FDS=1 and LISTEN_PID.
# vmctl talks to it over the inherited socket; with --idle-exit 1 the daemon
# exits (status 0) once idle, but not while a VM lives; the socket file stays,
# and a second activation on the same path serves again. No guest is needed:
# a detached CreateVm without StartVm is a live NOT_STARTED VM.
set -euo pipefail

: "${top_builddir:?}" "${top_srcdir:?}"
vmctl=$top_builddir/client/vmctl
daemon=$top_builddir/server/virtmgrd
launcher=$top_srcdir/tests/integration/sd_activate.py
py=/usr/bin/python3; [[ -x $py ]] || py=$(command -v python3) # Debian's, with python3-protobuf

tmp=$(mktemp -d)
# as root each VM runs under a uid of its own, which must reach its run
# directory below this one (docs/sandbox.md)
chmod 0711 "$tmp"
lpid=
fail() { printf 'FAIL: %s\n' "$*" >&2; [[ -f $tmp/log ]] && tail -n 40 "$tmp/log" >&2; exit 1; }
ok() { printf 'ok: %s\n' "$*"; }
cleanup() {
	if [[ -n $lpid ]]; then kill "$lpid" 2>/dev/null || true; wait "$lpid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
sock=$tmp/virtmgrd.sock
export VIRTMGR_SOCKET=$sock
# CreateVm checks that the kernel and initrd can be opened; nothing boots here
mkdir "$tmp/guest" && : >"$tmp/guest/vmlinuz" && : >"$tmp/guest/initramfs.img"

activate() { # DAEMON-OPTIONS...
	"$py" "$launcher" "$sock" -- "$daemon" --run-dir "$tmp/run" --guest-dir "$tmp/guest" "$@" >>"$tmp/log" 2>&1 &
	lpid=$!
	for ((i = 0; i < 3000; i++)); do # hang guard only
		[[ -S $sock ]] && return 0
		kill -0 "$lpid" 2>/dev/null || fail "the launcher exited before binding"
		sleep 0.02
	done
	fail "no socket at $sock"
}

# wait_exit: wait for the launcher (= the daemon's status); hang guard 120 s.
wait_exit() {
	local i rc=0
	for ((i = 0; i < 1200; i++)); do
		kill -0 "$lpid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$lpid" 2>/dev/null && fail "virtmgrd did not exit when idle"
	wait "$lpid" || rc=$?
	lpid=
	return "$rc"
}

# 1. served over the inherited socket, by the launcher's child
activate --idle-exit 1
dpid=$("$vmctl" --json info | "$py" -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
[[ $dpid =~ ^[0-9]+$ ]] || fail "vmctl info over the inherited socket: $dpid"
[[ $(ps -o ppid= -p "$dpid" | tr -d ' ') == "$lpid" ]] || fail "pid $dpid is not the launcher's child"
grep -q 'listening on' "$tmp/log" && fail "the daemon opened its own socket instead of using fd 3"
ok "vmctl info is served over the socket-activated daemon's fd 3"

# 2. idle exit, status 0; the socket file (systemd's) stays
rc=0
wait_exit || rc=$?
[[ $rc == 0 ]] || fail "virtmgrd exited with $rc after the idle period"
grep -q 'idle for 1 s' "$tmp/log" || fail "no idle-exit message in the log"
[[ -S $sock ]] || fail "the socket file went away with the daemon"
ok "--idle-exit 1: exit status 0 with no connection and no VM"

# 3. a live VM keeps the daemon up past several idle periods; it exits once
# the VM is gone
activate --idle-exit 1
PYTHONPATH=$top_builddir/examples/python:$top_srcdir/examples/python "$py" - "$sock" <<'PY' || fail "CreateVm (detached)"
import sys
from virtmgr_example import Client
from protos import virtmgr_pb2
c = Client(sys.argv[1])
vm = c.create_vm(virtmgr_pb2.VmConfig(name="keepalive", detach=True))
assert vm.state == virtmgr_pb2.VM_STATE_NOT_STARTED, vm
c.close()
PY
sleep 3 # three idle periods; the check below does not depend on the machine's speed
kill -0 "$lpid" 2>/dev/null || fail "virtmgrd exited although a VM was alive"
[[ $("$vmctl" --json list | "$py" -c 'import json,sys; print(json.loads(sys.stdin.readline())["name"])') == keepalive ]] ||
	fail "vmctl list does not show the VM"
"$vmctl" kill keepalive >/dev/null || fail "vmctl kill keepalive"
rc=0
wait_exit || rc=$?
[[ $rc == 0 ]] || fail "virtmgrd exited with $rc after its VM was killed"
ok "a live VM holds off the idle exit; the daemon exits after it is killed"

# 4. a daemon that opens its own socket ignores --idle-exit (and says so);
# bad values are refused
"$daemon" --socket "$tmp/plain.sock" --run-dir "$tmp/run2" --idle-exit 1 >"$tmp/plain.log" 2>&1 &
ppid_=$!
for ((i = 0; i < 3000; i++)); do [[ -S $tmp/plain.sock ]] && break; sleep 0.02; done
VIRTMGR_SOCKET=$tmp/plain.sock "$vmctl" info >/dev/null || fail "plain daemon with --idle-exit"
grep -q -- '--idle-exit applies only' "$tmp/plain.log" || fail "no note that --idle-exit is ignored"
kill "$ppid_"; wait "$ppid_" || true
"$daemon" --idle-exit 0 >/dev/null 2>"$tmp/err" && fail "--idle-exit 0 accepted"
grep -q -- '--idle-exit' "$tmp/err" || fail "--idle-exit 0: $(cat "$tmp/err")"
ok "--idle-exit is ignored without LISTEN_FDS and validated"
