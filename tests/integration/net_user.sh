#!/usr/bin/env bash
# net_user.sh - user-mode networking (passt) with real guests, the daemon in
# a network namespace this test makes (unshare -n, only loopback up), so no
# packet leaves it: the guest's interface is configured by vmagent
# (address, gateway, MTU, resolv.conf, hostname); the guest reaches a TCP
# listener on the host's loopback through the gateway address; a forwarded
# host port reaches a listener in the guest; VmInfo.network and `vmctl list`
# show the address; bad input is refused naming the field; passt is gone
# after KillVm and after a QEMU SIGKILL, and a passt that dies stops its VM
# with a message naming passt.
if [[ -z ${VIRTMGR_NET_NS:-} ]]; then
	command -v unshare >/dev/null || { echo "SKIP: no unshare"; exit 77; }
	exec env VIRTMGR_NET_NS=1 unshare -n -- "$0" "$@"
fi
ip link set lo up
source "$(dirname "$0")/lib.sh"
[[ -x /usr/bin/passt ]] || { echo "SKIP: no passt (Debian package passt)"; exit 77; }
LIMIT=${GUEST_BOOT_LIMIT:-600}
passt_of() { pgrep -f "passt.*--log-file $1/passt.log" || true; }

start_daemon --accel tcg
vmctl --json info | grep -q '"network-user"' || fail "GetDaemonInfo does not list the network-user feature"

# ---- bad input names the field
out=$(vmctl run --net bogus -- /bin/true 2>&1) && fail "--net bogus accepted"
grep -q "none, user or tap" <<<"$out" || fail "--net bogus: unclear error: $out"
out=$(vmctl run -p 80 -- /bin/true 2>&1) && fail "-p 80 accepted"
grep -q "HOSTPORT:GUESTPORT" <<<"$out" || fail "-p 80: unclear error: $out"
out=$(vmctl run -p 80:80 -- /bin/true 2>&1) && fail "a privileged host port accepted"
grep -q "network.ports\[0\].host_port: 80 is below" <<<"$out" || fail "-p 80:80: unclear error: $out"
python3 -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1",18081)); s.listen(); time.sleep(60)' &
holder=$!
wait_for 10 python3 -c 'import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(("127.0.0.1",18081))==0 else 1)' ||
	fail "the port holder does not listen"
out=$(vmctl run -p 127.0.0.1:18081:80 -- /bin/true 2>&1) && fail "a host port in use accepted"
grep -q "network.ports\[0\].host_port: 127.0.0.1:18081/tcp is already in use" <<<"$out" ||
	fail "port in use: unclear error: $out"
kill "$holder"
wait "$holder" 2>/dev/null || true
ok "unknown --net mode, a malformed -p, a privileged port and a port in use are refused, naming the field"

# ---- guest -> host: a listener on the host's loopback, reached at the gateway
python3 - "$T/host-got" <<'EOF' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 18080))
s.listen(4)
while True:  # the readiness probe connects without sending
    c, _ = s.accept()
    data = b""
    while not data.endswith(b"\n"):
        d = c.recv(100)
        if not d:
            break
        data += d
    if b"guest-says-hi" in data:
        c.sendall(b"hello-from-host\n")
        open(sys.argv[1], "wb").write(data)
        break
    c.close()
EOF
listener=$!
wait_for 10 python3 -c 'import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(("127.0.0.1",18080))==0 else 1)' ||
	fail "the host listener does not listen"
rc=0
timeout "$LIMIT" "$VMCTL_BIN" --socket "$SOCK" run --name netvm --net user -- /bin/sh -c '
	ip addr show; ip route; cat /etc/resolv.conf; echo "hostname=$(hostname)"
	echo guest-says-hi | timeout 10 nc 10.0.2.2 18080 || true' >"$T/g2h.out" 2>"$T/g2h.err" || rc=$?
wait "$listener" || fail "host listener failed"
[[ $rc == 0 ]] || fail "guest->host run: exit $rc: $(cat "$T/g2h.err") $(tail -30 "$T/g2h.out")"
grep -q "guest-says-hi" "$T/host-got" || fail "the host listener got nothing from the guest"
grep -q "hello-from-host" "$T/g2h.out" || fail "the guest did not read the host's answer: $(tail -20 "$T/g2h.out")"
grep -q "inet 10.0.2.15/24" "$T/g2h.out" || fail "no 10.0.2.15/24 in the guest: $(cat "$T/g2h.out")"
grep -q "default via 10.0.2.2" "$T/g2h.out" || fail "no default route via 10.0.2.2: $(cat "$T/g2h.out")"
grep -q "mtu 65520" "$T/g2h.out" || fail "MTU not 65520: $(cat "$T/g2h.out")"
grep -q "nameserver 10.0.2.3" "$T/g2h.out" || fail "no resolv.conf nameserver: $(cat "$T/g2h.out")"
grep -q "hostname=netvm" "$T/g2h.out" || fail "hostname is not the VM's name: $(cat "$T/g2h.out")"
ok "user mode: the guest is configured (10.0.2.15/24, route, MTU, DNS, hostname) and reaches the host's loopback at 10.0.2.2"

# ---- host -> guest: a forwarded port, a detached VM serving with nc
vm=$(vmctl run --detach --name web -p 127.0.0.1:18082:8080 -- /bin/sh -c \
	'while :; do echo served-by-guest | nc -l -p 8080; done')
vmctl wait "$vm" --state STARTED --timeout "$LIMIT" >/dev/null || fail "the forwarding VM did not start"
info=$(vmctl --json info "$vm")
python3 - "$info" <<'EOF' || fail "VmInfo.network: $info"
import json, sys
n = json.loads(sys.argv[1])["network"]
assert n["mode"] == "user", n
assert n["address"] == "10.0.2.15/24", n
assert n["gateway"] == "10.0.2.2", n
assert n["mac"].startswith("02:76:6d:"), n
assert n["dns"] == ["10.0.2.3"], n
assert n["ports"] == ["127.0.0.1:18082:8080/tcp"], n
EOF
vmctl list | grep -E "^$vm .* 10\.0\.2\.15/24$" >/dev/null || fail "vmctl list shows no address: $(vmctl list)"
got=
for ((i = 0; i < 120; i++)); do
	got=$(python3 -c '
import socket
s = socket.create_connection(("127.0.0.1", 18082), timeout=5)
s.sendall(b"ping\n")  # Debian 12 passt completes the handshake on the first data
print(s.recv(100).decode().strip())' 2>/dev/null || true)
	[[ $got == served-by-guest ]] && break
	sleep 1
done
[[ $got == served-by-guest ]] || fail "the forwarded port 18082 did not reach the guest's listener (got '$got')"
ok "a forwarded host port reaches a listener in the guest; VmInfo.network and vmctl list show mode, MAC, address, gateway, DNS and ports"

# ---- a root file system sees the same resolver configuration (and hostname)
if command -v mke2fs >/dev/null; then
	source "$(dirname "$0")/rootfs-lib.sh"
	rootfs_tree "$T/rootfs" cat hostname || fail "rootfs_tree"
	mke2fs -q -t ext4 -d "$T/rootfs" "$T/root.img" 32M || fail "mke2fs -d"
	chmod 0644 "$T/root.img"
	out=$(timeout "$LIMIT" "$VMCTL_BIN" --socket "$SOCK" run --name netroot --net user --root "$T/root.img" -- \
		/bin/sh -c 'cat /etc/resolv.conf; echo "host=$(hostname)"' 2>&1) || fail "root VM with a network: $out"
	grep -q "^nameserver 10.0.2.3" <<<"$out" || fail "the root's /etc/resolv.conf lacks the VM's DNS: $out"
	grep -q "^host=netroot" <<<"$out" || fail "the root does not see the VM's hostname: $out"
	ok "a payload in a root file system sees the VM's resolv.conf and hostname"
fi

# ---- cleanup: KillVm takes passt with it
dir=$(vm_field "$vm" run_dir)
pp=$(passt_of "$dir")
[[ -n $pp ]] || fail "no passt for the running VM"
vmctl kill "$vm" >/dev/null
wait_for 30 bash -c "! kill -0 $pp 2>/dev/null" || fail "passt $pp outlives KillVm"
ok "passt is gone after KillVm"

# ---- QEMU SIGKILL: passt goes too
vm=$(vmctl run --detach --net user -- /bin/sh -c 'sleep 600')
vmctl wait "$vm" --state STARTED --timeout "$LIMIT" >/dev/null || fail "VM did not start"
dir=$(vm_field "$vm" run_dir)
pp=$(passt_of "$dir")
[[ -n $pp ]] || fail "no passt for the running VM"
kill -9 "$(vm_field "$vm" qemu_pid)"
wait_for 60 state_is "$vm" DEAD || fail "the VM is not DEAD after QEMU's SIGKILL"
wait_for 30 bash -c "! kill -0 $pp 2>/dev/null" || fail "passt $pp outlives its QEMU"
ok "passt is gone after QEMU is SIGKILLed"

# ---- passt dies: the VM is stopped, naming passt
vm=$(vmctl run --detach --net user -- /bin/sh -c 'sleep 600')
vmctl wait "$vm" --state STARTED --timeout "$LIMIT" >/dev/null || fail "VM did not start"
dir=$(vm_field "$vm" run_dir)
pp=$(passt_of "$dir")
[[ -n $pp ]] || fail "no passt for the running VM"
kill -9 "$pp"
wait_for 60 state_is "$vm" DEAD || fail "the VM runs on without its passt"
msg=$(vm_field "$vm" message)
[[ $(vm_field "$vm" death_reason) == INFRASTRUCTURE_ERROR && $msg == *passt* ]] ||
	fail "death after passt's: $(vm_field "$vm" death_reason): $msg"
ok "a passt that dies stops its VM (INFRASTRUCTURE_ERROR: $msg)"

# ---- daemon SIGKILL + restart: a detached VM keeps its passt, re-adopted
vm=$(vmctl run --detach --net user -p 18083:8080 -- /bin/sh -c \
	'while :; do echo still-served | nc -l -p 8080; done')
vmctl wait "$vm" --state STARTED --timeout "$LIMIT" >/dev/null || fail "VM did not start"
dir=$(vm_field "$vm" run_dir)
pp=$(passt_of "$dir")
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=
start_daemon --accel tcg
[[ $(vm_field "$vm" state) == STARTED ]] || fail "the detached VM was not re-adopted"
kill -0 "$pp" || fail "passt died with the daemon"
[[ $(vmctl --json info "$vm" | python3 -c 'import json,sys; print(json.load(sys.stdin)["network"]["ports"])') == "['18083:8080/tcp']" ]] ||
	fail "network info lost across the restart: $(vmctl --json info "$vm")"
got=
for ((i = 0; i < 60; i++)); do
	got=$(python3 -c '
import socket
s = socket.create_connection(("127.0.0.1", 18083), timeout=5)
s.sendall(b"ping\n")
print(s.recv(100).decode().strip())' 2>/dev/null || true)
	[[ $got == still-served ]] && break
	sleep 1
done
[[ $got == still-served ]] || fail "the forwarded port does not work after the restart"
vmctl kill "$vm" >/dev/null
wait_for 30 bash -c "! kill -0 $pp 2>/dev/null" || fail "the re-adopted passt $pp outlives KillVm"
ok "after a daemon SIGKILL + restart the VM keeps its passt and forwarded port, and KillVm then removes passt"
echo "1..$NTESTS"
