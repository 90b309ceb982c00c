#!/bin/bash
# resources.sh - what a VM uses and the memory it gives back, with one real
# guest (TCG): GetVmStats through `vmctl stats --json` (QEMU and the vsock
# backend with their pids, the balloon, the guest's own view); CPU time
# moves when the guest burns CPU, disk bytes when it writes its disk, vsock
# bytes when it sends to the host; a guest that fills and frees 64 MiB
# gives most of it back (free page reporting: QEMU's RSS falls), and data
# through the vsock backend afterwards is intact; SetBalloon (`vmctl
# balloon`) is applied and reported, and undone; bad targets and a dead VM
# are refused with messages naming them; `vmctl top` prints plain lines
# without a terminal and redraws a table in one (tmux).
#
# Waits are hang guards only; every check compares amounts, never times.
source "$(dirname "$0")/lib.sh"
LIMIT=${GUEST_BOOT_LIMIT:-600}
TMUX_SOCK=virtmgr-res-$$
MIB=1048576

start_daemon --accel tcg
export VIRTMGR_SOCKET=$SOCK
V() { timeout "$LIMIT" "$VMCTL_BIN" "$@"; }

# stat EXPR: evaluate a Python expression over the VM's statistics (d)
stat() {
	V --json stats r1 | python3 -c '
import json, sys
d = json.load(sys.stdin)
p = {x["name"]: x for x in d["processes"]}
disk = {x["label"]: x for x in d["disks"]}
b = d["balloon"]
print(eval(sys.argv[1]))' "$1"
}

# holds EXPR: succeed when EXPR is true now (for wait_for, which re-runs it)
holds() { [[ $(stat "$1") == True ]]; }

truncate -s 32M "$T/d.img"
id=$(V run --detach --name r1 --mem 256 --disk "$T/d.img,label=data" -- /bin/sleep 3600)
V wait r1 --state STARTED --timeout 180 >/dev/null || fail "vm r1 did not start"
qemu_pid=$(vm_field r1 qemu_pid)

# --- 1. the figures and who they belong to
[[ $(stat 'p["qemu"]["pid"]') == "$qemu_pid" ]] || fail "stats: qemu pid is not $qemu_pid: $(V --json stats r1)"
[[ $(stat '"vsock" in p and p["vsock"]["pid"] > 0') == True ]] || fail "stats: no vsock backend process"
[[ $(stat 'd["memory_bytes"] == 256 * 1048576 and d["cpus"] == 1') == True ]] || fail "stats: memory/cpus wrong"
[[ $(stat 'd["rss_bytes"] >= p["qemu"]["rss_bytes"] > 16 * 1048576 and d["cpu_ns"] > 0') == True ]] ||
	fail "stats: implausible totals: $(V --json stats r1)"
[[ $(stat 'b["present"] and b["actual_bytes"] == 256 * 1048576 and b["target_bytes"] == 0') == True ]] ||
	fail "stats: balloon: $(V --json stats r1)"
[[ $(stat 'list(disk) == ["data"]') == True ]] || fail "stats: disks: $(V --json stats r1)"
wait_for 60 holds 'b["guest_stats_valid"]' || fail "the guest never reported its memory"
[[ $(stat '0 < b["guest_available_bytes"] <= b["guest_total_bytes"] <= 256 * 1048576 and b["guest_free_bytes"] > 0') == True ]] ||
	fail "stats: the guest's view: $(V --json stats r1)"
V stats r1 >"$T/stats.txt" || fail "vmctl stats (text) failed"
grep -q "^  qemu  *pid $qemu_pid" "$T/stats.txt" && grep -q '^guest view: *total' "$T/stats.txt" ||
	fail "vmctl stats text: $(cat "$T/stats.txt")"
ok "GetVmStats: QEMU and the vsock backend by pid, memory, balloon, disks, the guest's own view"

# ListVms and GetVmInfo carry the summary (VmInfo.usage) of a running VM
cpu_info=$(vm_field r1 cpu_ns)
rss_list=$(V --json list | python3 -c 'import json,sys; print([v for v in map(json.loads, sys.stdin) if v["name"] == "r1"][0].get("rss_bytes", 0))')
((cpu_info > 0 && rss_list > 16 * MIB)) || fail "VmInfo.usage: cpu_ns '$cpu_info', rss_bytes '$rss_list'"
V info r1 | grep -q '^usage: *cpu [0-9.]* s, rss [0-9.]* MiB' || fail "vmctl info shows no usage line"
ok "ListVms and GetVmInfo carry the running VM's CPU time and RSS"

# --- 2. the figures move with what the guest does
cpu0=$(stat 'd["cpu_ns"]')
# a fixed amount of work (about 3 s of CPU under TCG), so a loaded host
# only makes it take longer
V exec r1 -- /bin/sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done' ||
	fail "burning CPU in the guest failed"
cpu1=$(stat 'd["cpu_ns"]')
((cpu1 - cpu0 >= 1000000000)) || fail "CPU time moved by $((cpu1 - cpu0)) ns for 200,000 shell loop iterations"
ok "CPU time grows by $(((cpu1 - cpu0) / 1000000)) ms while the guest runs 200,000 shell loop iterations"

wr0=$(stat 'disk["data"]["write_bytes"]')
V exec r1 -- /bin/sh -c 'dd if=/dev/zero of=/dev/disk/by-id/virtio-data bs=1M count=8 conv=fsync 2>/dev/null' ||
	fail "writing the disk in the guest failed"
wr1=$(stat 'disk["data"]["write_bytes"]')
((wr1 - wr0 >= 8 * MIB)) || fail "disk write_bytes moved by $((wr1 - wr0)) for 8 MiB written"
ok "disk bytes written grow by $(((wr1 - wr0) / MIB)) MiB for 8 MiB written"

tx0=$(stat 'd["vsock_tx_bytes"]')
V exec r1 -- /bin/sh -c 'head -c 4194304 /dev/zero' | wc -c >"$T/n" || fail "exec over vsock failed"
[[ $(cat "$T/n") == 4194304 ]] || fail "got $(cat "$T/n") bytes from the guest"
tx1=$(stat 'd["vsock_tx_bytes"]')
((tx1 - tx0 >= 4 * MIB)) || fail "vsock_tx_bytes moved by $((tx1 - tx0)) for 4 MiB sent"
ok "vsock bytes from the guest grow by $(((tx1 - tx0) / MIB)) MiB for 4 MiB sent"

# --- 3. free page reporting: memory the guest frees goes back
before=$(stat 'p["qemu"]["rss_bytes"]')
V exec r1 -- /bin/sh -c 'dd if=/dev/zero of=/tmp/big bs=1M count=64 2>/dev/null' || fail "filling /tmp failed"
peak=$(stat 'p["qemu"]["rss_bytes"]')
((peak - before >= 48 * MIB)) || fail "QEMU RSS rose by $(((peak - before) / MIB)) MiB for 64 MiB in the guest"
V exec r1 -- /bin/rm /tmp/big || fail "rm in the guest failed"
back() { (($(stat 'p["qemu"]["rss_bytes"]') <= peak - 40 * MIB)); }
wait_for 120 back || fail "QEMU RSS $(($(stat 'p["qemu"]["rss_bytes"]') / MIB)) MiB, peak $((peak / MIB)) MiB: freed memory not given back"
after=$(stat 'p["qemu"]["rss_bytes"]')
ok "a guest that fills and frees 64 MiB gives $(((peak - after) / MIB)) MiB back (QEMU RSS $((before / MIB)) -> $((peak / MIB)) -> $((after / MIB)) MiB)"

# pages given back are holes in the shared memfd: whoever maps it (QEMU,
# the vsock backend) reads zeroes there until the guest writes them again
V exec r1 -- /bin/sh -c 'head -c 8388608 /dev/urandom >/tmp/r; md5sum </tmp/r >&2; cat /tmp/r; rm /tmp/r' \
	>"$T/r" 2>"$T/r.sum" || fail "exec of random data failed"
[[ $(md5sum <"$T/r" | cut -d' ' -f1) == $(cut -d' ' -f1 "$T/r.sum") ]] ||
	fail "8 MiB through the vsock backend after pages were given back differ: $(cat "$T/r.sum")"
ok "8 MiB of random data through the vsock backend arrive intact after memory was given back"

# --- 4. the balloon target
V balloon r1 128 | grep -q 'balloon target 128 MiB' || fail "vmctl balloon r1 128"
wait_for 120 holds 'b["actual_bytes"] == 128 * 1048576' ||
	fail "balloon: actual $(stat 'b["actual_bytes"]') after a 128 MiB target"
[[ $(stat 'b["target_bytes"]') == $((128 * MIB)) ]] || fail "balloon: target not reported"
wait_for 60 holds 'b["guest_free_bytes"] < 100 * 1048576' ||
	fail "balloon: the guest still has $(stat 'b["guest_free_bytes"] >> 20') MiB free with 128 MiB inflated"
ok "SetBalloon 128 MiB: the balloon holds 128 MiB and the guest sees less free memory"
V balloon r1 0 | grep -q 'balloon deflated' || fail "vmctl balloon r1 0"
wait_for 120 holds 'b["actual_bytes"] == 256 * 1048576' || fail "balloon: not deflated"
[[ $(stat 'b["target_bytes"]') == 0 ]] || fail "balloon: target still reported after deflating"
ok "SetBalloon 0 gives the guest all its memory back"

rc=0
V balloon r1 300 2>"$T/err" || rc=$?
[[ $rc == 1 ]] && grep -q 'INVALID_ARGUMENT: target_bytes: 300 MiB is more than vm .* memory (256 MiB)' "$T/err" ||
	fail "balloon above memory: rc $rc, $(cat "$T/err")"
rc=0
V balloon r1 16 2>"$T/err" || rc=$?
[[ $rc == 1 ]] && grep -q 'below the minimum of 64 MiB' "$T/err" || fail "balloon too small: rc $rc, $(cat "$T/err")"
rc=0
V balloon r1 lots 2>"$T/err" || rc=$?
[[ $rc == 2 ]] && grep -q 'MIB' "$T/err" || fail "balloon with a bad number: rc $rc, $(cat "$T/err")"
rc=0
V stats nosuchvm 2>"$T/err" || rc=$?
[[ $rc == 1 ]] && grep -q 'NOT_FOUND: no VM "nosuchvm"' "$T/err" || fail "stats of no VM: rc $rc, $(cat "$T/err")"
ok "bad balloon targets and unknown VMs are refused with messages naming them"

# --- 5. vmctl top
V top -n 2 -d 0.5 >"$T/top" || fail "vmctl top without a terminal failed"
[[ $(grep -c '^--- ' "$T/top") == 2 ]] || fail "top: expected 2 rounds: $(cat "$T/top")"
grep -qE "^$id  r1 +STARTED +[0-9]+\.[0-9] +[0-9.]+M " "$T/top" || fail "top: no row for r1: $(cat "$T/top")"
grep -q $'\033' "$T/top" && fail "top wrote escape sequences to a pipe"
V --json top -n 1 -d 0.5 | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
assert len(rows) == 1 and rows[0]["name"] == "r1" and rows[0]["cpu_percent"] >= 0, rows
assert rows[0]["stats"]["processes"][0]["name"] == "qemu", rows' || fail "top --json"
ok "vmctl top prints plain lines (and JSON) when stdout is not a terminal"

if command -v tmux >/dev/null; then
	trap 'tmux -L "$TMUX_SOCK" kill-server 2>/dev/null || true; cleanup' EXIT
	tmux -L "$TMUX_SOCK" new-session -d -x 140 -y 20 "$VMCTL_BIN --socket $SOCK top -d 0.5; sleep 30"
	for _ in $(seq 300); do
		tmux -L "$TMUX_SOCK" capture-pane -p >"$T/pane"
		grep -q '^vmctl top - .* - 1 VM$' "$T/pane" && grep -qE "^$id  r1 +STARTED +[0-9]+\.[0-9] " "$T/pane" && break
		sleep 0.1
	done
	grep -q '^vmctl top - ' "$T/pane" && grep -qE "^$id  r1 " "$T/pane" || fail "top in tmux: $(cat "$T/pane")"
	[[ $(grep -c '^ID ' "$T/pane") == 1 ]] || fail "top in tmux does not redraw in place: $(cat "$T/pane")"
	tmux -L "$TMUX_SOCK" kill-server 2>/dev/null || true
	ok "vmctl top redraws its table in place on a terminal (tmux)"
fi

# --- 6. a dead VM has no statistics
V kill r1 >/dev/null
rc=0
V stats r1 2>"$T/err" || rc=$?
[[ $rc == 1 ]] && grep -q "FAILED_PRECONDITION: vm $id is DEAD" "$T/err" || fail "stats of a dead VM: rc $rc, $(cat "$T/err")"
[[ -z $(vm_field r1 cpu_ns) ]] || fail "a dead VM still carries usage in GetVmInfo"
ok "a dead VM's statistics are refused (FAILED_PRECONDITION naming it), its VmInfo has no usage"
