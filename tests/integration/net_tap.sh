#!/usr/bin/env bash
# net_tap.sh - tap mode with real guests, the daemon (root) in a network
# namespace this test makes (unshare -n, only loopback up): the daemon's
# nftables table inet virtmgr is there; a guest gets a /30 of the pool and
# is reachable from the host at its address; a guest of another owner
# reaches the host at its gateway but not the first guest; no two live VMs
# share an address; a tap is gone after the VM ends, after KillVm and after
# QEMU's SIGKILL; after a daemon SIGKILL + restart a detached VM keeps its
# address and a new VM does not get it.
if [[ -z ${VIRTMGR_NET_NS:-} ]]; then
	command -v unshare >/dev/null || { echo "SKIP: no unshare"; exit 77; }
	[[ $(id -u) == 0 ]] || { echo "SKIP: tap mode needs root"; exit 77; }
	exec env VIRTMGR_NET_NS=1 unshare -n -- "$0" "$@"
fi
ip link set lo up
source "$(dirname "$0")/lib.sh"
[[ -x /usr/sbin/nft ]] || { echo "SKIP: no nft (Debian package nftables)"; exit 77; }
LIMIT=${GUEST_BOOT_LIMIT:-600}
owner=60002
group=nogroup
gid=$(getent group "$group" | cut -d: -f3)
[[ -n $gid ]] || fail "group $group does not exist"
addr_of() { vmctl --json info "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["network"]["address"].split("/")[0])'; }
taps() { ip -o link show | grep -c ' vmtap' || true; }
# host -> guest: connect, send a line first, print the guest's answer
ask() {
	python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"ping\n")
print(s.recv(100).decode().strip())' "$1" "$2" 2>/dev/null || true
}

start_daemon --accel tcg --group "$group" --net-pool 100.115.92.0/28
chmod 0666 "$SOCK"
vmctl_others=$(for_other_users client/vmctl)
as() { timeout "$LIMIT" setpriv --reuid "$owner" --regid "$gid" --clear-groups "$vmctl_others" --socket "$SOCK" "$@"; }
nft list table inet virtmgr >/dev/null 2>&1 && fail "the table inet virtmgr exists before any tap VM"
out=$(vmctl run --net tap -p 18000:80 -- /bin/true 2>&1) && fail "tap with a forwarded port accepted"
grep -q "network.ports: only in user mode" <<<"$out" || fail "tap + -p: unclear error: $out"
ok "no host change before tap mode is used; ports in tap mode are refused, naming the field"

# ---- A (root's): a server, reached from the host at its address
a=$(vmctl run --detach --name a --net tap -- /bin/sh -c 'while :; do echo served-by-a | nc -l -p 8080; done')
vmctl wait "$a" --state STARTED --timeout "$LIMIT" >/dev/null || fail "A did not start"
a_addr=$(addr_of "$a")
nft list table inet virtmgr >"$T/nft.txt" || fail "no nftables table inet virtmgr with a tap VM"
grep -q "masquerade" "$T/nft.txt" && grep -q 'iifname "vmtap\*" oifname "vmtap\*" drop' "$T/nft.txt" ||
	fail "table inet virtmgr lacks NAT or the tap-to-tap drop: $(cat "$T/nft.txt")"
[[ $a_addr == 100.115.92.* ]] || fail "A's address $a_addr is not from the pool"
ip -o link show "vmtap$(vm_field "$a" cid)" >/dev/null || fail "no tap for A"
got=
for ((i = 0; i < 60; i++)); do
	got=$(ask "$a_addr" 8080)
	[[ $got == served-by-a ]] && break
	sleep 1
done
[[ $got == served-by-a ]] || fail "host -> guest A at $a_addr:8080 failed (got '$got')"
ok "tap mode: virtmgrd made its nftables table (NAT, no tap-to-tap forwarding); the host reaches guest A at its address $a_addr"

# ---- B (another owner's): reaches the host at its gateway, not A
python3 - "$T/host-got" <<'EOF' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 18090))
s.listen(4)
while True:
    c, _ = s.accept()
    data = c.recv(100)
    if b"from-b" in data:
        c.sendall(b"hello-b\n")
        open(sys.argv[1], "wb").write(data)
        break
    c.close()
EOF
listener=$!
rc=0
as run --name b --net tap -- /bin/sh -c "
	gw=\$(ip route | awk '/^default/ {print \$3}'); echo gateway=\$gw
	ip addr show eth0
	echo from-b | timeout 10 nc \$gw 18090
	if echo ping | timeout 5 nc $a_addr 8080 | grep -q served; then echo REACHED-A; else echo a-unreachable; fi
	echo taps-seen-by-b" >"$T/b.out" 2>"$T/b.err" || rc=$?
kill "$listener" 2>/dev/null || true
wait "$listener" 2>/dev/null || true
[[ $rc == 0 ]] || fail "B: exit $rc: $(cat "$T/b.err") $(tail -20 "$T/b.out")"
grep -q "from-b" "$T/host-got" 2>/dev/null || fail "the host got nothing from B: $(cat "$T/b.out")"
grep -q "hello-b" "$T/b.out" || fail "B did not read the host's answer: $(cat "$T/b.out")"
grep -q "a-unreachable" "$T/b.out" || fail "B (owner $owner) reached A (root's): $(cat "$T/b.out")"
b_addr=$(sed -n 's/.*inet \(100\.115\.92\.[0-9]*\)\/30.*/\1/p' "$T/b.out")
[[ -n $b_addr && $b_addr != "$a_addr" ]] || fail "B's address '$b_addr' is missing or A's ($a_addr)"
[[ $(taps) == 1 ]] || fail "B's tap outlives B: $(ip -o link show)"
ok "guest B (uid $owner) reaches the host at its gateway, not guest A; B had $b_addr, A $a_addr; B's tap went with B"

# ---- QEMU SIGKILL and KillVm take the tap with them
c=$(vmctl run --detach --net tap -- /bin/sh -c 'sleep 600')
vmctl wait "$c" --state STARTED --timeout "$LIMIT" >/dev/null || fail "C did not start"
[[ $(addr_of "$c") != "$a_addr" ]] || fail "C got A's address"
[[ $(taps) == 2 ]] || fail "expected the taps of A and C: $(ip -o link show)"
kill -9 "$(vm_field "$c" qemu_pid)"
wait_for 60 state_is "$c" DEAD || fail "C is not DEAD after QEMU's SIGKILL"
wait_for 30 bash -c '[[ $(ip -o link show | grep -c " vmtap") == 1 ]]' || fail "C's tap outlives its QEMU"
ok "a tap is gone after QEMU is SIGKILLed"

# ---- daemon SIGKILL + restart: A keeps its address and stays reachable
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=
start_daemon --accel tcg --group "$group" --net-pool 100.115.92.0/28
[[ $(vm_field "$a" state) == STARTED && $(addr_of "$a") == "$a_addr" ]] || fail "A not re-adopted with $a_addr"
nft list table inet virtmgr >/dev/null || fail "no table inet virtmgr after the restart"
[[ $(ask "$a_addr" 8080) == served-by-a ]] || fail "A unreachable after the restart"
d=$(vmctl run --detach --net tap -- /bin/sh -c 'sleep 600')
[[ $(addr_of "$d") != "$a_addr" ]] || fail "a new VM got re-adopted A's address $a_addr"
vmctl kill "$d" >/dev/null
vmctl kill "$a" >/dev/null
wait_for 30 bash -c '[[ $(ip -o link show | grep -c " vmtap") == 0 ]]' || fail "taps left after KillVm: $(ip -o link show)"
ok "after a daemon SIGKILL + restart A keeps $a_addr (not handed out again) and is reachable; after KillVm no tap is left"
echo "1..$NTESTS"
