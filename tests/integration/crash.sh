#!/bin/bash
# crash.sh - crash reports from real guests (docs/crash-reports.md), TCG:
# - a payload dying of SIGSEGV and one calling abort(): one report each with
#   the right signal and executable, an EVENT_TYPE_CRASH on WatchVm, a core
#   that readelf calls CORE (with notes), a host-side backtrace whose first
#   frames name the crashing function;
# - uploads claiming another CID, cut mid-stream or over the size cap are
#   refused and the VM carries on;
# - 200 crashes in a loop: VM and daemon answer, reports stay in quota;
# - a guest kernel panic (sysrq c) becomes a kernel report with the panic text;
# - reports survive a daemon restart; rm removes one; another uid sees none.
#
# Needs the guest image and tests/guest-tools/crashtool.
source "$(dirname "$0")/lib.sh"
tool=$top_builddir/tests/guest-tools/crashtool
LIMIT=${GUEST_BOOT_LIMIT:-600}
[[ -f $tool ]] || fail "$tool is missing: run 'make tests/guest-tools/crashtool' first"

STATE=$T/state
mkdir -p "$STATE"
DOPTS=(--accel tcg --state-dir "$STATE" --crash-max-reports 5 --crash-max-core 1M --crash-rate 30)
start_daemon "${DOPTS[@]}"
export VIRTMGR_SOCKET=$SOCK
V() { timeout "$LIMIT" "$VMCTL_BIN" "$@"; }

# the tool in the guest as /bin/crashtool, and on the host as the sysroot
mkdir -p "$T/extra/bin"
install -m 0755 "$tool" "$T/extra/bin/crashtool"
(cd "$T/extra" && find . | cpio -o -H newc --quiet | gzip -1) >"$T/extra.img"
cat "$GUEST_DIR/initramfs.img" "$T/extra.img" >"$T/initramfs.img"

# reports VM: the ids of VM's reports, oldest first
reports() { V --json crashes "$1" | python3 -c '
import json, sys
for l in sys.stdin:
    print(json.loads(l)["id"])'; }
nreports() { reports "$1" | wc -l; }

# --- SIGSEGV, as a payload, with its events
rc=0
V run --events --name s1 --initrd "$T/initramfs.img" -- /bin/crashtool segv >/dev/null 2>"$T/s1.err" || rc=$?
[[ $rc == 139 ]] || fail "payload crashtool segv: vmctl exited $rc, not 139: $(cat "$T/s1.err")"
[[ $(nreports s1) == 1 ]] || fail "SIGSEGV: $(nreports s1) reports, not 1"
seg=$(reports s1)
grep -q "^vmctl: vm s1: CRASH: crash report $seg: pid [0-9]* (/bin/crashtool) signal 11" "$T/s1.err" ||
	fail "WatchVm: no CRASH event for $seg: $(cat "$T/s1.err")"
grep -q "vm .* (s1, cid .*): crash report $seg: pid [0-9]* (/bin/crashtool) killed by signal 11" "$T/daemon.log" ||
	fail "no log line naming the VM"
V --json crash show "$seg" --sysroot "$T/extra" >"$T/seg.json" || fail "crash show $seg"
python3 - "$T/seg.json" <<'PY' || fail "SIGSEGV report: $(cat "$T/seg.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["signal"] == 11 and r["signal_name"] == "SIGSEGV", r["signal"]
assert r["executable"] == "/bin/crashtool", r["executable"]
assert r["kind"] == "user" and r["vm_name"] == "s1" and not r["core_truncated"]
fns = [f["function"] for f in r["backtrace"]]
assert fns and fns[0] == "crashtool_segv", fns
assert "main" in fns[:4], fns
PY
V crash get "$seg" "$T/seg.core" || fail "crash get"

# --- the same crash in a payload running from a root file system: the same
# collector (the kernel runs it in the initramfs), the executable named as
# the payload saw it
if command -v mke2fs >/dev/null; then
	mkdir -p "$T/rootfs/bin" "$T/rootfs/etc"
	install -m 0755 "$tool" "$T/rootfs/bin/crashtool"
	mke2fs -q -t ext4 -d "$T/rootfs" "$T/root.img" 16M || fail "mke2fs -d"
	chmod 0644 "$T/root.img"
	rc=0
	V run --name sr --root "$T/root.img" -- /bin/crashtool segv >/dev/null 2>"$T/sr.err" || rc=$?
	[[ $rc == 139 ]] || fail "crashtool segv from a root: vmctl exited $rc, not 139: $(cat "$T/sr.err")"
	[[ $(nreports sr) == 1 ]] || fail "SIGSEGV from a root: $(nreports sr) reports, not 1"
	V --json crash show "$(reports sr)" --sysroot "$T/rootfs" >"$T/sr.json" || fail "crash show (root)"
	python3 - "$T/sr.json" <<'PY' || fail "SIGSEGV report from a root: $(cat "$T/sr.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["signal"] == 11 and r["executable"] == "/bin/crashtool", (r["signal"], r["executable"])
fns = [f["function"] for f in r["backtrace"]]
assert fns and fns[0] == "crashtool_segv", fns
PY
	ok "a crash in a payload running from a root file system is collected and named as the payload saw it"
fi

readelf -h "$T/seg.core" | grep -q 'Type:.*CORE' || fail "the core is not CORE: $(readelf -h "$T/seg.core")"
readelf -n "$T/seg.core" | grep -q NT_PRSTATUS || fail "the core has no NT_PRSTATUS note"
V crash show "$seg" --sysroot "$T/extra" >"$T/seg.txt" || fail "crash show (text)"
grep -q '#0 .* crashtool_segv' "$T/seg.txt" || fail "text backtrace: $(cat "$T/seg.txt")"
ok "SIGSEGV: one report, signal 11, /bin/crashtool, CRASH event, CORE file, backtrace starts in crashtool_segv"

# --- the guest's cap (VmConfig.crash_core_limit) cuts the core and says so
rc=0
V run --crash-core-limit 64K --name s2 --initrd "$T/initramfs.img" -- /bin/crashtool segv >/dev/null 2>&1 || rc=$?
[[ $rc == 139 ]] || fail "crashtool segv with --crash-core-limit 64K: vmctl exited $rc"
tr=$(reports s2)
[[ -n $tr ]] || fail "no report with --crash-core-limit 64K"
V --json crash show "$tr" --no-backtrace >"$T/tr.json" || fail "crash show $tr"
python3 - "$T/tr.json" <<'PY' || fail "truncated report: $(cat "$T/tr.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["core_truncated"] is True and r["core_size"] == 65536, (r["core_truncated"], r["core_size"])
PY
V crash get "$tr" "$T/tr.core" || fail "crash get (truncated)"
[[ $(stat -c %s "$T/tr.core") == 65536 ]] || fail "the truncated core is $(stat -c %s "$T/tr.core") bytes"
readelf -h "$T/tr.core" | grep -q 'Type:.*CORE' || fail "the truncated core is not CORE"
rc=0
V run --crash-core-limit 100 -- true 2>"$T/cl.err" || rc=$?
[[ $rc == 125 ]] && grep -q "crash-core-limit" "$T/cl.err" || fail "--crash-core-limit 100: rc $rc: $(cat "$T/cl.err")"
ok "--crash-core-limit 64K: a 64 KiB core marked truncated, still a CORE file; 100 bytes refused"

# --- abort(), in an exec session of a long-lived VM
id=$(V run --detach --name c1 --initrd "$T/initramfs.img" -- \
	sh -c 'echo >&$VIRTMGR_READY_FD; while :; do sleep 1; done') || fail "run c1"
V wait --state READY c1 >/dev/null || fail "c1 did not become READY"
rc=0
V exec c1 -- /bin/crashtool abort >/dev/null 2>&1 || rc=$?
[[ $rc == 134 ]] || fail "exec crashtool abort exited $rc, not 134"
wait_for 120 grep -q "vm $id (c1, cid .*): crash report .* signal 6" "$T/daemon.log" ||
	fail "no crash report for abort()"
[[ $(nreports c1) == 1 ]] || fail "abort(): $(nreports c1) reports, not 1"
ab=$(reports c1)
V --json crash show "$ab" --binary "$tool" >"$T/ab.json" || fail "crash show $ab"
python3 - "$T/ab.json" <<'PY' || fail "abort() report: $(cat "$T/ab.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["signal"] == 6, r["signal"]
assert r["executable"] == "/bin/crashtool"
fns = [f["function"] for f in r["backtrace"]]
assert "crashtool_abort" in fns[:8], fns
assert "abort" in fns[:fns.index("crashtool_abort")], fns
PY
ok "abort() in an exec session: one report, signal 6, backtrace through abort into crashtool_abort"

# --- forged, cut and oversize uploads
cid=$(vm_field c1 cid)
n0=$(nreports c1)
out=$(V exec c1 -- /bin/crashtool forge-cid $((cid + 1))) || true
[[ $out == "refused the report claims CID $((cid + 1)),"* ]] || fail "forged CID: $out"
out=$(V exec c1 -- /bin/crashtool truncate) || true
wait_for 60 grep -q "vm $id (c1, cid $cid): crash report refused: the stream ended before" "$T/daemon.log" ||
	fail "a cut upload was not refused: $out"
out=$(V exec c1 -- /bin/crashtool oversize 2) || true
[[ $out == "refused core larger than 1048576"* || $out == "no answer"* ]] || fail "oversize: $out"
wait_for 60 grep -q "vm $id (c1, cid $cid): crash report refused: core larger than 1048576" "$T/daemon.log" ||
	fail "an oversize upload was not refused"
[[ $(nreports c1) == "$n0" ]] || fail "refused uploads left reports"
ls "$STATE"/crashes/*/c1/ | grep -q part && fail "a refused upload left files"
[[ $(V exec c1 -- echo alive) == alive ]] || fail "c1 does not answer after refused uploads"
ok "forged CID, cut stream and oversize core refused; VM unaffected"

# --- 200 crashes
V exec c1 -- sh -c 'i=0; while [ $i -lt 200 ]; do /bin/crashtool segv 2>/dev/null; i=$((i+1)); done; echo done' \
	>"$T/loop.out" 2>&1 || true
grep -q done "$T/loop.out" || fail "the crash loop did not finish: $(cat "$T/loop.out")"
[[ $(V exec c1 -- echo alive) == alive ]] || fail "c1 does not answer after 200 crashes"
V info >/dev/null || fail "the daemon does not answer after 200 crashes"
sleep 2
n=$(nreports c1)
((n <= 5)) || fail "$n reports kept, the quota is 5"
((n >= 3)) || fail "only $n reports kept after 200 crashes"
! reports c1 | grep -q "$ab" || fail "the oldest report was not dropped"
ok "200 crashes: VM and daemon answer, $n reports kept (quota 5, oldest dropped)"

# --- kernel panic
rc=0
V run --events --name k1 -- sh -c 'sleep 1; echo c > /proc/sysrq-trigger' >/dev/null 2>"$T/k1.err" || rc=$?
[[ $rc == 134 ]] || fail "a panicking guest: vmctl run exited $rc, not 134 (CRASH): $(cat "$T/k1.err")"
grep -q "^vmctl: vm k1: CRASH: kernel crash report" "$T/k1.err" || fail "no CRASH event for the panic: $(cat "$T/k1.err")"
kid=$(reports k1 | tail -n 1)
[[ -n $kid ]] || fail "no kernel crash report for k1"
V --json crash show "$kid" >"$T/k.json" || fail "crash show $kid"
python3 - "$T/k.json" <<'PY' || fail "kernel report: $(head -c 2000 "$T/k.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["kind"] == "kernel", r["kind"]
assert "Kernel panic" in r["kernel_text"], r["kernel_text"][-500:]
assert "sysrq" in r["kernel_text"].lower()
PY
ok "sysrq-c panic: a kernel report holding the panic text"

# --- restart, permissions, rm
stop_daemon
start_daemon "${DOPTS[@]}"
[[ $(reports k1 | tail -n 1) == "$kid" ]] || fail "the kernel report is gone after a restart"
[[ $(nreports c1) == "$n" ]] || fail "c1's reports after a restart: $(nreports c1), not $n"
# the adopted VM still reports
last=$(reports c1 | tail -n 1)
V exec c1 -- /bin/crashtool segv >/dev/null 2>&1 || true
newest() { [[ $(reports c1 | tail -n 1) != "$last" ]]; }
wait_for 120 newest || fail "no report from the adopted VM"
other=$(for_other_users client/vmctl)
chmod 0777 "$SOCK"
cnt=$(setpriv --reuid 1000 --regid 1000 --clear-groups "$other" --socket "$SOCK" --json crashes 2>/dev/null | wc -l || true)
[[ $cnt == 0 ]] || fail "uid 1000 sees $cnt reports of root's VMs"
V crash rm "$kid" || fail "crash rm"
[[ -z $(reports k1) ]] || fail "the report is still listed after rm"
rc=0
V crash show "$kid" 2>"$T/rm.err" || rc=$?
[[ $rc == 1 ]] && grep -q NOT_FOUND "$T/rm.err" || fail "show after rm: rc $rc: $(cat "$T/rm.err")"
ok "reports survive a restart; the adopted VM still reports; other uids see none; rm removes one"

echo "$NTESTS passed, 0 failed"
