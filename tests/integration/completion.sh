#!/bin/bash
# completion.sh - etc/bash-completion/vmctl sourced in bash, driven the way
# readline drives it (COMP_WORDS/COMP_CWORD, then COMPREPLY is read):
# commands, per-command options, option values, and VM names and ids from a
# real virtmgrd on a temp socket (two detached CreateVm without StartVm:
# NOT_STARTED VMs with names, no guest needed).
set -euo pipefail

: "${top_builddir:?}" "${top_srcdir:?}"
vmctl=$top_builddir/client/vmctl
daemon=$top_builddir/server/virtmgrd
completion=$top_srcdir/etc/bash-completion/vmctl
py=/usr/bin/python3; [[ -x $py ]] || py=$(command -v python3) # Debian's, with python3-protobuf

tmp=$(mktemp -d)
pid=
fail() { printf 'FAIL: %s\n' "$*" >&2; [[ -f $tmp/log ]] && tail -n 30 "$tmp/log" >&2; exit 1; }
ok() { printf 'ok: %s\n' "$*"; }
cleanup() {
	if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# complete WORD...: the completions bash offers for the last WORD of the line
# (an empty last word completes a new argument), one per line, sorted.
complete_line() {
	env -i PATH="$(dirname "$vmctl"):/usr/bin:/bin" HOME="$tmp" bash --norc --noprofile -c '
		source "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_vmctl vmctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		printf "%s\n" "${COMPREPLY[@]}" | sort' completion "$completion" "$@"
}
expect() { # DESCRIPTION EXPECTED WORD...
	local what=$1 want=$2 got
	shift 2
	got=$(complete_line "$@" | tr '\n' ' ' | sed 's/ $//')
	[[ $got == "$want" ]] || fail "$what: '$*' completes to '$got', expected '$want'"
}

bash -n "$completion" || fail "syntax error in $completion"
expect "command" "stop" vmctl sto
expect "commands" "stats stop" vmctl st
expect "commands" "suspend" vmctl sus
expect "global options" "--json" vmctl --j
expect "run options" "--debug --detach --disk" vmctl run --d
expect "stop options" "--force" vmctl stop --f
expect "wait --state values" "READY" vmctl wait --state R
expect "logs --kind values" "console" vmctl logs --kind c
expect "help topics" "connect console" vmctl help con
expect "crash subcommands" "show" vmctl crash sh
expect "crash show options" "--sysroot" vmctl crash show x --sy
ok "commands, options and option values"

mkdir "$tmp/guest" && : >"$tmp/guest/vmlinuz" && : >"$tmp/guest/initramfs.img"
"$daemon" --socket "$tmp/s.sock" --run-dir "$tmp/run" --guest-dir "$tmp/guest" >"$tmp/log" 2>&1 &
pid=$!
for ((i = 0; i < 3000; i++)); do # hang guard only
	[[ -S $tmp/s.sock ]] && break
	kill -0 "$pid" 2>/dev/null || fail "virtmgrd exited before listening"
	sleep 0.02
done
ids=$(PYTHONPATH=$top_builddir/examples/python:$top_srcdir/examples/python "$py" - "$tmp/s.sock" <<'PY'
import sys
from virtmgr_example import Client
from protos import virtmgr_pb2
c = Client(sys.argv[1])
for name in ("compvm-alpha", "compvm-beta"):
    print(c.create_vm(virtmgr_pb2.VmConfig(name=name, detach=True)).id)
c.close()
PY
) || fail "CreateVm"
id1=$(head -n1 <<<"$ids")
[[ -n $id1 ]] || fail "no VM id"

expect "VM names (--socket)" "compvm-alpha compvm-beta" vmctl --socket "$tmp/s.sock" kill compvm
expect "VM name" "compvm-beta" vmctl --socket "$tmp/s.sock" info compvm-b
expect "VM id" "$id1" vmctl --socket "$tmp/s.sock" stop --force "${id1:0:${#id1}-1}"
expect "wait VM after --state" "compvm-alpha" vmctl --socket "$tmp/s.sock" wait --state DEAD compvm-a
expect "one VM argument only" "" vmctl --socket "$tmp/s.sock" kill compvm-alpha compvm
expect "no VM for run" "" vmctl --socket "$tmp/s.sock" list compvm
expect "VM for balloon" "compvm-alpha" vmctl --socket "$tmp/s.sock" balloon compvm-a
expect "no VM for top" "" vmctl --socket "$tmp/s.sock" top compvm
expect "top's options" "--delay" vmctl top --de
ok "VM names and ids from vmctl --json list"

# $VIRTMGR_SOCKET is honoured through vmctl itself
got=$(env -i PATH="$(dirname "$vmctl"):/usr/bin:/bin" VIRTMGR_SOCKET="$tmp/s.sock" bash --norc -c '
	source "$1"; COMP_WORDS=(vmctl suspend compvm-); COMP_CWORD=2; _vmctl
	printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' completion "$completion")
[[ $got == "compvm-alpha compvm-beta " ]] || fail "\$VIRTMGR_SOCKET: '$got'"
ok "VM names through \$VIRTMGR_SOCKET"

for id in $ids; do "$vmctl" --socket "$tmp/s.sock" kill "$id" >/dev/null; done
