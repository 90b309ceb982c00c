#!/usr/bin/env bash
# bench/net/run.sh - TCP throughput of a guest's network, user mode (passt)
# against tap mode, in one run (docs/network.md). Each direction moves
# MIB MiB (default 64) through busybox nc in the guest and a Python socket
# on the host, REPS times (default 3); prints MB/s per run, the median, and
# the user/tap ratio. Runs as root in a network namespace it makes
# (unshare -n): nothing leaves it. Nothing is asserted.
#
# Host -> guest is timed until the host's last send returns, so up to a
# socket buffer is still in flight: use a MIB well above a few MiB.
# Not here yet: a bare QEMU with the same netdev as the baseline, and iperf3
# in the guest (docs/network.md, "Benchmarks").
#
# Usage: bench/net/run.sh BUILDDIR [MIB] [REPS]
if [[ -z ${VIRTMGR_NET_NS:-} ]]; then
	[[ $(id -u) == 0 ]] || { echo "bench/net: needs root (tap mode)" >&2; exit 1; }
	exec env VIRTMGR_NET_NS=1 unshare -n -- "$0" "$@"
fi
set -euo pipefail
ip link set lo up
B=$(cd "${1:?usage: $0 BUILDDIR [MIB] [REPS]}" && pwd)
MIB=${2:-64}
REPS=${3:-3}
T=$(mktemp -d /tmp/virtmgr-bench-net.XXXXXX)
chmod 0755 "$T"
trap 'kill $(cat "$T/pid" 2>/dev/null) 2>/dev/null; sleep 1; rm -rf "$T"' EXIT
"$B/server/virtmgrd" --socket "$T/s" --run-dir "$T/run" --guest-dir "$B/guest/image" \
	--vsock-backend "$B/server/virtmgr-vsock" --accel tcg >"$T/d.log" 2>&1 &
echo $! >"$T/pid"
for ((i = 0; i < 100; i++)); do [[ -S $T/s ]] && break; sleep 0.1; done
vmctl() { "$B/client/vmctl" --socket "$T/s" "$@"; }

# host side: receive everything (g2h) or send MIB MiB (h2g); prints MB/s
recv_py='
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1)
c, _ = s.accept(); n = 0; t0 = None; want = int(sys.argv[2]) << 20
while n < want:  # busybox nc does not always close: count instead of EOF
    d = c.recv(1 << 20)
    if t0 is None: t0 = time.monotonic()
    if not d: break
    n += len(d)
c.close()
dt = time.monotonic() - t0
print("%.1f" % (n / dt / 1e6))'
send_py='
import socket, sys, time
n = int(sys.argv[3]) << 20; buf = b"\0" * (1 << 20)
for _ in range(300):
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); break
    except OSError: time.sleep(0.5)
t0 = time.monotonic(); sent = 0
while sent < n:
    sent += c.send(buf[: min(len(buf), n - sent)])
c.close()
print("%.1f" % (n / (time.monotonic() - t0) / 1e6))'

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run_mode() { # MODE -> g2h and h2g medians on stdout
	local mode=$1 vm addr gw g2h=() h2g=() r
	vm=$(vmctl run --detach --net "$mode" $([[ $mode == user ]] && echo -p 18201:8201) -- /bin/sh -c \
		'while :; do nc -l -p 8201 >/dev/null; done')
	vmctl wait "$vm" --state STARTED --timeout 300 >/dev/null
	addr=$(vmctl --json info "$vm" | python3 -c 'import json,sys; print(json.load(sys.stdin)["network"]["address"].split("/")[0])')
	gw=$(vmctl --json info "$vm" | python3 -c 'import json,sys; print(json.load(sys.stdin)["network"]["gateway"])')
	for ((r = 0; r <= REPS; r++)); do
		python3 -c "$recv_py" 18200 "$MIB" >"$T/g2h" &
		sleep 0.3
		vmctl exec "$vm" -- /bin/sh -c "dd if=/dev/zero bs=1M count=$MIB 2>/dev/null | timeout 120 nc $gw 18200; true" >/dev/null
		wait $!
		if [[ $mode == user ]]; then
			python3 -c "$send_py" 127.0.0.1 18201 "$MIB" >"$T/h2g"
		else
			python3 -c "$send_py" "$addr" 8201 "$MIB" >"$T/h2g"
		fi
		((r == 0)) && continue # warm-up
		g2h+=("$(cat "$T/g2h")")
		h2g+=("$(cat "$T/h2g")")
		echo "# $mode run $r: guest->host $(cat "$T/g2h") MB/s, host->guest $(cat "$T/h2g") MB/s" >&2
	done
	vmctl kill "$vm" >/dev/null
	echo "$(printf '%s\n' "${g2h[@]}" | median) $(printf '%s\n' "${h2g[@]}" | median)"
}

read -r ug uh < <(run_mode user)
read -r tg th < <(run_mode tap)
printf 'net_g2h_user %s MB/s\nnet_g2h_tap %s MB/s\nnet_h2g_user %s MB/s\nnet_h2g_tap %s MB/s\n' "$ug" "$tg" "$uh" "$th"
python3 -c 'import sys; u1,t1,u2,t2=map(float,sys.argv[1:]); print("net_user_vs_tap g2h %.2f h2g %.2f" % (u1/t1, u2/t2))' \
	"$ug" "$tg" "$uh" "$th"
