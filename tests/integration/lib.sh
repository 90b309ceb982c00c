# lib.sh - shared helpers for integration tests: a private virtmgrd on a temp
# socket and run dir, vmctl bound to it, JSON field extraction and polling.
# Sourced by tests/integration/*.sh; the test driver exports top_builddir.
set -euo pipefail

: "${top_builddir:?top_builddir is not set (run through make check)}"
: "${top_srcdir:?top_srcdir is not set (run through make check)}"
VIRTMGRD=$top_builddir/server/virtmgrd
VMCTL_BIN=$top_builddir/client/vmctl
GUEST_DIR=$top_builddir/guest/image
[[ -f $GUEST_DIR/vmlinuz && -f $GUEST_DIR/initramfs.img ]] || {
	echo "FAIL: no guest image in $GUEST_DIR: run 'make guest-image' first" >&2
	exit 1
}

T=$(mktemp -d /tmp/virtmgr-test.XXXXXX)
chmod 0755 "$T"
SOCK=$T/virtmgrd.sock
DAEMON_PID=
NTESTS=0

cleanup() {
	local rc=$?
	if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill "$DAEMON_PID" 2>/dev/null || true
		wait "$DAEMON_PID" 2>/dev/null || true
	fi
	# detached VMs outlive the daemon by design: reap what a test left behind
	pkill -9 -f "qemu-system.*$T/" 2>/dev/null || true
	if ((rc != 0)) && [[ -f $T/daemon.log ]]; then
		echo "---- daemon log (last 60 lines)" >&2
		tail -n 60 "$T/daemon.log" >&2
	fi
	rm -rf "$T"
	exit "$rc"
}
trap cleanup EXIT

# start_daemon [EXTRA OPTIONS...]: virtmgrd on $SOCK, run dir $T/run. Returns
# once the daemon says it serves (--ready-fd): socket mode and group are set,
# VMs of a previous daemon are adopted.
start_daemon() {
	local ready=$T/ready.fifo rfd c= i
	# the test keeps the FIFO open too, so the byte survives the daemon
	# closing its end before we read it
	mkfifo "$ready"
	exec {rfd}<>"$ready"
	rm -f "$ready"
	# the test's own state directory (image store, crash reports, the
	# Service VM's identity), never the host's /var/lib/virtmgr; a
	# --state-dir in the arguments comes later and wins
	"$VIRTMGRD" --socket "$SOCK" --run-dir "$T/run" --state-dir "$T/state" --guest-dir "$GUEST_DIR" \
		--vsock-backend "$top_builddir/server/virtmgr-vsock" --ready-fd 3 "$@" \
		3>&"$rfd" >>"$T/daemon.log" 2>&1 &
	DAEMON_PID=$!
	for ((i = 0; i < 1200; i++)); do
		read -r -t 0.1 -n 1 -u "$rfd" c && break
		kill -0 "$DAEMON_PID" 2>/dev/null || break
	done
	exec {rfd}>&-
	[[ $c == R ]] || fail "virtmgrd did not become ready (see the daemon log)"
}

# Tests that bound the daemon's RSS call this before start_daemon: in an
# ASan build, freed memory waits in a quarantine (256 MiB by default) before
# reuse, which reads as growth that a normal build does not have. Heap
# overflow and leak detection stay on.
asan_measure_rss() {
	export ASAN_OPTIONS="quarantine_size_mb=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
}

# start_bystander LO: for the fault tests, whose daemon has the two CIDs
# LO and LO+1: a detached VM printing "hb N" on its console every half
# second. Sets keeper (its id), keeper_dir, keeper_pid, keeper_cid,
# victim_cid (the other CID) and baseline (virtmgrd's fd count with it).
start_bystander() {
	local lo=$1
	keeper=$(vmctl run --detach --name bystander -- /bin/sh -c \
		'i=0; while :; do echo hb $i; i=$((i+1)); sleep 0.5; done')
	vmctl wait "$keeper" --state STARTED --timeout 180 >/dev/null || fail "bystander did not start"
	keeper_dir=$(vm_field "$keeper" run_dir)
	keeper_pid=$(vm_field "$keeper" qemu_pid)
	keeper_cid=$(vm_field "$keeper" cid)
	victim_cid=$((keeper_cid == lo ? lo + 1 : lo))
	wait_for 60 grep -q '^hb 2' "$keeper_dir/console.log" || fail "bystander prints no heartbeat"
	baseline=$(fd_count "$DAEMON_PID")
	echo "# virtmgrd fds with the bystander alone: $baseline"
}

stop_daemon() {
	kill "$DAEMON_PID" && wait "$DAEMON_PID" || true
	DAEMON_PID=
}

vmctl() { "$VMCTL_BIN" --socket "$SOCK" "$@"; }

# for_other_users PROGRAM: print the path of a copy of the built PROGRAM
# (relative to top_builddir, e.g. client/vmctl) that any uid may run. Tests
# run programs as other users (setpriv), and the build tree may sit where
# they cannot enter (a clone in /root, mode 0700); client/vmctl is besides a
# libtool wrapper script around client/.libs/vmctl and the uninstalled
# shared libraries. So the real binary and the libraries of the build tree
# it links (found through libtool's execute mode, as the wrapper finds them)
# are copied into $T/others (0755, under /tmp), behind a small script that
# points the loader there.
for_other_users() {
	local prog=$top_builddir/$1 name=${1##*/} dir=$T/others real _ arrow lib
	mkdir -p "$dir/lib"
	chmod 0755 "$dir" "$dir/lib"
	real=$("$top_builddir/libtool" --mode=execute echo "$prog")
	install -m 0755 "$real" "$dir/lib/$name"
	"$top_builddir/libtool" --mode=execute ldd "$prog" >"$dir/$name.ldd" || fail "ldd $prog"
	while read -r _ arrow lib _; do
		if [[ $arrow == "=>" && $lib == "$top_builddir"/* ]]; then
			install -m 0644 "$lib" "$dir/lib/"
		fi
	done <"$dir/$name.ldd"
	rm -f "$dir/$name.ldd"
	printf '#!/bin/sh\nLD_LIBRARY_PATH='"'%s'"' exec '"'%s'"' "$@"\n' "$dir/lib" "$dir/lib/$name" >"$dir/$name"
	chmod 0755 "$dir/$name"
	echo "$dir/$name"
}

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { NTESTS=$((NTESTS + 1)); echo "ok $NTESTS - $*"; }

# json FIELD: print FIELD of the first JSON object on stdin.
json() { python3 -c 'import json,sys; v=json.loads(sys.stdin.readline()).get(sys.argv[1]); print("" if v is None else v)' "$1"; }

# vm_field VM FIELD
vm_field() { vmctl --json info "$1" | json "$2"; }

# wait_for SECONDS CMD...: poll until CMD succeeds.
wait_for() {
	local limit=$1; shift
	local end=$((SECONDS + limit))
	until "$@"; do
		((SECONDS < end)) || return 1
		sleep 0.1
	done
}

state_is() { [[ $(vm_field "$1" state 2>/dev/null) == "$2" ]]; }

fd_count() { ls "/proc/$1/fd" | wc -l; }
