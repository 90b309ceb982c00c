#!/usr/bin/env bash
# Early VMs end to end: `virtmgrd --early` under a temp --root with
# declarations in <root>/<partition>/etc/avf/early_vms*.xml, and the example
# client (client/examples/early_client) copied to the declared paths, booting
# real guests.
#
# Checked: the declared executable gets the static CID, its run dir
# <root>/mnt/vm/early/<cid> while it runs (and not after) and its payload's
# exit code; the same binary at an undeclared path, an undeclared name, an
# executable outside the root and an out-of-range CID are refused with the
# documented status and message; a second VM with a CID in use is
# ALREADY_EXISTS, also through a second daemon (the CID's lock); SIGHUP
# re-reads changed files, a bad entry failing only its own name; GetDaemonInfo
# says "early";
# spawn-per-client mode (early_client --spawn) boots its VM and, when the
# client is SIGKILLed, its daemon exits, QEMU is gone and the run dir
# removed.
#
# Nothing may be written outside the test's temp dir: as root, the test runs
# in its own mount namespace where / is read-only and only the temp dir is
# writable, so any stray write (a default socket or run dir, /run/virtmgr)
# makes a daemon or client fail.
#
# Where / is not a mount point (a chroot, some containers) the namespace's
# mounts cannot be made private: mount(2) refuses to change the propagation
# of "/" there ("cannot change root filesystem propagation"), and the mount
# that holds / is out of reach by path. The bind mounts below would then
# propagate back into the host's namespace, so the test runs without the
# read-only / (and says so) rather than leak mounts.
if [[ $(id -u) == 0 && -z ${EARLY_TEST_NS:-} ]] && command -v unshare >/dev/null; then
	if ns_err=$(unshare --mount --propagation private true 2>&1); then
		EARLY_TEST_NS=1 exec unshare --mount --propagation private "$BASH" "$0" "$@"
	fi
	echo "# no private mount namespace here (${ns_err:-unshare failed}): / stays writable, stray writes are not caught"
fi
source "$(dirname "$0")/lib.sh"

EARLY_CLIENT=$top_builddir/client/examples/early_client
VSOCK_BACKEND=$top_builddir/server/virtmgr-vsock
XSD=$top_srcdir/etc/early_vms.xsd
R=$T/root
[[ -x $EARLY_CLIENT ]] || fail "$EARLY_CLIENT is not built"
head -c 4 "$EARLY_CLIENT" | grep ELF >/dev/null ||
	fail "$EARLY_CLIENT is not an ELF binary (a libtool wrapper cannot be copied)"

if [[ -n ${EARLY_TEST_NS:-} ]]; then
	mount --bind "$T" "$T"
	mount -o remount,bind,ro /
	# restore before lib.sh's cleanup removes $T (the namespace dies with us)
	trap 'rc=$?; mount -o remount,bind,rw / 2>/dev/null; umount -l "$T" 2>/dev/null; (exit $rc); cleanup' EXIT
	touch /early-test-probe 2>/dev/null && fail "/ is still writable in the test's mount namespace"
	echo "# / is read-only for this test; only $T is writable"
else
	echo "# not root: / stays writable; only the explicit checks below guard against stray writes"
fi
run_virtmgr_before=$(ls -la --time-style=full-iso /run/virtmgr 2>&1 || true)

# --- the partitions: declarations and copies of the client
declare_vm() { # declare_vm PARTITION FILE NAME CID [PATH]
	local part=$1 file=$2 name=$3 cid=$4 path=${5:-/$1/bin/$3}
	mkdir -p "$R/$part/etc/avf" "$R/$part/bin"
	printf '<?xml version="1.0" encoding="UTF-8"?>\n<early_vms>\n  <early_vm>\n    <name>%s</name>\n    <cid>%s</cid>\n    <path>%s</path>\n  </early_vm>\n</early_vms>\n' \
		"$name" "$cid" "$path" >"$R/$part/etc/avf/$file"
}
install_client() { mkdir -p "$(dirname "$R/$1")" && cp "$EARLY_CLIENT" "$R/$1"; }

declare_vm system early_vms.xml vm_demo_early 123
declare_vm vendor early_vms.xml vendor_vm 321
declare_vm vendor early_vms_extra.xml vendor_vm2 322
declare_vm product early_vms.xml prod_vm 250
declare_vm system_ext early_vms.xml sysext_vm 250
declare_vm odm early_vms.xml odm_vm 150      # out of odm's range 300..399
for p in system/bin/vm_demo_early system/bin/other vendor/bin/vendor_vm vendor/bin/undeclared \
	product/bin/prod_vm system_ext/bin/sysext_vm odm/bin/odm_vm; do
	install_client "$p"
done
find "$R" | sort >"$T/root-before"

start_early() {
	"$VIRTMGRD" --early --root "$R" --early-xsd "$XSD" --guest-dir "$GUEST_DIR" --socket "$SOCK" \
		--vsock-backend "$VSOCK_BACKEND" "$@" \
		>>"$T/daemon.log" 2>&1 &
	DAEMON_PID=$!
	for _ in $(seq 200); do
		[[ -S $SOCK ]] && return 0
		kill -0 "$DAEMON_PID" 2>/dev/null || fail "virtmgrd --early exited at start"
		sleep 0.05
	done
	fail "virtmgrd --early did not create $SOCK"
}

# gone PID: the process no longer exists or is a zombie (orphans are reaped late here)
gone() { [[ ! -e /proc/$1 ]] || [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]]; }

# client_err LABEL STATUS TEXT EXE [ARGS...]: CreateVm refused with STATUS, message containing TEXT
client_err() {
	local label=$1 status=$2 text=$3 rc
	shift 3
	set +e
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	set -e
	cat "$T/err" >>"$T/errs.log"
	[[ $rc -eq 1 ]] || fail "$label: exit status $rc, expected 1: $(cat "$T/out" "$T/err")"
	grep -q "CreateVm: $status: " "$T/err" && grep -qF "$text" "$T/err" || fail "$label: expected \"$status: $text\", got: $(cat "$T/err")"
	ok "$label -> $(grep "CreateVm: " "$T/err")"
}

# --- a regular daemon is refused by the early client (GetDaemonInfo mode)
"$VIRTMGRD" --socket "$T/regular.sock" --run-dir "$T/regular-run" --guest-dir "$GUEST_DIR" \
	--vsock-backend "$VSOCK_BACKEND" \
	>>"$T/daemon.log" 2>&1 &
regular=$!
wait_for 20 test -S "$T/regular.sock" || fail "regular virtmgrd did not start"
"$R/system/bin/vm_demo_early" --info -s "$T/regular.sock" | grep " mode regular " >/dev/null ||
	fail "GetDaemonInfo of a regular daemon does not say mode regular"
set +e
"$R/system/bin/vm_demo_early" -s "$T/regular.sock" -- /bin/true >/dev/null 2>"$T/err"
rc=$?
set -e
[[ $rc -eq 1 ]] && grep -q "runs in regular mode" "$T/err" || fail "early client on a regular daemon: $rc $(cat "$T/err")"
# Only --early reads XML: a regular daemon never maps libxml2 (server/xmllib.h).
! grep libxml2 "/proc/$regular/maps" >/dev/null || fail "a regular virtmgrd has libxml2 mapped"
kill "$regular"
wait "$regular" 2>/dev/null || true
rm -rf "$T/regular-run"
ok "the early client refuses a regular daemon ($(cat "$T/err"))"

# --- early daemon: GetDaemonInfo. --run-dir is accepted but not used (the
# check at the end finds nothing at $T/run).
start_early --run-dir "$T/run"
"$R/system/bin/vm_demo_early" --info -s "$SOCK" >"$T/info"
grep -q " mode early cids 100..399 run_dir $R/mnt/vm/early " "$T/info" || fail "GetDaemonInfo: $(cat "$T/info")"
grep libxml2 "/proc/$DAEMON_PID/maps" >/dev/null || fail "virtmgrd --early has not loaded libxml2"
ok "GetDaemonInfo in early mode: $(cat "$T/info")"

# --- refusals (no VM is created)
client_err "same binary at an undeclared path" PERMISSION_DENIED \
	'early VM "vm_demo_early" in partition system must be created by /system/bin/vm_demo_early, not /system/bin/other' \
	"$R/system/bin/other" -s "$SOCK" --name vm_demo_early -- /bin/true
client_err "name not declared by the caller's partition" NOT_FOUND \
	'no early VM "undeclared" is declared for partition vendor' \
	"$R/vendor/bin/undeclared" -s "$SOCK" -- /bin/true
client_err "a system VM asked for from vendor" NOT_FOUND \
	'no early VM "vm_demo_early" is declared for partition vendor' \
	"$R/vendor/bin/vendor_vm" -s "$SOCK" --name vm_demo_early -- /bin/true
client_err "executable outside the root" PERMISSION_DENIED \
	" is outside the root $R" \
	"$EARLY_CLIENT" -s "$SOCK" --name vm_demo_early -- /bin/true
client_err "CID out of its partition's range" FAILED_PRECONDITION \
	"$R/odm/etc/avf/early_vms.xml:3: early_vm \"odm_vm\": cid 150 is outside odm's range 300..399" \
	"$R/odm/bin/odm_vm" -s "$SOCK" -- /bin/true
# run dirs only: the <cid>.lock files (early_cid_lock()) stay by design
run_dirs() { ls -A "$R/mnt/vm/early" 2>/dev/null | grep -v '\.lock$' || true; }
[[ -z $(run_dirs) ]] || fail "refused requests left run dirs: $(run_dirs)"

# --- the declared executable: static CID, run dir while it runs
"$R/system/bin/vm_demo_early" -s "$SOCK" --console "$T/console1" -- /bin/sleep 600 >"$T/client1" 2>&1 &
client1=$!
wait_for 120 state_is vm_demo_early STARTED || fail "vm_demo_early did not start: $(cat "$T/client1")"
[[ $(vm_field vm_demo_early cid) == 123 ]] || fail "cid $(vm_field vm_demo_early cid), declared 123"
[[ $(vm_field vm_demo_early early) == True || $(vm_field vm_demo_early early) == true ]] ||
	fail "GetVmInfo.early is $(vm_field vm_demo_early early)"
run1=$(vm_field vm_demo_early run_dir)
[[ $run1 == "$R/mnt/vm/early/123" ]] || fail "run dir $run1, expected $R/mnt/vm/early/123"
[[ -d $run1 && $(stat -c %a "$run1") == 700 ]] || fail "$run1 missing or not 0700"
qemu1=$(vm_field vm_demo_early qemu_pid)
grep -q 'cid 123 run_dir' "$T/client1" || fail "client output: $(cat "$T/client1")"
ok "declared client: VM vm_demo_early STARTED with static cid 123, run dir $run1 (0700)"

# --- CID in use: same VM again, and another partition's VM with the same CID
client_err "the same early VM twice" ALREADY_EXISTS 'a VM named "vm_demo_early" already exists' \
	"$R/system/bin/vm_demo_early" -s "$SOCK" -- /bin/true
"$R/product/bin/prod_vm" -s "$SOCK" -- /bin/sleep 600 >"$T/client2" 2>&1 &
client2=$!
wait_for 120 state_is prod_vm STARTED || fail "prod_vm did not start: $(cat "$T/client2")"
[[ $(vm_field prod_vm cid) == 250 ]] || fail "prod_vm cid $(vm_field prod_vm cid)"
client_err "system_ext VM with product's running CID 250" ALREADY_EXISTS \
	'early VM "sysext_vm": cid 250 is in use by a running VM' \
	"$R/system_ext/bin/sysext_vm" -s "$SOCK" -- /bin/true
[[ -d $R/mnt/vm/early/250 ]] || fail "the refused VM removed the running VM's run dir"

# --- SIGTERM to a client stops its VM; the run dir goes with it
kill -TERM "$client2"
set +e
wait "$client2"
rc=$?
set -e
[[ $rc -eq 143 ]] || fail "prod_vm client exited $rc after SIGTERM, expected 143: $(cat "$T/client2")"
grep -q 'DEAD (SHUTDOWN)' "$T/client2" || fail "prod_vm was not shut down: $(cat "$T/client2")"
[[ ! -e $R/mnt/vm/early/250 ]] || fail "run dir of prod_vm left behind"
ok "SIGTERM to the client: StopVm, DEAD (SHUTDOWN), exit 143, run dir removed"

# --- killing the first client kills its VM (owned by the connection)
kill -KILL "$client1"
wait "$client1" 2>/dev/null || true
wait_for 60 gone "$qemu1" || fail "QEMU $qemu1 of vm_demo_early survived its client"
wait_for 30 test ! -e "$run1" || fail "run dir $run1 left behind"
ok "client SIGKILLed: its VM's QEMU is gone and $run1 removed"

# --- SIGHUP re-reads changed declarations
declare_vm system early_vms.xml vm_demo_early 124
kill -HUP "$DAEMON_PID"
wait_for 30 grep -q "SIGHUP: re-reading" "$T/daemon.log" || fail "no SIGHUP reload logged"
set +e
"$R/system/bin/vm_demo_early" -s "$SOCK" --console "$T/console3" -- /bin/sh -c 'echo early-payload-ran; exit 42' \
	>"$T/client3" 2>&1
rc=$?
set -e
[[ $rc -eq 42 ]] || fail "payload exit 42 came back as $rc: $(cat "$T/client3")"
grep -q 'cid 124 run_dir' "$T/client3" || fail "after SIGHUP the VM did not get cid 124: $(cat "$T/client3")"
grep -q early-payload-ran "$T/console3" || fail "payload output missing from the console file"
[[ ! -e $R/mnt/vm/early/124 ]] || fail "run dir of cid 124 left behind"
ok "after SIGHUP the changed declaration applies (cid 124); payload exit code 42 returned"

# a reload that makes a file unreadable as XML keeps the previous table
printf '<early_vms>\n  <early_vm>\n</early_vms>\n' >"$R/system/etc/avf/early_vms.xml"
kill -HUP "$DAEMON_PID"
wait_for 30 grep -q "early_vms.xml:3: not well-formed XML" "$T/daemon.log" ||
	fail "broken reload not logged"
"$R/system/bin/vm_demo_early" -s "$SOCK" -- /bin/true >"$T/client4" 2>&1 || fail "$(cat "$T/client4")"
grep -q 'cid 124 run_dir' "$T/client4" || fail "a broken reload replaced the table: $(cat "$T/client4")"
ok "a reload with a file that is not XML keeps the previous declarations (cid 124 still)"

# a bad entry refuses its own name only (AVF's per-name rule)
printf '<?xml version="1.0" encoding="UTF-8"?>\n<early_vms>\n  <early_vm>\n    <name>vm_demo_early</name>\n    <cid>124</cid>\n    <path>/system/bin/vm_demo_early</path>\n  </early_vm>\n  <early_vm>\n    <name>typo_vm</name>\n    <cid>99</cid>\n    <path>/system/bin/typo_vm</path>\n  </early_vm>\n</early_vms>\n' \
	>"$R/system/etc/avf/early_vms.xml"
install_client system/bin/typo_vm
kill -HUP "$DAEMON_PID"
wait_for 30 grep -q "early_vm \"typo_vm\": cid 99 is outside system's range 100..199" "$T/daemon.log" ||
	fail "the bad entry was not logged"
"$R/system/bin/vm_demo_early" -s "$SOCK" -- /bin/true >"$T/client6" 2>&1 || fail "$(cat "$T/client6")"
grep -q 'cid 124 run_dir' "$T/client6" || fail "the good entry beside a bad one: $(cat "$T/client6")"
client_err "the bad entry itself" FAILED_PRECONDITION \
	"$R/system/etc/avf/early_vms.xml:8: early_vm \"typo_vm\": cid 99 is outside system's range 100..199" \
	"$R/system/bin/typo_vm" -s "$SOCK" -- /bin/true
rm -f "$R/system/bin/typo_vm"
ok "a bad entry fails only its own name; the good one in the same file boots"
declare_vm system early_vms.xml vm_demo_early 124
kill "$DAEMON_PID"
set +e
wait "$DAEMON_PID"
rc=$?
set -e
DAEMON_PID=
[[ $rc -eq 0 ]] || fail "the early daemon exited with status $rc after SIGTERM"
[[ ! -e $SOCK ]] || fail "the early daemon left its socket behind"

# --- spawn-per-client: the client forks its own daemon on a socketpair
"$R/vendor/bin/vendor_vm" --spawn "$VIRTMGRD" -D --root -D "$R" -D --early-xsd -D "$XSD" \
	-D --guest-dir -D "$GUEST_DIR" -D --vsock-backend -D "$VSOCK_BACKEND" --console "$T/console5" -- /bin/sleep 600 >"$T/client5" 2>"$T/client5.err" &
client5=$!
wait_for 30 grep -q 'cid 321 run_dir' "$T/client5" || fail "spawned: no VM: $(cat "$T/client5" "$T/client5.err")"
daemon5=$(pgrep -P "$client5" -x virtmgrd || pgrep -P "$client5" -x lt-virtmgrd) ||
	fail "the client's own daemon is not its child"
tr '\0' ' ' <"/proc/$daemon5/cmdline" | grep -- "--early --client-fd [0-9]* --ready-fd [0-9]*" >/dev/null ||
	fail "spawned daemon's command line: $(tr '\0' ' ' <"/proc/$daemon5/cmdline")"
wait_for 120 grep -qE "VIRTMGR/1 [0-9]+ [0-9a-f]+ STARTED" "$T/console5" || fail "spawned VM did not start: $(cat "$T/client5.err")"
qemu5=$(pgrep -P "$daemon5" -f qemu-system) || fail "no QEMU child of the spawned daemon"
backend5=
if grep -q " vsock user$" "$T/info"; then
	backend5=$(pgrep -P "$daemon5" -f virtmgr-vsock) || fail "no vsock backend child of the spawned daemon"
fi
[[ -d $R/mnt/vm/early/321 ]] || fail "run dir of the spawned VM missing"
ok "spawn mode: client forked virtmgrd --early --client-fd/--ready-fd (pid $daemon5), VM cid 321 runs (QEMU $qemu5)"

# a second client with its own daemon asks for the same declared VM: that
# daemon does not know the first one's VM, but its run dir is live
client_err "the same VM through a second spawned daemon" ALREADY_EXISTS \
	"cid 321 is in use by a VM of another early daemon ($R/mnt/vm/early/321" \
	"$R/vendor/bin/vendor_vm" --spawn "$VIRTMGRD" -D --root -D "$R" -D --early-xsd -D "$XSD" \
	-D --guest-dir -D "$GUEST_DIR" -D --vsock-backend -D "$VSOCK_BACKEND" -- /bin/true
[[ -d $R/mnt/vm/early/321 ]] && ! gone "$qemu5" || fail "the refused second daemon disturbed the running VM"

kill -KILL "$client5"
wait "$client5" 2>/dev/null || true
wait_for 30 gone "$daemon5" || fail "the spawned daemon $daemon5 survived its client"
wait_for 30 gone "$qemu5" || fail "QEMU $qemu5 survived the spawned daemon"
[[ -z $backend5 ]] || wait_for 30 gone "$backend5" || fail "vsock backend $backend5 survived the spawned daemon"
[[ ! -e $R/mnt/vm/early/321 ]] || fail "run dir $R/mnt/vm/early/321 left behind"
grep -q "the client closed its connection, exiting" "$T/client5.err" || fail "daemon did not log its exit"
ok "client SIGKILLed: its daemon exited, QEMU${backend5:+ and the vsock backend} gone, run dir removed"

# --- no sanitizer reports from the daemons (ASan/UBSan builds)
if grep -El "AddressSanitizer|LeakSanitizer|runtime error:" "$T/daemon.log" "$T"/client*.err "$T/errs.log" 2>/dev/null; then
	grep -EhA5 "AddressSanitizer|LeakSanitizer|runtime error:" "$T/daemon.log" "$T"/client*.err "$T/errs.log" >&2
	fail "sanitizer reports (above)"
fi

# --- nothing written outside the temp dir
[[ -z $(run_dirs) ]] || fail "left in $R/mnt/vm/early: $(run_dirs)"
find "$R" | sort | grep -v "^$R/mnt" >"$T/root-after"
diff -u <(grep -v "^$R/mnt" "$T/root-before") "$T/root-after" >&2 || fail "files changed under $R"
[[ $(ls -la --time-style=full-iso /run/virtmgr 2>&1 || true) == "$run_virtmgr_before" ]] ||
	fail "/run/virtmgr changed"
[[ ! -e $T/run ]] || fail "the early daemon created its unused --run-dir $T/run"
stray=$(cd "$T" && ls -A | grep -Ev '^(root|daemon.log|virtmgrd.sock|regular.sock|out|err|errs.log|info|client[0-9]+(\.err)?|console[0-9]+|root-(before|after))$' || true)
[[ -z $stray ]] || fail "unexpected files in $T: $stray"
ok "nothing was written outside $R except the test's own files; $R/mnt/vm/early is empty"

echo "$NTESTS passed, 0 failed"
