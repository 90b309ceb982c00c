#!/bin/bash
# vmctl_basic.sh - vmctl against a real virtmgrd on a temp socket, no guest:
# info (human and --json), version, list, help, the error shapes and exit
# codes: RPC failure -> "vmctl: CODE: message" and 1, no daemon -> the exact
# "cannot connect" message and 2, bad arguments -> usage and 2.
set -euo pipefail

top_builddir=${top_builddir:-$(pwd)}
vmctl=$top_builddir/client/vmctl
daemon=$top_builddir/server/virtmgrd
py=$(command -v python3)

fail() { printf 'FAIL: %s\n' "$*" >&2; [[ -f ${tmp:-}/log ]] && cat "$tmp/log" >&2; exit 1; }
ok() { printf 'ok: %s\n' "$*"; }

tmp=$(mktemp -d)
pid=
cleanup() {
	if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

"$daemon" --socket "$tmp/s.sock" --run-dir "$tmp/run" >"$tmp/log" 2>&1 &
pid=$!
# hang guard only
for ((i = 0; i < 3000; i++)); do
	[[ -S $tmp/s.sock ]] && break
	kill -0 "$pid" 2>/dev/null || fail "virtmgrd exited before listening"
	sleep 0.02
done
[[ -S $tmp/s.sock ]] || fail "virtmgrd did not listen"
export VIRTMGR_SOCKET=$tmp/s.sock

# run CMD... -> $out, $err, $rc
run() {
	rc=0
	"$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	out=$(cat "$tmp/out")
	err=$(cat "$tmp/err")
}

run "$vmctl" info
[[ $rc == 0 ]] || fail "vmctl info: exit $rc: $err"
for key in version mode hypervisor 'vsock mode' 'CID range' features pid 'run dir' VMs connections; do
	grep -q "^$key: " <<<"$out" || fail "vmctl info lacks '$key:': $out"
done
grep -q '^mode: *regular$' <<<"$out" || fail "mode: $out"
grep -Eq '^hypervisor: *(kvm|tcg) \(.+\)$' <<<"$out" || fail "hypervisor and why: $out"
grep -q "^pid: *$pid$" <<<"$out" || fail "pid is not $pid: $out"
ok "vmctl info"

run "$vmctl" --json info
[[ $rc == 0 ]] || fail "vmctl --json info: exit $rc: $err"
[[ $(wc -l <<<"$out") == 1 ]] || fail "--json info is not one line: $out"
"$py" - "$out" "$pid" "$tmp/run" <<'PY' || fail "--json info: $out"
import json, os, sys
d = json.loads(sys.argv[1])
assert d["mode"] == "regular", d
assert d["hypervisor"] in ("kvm", "tcg"), d
assert d["pid"] == int(sys.argv[2]), d
assert os.path.realpath(d["run_dir"]) == os.path.realpath(sys.argv[3]), d
assert d["cid_min"] <= d["cid_max"], d
assert isinstance(d["features"], list) and all(isinstance(f, str) for f in d["features"]), d
assert d["vm_count"] == 0 and d["connection_count"] >= 1, d
PY
ok "vmctl --json info"

run "$vmctl" version
[[ $rc == 0 ]] || fail "vmctl version: exit $rc: $err"
ver=$("$daemon" --version | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -1)
[[ $out == "vmctl $ver"$'\n'"virtmgrd $ver" ]] || fail "vmctl version: '$out' (daemon says $ver)"
run "$vmctl" --json version
"$py" -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["vmctl"] and d["virtmgrd"]' "$out" ||
	fail "--json version: $out"
ok "vmctl version"

run "$vmctl" list
[[ $rc == 0 && $out == ID* && $(wc -l <<<"$out") == 1 ]] || fail "vmctl list on no VMs: $rc '$out' $err"
run "$vmctl" --json list
[[ $rc == 0 && -z $out ]] || fail "vmctl --json list on no VMs: $rc '$out'"
ok "vmctl list"

# the daemon's error status, printed as CODE: message, exit 1
run "$vmctl" info no-such-vm
[[ $rc == 1 ]] || fail "info of a missing VM: exit $rc"
[[ $err == "vmctl: NOT_FOUND: "*no-such-vm* ]] || fail "info of a missing VM: '$err'"
for cmd in "stop no-such-vm" "kill no-such-vm" "wait no-such-vm" "suspend no-such-vm" \
	"resume no-such-vm" "logs no-such-vm" "console no-such-vm" "connect no-such-vm 9100"; do
	# shellcheck disable=SC2086
	run "$vmctl" $cmd </dev/null
	[[ $rc == 1 && $err == "vmctl: "[A-Z_]*": "* ]] || fail "vmctl $cmd: exit $rc, '$err'"
done
ok "RPC errors exit 1 with the status"

# no daemon: exit 2 and the exact message, for --socket and for $VIRTMGR_SOCKET
run "$vmctl" --socket "$tmp/none.sock" info
[[ $rc == 2 ]] || fail "missing daemon: exit $rc"
[[ $err == "vmctl: cannot connect to $tmp/none.sock: No such file or directory (is virtmgrd running?)" ]] ||
	fail "missing daemon message: '$err'"
VIRTMGR_SOCKET=$tmp/none.sock run "$vmctl" list
[[ $rc == 2 && $err == "vmctl: cannot connect to $tmp/none.sock: No such file or directory (is virtmgrd running?)" ]] ||
	fail "missing daemon via VIRTMGR_SOCKET: $rc '$err'"
: >"$tmp/not-a-socket"
run "$vmctl" --socket "$tmp/not-a-socket" info
[[ $rc == 2 && $err == "vmctl: cannot connect to $tmp/not-a-socket: Connection refused (is virtmgrd running?)" ]] ||
	fail "not a socket: $rc '$err'"
ok "missing daemon: exit 2 with the path and errno text"

# bad arguments: usage on stderr, exit 2, daemon never asked
for args in "" "frob" "--bogus info" "--timeout x info" "stop" "stop a b" \
	"wait --state BOOTED a" "logs --kind serial a" "connect a" "connect a port" \
	"info a b" "list extra" "help nope"; do
	# shellcheck disable=SC2086
	run "$vmctl" $args
	[[ $rc == 2 ]] || fail "vmctl $args: exit $rc, expected 2"
	[[ -z $out ]] || fail "vmctl $args: wrote to stdout: $out"
	[[ $err == *"Usage: vmctl"* || $err == *"Try 'vmctl"* ]] || fail "vmctl $args: no usage hint: '$err'"
done
run "$vmctl" stop --nope x
[[ $err == "vmctl stop: unknown option '--nope'"$'\n'"Usage: vmctl stop [--force] [--timeout SEC] VM"$'\n'"Try 'vmctl help stop'." ]] ||
	fail "usage error format: '$err'"
ok "bad arguments exit 2 with usage"

# run, exec and shell exit with a payload's code: their own failures are 125
for args in "run --mem lots" "run --accel xen" "exec" "exec a" "exec a --bogus -- true" "shell" "shell a b"; do
	# shellcheck disable=SC2086
	run "$vmctl" $args
	[[ $rc == 125 ]] || fail "vmctl $args: exit $rc, expected 125"
	[[ -z $out ]] || fail "vmctl $args: wrote to stdout: $out"
	[[ $err == *"Usage: vmctl"* ]] || fail "vmctl $args: no usage line: '$err'"
done
run "$vmctl" --socket "$tmp/none.sock" run -- /bin/true
[[ $rc == 125 && $err == "vmctl: cannot connect to $tmp/none.sock: "* ]] || fail "run without a daemon: $rc '$err'"
run "$vmctl" --socket "$tmp/none.sock" exec a -- true
[[ $rc == 125 && $err == "vmctl: cannot connect to $tmp/none.sock: "* ]] || fail "exec without a daemon: $rc '$err'"
run "$vmctl" exec no-such-vm -- true
[[ $rc == 125 && $err == "vmctl: exec: cannot reach the guest agent of no-such-vm: NOT_FOUND: "* ]] ||
	fail "exec in a missing VM: $rc '$err'"
run "$vmctl" run --kernel "$tmp/no-such-kernel" -- /bin/true
[[ $rc == 125 && $err == "vmctl: "[A-Z_]*": "*no-such-kernel* ]] || fail "run with a missing kernel: $rc '$err'"
ok "run, exec and shell: usage errors, no daemon and failed calls exit 125"

for c in info version run list stop kill wait console logs suspend resume connect; do
	run "$vmctl" --socket "$tmp/none.sock" "$c" --help
	[[ $rc == 0 && $out == "Usage: vmctl $c"* ]] || fail "vmctl $c --help: $rc"
	run "$vmctl" help "$c"
	[[ $rc == 0 && $out == "Usage: vmctl $c"* ]] || fail "vmctl help $c: $rc"
done
run "$vmctl" --help
[[ $rc == 0 && $out == "Usage: vmctl"* ]] || fail "vmctl --help"
ok "--help for every command"

kill "$pid"
wait "$pid" || fail "virtmgrd exit status $? on SIGTERM"
pid=
echo PASS
