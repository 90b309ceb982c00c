#!/usr/bin/env bash
# Each VM's QEMU and vsock backend under a uid of the VM's own
# (docs/sandbox.md): two VMs of a root daemon run under two uids of the
# --vm-uid-range, with no capabilities, NO_NEW_PRIVS and seccomp; one VM's
# uid cannot signal the other's QEMU, read its /proc environ or list its run
# dir; payloads still finish with their exit code; the uids are free again
# after the VMs die; a restarted daemon re-adopts a VM with its uid. A
# daemon that is not root says that VMs run as its own uid.
source "$(dirname "$0")/lib.sh"

LO=1879100000
HI=1879100003

if (($(id -u) != 0)); then
	start_daemon --vm-uid-range "$LO-$HI"
	info=$(vmctl --json info)
	[[ $(json vm_sandbox <<<"$info") == False ]] || fail "non-root daemon claims a sandbox: $info"
	json vm_sandbox_reason <<<"$info" | grep -q "^not root: VMs run as uid $(id -u)" ||
		fail "no not-root report: $info"
	vmctl info | grep -q "^VMs run as:  not root" || fail "vmctl info does not say who VMs run as"
	ok "not root: GetDaemonInfo and vmctl info say VMs run as the daemon's uid (uid checks need root)"
	exit 0
fi

# a bad range is refused at start
if "$VIRTMGRD" --socket "$T/bad.sock" --run-dir "$T/bad" --vm-uid-range 0-10 >"$T/bad.log" 2>&1; then
	fail "virtmgrd accepted --vm-uid-range 0-10"
else
	[[ $? == 2 ]] || fail "--vm-uid-range 0-10: exit code is not 2"
fi
grep -q "vm-uid-range" "$T/bad.log" || fail "no message for a bad range: $(cat "$T/bad.log")"
ok "a bad --vm-uid-range is refused with exit code 2"

start_daemon --vm-uid-range "$LO-$HI"
info=$(vmctl --json info)
[[ $(json vm_sandbox <<<"$info") == True && $(json vm_uid_range <<<"$info") == "$LO-$HI" ]] ||
	fail "GetDaemonInfo: $info"
vmctl info | grep -q "^VMs run as:  uid range $LO-$HI, no capabilities, seccomp" ||
	fail "vmctl info: $(vmctl info)"
ok "GetDaemonInfo and vmctl info report the uid range"

# status field of a process: the values after "NAME:"
status() { awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status"; }
backend_of() { pgrep -f "virtmgr-vsock.*$1/vsock.sock" | head -1; }

a=$(vmctl run --detach --name a -- /bin/sh -c 'sleep 600')
b=$(vmctl run --detach --name b -- /bin/sh -c 'sleep 600')
vmctl wait "$a" --state STARTED --timeout 180 >/dev/null || fail "a did not start"
vmctl wait "$b" --state STARTED --timeout 180 >/dev/null || fail "b did not start"
qa=$(vm_field "$a" qemu_pid)
qb=$(vm_field "$b" qemu_pid)
da=$(vm_field "$a" run_dir)
db=$(vm_field "$b" run_dir)
ba=$(backend_of "$da")
bb=$(backend_of "$db")
[[ -n $ba && -n $bb ]] || fail "no vsock backends for $da and $db"
ua=$(status "$qa" Uid | awk '{ print $1 }')
ub=$(status "$qb" Uid | awk '{ print $1 }')
((ua >= LO && ua <= HI && ub >= LO && ub <= HI && ua != ub)) || fail "uids $ua and $ub (range $LO-$HI)"
for p in "$qa" "$ba"; do
	[[ $(status "$p" Uid) == "$ua $ua $ua $ua" && $(status "$p" Gid) == "$ua $ua $ua $ua" ]] ||
		fail "pid $p: Uid $(status "$p" Uid), Gid $(status "$p" Gid), want $ua"
done
for p in "$qb" "$bb"; do
	[[ $(status "$p" Uid) == "$ub $ub $ub $ub" ]] || fail "pid $p: Uid $(status "$p" Uid), want $ub"
done
ok "VM a's QEMU and backend run as uid $ua, VM b's as uid $ub"

for p in "$qa" "$ba" "$qb" "$bb"; do
	for c in CapEff CapPrm CapBnd CapInh CapAmb; do
		[[ $(status "$p" $c) == 0000000000000000 ]] || fail "pid $p: $c $(status "$p" $c)"
	done
	[[ $(status "$p" NoNewPrivs) == 1 ]] || fail "pid $p: NoNewPrivs $(status "$p" NoNewPrivs)"
	[[ -z $(status "$p" Groups) ]] || fail "pid $p: groups $(status "$p" Groups)"
	[[ $(status "$p" Seccomp) == 2 ]] || fail "pid $p ($(cat "/proc/$p/comm")): Seccomp $(status "$p" Seccomp)"
done
ok "no capabilities in any set, no groups, NoNewPrivs 1, Seccomp 2 (QEMU's -sandbox, virtmgr-vsock's filter)"

as_a() { setpriv --reuid="$ua" --regid="$ua" --clear-groups "$@"; }
as_a kill -0 "$qa" || fail "uid $ua cannot signal its own QEMU (the check itself is broken)"
if as_a kill -0 "$qb" 2>/dev/null; then fail "uid $ua can signal VM b's QEMU"; fi
if as_a cat "/proc/$qb/environ" >/dev/null 2>&1; then fail "uid $ua can read VM b's /proc/PID/environ"; fi
if as_a ls "$db" >/dev/null 2>&1; then fail "uid $ua can list VM b's run dir"; fi
if as_a cat "$db/console.log" >/dev/null 2>&1; then fail "uid $ua can read VM b's console.log"; fi
as_a ls "$da" >/dev/null || fail "uid $ua cannot list its own run dir"
[[ $(stat -c %u:%a "$da") == "$ua:700" && $(stat -c %a "$(dirname "$da")") == 711 ]] ||
	fail "run dir $(stat -c %u:%a "$da"), vms $(stat -c %a "$(dirname "$da")")"
ok "uid $ua cannot signal VM b's QEMU, read its environ or list its run dir (its own: 0700, vms/: 0711)"

# payloads still run to completion with their exit code, two at once,
# using the last two uids of the range
vmctl run -- /bin/sh -c 'exit 3' >"$T/p1.out" 2>&1 &
p1=$!
vmctl run -- /bin/sh -c 'exit 0' >"$T/p2.out" 2>&1 &
p2=$!
wait "$p1" && rc1=0 || rc1=$?
wait "$p2" && rc2=0 || rc2=$?
((rc1 == 3 && rc2 == 0)) || fail "payload exit codes $rc1 ($(cat "$T/p1.out")) and $rc2 ($(cat "$T/p2.out")), want 3 and 0"
ok "two more VMs run their payloads to completion (exit 3 and 0) beside a and b"

# the range has no more than those two free uids: two more VMs at once start
# only if both were given back
vmctl run -- /bin/sh -c 'exit 5' >"$T/p3.out" 2>&1 &
p3=$!
vmctl run -- /bin/sh -c 'exit 6' >"$T/p4.out" 2>&1 &
p4=$!
wait "$p3" && rc3=0 || rc3=$?
wait "$p4" && rc4=0 || rc4=$?
((rc3 == 5 && rc4 == 6)) || fail "after the first two died: exit codes $rc3 ($(cat "$T/p3.out")) and $rc4 ($(cat "$T/p4.out"))"
ok "the uids of finished VMs are free again: two more VMs run (exit 5 and 6)"

# restart with VM a alive: re-adopted under the same uid, which stays taken
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=
start_daemon --vm-uid-range "$LO-$HI"
[[ $(vm_field "$a" state) == STARTED && $(vm_field "$a" qemu_pid) == "$qa" ]] || fail "a not adopted"
[[ $(status "$qa" Uid | awk '{ print $1 }') == "$ua" ]] || fail "a's QEMU changed uid"
grep -q "uid=$ua" "$da/vm.state" || fail "vm.state of a lacks uid=$ua"
c=$(vmctl run --detach --name c -- /bin/sh -c 'sleep 600')
vmctl wait "$c" --state STARTED --timeout 180 >/dev/null || fail "c did not start"
uc=$(status "$(vm_field "$c" qemu_pid)" Uid | awk '{ print $1 }')
[[ $uc != "$ua" && $uc != "$ub" ]] || fail "c got uid $uc, held by a ($ua) or b ($ub)"
ok "restarted daemon re-adopted VM a with uid $ua; a new VM gets another uid ($uc)"

vmctl kill "$a" >/dev/null
vmctl kill "$b" >/dev/null
vmctl kill "$c" >/dev/null
wait_for 60 bash -c "! kill -0 $qa 2>/dev/null && ! kill -0 $qb 2>/dev/null" || fail "a and b still run"
d=$(vmctl run -- /bin/sh -c 'exit 4' >/dev/null 2>&1 && echo 0 || echo $?)
[[ $d == 4 ]] || fail "after every VM died, a payload VM exits $d, want 4"
ok "after the VMs die their uids are free again"
