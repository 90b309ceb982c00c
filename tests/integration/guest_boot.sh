#!/bin/bash
# guest_boot.sh - boot the default guest image under TCG and check the
# console protocol of its init (vmagent): "VIRTMGR: STARTED", the payload's output,
# "VIRTMGR: EXIT <code>", and that QEMU exits by itself once the guest powers
# off. Boots on both `pc` and `microvm`, checks that the virtio drivers are
# registered and that a virtio-blk disk is readable, that the power button
# (QEMU's system_powerdown) stops the payload, and that a guest panic reaches
# QEMU through pvpanic.
#
# Needs the image built by `make guest-image` (`make check` builds it).
set -euo pipefail

top_builddir=${top_builddir:-$(pwd)}
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
image=$top_builddir/guest/image
qemu=${VIRTMGR_QEMU:-qemu-system-x86_64}

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
for f in vmlinuz initramfs.img kernel-release; do
	[[ -f $image/$f ]] || fail "$image/$f is missing: run 'make guest-image' in $top_builddir first"
done
command -v "$qemu" >/dev/null || fail "$qemu not found (Debian: qemu-system-x86)"
command -v socat >/dev/null || fail "socat not found (Debian: socat)"
kver=$(cat "$image/kernel-release")

tmp=$(mktemp -d)
qpid=
cleanup() {
	if [[ -n $qpid ]]; then kill "$qpid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# A hang guard only (seconds); nothing here depends on how fast a guest boots.
LIMIT=${GUEST_BOOT_LIMIT:-600}

# microvm has neither HPET nor an ACPI PM timer, and under TCG the kernel's
# TSC calibration against the PIT fails, after which the boot hangs: give the
# kernel the TSC frequency, which under TCG is the host's.
host_tsc_khz() {
	local mhz
	mhz=$(sed -n 's/^cpu MHz[[:space:]]*:[[:space:]]*\([0-9]*\).*/\1/p; T; q' /proc/cpuinfo)
	echo $((${mhz:-2000} * 1000))
}
machine_args() { # MACHINE
	case $1 in
	pc) echo "-M pc" ;;
	microvm) echo "-M microvm,isa-serial=on,rtc=on -global virtio-mmio.force-legacy=false" ;;
	esac
}
# no_timer_check: on a loaded host the kernel's check that the timer
# interrupt works through the IO-APIC can fail under TCG, and the kernel
# panics ("IO-APIC + timer doesn't work!") before init runs.
machine_cmdline() { # MACHINE
	echo -n "no_timer_check"
	[[ $1 == pc ]] || echo -n " tsc_early_khz=$(host_tsc_khz)"
	echo
}
# pc boots the bzImage, microvm the uncompressed vmlinux (PVH entry) when
# the image has one, so both kernels are exercised.
kernel_for() { # MACHINE
	if [[ $1 == microvm && -f $image/vmlinux ]]; then echo "$image/vmlinux"; else echo "$image/vmlinuz"; fi
}
blk_dev() { [[ $1 == pc ]] && echo virtio-blk-pci || echo virtio-blk-device; }

# run_guest NAME MACHINE CMDLINE-PAYLOAD EXTRA-QEMU-ARGS... : boots in the
# background, console in $tmp/NAME.log, QEMU pid in $qpid
run_guest() {
	local name=$1 machine=$2 payload=$3
	shift 3
	: >"$tmp/$name.log"
	# shellcheck disable=SC2046
	timeout "$LIMIT" "$qemu" -accel tcg $(machine_args "$machine") -m 256 -smp 1 \
		-nodefaults -no-user-config -nographic -no-reboot \
		-chardev file,id=con,path="$tmp/$name.log" -serial chardev:con \
		-kernel "$(kernel_for "$machine")" -initrd "$image/initramfs.img" \
		-append "console=ttyS0 quiet panic=-1 $(machine_cmdline "$machine") -- $payload" "$@" \
		>"$tmp/$name.qemu" 2>&1 &
	qpid=$!
}

wait_guest() { # NAME -> QEMU exit status in $status
	status=0
	wait "$qpid" || status=$?
	qpid=
	((status != 124)) || { cat "$tmp/$1.log" >&2; fail "$1: QEMU still running after ${LIMIT}s"; }
}

expect_line() { # NAME LINE
	grep -qxF -- "$2" <(tr -d '\r' <"$tmp/$1.log") || {
		cat "$tmp/$1.log" "$tmp/$1.qemu" >&2
		fail "$1: console has no line '$2'"
	}
}

wait_line() { # NAME LINE: until the console shows LINE or QEMU exits
	local i
	for ((i = 0; i < LIMIT * 10; i++)); do
		if tr -d '\r' <"$tmp/$1.log" 2>/dev/null | grep -xF -- "$2" >/dev/null; then
			return 0
		fi
		kill -0 "$qpid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$tmp/$1.log" "$tmp/$1.qemu" >&2
	fail "$1: console never showed '$2'"
}

# A disk whose checksum the guest must reproduce.
head -c 1048576 /dev/urandom >"$tmp/disk.img"
disk_sum=$(md5sum <"$tmp/disk.img" | cut -d' ' -f1)

for machine in pc microvm; do
	name=payload-$machine
	run_guest "$name" "$machine" \
		'/bin/sh -c "uname -r; ls /sys/bus/virtio/drivers; md5sum </dev/vda; exit 42"' \
		-drive file="$tmp/disk.img",format=raw,if=none,id=d0 -device "$(blk_dev "$machine")",drive=d0
	wait_guest "$name"
	((status == 0)) || { cat "$tmp/$name.log" "$tmp/$name.qemu" >&2; fail "$name: QEMU exited with $status"; }
	expect_line "$name" "VIRTMGR: STARTED"
	expect_line "$name" "$kver"
	expect_line "$name" "$disk_sum  -"
	expect_line "$name" "VIRTMGR: EXIT 42"
	for drv in virtio_blk virtio_console vmw_vsock_virtio_transport; do
		grep -qw -- "$drv" "$tmp/$name.log" || { cat "$tmp/$name.log" >&2; fail "$name: driver $drv not registered"; }
	done
	echo "ok: $machine boots, runs the payload and powers off"

	# The ACPI power button (system_powerdown) stops the payload with
	# SIGTERM and powers the guest off.
	name=button-$machine
	run_guest "$name" "$machine" '/bin/sleep 100000' \
		-monitor unix:"$tmp/$name.mon",server=on,wait=off
	wait_line "$name" "VIRTMGR: STARTED"
	printf 'system_powerdown\n' | socat - UNIX-CONNECT:"$tmp/$name.mon" >/dev/null
	wait_guest "$name"
	((status == 0)) || { cat "$tmp/$name.log" "$tmp/$name.qemu" >&2; fail "$name: QEMU exited with $status"; }
	expect_line "$name" "VIRTMGR: EXIT 143"
	echo "ok: $machine power button stops the payload"

	# A kernel panic reaches QEMU through pvpanic: with panic=exit-failure
	# QEMU exits with 1 (without pvpanic the guest reboots and, with
	# -no-reboot, QEMU exits with 0).
	name=panic-$machine
	run_guest "$name" "$machine" '/bin/sh -c "echo c >/proc/sysrq-trigger"' \
		-device pvpanic -action panic=exit-failure
	wait_guest "$name"
	((status == 1)) || { cat "$tmp/$name.log" "$tmp/$name.qemu" >&2; fail "$name: QEMU exited with $status, not 1 (guest panic not seen)"; }
	grep -q 'Kernel panic' "$tmp/$name.log" || fail "$name: no kernel panic on the console"
	echo "ok: $machine guest panic reaches QEMU through pvpanic"
done

# mkimage.sh: --add places files into the image; bad input is refused with
# a message naming it. Reuses the build tree's download cache.
cache=${VIRTMGR_GUEST_CACHE:-$top_builddir/guest/cache}
mkimage() { "$BASH" "$top_srcdir/guest/mkimage.sh" --init "$top_builddir/guest/vmagent/vmagent" \
	--work "$tmp/work" --cache "$cache" "$@"; }
printf 'hello from the host\n' >"$tmp/hello.txt"
mkimage --out "$tmp/img" --add "$tmp/hello.txt:/etc/hello.txt" 2>"$tmp/mkimage.err" ||
	{ cat "$tmp/mkimage.err" >&2; fail "mkimage.sh --add failed"; }
(cd "$tmp" && mkdir x && cd x && gzip -dc ../img/initramfs.img | cpio --quiet -id etc/hello.txt init lib/modules/load-order)
cmp -s "$tmp/hello.txt" "$tmp/x/etc/hello.txt" || fail "--add: /etc/hello.txt missing or different in the image"
[[ -x $tmp/x/init && -s $tmp/x/lib/modules/load-order ]] || fail "image lacks /init or the module load order"
if mkimage --out "$tmp/img2" --add "$tmp/nonexistent:/x" 2>"$tmp/mkimage.err"; then
	fail "mkimage.sh accepted a missing --add source"
fi
grep -q "nonexistent' is not a file" "$tmp/mkimage.err" || { cat "$tmp/mkimage.err" >&2; fail "unclear error for a missing --add source"; }
if mkimage --out "$tmp/img2" --module no_such_module 2>"$tmp/mkimage.err"; then
	fail "mkimage.sh accepted an unknown module"
fi
grep -q "module no_such_module is neither" "$tmp/mkimage.err" || { cat "$tmp/mkimage.err" >&2; fail "unclear error for an unknown module"; }
echo "ok: mkimage.sh --add and its input checks"

echo "PASS"
