#!/usr/bin/env bash
# bench-smoke.sh - every benchmark of bench/run once, tiny ("does it run"):
# a private daemon, the echo floor, one VM through the daemon and one bare
# QEMU, footprint with one VM, density with one VM, storage (fio on tiny
# raw and qcow2 images, one root start), net as root (iperf3 for 1 s in user
# and tap mode, once through the daemon and once in bare QEMU). No figure is checked
# (timings on shared machines prove nothing); the run must complete and
# print its table with every figure in it.
set -euo pipefail
: "${top_builddir:?top_builddir is not set (run through make check)}"
: "${top_srcdir:?top_srcdir is not set (run through make check)}"
[[ -f $top_builddir/guest/image/vmlinuz && -f $top_builddir/guest/image/initramfs.img ]] || {
	echo "FAIL: no guest image in $top_builddir/guest/image: run 'make guest-image' first" >&2
	exit 1
}
out=$(mktemp /tmp/virtmgr-bench-smoke.XXXXXX)
trap 'rm -f "$out"' EXIT
python3 "$top_srcdir/bench/run" --builddir "$top_builddir" --smoke --only rpc,vmstart,footprint,density,vsock,storage,net \
	>"$out" || { cat "$out"; echo "FAIL: bench/run --smoke exited $?" >&2; exit 1; }
cat "$out"
figs=("GetDaemonInfo p50" "ListVms, 3 VMs" "calls/s, 64 clients, pipelined" "idle connections" \
	"vmctl run -> STARTED" "virtmgrd RSS, idle" "virtmgrd RSS per running VM" "all STARTED" \
	"fio seq write 1 MiB, qcow2 image" "vmctl run --root IMG")
# the net section runs only as root (a network namespace of its own, tap mode)
[[ $(id -u) != 0 ]] || figs+=("iperf3 TCP guest->host 1 s, user mode" "iperf3 TCP host->guest 1 s, tap mode")
for fig in "${figs[@]}"; do
	grep -q -- "$fig" "$out" || { echo "FAIL: figure \"$fig\" missing from the table" >&2; exit 1; }
done
echo "ok 1 - bench/run --smoke ran every benchmark"
