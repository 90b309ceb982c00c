#!/usr/bin/env bash
# Misbehaving clients against a daemon running a real guest: a client
# SIGKILLed with a WatchVm stream open, one that writes half a frame and
# closes, one SIGKILLed in the middle of ConnectVsock (the guest is paused so
# the connection cannot complete), and 1000 short-lived clients of six kinds
# (tests/integration/client_churn.c). After each, the daemon's fd count is
# back to what it was, the VM is untouched and the daemon answers; over the
# 1000 clients its RSS grows by less than 2 MiB (printed).
source "$(dirname "$0")/lib.sh"
CHURN=$top_builddir/tests/integration/client_churn
asan_measure_rss
start_daemon

vm=$(vmctl run --detach --name target -- /bin/sleep 600)
vmctl wait "$vm" --state STARTED --timeout 180 >/dev/null || fail "VM did not start"
sleep 1
base=$(fd_count "$DAEMON_PID")
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$DAEMON_PID/status"; }
fds_back() { wait_for 30 bash -c "[[ \$(ls /proc/$DAEMON_PID/fd | wc -l) -le $base ]]" ||
	fail "$1: virtmgrd has $(fd_count "$DAEMON_PID") fds, $base before"; }
vm_ok() {
	[[ $(vm_field "$vm" state) == STARTED ]] || fail "$1: VM is $(vm_field "$vm" state)"
	vmctl version >/dev/null || fail "$1: the daemon does not answer"
}
echo "# virtmgrd: $base fds, $(rss) KiB RSS with one VM running"

# --- SIGKILL with a WatchVm stream open
"$CHURN" "$SOCK" watch "$vm" >"$T/watch.out" 2>&1 &
pid=$!
wait_for 30 grep -qs watching "$T/watch.out" || fail "WatchVm did not deliver its first event: $(cat "$T/watch.out")"
(($(fd_count "$DAEMON_PID") > base)) || fail "the watching connection holds no fd in the daemon?"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
fds_back watch
vm_ok watch
ok "client SIGKILLed with WatchVm open: stream dropped, fds back to $base, VM untouched"

# --- half a frame, then close
"$CHURN" "$SOCK" half-frame
fds_back half-frame
vm_ok half-frame
ok "client closing after half a frame: connection dropped, fds back to $base"

# --- 1000 clients connecting and vanishing
"$CHURN" "$SOCK" churn 200 "$vm" >/dev/null   # warm-up: allocator caches settle
fds_back warm-up
fd0=$(fd_count "$DAEMON_PID")
rss0=$(rss)
"$CHURN" "$SOCK" churn 1000 "$vm"
fds_back churn
fd1=$(fd_count "$DAEMON_PID")
rss1=$(rss)
echo "# 1000 clients: fds $fd0 -> $fd1, RSS $rss0 -> $rss1 KiB"
((fd1 == fd0)) || fail "fd count changed over 1000 clients: $fd0 -> $fd1"
((rss1 - rss0 < 2048)) || fail "RSS grew by $((rss1 - rss0)) KiB over 1000 clients"
vm_ok churn
ok "1000 short-lived clients: fds $fd0 -> $fd1, RSS +$((rss1 - rss0)) KiB"

# --- SIGKILL while ConnectVsock is pending (guest paused: the guest cannot answer)
vmctl suspend "$vm" >/dev/null
# The baseline is taken with the VM paused (suspend.sh checks that a pause
# keeps the guest's vsock connections).
sleep 1
base=$(fd_count "$DAEMON_PID")
# SuspendVm answers once QMP "stop" is sent: an attempt that races the pause
# is refused by the still-running guest at once, so retry until one hangs.
for attempt in 1 2 3 4 5; do
	"$CHURN" "$SOCK" connect-vsock "$vm" 5555 >"$T/cv.out" 2>&1 &
	pid=$!
	wait_for 30 grep -qs calling "$T/cv.out" || fail "connect-vsock client did not start"
	sleep 1
	[[ $(cat "$T/cv.out") == calling ]] && break
	wait "$pid" 2>/dev/null || true
	echo "# attempt $attempt did not hang: $(tail -1 "$T/cv.out")"
done
[[ $(cat "$T/cv.out") == calling ]] || fail "ConnectVsock to a paused guest returned: $(cat "$T/cv.out")"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
fds_back connect-vsock
vmctl resume "$vm" >/dev/null
vm_ok connect-vsock
ok "client SIGKILLed mid-ConnectVsock: request cancelled, fds back to $base"

vmctl kill "$vm" >/dev/null
echo "$NTESTS passed, 0 failed"
