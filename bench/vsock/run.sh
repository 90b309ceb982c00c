#!/bin/bash
# bench/vsock/run.sh - throughput and connect latency of virtmgr-vsock with a
# real guest, next to a Unix socket copy of the same size on the host as the
# baseline.
#
#   bench/vsock/run.sh [--size MIB] [--connects N] [--smoke]
#
# Run from a build tree (or set top_builddir); needs `make guest-image`,
# server/virtmgr-vsock and tests/guest-tools/vsock-tool. Prints MiB/s for
# host->guest and guest->host over vsock and for the Unix baseline, the
# ratio vsock/baseline, and the mean host-initiated connect+handshake time.
# --smoke moves 1 MiB and makes 3 connections: a does-it-run check.
# Numbers under TCG measure the emulated guest as much as the backend.
set -euo pipefail

top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$(pwd)}
image=${VSOCK_TEST_IMAGE:-$top_builddir/guest/image}
backend=$top_builddir/server/virtmgr-vsock
tool=$top_builddir/tests/guest-tools/vsock-tool
qemu=${VIRTMGR_QEMU:-qemu-system-x86_64}
accel=${VSOCK_BENCH_ACCEL:-tcg}
size_mib=256 connects=50

while (($#)); do
	case $1 in
	--size) size_mib=$2; shift 2 ;;
	--connects) connects=$2; shift 2 ;;
	--smoke) size_mib=1 connects=3; shift ;;
	*) echo "usage: $0 [--size MIB] [--connects N] [--smoke]" >&2; exit 2 ;;
	esac
done
fail() { printf 'bench/vsock: %s\n' "$*" >&2; exit 1; }
for f in "$image/vmlinuz" "$image/initramfs.img" "$backend" "$tool"; do
	[[ -e $f ]] || fail "$f is missing (make, make check-programs or make guest-image first)"
done
bytes=$((size_mib * 1048576))

tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

now() { date +%s.%N; }
rate() { awk -v b="$1" -v s="$2" -v e="$3" 'BEGIN { printf "%.1f", b / 1048576 / (e - s) }'; }

# baseline: the same tool over a host Unix socket
"$tool" ulisten "$tmp/base.sock" --sink --count 1 >"$tmp/base.out" &
pids+=($!)
for ((i = 0; i < 100; i++)); do [[ -S $tmp/base.sock ]] && break; sleep 0.05; done
t0=$(now)
"$tool" uconnect "$tmp/base.sock" --source "$bytes" >/dev/null
t1=$(now)
base=$(rate "$bytes" "$t0" "$t1")

mkdir -p "$tmp/extra/bin"
cp "$tool" "$tmp/extra/bin/vsock-tool"
cat >"$tmp/extra/bin/bench.sh" <<EOS
#!/bin/sh
/bin/vsock-tool listen 2000 --sink --tag h2g &
/bin/vsock-tool listen 2001 --source $bytes --tag g2h &
/bin/vsock-tool listen 2002 --sink --count $connects --tag conn &
wait
EOS
chmod 755 "$tmp/extra/bin/"*
(cd "$tmp/extra" && find . | cpio -o -H newc --quiet | gzip -1) >"$tmp/extra.img"
cat "$image/initramfs.img" "$tmp/extra.img" >"$tmp/initramfs.img"

"$backend" --vhost-user "$tmp/vhost.sock" --cid 3 --uds "$tmp/vsock.sock" --log-level warn 2>"$tmp/backend.log" &
pids+=($!)
for ((i = 0; i < 100; i++)); do [[ -S $tmp/vhost.sock ]] && break; sleep 0.05; done
"$qemu" -accel "$accel" -M pc -m 512 -smp 2 -nodefaults -no-user-config -nographic -no-reboot \
	-object memory-backend-memfd,id=mem,size=512M,share=on -machine memory-backend=mem \
	-chardev socket,id=vsock0,path="$tmp/vhost.sock" -device vhost-user-vsock-pci,chardev=vsock0 \
	-chardev file,id=con,path="$tmp/console.log" -serial chardev:con \
	-kernel "$image/vmlinuz" -initrd "$tmp/initramfs.img" \
	-append "console=ttyS0 quiet panic=-1 -- /bin/sh /bin/bench.sh" >"$tmp/qemu.out" 2>&1 &
pids+=($!)
for ((i = 0; i < 3000; i++)); do
	[[ $(grep -c "listening" "$tmp/console.log" 2>/dev/null) -ge 3 ]] && break
	sleep 0.2
done
[[ $(grep -c "listening" "$tmp/console.log") -ge 3 ]] || fail "guest did not start: $(cat "$tmp/console.log")"

t0=$(now)
"$tool" hconnect "$tmp/vsock.sock" 2000 --source "$bytes" >"$tmp/h2g.out"
t1=$(now)
grep -q "^peer received $bytes" "$tmp/h2g.out" || fail "host->guest transfer: $(cat "$tmp/h2g.out")"
h2g=$(rate "$bytes" "$t0" "$t1")

t0=$(now)
"$tool" hconnect "$tmp/vsock.sock" 2001 --sink >"$tmp/g2h.out"
t1=$(now)
grep -q "^received $bytes" "$tmp/g2h.out" || fail "guest->host transfer: $(cat "$tmp/g2h.out")"
g2h=$(rate "$bytes" "$t0" "$t1")

t0=$(now)
for ((i = 0; i < connects; i++)); do
	"$tool" hconnect "$tmp/vsock.sock" 2002 --source 0 >/dev/null || fail "connect $i failed"
done
t1=$(now)
lat=$(awk -v n="$connects" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.2f", (e - s) * 1000 / n }')

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
printf 'size                 %d MiB (accel %s)\n' "$size_mib" "$accel"
printf 'unix baseline        %s MiB/s\n' "$base"
printf 'vsock host->guest    %s MiB/s   ratio %s\n' "$h2g" "$(ratio "$h2g" "$base")"
printf 'vsock guest->host    %s MiB/s   ratio %s\n' "$g2h" "$(ratio "$g2h" "$base")"
printf 'connect+handshake    %s ms mean over %d (includes process start)\n' "$lat" "$connects"
