#!/bin/bash
# attest_measure.sh - measured launch and token verification with a real
# virtmgrd and real (TCG) guests:
# - `vmctl measure` predicts bit for bit the measurement virtmgrd computes
#   for `vmctl run` with the same options (VmInfo.measurement), with the
#   default image and with explicit kernel, initrd, command line, payload
#   config and a measured disk; an independent Python reading of the
#   documented chain (docs/attestation.md) gives the same value;
# - one byte more or different in the initrd, the command line or the argv
#   changes it; sha-384 works; a writable measured disk is refused by both;
# - an adopted VM keeps its measurement across a daemon restart;
# - `vmctl attest verify` accepts a token made by lib/ccatoken.c with the
#   right challenge, key and RIM, and fails with the reason on a flipped
#   byte, the wrong challenge, the wrong RIM and the wrong platform key.
source "$(dirname "$0")/lib.sh"
py=/usr/bin/python3
LIMIT=${GUEST_BOOT_LIMIT:-600}

start_daemon --accel tcg
export VIRTMGR_SOCKET=$SOCK
V() { timeout "$LIMIT" "$VMCTL_BIN" "$@"; }
M() { V measure --guest-dir "$GUEST_DIR" "$@"; }

# created and measured, then killed: the value exists before QEMU runs
launched() {
	local name=$1 id m
	shift
	id=$(V run --detach --name "$name" "$@") || fail "run $name: $id"
	m=$(vmctl --json info "$name" | json measurement)
	vmctl kill "$name" >/dev/null 2>&1 || true
	echo "$m"
}

# 1. the default image and a payload
want=$(M -- /bin/echo hello)
[[ $want =~ ^[0-9a-f]{64}$ ]] || fail "measure printed '$want', not 64 hex digits"
got=$(launched d1 -- /bin/echo hello)
[[ $got == "$want" ]] || fail "default image: daemon measured $got, vmctl measure predicted $want"
[[ $(vmctl --json info d1 | json measurement_alg) == sha-256 ]] || fail "measurement_alg is not sha-256"
vmctl info d1 | grep -q "^measurement:  sha-256:$want$" || fail "vmctl info does not show the measurement"
ok "vmctl measure == VmInfo.measurement (default image)"

# 2. everything explicit, with a measured read-only disk
cp "$GUEST_DIR/vmlinuz" "$T/vmlinuz"
cp "$GUEST_DIR/initramfs.img" "$T/initrd"
head -c 65536 /dev/urandom >"$T/disk.img"
chmod 0644 "$T"/vmlinuz "$T"/initrd "$T"/disk.img
opts=(--kernel "$T/vmlinuz" --initrd "$T/initrd" --cmdline "loglevel=3 attest=1" --mem 300 --cpus 2
	--env A=1 --env B=two --cwd /tmp --user 1000:1001 --disk "$T/disk.img,ro,label=rootdata,measured")
want=$(M "${opts[@]}" -- /bin/sh -c 'exit 0')
got=$(launched e1 "${opts[@]}" -- /bin/sh -c 'exit 0')
[[ $got == "$want" ]] || fail "explicit inputs: daemon measured $got, vmctl measure predicted $want"
ok "vmctl measure == VmInfo.measurement (kernel, initrd, cmdline, payload config, measured disk)"

# 3. the documented chain, recomputed independently
indep=$("$py" - "$T" <<'PY'
import hashlib, struct, sys
t = sys.argv[1]
H = hashlib.sha256
def ext(rim, kind, name, content):
    rec = bytes([kind]) + name.encode().ljust(32, b"\0") + struct.pack(">Q", len(content)) + H(content).digest()
    return H(rim + rec).digest()
def strs(v):
    return struct.pack(">I", len(v)) + b"".join(struct.pack(">I", len(s)) + s.encode() for s in v)
rim = H(b"virtmgr-rim-v1\nhash=sha-256\nmemory_mib=300\ncpus=2\nmachine=pc\naccel_class=unprotected\n").digest()
rim = ext(rim, 1, "kernel", open(t + "/vmlinuz", "rb").read())
rim = ext(rim, 2, "initrd", open(t + "/initrd", "rb").read())
rim = ext(rim, 3, "cmdline", b"loglevel=3 attest=1")
payload = strs(["/bin/sh", "-c", "exit 0"]) + strs(["A=1", "B=two"]) + struct.pack(">I", 4) + b"/tmp" \
    + b"\x01" + struct.pack(">II", 1000, 1001)
rim = ext(rim, 4, "payload", payload)
rim = ext(rim, 5, "rootdata", open(t + "/disk.img", "rb").read())
print(rim.hex())
PY
)
[[ $indep == "$want" ]] || fail "Python's reading of docs/attestation.md gives $indep, vmctl measure $want"
ok "the measurement follows the documented chain (independent Python computation)"

# 4. one byte changes it
base=$want
printf 'x' >>"$T/initrd"
m=$(M "${opts[@]}" -- /bin/sh -c 'exit 0')
[[ $m != "$base" ]] || fail "one more initrd byte did not change the measurement"
got=$(launched e2 "${opts[@]}" -- /bin/sh -c 'exit 0')
[[ $got == "$m" ]] || fail "changed initrd: daemon measured $got, vmctl measure predicted $m"
truncate -s -1 "$T/initrd"
[[ $(M "${opts[@]}" -- /bin/sh -c 'exit 0') == "$base" ]] || fail "restored initrd does not restore the measurement"
opts2=("${opts[@]}")
opts2[5]="loglevel=3 attest=2"
[[ $(M "${opts2[@]}" -- /bin/sh -c 'exit 0') != "$base" ]] || fail "a changed cmdline byte did not change it"
[[ $(M "${opts[@]}" -- /bin/sh -c 'exit 1') != "$base" ]] || fail "a changed argv byte did not change it"
[[ $(M "${opts[@]}" -- /bin/sh -c 'exit 0' '') != "$base" ]] || fail "an extra empty argv word did not change it"
ok "one byte of the initrd, the command line or the argv changes the measurement"

m384=$(M --hash-alg sha-384 -- /bin/echo hello)
[[ $m384 =~ ^[0-9a-f]{96}$ ]] || fail "sha-384 measure printed '$m384'"
rc=0
M --hash-alg md5 -- /bin/true 2>"$T/err" || rc=$?
[[ $rc == 2 ]] && grep -q "hash-alg 'md5'" "$T/err" || fail "measure --hash-alg md5: rc $rc $(cat "$T/err")"
m=$(M /bin/echo --hash-alg sha-384)
[[ $m =~ ^[0-9a-f]{64}$ && $m != "$(M /bin/echo)" ]] || fail "--hash-alg after CMD was not left to the payload: $m"
ok "sha-384 gives 48 bytes; an unknown hash algorithm is a usage error; measure's options after CMD are the payload's"

# 5. a measured disk must be read-only
rc=0
V run --detach --name w1 --disk "$T/disk.img,measured" -- /bin/true >"$T/out" 2>"$T/err" || rc=$?
((rc != 0)) && grep -q "INVALID_ARGUMENT.*disks\[0\]: a measured disk must be read-only" "$T/err" ||
	fail "writable measured disk: rc $rc, $(cat "$T/err")"
rc=0
M --disk "$T/disk.img,measured" -- /bin/true 2>"$T/err" || rc=$?
((rc != 0)) && grep -q "must be read-only" "$T/err" || fail "measure, writable measured disk: rc $rc"
ok "a writable measured disk is refused by virtmgrd and by vmctl measure"

# 6. a detached VM keeps its measurement across a daemon restart (vm.state)
want=$(M --mem 200 -- /bin/sh -c 'sleep 600')
V run --detach --name keep --mem 200 -- /bin/sh -c 'sleep 600' >/dev/null
[[ $(vmctl --json info keep | json measurement) == "$want" ]] || fail "keep: measurement before the restart"
stop_daemon
start_daemon --accel tcg
[[ $(vmctl --json info keep | json state) != DEAD ]] || fail "keep was not adopted"
got=$(vmctl --json info keep | json measurement)
[[ $got == "$want" ]] || fail "after a daemon restart the measurement is '$got', not $want"
vmctl kill keep >/dev/null 2>&1 || true
ok "an adopted VM keeps its measurement (and algorithm) across a daemon restart"

# 7. vmctl attest verify over tokens made by lib/ccatoken.c
"$top_builddir/tests/interop/cca_mktoken" "$T" 256
{ read -r chal; read -r rim; read -r rem2; } <"$T/claims"
vmctl attest verify "$T/token.cbor" --challenge "$chal" --key "$T/platform.pem" --expect-rim "$rim" >"$T/v.out" ||
	fail "verify of a good token failed"
grep -q "^token: valid$" "$T/v.out" && grep -q "^realm.rim: $rim$" "$T/v.out" && grep -q "^realm.rem2: $rem2$" "$T/v.out" &&
	grep -q "^platform.lifecycle: 0x4000 (non-CCA platform debug)$" "$T/v.out" || fail "verify output: $(cat "$T/v.out")"
[[ $(vmctl --json attest verify "$T/token.cbor" --challenge "$chal" --key "$T/platform.pem" | json rim) == "$rim" ]] ||
	fail "verify --json"
ok "attest verify: a good token, its claims printed"

bad() { # bad REASON-REGEX ARGS...
	local re=$1 rc=0
	shift
	vmctl attest verify "$@" >/dev/null 2>"$T/err" || rc=$?
	[[ $rc == 1 ]] && grep -Eq "$re" "$T/err" || fail "verify $*: rc $rc, $(cat "$T/err")"
}
badchal=$( [[ ${chal:0:2} == 00 ]] && echo "01${chal:2}" || echo "00${chal:2}")
bad "challenge .* is not the one expected" "$T/token.cbor" --challenge "$badchal" --key "$T/platform.pem"
bad "RIM .* is not the expected" "$T/token.cbor" --challenge "$chal" --key "$T/platform.pem" --expect-rim "${rim//?/0}"
bad "platform token: signature does not verify" "$T/token.cbor" --challenge "$chal" --key "$T/other.pem"
"$py" - "$T/token.cbor" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-5] ^= 0x10
open(p + ".bad", "wb").write(b)
PY
bad "realm token: signature does not verify" "$T/token.cbor.bad" --challenge "$chal" --key "$T/platform.pem"
head -c 10 "$T/token.cbor" >"$T/token.short"
bad "malformed" "$T/token.short" --challenge "$chal" --key "$T/platform.pem"
rc=0
vmctl attest verify "$T/token.cbor" --challenge abc --key "$T/platform.pem" 2>"$T/err" || rc=$?
[[ $rc == 2 ]] || fail "verify with an odd-length challenge: rc $rc"
ok "attest verify: flipped byte, wrong challenge, wrong RIM, wrong key, truncated token each fail with the reason"

echo "$NTESTS passed, 0 failed"
