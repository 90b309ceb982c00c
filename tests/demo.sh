#!/usr/bin/env bash
# The main job of `./build.sh demo`: start virtmgrd on a private socket, show
# the daemon info, boot the default guest with a payload through `vmctl run`
# and show what the payload printed.
set -euo pipefail
builddir=${1:?usage: demo.sh BUILDDIR}
tmp=$(mktemp -d /tmp/virtmgr-demo.XXXXXX)
# as root each VM runs under a uid of its own, which must reach its run
# directory below this one (docs/sandbox.md)
chmod 0711 "$tmp"
sock=$tmp/virtmgrd.sock
daemon_pid=
cleanup() {
	[[ -n $daemon_pid ]] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

"$builddir/server/virtmgrd" --socket "$sock" --run-dir "$tmp/run" \
	--guest-dir "$builddir/guest/image" --vsock-backend "$builddir/server/virtmgr-vsock" \
	--log-level warning &
daemon_pid=$!
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
vmctl=("$builddir/client/vmctl" --socket "$sock")

echo "### vmctl info"
"${vmctl[@]}" info
echo
echo "### vmctl run --events -- <payload>   (events on stderr: STARTED, READY, FINISHED)"
set +e
# the payload says it is ready by writing to $VIRTMGR_READY_FD (docs/guest.md)
"${vmctl[@]}" run --name demo --events -- /bin/sh -c \
	'echo "Hello from the virtmgr default guest"; uname -srm; echo >&$VIRTMGR_READY_FD; exit 7'
rc=$?
set -e
echo
echo "### vmctl exited with $rc (the payload's exit code)"
[[ $rc -eq 7 ]]
