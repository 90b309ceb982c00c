#!/bin/bash
# attest_servicevm.sh - the Service VM and guest attestation end to end
# (docs/attestation.md), with real guests:
#  - ten concurrent GetPlatformKey calls start exactly one Service VM and
#    all get the same key;
#  - the platform key and the instance id stay the same after an idle stop
#    and after a daemon restart; DaemonInfo and `vmctl list` show it;
#  - a payload's token (vmattest in the guest -> VirtualMachineService ->
#    virtmgrd -> Service VM) verifies, by independent Python code, against
#    the platform key with a fresh challenge, and its RIM is the VM's
#    measurement; REM[0] holds the payload executable's hash;
#  - ExtendMeasurement changes the REM it names, and only it;
#  - tokens of two VMs differ in RIM;
#  - a Service VM killed while a request waits yields an error to the
#    requester, and the next request gets a fresh Service VM.
. "$top_srcdir/tests/integration/lib.sh"

PY=/usr/bin/python3
VERIFY=$top_srcdir/tests/interop/verify_token.py
STATE=$T/state
IDLE=4

start_daemon --state-dir "$STATE" --service-vm-idle "$IDLE"

svm_field() { vmctl --json info | json "$1"; }
svm_running() { [[ $(svm_field service_vm_running) == True ]]; }
svm_stopped() { [[ $(svm_field service_vm_running) == False ]]; }
started_count() { grep -c 'Service VM [0-9a-f]* started' "$T/daemon.log" || true; }
hexrand() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# ---- ten concurrent requests, one Service VM
[[ -z $(svm_field service_vm_instance_id) ]] || fail "an instance id before the first start"
pids=()
for i in $(seq 1 10); do
	vmctl attest platform-key >"$T/key.$i" 2>"$T/key.$i.err" &
	pids+=($!)
done
for i in $(seq 1 10); do
	wait "${pids[$((i - 1))]}" || fail "platform-key call $i failed: $(cat "$T/key.$i.err")"
done
grep -q 'BEGIN PUBLIC KEY' "$T/key.1" || fail "no PEM key: $(cat "$T/key.1")"
for i in $(seq 2 10); do
	cmp -s "$T/key.1" "$T/key.$i" || fail "call $i got another key"
done
[[ $(started_count) -eq 1 ]] || fail "$(started_count) Service VMs started for ten concurrent requests"
[[ $(vmctl list | grep -c ' servicevm ') -eq 1 ]] || fail "vmctl list does not show one Service VM: $(vmctl list)"
$PY -c 'import sys; from cryptography.hazmat.primitives import serialization as s
k = s.load_pem_public_key(open(sys.argv[1], "rb").read()); assert k.curve.name == "secp384r1", k.curve.name' \
	"$T/key.1" || fail "the platform key is not a P-384 SubjectPublicKeyInfo"
ok "ten concurrent GetPlatformKey calls start one Service VM and get one P-384 key"

svm_running || fail "DaemonInfo says the Service VM is not running"
[[ $(svm_field service_vm_cid) -gt 0 ]] || fail "DaemonInfo: no Service VM CID"
id1=$(svm_field service_vm_instance_id)
[[ ${#id1} -eq 128 ]] || fail "instance id '$id1' is not 64 bytes of hex"
[[ $(stat -c %s "$STATE/servicevm/instance.img") -eq 1048576 ]] || fail "instance disk is not 1 MiB"
[[ $(stat -c %a "$STATE/servicevm") == 700 ]] || fail "the Service VM state directory is not 0700"
if vmctl run --detach --name servicevm -- /bin/true 2>"$T/name.err"; then
	fail "root created a VM named servicevm"
fi
grep -q reserved "$T/name.err" || fail "the reserved name is not said: $(cat "$T/name.err")"
ok "vmctl info shows the running Service VM, its CID and its instance id; 1 MiB instance disk; its name is reserved"

# ---- idle stop, then the same identity
wait_for 60 svm_stopped || fail "the Service VM did not stop after $IDLE idle seconds"
grep -q 'Service VM idle for' "$T/daemon.log" || fail "no idle stop in the daemon log"
vmctl attest platform-key >"$T/key.idle" || fail "platform-key after the idle stop"
cmp -s "$T/key.1" "$T/key.idle" || fail "the platform key changed after an idle stop"
[[ $(svm_field service_vm_instance_id) == "$id1" ]] || fail "the instance id changed after an idle stop"
[[ $(started_count) -eq 2 ]] || fail "expected a second start after the idle stop, saw $(started_count)"
ok "after an idle stop the next request starts it again, with the same key and instance id"

# ---- daemon restart, then the same identity
stop_daemon
start_daemon --state-dir "$STATE" --service-vm-idle "$IDLE"
svm_stopped || fail "a fresh daemon reports a running Service VM"
[[ $(svm_field service_vm_instance_id) == "$id1" ]] || fail "the instance id changed across a restart"
vmctl attest platform-key >"$T/key.restart" || fail "platform-key after a daemon restart"
cmp -s "$T/key.1" "$T/key.restart" || fail "the platform key changed across a daemon restart"
ok "after a daemon restart: the same instance id and platform key"

# a daemon that dies leaves no second Service VM: the next one stops the
# old one when it starts (its record names a gone owner) before its own
svm_running || fail "the Service VM is not running before the crash"
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=
start_daemon --state-dir "$STATE" --service-vm-idle "$IDLE"
vmctl attest platform-key >"$T/key.crash" || fail "platform-key after a daemon crash"
cmp -s "$T/key.1" "$T/key.crash" || fail "the platform key changed after a daemon crash"
nq=$(pgrep -fc "qemu-system.*$T/" || true)
[[ $nq -eq 1 ]] || fail "$nq QEMU processes after a daemon crash and a new request, want the one Service VM"
ok "after a daemon crash: the old Service VM is stopped, one new one serves the same key"

# ---- a payload's token
vmctl run --detach --name g1 -- /bin/sleep 3600 >/dev/null || fail "cannot start g1"
wait_for 120 state_is g1 STARTED || fail "g1 did not start"
ch=$(hexrand 64)
vmctl exec g1 -- vmattest token --challenge "$ch" >"$T/tok1" 2>"$T/tok1.err" ||
	fail "vmattest token in g1: $(cat "$T/tok1.err")"
rim1=$(vm_field g1 measurement)
rim1=${rim1#*:}
[[ ${#rim1} -eq 64 ]] || fail "g1 has no SHA-256 measurement in VmInfo: '$rim1'"
sleep_hash=$(vmctl exec g1 -- sha256sum /bin/sleep | cut -d' ' -f1)
rem0=$($PY -c 'import hashlib,sys; print(hashlib.sha256(bytes(32) + bytes.fromhex(sys.argv[1])).hexdigest())' \
	"$sleep_hash")
$PY "$VERIFY" "$T/tok1" --challenge "$ch" --key "$T/key.1" --expect-rim "$rim1" --expect-rem "0:$rem0" \
	--expect-rem "1:$(printf '0%.0s' $(seq 64))" --print >"$T/tok1.json" 2>"$T/tok1.verr" ||
	fail "g1's token does not verify: $(cat "$T/tok1.verr")"
grep -q '"platform_lifecycle": 16384' "$T/tok1.json" || fail "lifecycle is not non-CCA-platform-debug"
grep -q '"type": "virtmgrd"' "$T/tok1.json" || fail "no virtmgrd software component"
img_hash=$(sha256sum "$GUEST_DIR/servicevm-initramfs.img" | cut -d' ' -f1)
grep -q "\"measurement\": \"$img_hash\"" "$T/tok1.json" || fail "the Service VM image's hash is not in the token"
pred=$(vmctl measure --guest-dir "$GUEST_DIR" -- /bin/sleep 3600) || fail "vmctl measure"
[[ $pred == *"$rim1"* ]] || fail "vmctl measure predicts '$pred', g1 measured $rim1"
vmctl attest verify "$T/tok1" --challenge "$ch" --expect-rim "$rim1" >"$T/tok1.txt" 2>&1 ||
	fail "vmctl attest verify: $(cat "$T/tok1.txt")"
ok "a payload's token verifies (Python and vmctl) against the platform key: challenge, RIM = VmInfo measurement = vmctl measure, REM[0] = payload hash"

# a wrong challenge and a flipped byte fail
if $PY "$VERIFY" "$T/tok1" --challenge "$(hexrand 64)" --key "$T/key.1" 2>/dev/null; then
	fail "the token verified with another challenge"
fi
cp "$T/tok1" "$T/tok1.bad"
printf '\x55' | dd of="$T/tok1.bad" bs=1 seek=$(($(stat -c %s "$T/tok1") - 20)) conv=notrunc status=none
if $PY "$VERIFY" "$T/tok1.bad" --challenge "$ch" --key "$T/key.1" 2>/dev/null; then
	fail "a token with a flipped byte verified"
fi
ok "the token fails with another challenge and with a changed byte"

# ---- ExtendMeasurement
data=$(hexrand 40)
vmctl exec g1 -- vmattest extend 2 "$data" || fail "vmattest extend 2"
ch2=$(hexrand 32)
vmctl exec g1 -- vmattest token --challenge "$ch2" >"$T/tok2" || fail "second token"
rem2=$($PY -c 'import hashlib,sys; print(hashlib.sha256(bytes(32) + bytes.fromhex(sys.argv[1])).hexdigest())' "$data")
$PY "$VERIFY" "$T/tok2" --challenge "$ch2" --key "$T/key.1" --expect-rim "$rim1" --expect-rem "0:$rem0" \
	--expect-rem "2:$rem2" --expect-rem "1:$(printf '0%.0s' $(seq 64))" 2>"$T/tok2.err" ||
	fail "after extend 2: $(cat "$T/tok2.err")"
if vmctl exec g1 -- vmattest extend 4 00 2>/dev/null; then fail "extend 4 accepted"; fi
if vmctl exec g1 -- vmattest token --challenge "$(hexrand 16)" 2>/dev/null; then fail "a 16-byte challenge accepted"; fi
ok "ExtendMeasurement changes only the REM it names; bad index and short challenge refused"

# ---- another VM: another RIM and personalization
iid=$(hexrand 64)
vmctl run --detach --name g2 --instance-id "$iid" -- /bin/sleep 3601 >/dev/null || fail "cannot start g2"
wait_for 120 state_is g2 STARTED || fail "g2 did not start"
ch3=$(hexrand 48)
vmctl exec g2 -- vmattest token --challenge "$ch3" >"$T/tok3" || fail "token in g2"
rim2=$(vm_field g2 measurement)
rim2=${rim2#*:}
[[ $rim2 != "$rim1" ]] || fail "g1 and g2 have one measurement"
$PY "$VERIFY" "$T/tok3" --challenge "$ch3" --key "$T/key.1" --expect-rim "$rim2" --print >"$T/tok3.json" \
	2>"$T/tok3.err" || fail "g2's token: $(cat "$T/tok3.err")"
grep -q "\"personalization\": \"$iid\"" "$T/tok3.json" || fail "g2's personalization is not its instance id"
grep -q "\"personalization\": \"$(printf '0%.0s' $(seq 128))\"" "$T/tok1.json" ||
	fail "g1 (no instance id) has a personalization value other than zeros"
ok "two VMs' tokens carry their own RIMs and personalization values (instance ids)"
vmctl kill g1 >/dev/null
vmctl kill g2 >/dev/null

# ---- the Service VM killed while a request waits
# With the daemon's test hooks the Service VM holds each answer 8 s, so the
# request is surely in flight when it is killed; without them, the kill
# lands while the request waits for the boot.
hold=
if "$VIRTMGRD" --version | grep -q 'test hooks: on'; then
	hold=servicevm.delay_ms=8000
fi
stop_daemon
VIRTMGR_TEST_SERVICEVM_CMDLINE=$hold start_daemon --state-dir "$STATE" --service-vm-idle "$IDLE"
before=$(started_count)
connected() { [[ $(grep -c 'Service VM [0-9a-f]* (cid [0-9]*) connected' "$T/daemon.log") -gt $1 ]]; }
nconn=$(grep -c 'Service VM [0-9a-f]* (cid [0-9]*) connected' "$T/daemon.log" || true)
vmctl attest platform-key >"$T/key.kill" 2>"$T/key.kill.err" &
req=$!
if [[ -n $hold ]]; then
	wait_for 120 connected "$nconn" || fail "the Service VM did not connect"
else
	wait_for 60 svm_running || fail "the Service VM did not start for the request"
fi
qpid=$(vmctl --json info servicevm | json qemu_pid)
[[ $qpid -gt 0 ]] || fail "no QEMU pid for the Service VM"
kill -9 "$qpid"
if wait "$req"; then
	fail "the request succeeded although its Service VM was killed"
fi
grep -q 'UNAVAILABLE' "$T/key.kill.err" || fail "the requester got no UNAVAILABLE: $(cat "$T/key.kill.err")"
grep -q 'Service VM failed' "$T/daemon.log" || fail "the failure is not in the daemon log"
vmctl attest platform-key >"$T/key.after" || fail "platform-key after the kill"
cmp -s "$T/key.1" "$T/key.after" || fail "the key changed after the kill"
[[ $(started_count) -eq $((before + 2)) ]] || fail "no fresh Service VM after the kill"
ok "a Service VM killed mid-request: the requester gets UNAVAILABLE, the next request a fresh Service VM"

# ---- a Service VM that answers wrongly is the Service VM's failure
if [[ -n $hold ]]; then
	for f in garbage oversize variant; do
		stop_daemon
		nfail=$(grep -c 'Service VM failed' "$T/daemon.log" || true)
		VIRTMGR_TEST_SERVICEVM_CMDLINE=servicevm.fault=$f start_daemon --state-dir "$STATE" --service-vm-idle 0
		if vmctl attest platform-key >/dev/null 2>"$T/fault.err"; then
			fail "a Service VM answering '$f' was believed"
		fi
		grep -q UNAVAILABLE "$T/fault.err" || fail "fault $f: no UNAVAILABLE: $(cat "$T/fault.err")"
		[[ $(grep -c 'Service VM failed' "$T/daemon.log") -gt $nfail ]] ||
			fail "fault $f: not logged as the Service VM's failure"
		grep 'Service VM failed' "$T/daemon.log" | tail -n 1 | sed 's/^/# /'
		wait_for 60 svm_stopped || fail "fault $f: the failed Service VM was not stopped"
		kill -0 "$DAEMON_PID" || fail "fault $f: the daemon died"
	done
	ok "malformed, oversize and wrong-variant answers fail the request and stop the Service VM, not the daemon"
else
	echo "# SKIP faulty Service VM answers: virtmgrd was built without --enable-test-hooks"
fi

echo "1..$NTESTS"
