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
source "$(dirname "$0")/lib.sh"
vmctl=$VMCTL_BIN
tool=$top_builddir/tests/guest-tools/vsock-tool
LIMIT=${GUEST_BOOT_LIMIT:-600}
tmp=$T
[[ -f $tool ]] || fail "$tool is missing: run 'make tests/guest-tools/vsock-tool' first"

# the project image plus vsock-tool in an appended initramfs archive
mkdir -p "$tmp/extra/bin"
cp "$tool" "$tmp/extra/bin/vsock-tool"
chmod 755 "$tmp/extra/bin/vsock-tool"
(cd "$tmp/extra" && find . | cpio -o -H newc --quiet | gzip -1) >"$tmp/extra.img"
cat "$GUEST_DIR/initramfs.img" "$tmp/extra.img" >"$tmp/initramfs.img"

start_daemon --accel tcg
export VIRTMGR_SOCKET=$SOCK
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
kill "$DAEMON_PID"
wait "$DAEMON_PID" || fail "virtmgrd exit status $? on SIGTERM"
DAEMON_PID=
pid=
echo PASS
