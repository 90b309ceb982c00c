#!/bin/bash
# vsock.sh - end-to-end test of virtmgr-vsock with a real guest under TCG.
#
# One guest (the project image plus vsock-tool and vsock-guest.sh in an extra
# initramfs archive), one backend, QEMU with vhost-user-vsock-pci. Checked:
#  - host -> guest and guest -> host 256 MiB through the hybrid socket, with
#    matching checksums;
#  - 64 concurrent host-initiated connections;
#  - a guest-initiated connection to the host listener <uds>_5000;
#  - a guest connect to an unserved host port or a foreign CID fails with
#    ECONNRESET (an RST), not with a timeout;
#  - a host connect before the guest listens fails with a clear error and a
#    retry succeeds once it listens;
#  - a guest reader and a host reader that never read stall only their own
#    connection (every other transfer above runs while they are stuck);
#  - the backend runs under its seccomp filter (Seccomp: 2) while it works;
#  - the backend exits 0 when QEMU goes away.
# Nothing here measures time; timeouts are hang guards only.
#
# Image: $top_builddir/guest/image (`make guest-image`), or VSOCK_TEST_IMAGE=DIR
# with vmlinuz and initramfs.img.
set -euo pipefail

top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$(pwd)}
image=${VSOCK_TEST_IMAGE:-$top_builddir/guest/image}
backend=$top_builddir/server/virtmgr-vsock
tool=$top_builddir/tests/guest-tools/vsock-tool
qemu=${VIRTMGR_QEMU:-qemu-system-x86_64}
LIMIT=${VSOCK_TEST_LIMIT:-900}

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
for f in vmlinuz initramfs.img; do
	[[ -f $image/$f ]] || fail "$image/$f is missing: run 'make guest-image' in $top_builddir first"
done
[[ -x $backend ]] || fail "$backend not built"
[[ -x $tool ]] || fail "$tool not built"
command -v cpio >/dev/null || fail "cpio not found (Debian: cpio)"

tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# extra initramfs archive with the tool and the guest script
mkdir -p "$tmp/extra/bin"
cp "$tool" "$tmp/extra/bin/vsock-tool"
cp "$top_srcdir/tests/integration/vsock-guest.sh" "$tmp/extra/bin/vsock-guest.sh"
chmod 755 "$tmp/extra/bin/"*
(cd "$tmp/extra" && find . | cpio -o -H newc --quiet | gzip -1) >"$tmp/extra.img"
cat "$image/initramfs.img" "$tmp/extra.img" >"$tmp/initramfs.img"

uds=$tmp/vsock.sock
con=$tmp/console.log
: >"$con"

# wait_line PATTERN [FILE]: wait until a line matching PATTERN shows up
wait_line() {
	local pat=$1 file=${2:-$con} i
	for ((i = 0; i < LIMIT * 5; i++)); do
		grep -q -- "$pat" "$file" && return 0
		if ! kill -0 "$qpid" 2>/dev/null; then
			cat "$con" >&2
			fail "guest ended before '$pat'"
		fi
		sleep 0.2
	done
	cat "$con" >&2
	fail "no '$pat' within the hang guard"
}
field() { tr -d "\r" <"$2" | awk -v p="$1" 'index($0, p) == 1 && !done { print $NF; done = 1 }'; }

# host listeners the guest connects to: a sink and one that never reads
"$tool" ulisten "${uds}_5000" --sink --count 1 >"$tmp/u5000.out" 2>&1 &
pids+=($!)
"$tool" ulisten "${uds}_5002" --stall --count 1 >"$tmp/u5002.out" 2>&1 &
pids+=($!)

"$backend" --vhost-user "$tmp/vhost.sock" --cid 3 --uds "$uds" 2>"$tmp/backend.log" &
bpid=$!
for ((i = 0; i < 100; i++)); do [[ -S $tmp/vhost.sock && -S $uds ]] && break; sleep 0.1; done
[[ -S $tmp/vhost.sock ]] || fail "backend did not create its sockets: $(cat "$tmp/backend.log")"

timeout "$LIMIT" "$qemu" -accel tcg -M pc -m 512 -smp 2 -nodefaults -no-user-config -nographic -no-reboot \
	-object memory-backend-memfd,id=mem,size=512M,share=on -machine memory-backend=mem \
	-chardev socket,id=vsock0,path="$tmp/vhost.sock" -device vhost-user-vsock-pci,chardev=vsock0 \
	-chardev file,id=con,path="$con" -serial chardev:con \
	-kernel "$image/vmlinuz" -initrd "$tmp/initramfs.img" \
	-append "console=ttyS0 quiet panic=-1 -- /bin/sh /bin/vsock-guest.sh" >"$tmp/qemu.out" 2>&1 &
qpid=$!
pids+=($qpid)

H="timeout $LIMIT $tool hconnect $uds"

# host writer into the guest's non-reader: stays blocked for the whole test
wait_line "\[stall\] listening"
$H 1250 --source 268435456 >"$tmp/stall.out" 2>&1 &
stall_pid=$!
pids+=($stall_pid)

# once QEMU is connected the backend runs under its seccomp allow-list
# (server/vsock/seccomp.h): everything below runs with it in force
grep -q '^Seccomp:[[:space:]]*2$' "/proc/$bpid/status" ||
	fail "backend runs without its seccomp filter: $(grep Seccomp "/proc/$bpid/status")"
grep -q '^NoNewPrivs:[[:space:]]*1$' "/proc/$bpid/status" || fail "backend lacks NO_NEW_PRIVS"

echo "# guest -> host port 5000 (<uds>_5000), guest-side reader of 5002 stalled"
wait_line "\[g2u\] peer received"
sent=$(field "[g2u] sent 16777216" "$con")
got=$(field "received 16777216" "$tmp/u5000.out")
[[ -n $sent && $sent == "$got" ]] || fail "guest->host Unix listener: sent '$sent', host received '$got'"

echo "# refused connections get an RST"
grep -q "\[refused\] error: connect: Connection reset by peer" "$con" ||
	fail "guest connect to an unserved host port: $(grep '\[refused\]' "$con")"
grep -q "\[othercid\] error: connect: Connection reset by peer" "$con" ||
	fail "guest connect to CID 7: $(grep '\[othercid\]' "$con")"

echo "# host -> guest 256 MiB"
$H 1234 --source 268435456 >"$tmp/h2g.out"
sent=$(field "sent 268435456" "$tmp/h2g.out")
got=$(field "peer received 268435456" "$tmp/h2g.out")
[[ -n $sent && $sent == "$got" ]] || fail "host->guest: sent '$sent', guest received '$got'"

echo "# guest -> host 256 MiB (host-initiated)"
$H 1235 --sink >"$tmp/g2h.out"
got=$(field "received 268435456" "$tmp/g2h.out")
[[ $got == "$sent" ]] || fail "guest->host: expected '$sent', host received '$got' ($(cat "$tmp/g2h.out"))"
wait_line "\[g2h\] peer received 268435456 $sent"

echo "# 64 concurrent connections"
$H 1236 --parallel 64 --source 1048576 >"$tmp/par.out"
n_sent=$(grep -c "^sent 1048576 " "$tmp/par.out" || true)
n_ok=$(grep -c "^peer received 1048576 $(field 'sent 1048576' "$tmp/par.out")" "$tmp/par.out" || true)
[[ $n_sent == 64 && $n_ok == 64 ]] || fail "parallel: $n_sent sent, $n_ok confirmed: $(sort "$tmp/par.out" | uniq -c)"

echo "# host connect before the guest listens, then a retry"
wait_line "\[trigger\] listening"
if $H 1240 --sink >"$tmp/early.out" 2>&1; then
	fail "connect to a port nobody listens on succeeded: $(cat "$tmp/early.out")"
fi
grep -q "error: connect (no listener in the guest?)" "$tmp/early.out" ||
	fail "unclear error for an early connect: $(cat "$tmp/early.out")"
$H 1239 --source 0 >/dev/null
wait_line "\[late\] listening"
ok=
for ((i = 0; i < 20; i++)); do
	if $H 1240 --source 4096 >"$tmp/late.out" 2>&1 && grep -q "^peer received 4096" "$tmp/late.out"; then
		ok=1
		break
	fi
	sleep 0.5
done
[[ -n $ok ]] || fail "retry after the guest started listening: $(cat "$tmp/late.out")"

echo "# stalled connections are still stuck, not failed"
kill -0 "$stall_pid" 2>/dev/null || fail "host writer to a non-reading guest finished: $(cat "$tmp/stall.out")"
grep -q "\[gstall\] sent" "$con" && fail "guest writer to a non-reading host finished"
grep -q "stalling" "$tmp/u5002.out" || fail "host staller never got its connection"

echo "# backend exits 0 when QEMU goes away"
kill "$qpid"
wait "$qpid" 2>/dev/null || true
status=0
wait "$bpid" || status=$?
[[ $status == 0 ]] || fail "backend exit status $status: $(cat "$tmp/backend.log")"
grep -q "frontend disconnected" "$tmp/backend.log" || fail "backend log: $(cat "$tmp/backend.log")"
echo "PASS"
