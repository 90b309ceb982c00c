#!/usr/bin/env bash
# vmagent as a service on the host (--no-pid1, Agent on a Unix socket): the
# Exec protocol end to end with vmctl exec --agent-socket - exit codes and
# signals, stdout/stderr, env and cwd, 8 MiB through cat with a checksum, a
# 100 MiB burst through a slow reader with both sides' memory bounded, exec
# failures, an interactive pty under tmux, and a malformed configuration
# rejected with the property named.
set -euo pipefail
: "${top_builddir:?top_builddir is not set (run through make check)}"
AGENT=$top_builddir/guest/vmagent/vmagent
VMCTL=$top_builddir/client/vmctl
T=$(mktemp -d /tmp/virtmgr-agent.XXXXXX)
ASOCK=$T/agent.sock
AGENT_PID=
NTESTS=0
TMUX_SOCK=virtmgr-agent-$$

cleanup() {
	local rc=$?
	tmux -L "$TMUX_SOCK" kill-server 2>/dev/null || true
	if [[ -n $AGENT_PID ]]; then
		kill "$AGENT_PID" 2>/dev/null || true
		wait "$AGENT_PID" 2>/dev/null || true
	fi
	if ((rc != 0)) && [[ -f $T/agent.log ]]; then
		echo "---- vmagent log" >&2
		tail -n 40 "$T/agent.log" >&2
	fi
	rm -rf "$T"
	exit "$rc"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { NTESTS=$((NTESTS + 1)); echo "ok $NTESTS - $*"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
ex() { "$VMCTL" exec --agent-socket "$ASOCK" "$@"; }

# no VirtualMachineService here: the agent gives up on it after 1 s and serves on
"$AGENT" --no-pid1 --agent-socket "$ASOCK" --host-socket "$T/no-host.sock" --connect-timeout 1 \
	--config "$T/no-config" >"$T/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 100); do [[ -S $ASOCK ]] && break; sleep 0.05; done
[[ -S $ASOCK ]] || fail "vmagent did not create $ASOCK"

# --- exit codes and signals
for code in 0 1 42; do
	set +e
	ex -- sh -c "exit $code"
	rc=$?
	set -e
	[[ $rc -eq $code ]] || fail "exit $code came back as $rc"
done
set +e
ex -- sh -c 'kill -9 $$'
rc=$?
set -e
[[ $rc -eq 137 ]] || fail "death by SIGKILL came back as $rc, not 137"
ok "exit codes 0, 1, 42 and SIGKILL (137) round-trip"

# --- stdout and stderr stay apart; env and cwd apply
out=$(ex -e GREETING=hello --cwd /tmp -- sh -c 'echo "$GREETING from $(pwd)"; echo to-stderr >&2' 2>"$T/err")
[[ $out == "hello from /tmp" ]] || fail "stdout was '$out'"
[[ $(cat "$T/err") == to-stderr ]] || fail "stderr was '$(cat "$T/err")'"
ok "stdout/stderr separate, --env and --cwd applied"

# --- 8 MiB through cat, checksum
head -c $((8 << 20)) /dev/urandom >"$T/in"
want=$(sha256sum <"$T/in" | cut -d' ' -f1)
got=$(ex -- cat <"$T/in" | sha256sum | cut -d' ' -f1)
[[ $got == "$want" ]] || fail "8 MiB through cat: checksum $got != $want"
ok "8 MiB through 'cat' come back intact"

# --- 100 MiB burst, slow reader: memory stays bounded on both sides
mkfifo "$T/fifo"
ex -- head -c $((100 << 20)) /dev/zero >"$T/fifo" &
exec_pid=$!
exec 3<"$T/fifo"
# read nothing for a while: the producer must stall, not buffer
dd bs=1 count=1 <&3 >/dev/null 2>&1
sleep 2
a_rss=$(rss_kib "$AGENT_PID")
# $exec_pid is the subshell running the shell function; vmctl is its child
client=$(pgrep -P "$exec_pid" | head -1)
c_rss=$(rss_kib "${client:-$exec_pid}")
total=$((1 + $(cat <&3 | wc -c)))
exec 3<&-
wait "$exec_pid" || fail "vmctl exec of the burst failed"
echo "# stalled 100 MiB burst: vmagent RSS ${a_rss} KiB, vmctl RSS ${c_rss} KiB"
[[ $total -eq $((100 << 20)) ]] || fail "burst delivered $total bytes"
((a_rss < 32768)) || fail "vmagent RSS ${a_rss} KiB while the reader stalled"
# (vmctl may carry ASan's shadow memory: the bound is still far below 100 MiB)
((c_rss < 65536)) || fail "vmctl RSS ${c_rss} KiB while the reader stalled"
ok "100 MiB burst through a stalled reader: all bytes, vmagent and vmctl memory bounded"

# --- exec failures name the problem
set +e
ex -- /no/such/program 2>"$T/err"
rc=$?
set -e
[[ $rc -eq 127 ]] || fail "missing program: exit $rc"
grep -q "NOT_FOUND.*/no/such/program" "$T/err" || fail "missing program: '$(cat "$T/err")'"
set +e
ex --cwd /no/such/dir -- true 2>"$T/err"
rc=$?
set -e
[[ $rc -eq 126 ]] && grep -q "cwd: cannot change to /no/such/dir" "$T/err" || fail "bad cwd: $rc '$(cat "$T/err")'"
ok "a missing program (exit 127) or directory (exit 126) fails with a message naming it"

# --- interactive pty under tmux
tmux -L "$TMUX_SOCK" new-session -d -x 100 -y 30 \
	"$VMCTL exec --tty --agent-socket $ASOCK -- /bin/sh; echo vmctl-exited-\$?; sleep 30"
sleep 0.5
tmux -L "$TMUX_SOCK" send-keys 'echo h""i; stty size' Enter
for _ in $(seq 100); do
	tmux -L "$TMUX_SOCK" capture-pane -p >"$T/pane"
	grep -q '^hi$' "$T/pane" && grep -q '^30 100$' "$T/pane" && break
	sleep 0.1
done
grep -q '^hi$' "$T/pane" || fail "tmux pane does not show hi: $(cat "$T/pane")"
grep -q '^30 100$' "$T/pane" || fail "the pty did not get the window size: $(cat "$T/pane")"
tmux -L "$TMUX_SOCK" resize-window -x 90 -y 20 2>/dev/null || tmux -L "$TMUX_SOCK" resize-pane -x 90 -y 20
tmux -L "$TMUX_SOCK" send-keys 'stty size' Enter
for _ in $(seq 100); do
	tmux -L "$TMUX_SOCK" capture-pane -p >"$T/pane"
	grep -q '^20 90$' "$T/pane" && break
	sleep 0.1
done
grep -q '^20 90$' "$T/pane" || fail "resize did not reach the pty: $(cat "$T/pane")"
tmux -L "$TMUX_SOCK" send-keys 'exit 7' Enter
for _ in $(seq 100); do
	tmux -L "$TMUX_SOCK" capture-pane -p >"$T/pane"
	grep -q 'vmctl-exited-7' "$T/pane" && break
	sleep 0.1
done
grep -q 'vmctl-exited-7' "$T/pane" || fail "shell exit status not returned: $(cat "$T/pane")"
ok "interactive shell on a pty under tmux: echo, window size and resize, exit status"

# --- signals to vmctl reach the remote process group
ex -- sh -c 'sleep 60; exit 0' &
exec_pid=$!
for _ in $(seq 100); do pgrep -P "$AGENT_PID" -x sh >/dev/null && break; sleep 0.05; done
sleep 0.2
kill -TERM "$exec_pid"
set +e
wait "$exec_pid"
rc=$?
set -e
[[ $rc -eq 143 ]] || fail "SIGTERM forwarded to the remote command: exit $rc, want 143"
ok "SIGTERM to vmctl exec is forwarded: the remote command dies of it (143)"

# --- the agent killed under a running exec: a clear error, exit 125
ex -- sleep 60 2>"$T/killed.err" &
exec_pid=$!
sleeper=
for _ in $(seq 100); do sleeper=$(pgrep -P "$AGENT_PID" -x sleep) && break; sleep 0.05; done
[[ -n $sleeper ]] || fail "the exec'd sleep did not start"
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
AGENT_PID=
set +e
wait "$exec_pid"
rc=$?
set -e
kill "$sleeper" 2>/dev/null || true
[[ $rc -eq 125 ]] || fail "exec under a killed agent exited $rc"
grep -q "lost the connection to the guest agent" "$T/killed.err" || fail "no clear error: $(cat "$T/killed.err")"
ok "vmagent killed during an exec: vmctl reports the lost agent and exits 125"

# --- malformed configuration: rejected, naming the property
printf '\xd0\x0d\xfe\xed\x00\x00\x00\x30garbage-garbage-garbage-garbage-garbage' >"$T/bad.dtb"
set +e
"$AGENT" --no-pid1 --config "$T/bad.dtb" --host-socket "$T/no-host.sock" --connect-timeout 1 -- true \
	>"$T/bad.log" 2>&1
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "vmagent accepted a malformed configuration"
grep -q "invalid configuration: header: " "$T/bad.log" || fail "no clear error: $(cat "$T/bad.log")"
ok "malformed configuration: vmagent refuses to run the payload and names the problem"

echo "$NTESTS passed, 0 failed"
