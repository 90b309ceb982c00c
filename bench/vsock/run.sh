#!/bin/bash
# bench/vsock/run.sh - throughput both ways and connect latency of
# virtmgr-vsock with a real guest, against virtio-serial (a QEMU chardev on
# a Unix socket, no backend) in the same guest and the same run.
#
#   bench/vsock/run.sh [--size MIB] [--runs N] [--connects N] [--smoke]
#
# Run from a build tree (or set top_builddir); needs `make guest-image`,
# server/virtmgr-vsock, tests/guest-tools/vsock-tool and
# bench/vsock/vport-tool. One guest has both a vhost-user-vsock device (our
# backend) and a virtio-serial port. After one warm-up round, each of N
# rounds moves SIZE MiB host->guest over vsock then over virtio-serial, then
# guest->host over vsock then over virtio-serial, so each vsock figure has a
# virtio-serial partner measured right next to it; the ratios are taken pair
# by pair. Both ends do the same work per byte on both transports (64 KiB
# blocks, a generator on the sending side, a checksum on the receiving side;
# the receiver's byte count is checked). Prints min/median/max MiB/s per
# transport and direction, the ratios vsock/virtio-serial, the mean
# host-initiated vsock connect+handshake time, and a plain host Unix socket
# copy for scale. --smoke moves 1 MiB once and makes 3 connections: a
# does-it-run check. Numbers under TCG measure the emulated guest as much as
# the transports; compare ratios, not absolute figures.
set -euo pipefail

top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$(pwd)}
image=${VSOCK_TEST_IMAGE:-$top_builddir/guest/image}
backend=${VSOCK_BENCH_BACKEND:-$top_builddir/server/virtmgr-vsock}
tool=$top_builddir/tests/guest-tools/vsock-tool
vport=$top_builddir/bench/vsock/vport-tool
qemu=${VIRTMGR_QEMU:-qemu-system-x86_64}
accel=${VSOCK_BENCH_ACCEL:-tcg}
size_mib=256 runs=5 warmup=1 connects=50

while (($#)); do
	case $1 in
	--size) size_mib=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--connects) connects=$2; shift 2 ;;
	--smoke) size_mib=1 runs=1 warmup=0 connects=3; shift ;;
	*) echo "usage: $0 [--size MIB] [--runs N] [--connects N] [--smoke]" >&2; exit 2 ;;
	esac
done
fail() { printf 'bench/vsock: %s\n' "$*" >&2; exit 1; }
[[ $size_mib =~ ^[1-9][0-9]*$ && $runs =~ ^[1-9][0-9]*$ && $connects =~ ^[1-9][0-9]*$ ]] ||
	fail "--size, --runs and --connects take positive integers"
for f in "$image/vmlinuz" "$image/initramfs.img" "$backend" "$tool" "$vport"; do
	[[ -e $f ]] || fail "$f is missing (make, make check-programs or make guest-image first)"
done
bytes=$((size_mib * 1048576))
rounds=$((warmup + runs))

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

# for scale: the same tool over a host Unix socket
"$tool" ulisten "$tmp/base.sock" --sink --count 1 >"$tmp/base.out" &
pids+=($!)
for ((i = 0; i < 100; i++)); do [[ -S $tmp/base.sock ]] && break; sleep 0.05; done
t0=$(now)
"$tool" uconnect "$tmp/base.sock" --source "$bytes" >/dev/null
t1=$(now)
base=$(rate "$bytes" "$t0" "$t1")

mkdir -p "$tmp/extra/bin"
cp "$tool" "$tmp/extra/bin/vsock-tool"
cp "$vport" "$tmp/extra/bin/vport-tool"
cat >"$tmp/extra/bin/bench.sh" <<EOS
#!/bin/sh
/bin/vsock-tool listen 2000 --sink --count $rounds --tag h2g &
/bin/vsock-tool listen 2001 --source $bytes --count $rounds --tag g2h &
/bin/vsock-tool listen 2002 --sink --count $connects --tag conn &
/bin/vport-tool guest bench &
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
	-device virtio-serial-pci \
	-chardev socket,id=vs0,path="$tmp/serial.sock",server=on,wait=off \
	-device virtserialport,chardev=vs0,name=bench \
	-chardev file,id=con,path="$tmp/console.log" -serial chardev:con \
	-kernel "$image/vmlinuz" -initrd "$tmp/initramfs.img" \
	-append "console=ttyS0 quiet panic=-1 -- /bin/sh /bin/bench.sh" >"$tmp/qemu.out" 2>&1 &
pids+=($!)
for ((i = 0; i < 3000; i++)); do
	[[ $(grep -c "listening" "$tmp/console.log" 2>/dev/null) -ge 4 ]] && break
	sleep 0.2
done
[[ $(grep -c "listening" "$tmp/console.log") -ge 4 ]] ||
	fail "guest did not start: $(cat "$tmp/console.log" "$tmp/qemu.out")"

# One timed transfer (a stuck one fails after 15 minutes); prints MiB/s. KIND: vsock-h2g vsock-g2h serial-h2g serial-g2h
transfer() {
	local t0 t1 out=$tmp/$1.out
	t0=$(now)
	case $1 in
	vsock-h2g) timeout 900 "$tool" hconnect "$tmp/vsock.sock" 2000 --source "$bytes" >"$out" ;;
	vsock-g2h) timeout 900 "$tool" hconnect "$tmp/vsock.sock" 2001 --sink >"$out" ;;
	serial-h2g) timeout 900 "$vport" sink "$tmp/serial.sock" "$bytes" >"$out" ;;
	serial-g2h) timeout 900 "$vport" source "$tmp/serial.sock" "$bytes" >"$out" ;;
	esac
	t1=$(now)
	case $1 in
	*-h2g) grep -q "^peer received $bytes " "$out" || fail "$1 transfer: $(cat "$out")" ;;
	*-g2h) grep -q "^received $bytes " "$out" || fail "$1 transfer: $(cat "$out")" ;;
	esac
	rate "$bytes" "$t0" "$t1"
}

declare -A fig
for ((r = 0; r < rounds; r++)); do
	for k in vsock-h2g serial-h2g vsock-g2h serial-g2h; do
		v=$(transfer "$k")
		((r < warmup)) || fig[$k]+="$v "
	done
done

t0=$(now)
for ((i = 0; i < connects; i++)); do
	"$tool" hconnect "$tmp/vsock.sock" 2002 --source 0 >/dev/null || fail "connect $i failed"
done
t1=$(now)
lat=$(awk -v n="$connects" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.2f", (e - s) * 1000 / n }')

# "median min max" of the numbers given
stats() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		      printf "%.3f %.3f %.3f\n", m, v[1], v[NR] }'
}
# pair-by-pair ratios of two lists
ratios() {
	local -a a=($1) b=($2)
	local i
	for i in "${!a[@]}"; do awk -v x="${a[i]}" -v y="${b[i]}" 'BEGIN { printf "%.3f\n", x / y }'; done
}
line() { # LABEL UNIT median min max
	printf '%-26s %9.1f %s  (min %.1f, max %.1f)\n' "$1" "$3" "$2" "$4" "$5"
}
printf 'size                 %d MiB (accel %s), %d runs after %d warm-up\n' "$size_mib" "$accel" "$runs" "$warmup"
printf 'unix baseline        %s MiB/s (host Unix socket copy, for scale)\n' "$base"
printf '%-26s %9s\n' "median over $runs runs" "MiB/s"
for d in h2g g2h; do
	[[ $d == h2g ]] && dir=host-\>guest || dir=guest-\>host
	# shellcheck disable=SC2086
	line "vsock $dir" MiB/s $(stats ${fig[vsock-$d]})
	# shellcheck disable=SC2086
	line "virtio-serial $dir" MiB/s $(stats ${fig[serial-$d]})
	read -r m lo hi < <(stats $(ratios "${fig[vsock-$d]}" "${fig[serial-$d]}"))
	printf '%-26s %9.3f    (min %.3f, max %.3f) vsock/virtio-serial, pair by pair\n' "ratio $dir" "$m" "$lo" "$hi"
done
printf 'connect+handshake    %s ms mean over %d (vsock, host-initiated; includes process start)\n' "$lat" "$connects"
printf 'raw vsock-h2g        %s\nraw serial-h2g       %s\nraw vsock-g2h        %s\nraw serial-g2h       %s\n' \
	"${fig[vsock-h2g]}" "${fig[serial-h2g]}" "${fig[vsock-g2h]}" "${fig[serial-g2h]}"
