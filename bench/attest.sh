#!/bin/bash
# attest.sh - attestation benchmark (docs/attestation.md): time to a token
# with the Service VM cold (stopped: the request boots it) and warm, and
# tokens per second with it warm, measured from a guest payload's point of
# view (vmattest in a TCG guest, through vmagent, virtmgrd and the Service
# VM). Figures only, nothing asserted: run with `make bench-attest`.
#
# Usage: bench/attest.sh BUILDDIR [N]   (N warm tokens, default 50)
set -euo pipefail
B=$(cd "${1:?usage: attest.sh BUILDDIR [N]}" && pwd)
N=${2:-50}
GUEST_DIR=$B/guest/image
[[ -f $GUEST_DIR/servicevm-initramfs.img ]] || { echo "run 'make guest-image' first" >&2; exit 1; }
T=$(mktemp -d /tmp/virtmgr-bench-attest.XXXXXX)
chmod 0755 "$T"
SOCK=$T/sock
PID=
cleanup() {
	[[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
vmctl() { "$B/client/vmctl" --socket "$SOCK" "$@"; }
now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }
since() { calc "$(now) - $1"; }

"$B/server/virtmgrd" --socket "$SOCK" --run-dir "$T/run" --state-dir "$T/state" --guest-dir "$GUEST_DIR" \
	--vsock-backend "$B/server/virtmgr-vsock" --service-vm-idle 3 >"$T/daemon.log" 2>&1 &
PID=$!
for _ in $(seq 100); do [[ -S $SOCK ]] && break; sleep 0.1; done

vmctl attest platform-key >/dev/null # first start: makes the keys once
vmctl run --detach --name bench -- /bin/sleep 100000 >/dev/null
until [[ $(vmctl --json info bench | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])') == STARTED ]]; do
	sleep 0.2
done
ch=$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n')

# the cost of reaching the guest at all, subtracted below
t=$(now); vmctl exec bench -- true; base=$(since "$t")

until [[ $(vmctl --json info | python3 -c 'import json,sys; print(json.load(sys.stdin)["service_vm_running"])') == False ]]; do
	sleep 0.2
done
t=$(now); vmctl exec bench -- vmattest token --challenge "$ch" >/dev/null; cold=$(since "$t")
t=$(now); vmctl exec bench -- vmattest token --challenge "$ch" >/dev/null; warm=$(since "$t")
t=$(now)
vmctl exec bench -- /bin/sh -c "i=0; while [ \$i -lt $N ]; do vmattest token --challenge $ch >/dev/null || exit 1; i=\$((i+1)); done"
loop=$(since "$t")
t=$(now); vmctl attest platform-key >/dev/null; key_warm=$(since "$t")

printf 'attestation (TCG guest, 1 vCPU Service VM), seconds:\n'
printf '  guest exec round trip (baseline)       %8.3f\n' "$base"
printf '  first token, Service VM cold           %8.3f  (minus baseline %.3f)\n' "$cold" "$(calc "$cold - $base")"
printf '  next token, Service VM warm            %8.3f  (minus baseline %.3f)\n' "$warm" "$(calc "$warm - $base")"
printf '  cold / warm                            %8.1f\n' "$(calc "($cold - $base) / max($warm - $base, 1e-3)")"
printf '  warm tokens/s (%d in one guest loop)   %8.1f\n' "$N" "$(calc "$N / max($loop - $base, 1e-3)")"
printf '  GetPlatformKey from the host, warm     %8.3f\n' "$key_warm"
vmctl kill bench >/dev/null
