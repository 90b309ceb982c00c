#!/bin/bash
# vmctl_connect.sh - `vmctl connect` end to end: a real guest (TCG) runs
# vsock-tool as an echo server on vsock port 5000; the daemon's ConnectVsock
# hands vmctl a connected socket (SCM_RIGHTS) which vmctl bridges to
# stdin/stdout. Checks a line, then 4 MiB of random bytes (more than any
# socket buffer on the way, so a bridge that blocked on writing while the
# echo waits for its reader would deadlock), the half-close on stdin EOF
# that lets the guest end the stream, and the error for a port nobody
# listens on.
#
# Needs the guest image (`make guest-image`) and tests/guest-tools/vsock-tool.
set -euo pipefail

top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$(pwd)}
vmctl=$top_builddir/client/vmctl
daemon=$top_builddir/server/virtmgrd
image=$top_builddir/guest/image
tool=$top_builddir/tests/guest-tools/vsock-tool
LIMIT=${GUEST_BOOT_LIMIT:-600}

fail() { printf 'FAIL: %s\n' "$*" >&2; [[ -f ${tmp:-}/log ]] && tail -40 "$tmp/log" >&2; exit 1; }
ok() { printf 'ok: %s\n' "$*"; }
for f in "$image/vmlinuz" "$image/initramfs.img" "$tool"; do
	[[ -f $f ]] || fail "$f is missing: run 'make guest-image tests/guest-tools/vsock-tool' first"
done

tmp=$(mktemp -d)
pid=
cleanup() {
	if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# the project image plus vsock-tool in an appended initramfs archive
mkdir -p "$tmp/extra/bin"
cp "$tool" "$tmp/extra/bin/vsock-tool"
chmod 755 "$tmp/extra/bin/vsock-tool"
(cd "$tmp/extra" && find . | cpio -o -H newc --quiet | gzip -1) >"$tmp/extra.img"
cat "$image/initramfs.img" "$tmp/extra.img" >"$tmp/initramfs.img"

"$daemon" --socket "$tmp/s.sock" --run-dir "$tmp/run" --guest-dir "$image" --accel tcg \
	--vsock-backend "$top_builddir/server/virtmgr-vsock" >"$tmp/log" 2>&1 &
pid=$!
for ((i = 0; i < 3000; i++)); do
	[[ -S $tmp/s.sock ]] && break
	kill -0 "$pid" 2>/dev/null || fail "virtmgrd exited before listening"
	sleep 0.02
done
export VIRTMGR_SOCKET=$tmp/s.sock
V() { timeout "$LIMIT" "$vmctl" "$@"; }

V run --detach --name echo --initrd "$tmp/initramfs.img" -- \
	/bin/vsock-tool listen 5000 --echo --count 1000 >/dev/null || fail "run --detach"
V wait --state STARTED echo >/dev/null || fail "wait STARTED"

# until the listener is up, ConnectVsock answers UNAVAILABLE (hang guard only)
got=
for ((i = 0; i < LIMIT * 5; i++)); do
	rc=0
	got=$(printf 'hello over vsock\n' | V connect echo 5000 2>"$tmp/err") || rc=$?
	[[ $rc == 0 ]] && break
	grep -q '^vmctl: UNAVAILABLE: ' "$tmp/err" || fail "connect: exit $rc: $(cat "$tmp/err")"
	sleep 0.2
done
[[ $got == 'hello over vsock' ]] || fail "echo answered '$got'"
ok "connect: a line goes to the guest and back; stdin EOF half-closes"

head -c $((4 << 20)) /dev/urandom >"$tmp/in"
V connect echo 5000 <"$tmp/in" >"$tmp/out" || fail "connect with 4 MiB: exit $?"
cmp "$tmp/in" "$tmp/out" || fail "4 MiB echo differs"
ok "connect: 4 MiB round trip through an echo without deadlock"

rc=0
V connect echo 5999 </dev/null 2>"$tmp/err" || rc=$?
[[ $rc == 1 ]] && grep -q '^vmctl: UNAVAILABLE: .*5999' "$tmp/err" || fail "port without listener: $rc $(cat "$tmp/err")"
ok "connect to a port nobody listens on: exit 1 with the status"

V kill echo >/dev/null
kill "$pid"
wait "$pid" || fail "virtmgrd exit status $? on SIGTERM"
pid=
echo PASS
