#!/bin/bash
# run_progress.sh - `vmctl run` shows a progress line on stderr while the VM
# boots when stderr is a terminal (script(1) gives it a pty), and writes
# nothing extra to stderr when it is not.
set -euo pipefail
source "$top_srcdir/tests/integration/lib.sh"

command -v script >/dev/null || fail "script(1) is missing (Debian: bsdutils)"
start_daemon

# stderr to a pty: the line "vmctl: vm NAME: STATE N.Ns", drawn with \r and
# erased (ESC [K) before the console output follows
script -qec "$VMCTL_BIN --socket $SOCK run --name prog-tty -- /bin/sh -c 'exit 5'; echo rc=\$?" \
	"$T/typescript" >/dev/null </dev/null || fail "script(1) failed"
grep -aq 'rc=5' "$T/typescript" || fail "vmctl run on a pty: $(cat -v "$T/typescript")"
grep -aqE $'\r\e\\[Kvmctl: vm prog-tty: (NOT_STARTED|STARTING) [0-9]+\\.[0-9]s' "$T/typescript" ||
	fail "no progress line on the terminal: $(cat -v "$T/typescript" | head -c 2000)"
ok "progress line on a terminal"

# stderr to a file: only the console on stdout, stderr stays empty
rc=0
vmctl run --name prog-file -- /bin/sh -c 'exit 6' >"$T/out" 2>"$T/err" </dev/null || rc=$?
[[ $rc == 6 ]] || fail "vmctl run: exit $rc: $(cat "$T/err")"
[[ ! -s $T/err ]] || fail "stderr is not a terminal, yet vmctl wrote: $(cat -v "$T/err")"
ok "nothing on stderr when it is not a terminal"
