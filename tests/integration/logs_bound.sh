#!/usr/bin/env bash
# A guest cannot exhaust the host through its output: with virtmgrd
# --log-max-size 64K --log-keep 2, a payload floods its console and the
# guest log (syslog through vmagent) for about 18 s while the daemon is
# restarted once (the adopted VM's files go on under the same bound).
# Meanwhile and after: no log file passes 64 KiB, at most 2 rotated files of
# each exist, `vmctl info` and `vmctl list` answer, `vmctl logs` prints the
# rotated files then the current one (ending with the newest output),
# `vmctl logs -f` follows across rotations, and the VM stops cleanly.
source "$(dirname "$0")/lib.sh"
MAX=$((64 << 10))
KEEP=2
OPTS=(--log-max-size 64K --log-keep "$KEEP")
start_daemon "${OPTS[@]}"

# console: numbered lines as fast as the shell prints them; guest log: long
# syslog records through logger; both for 18 s, then "flood-done"
payload='
pad=cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc
timeout 18 sh -c "i=0; while :; do echo con \$i $pad$pad; i=\$((i+1)); done" &
timeout 18 awk "BEGIN { s = sprintf(\"%900s\", \"\"); gsub(/ /, \"g\", s); for (i = 0; ; i++) print \"glog\", i, s }" |
	logger -t flood
wait
echo flood-done
logger -t flood glog-done
exec sleep 3600'
id=$(vmctl run --detach --name flood -- /bin/sh -c "$payload")
vmctl wait flood --state STARTED --timeout 180 >/dev/null || fail "vm flood did not start"
run_dir=$(vm_field flood run_dir)

# check_bound: every log file within the bound, no more rotated files than kept
check_bound() {
	local f size n
	for f in "$run_dir"/{console,guest,qemu}.log*; do
		# a file may be renamed away between the glob and the stat (rotation)
		size=$(stat -c %s "$f" 2>/dev/null) || continue
		((size <= MAX)) || fail "$f is $size bytes, over the $MAX bound"
	done
	for f in console guest qemu; do
		n=$(find "$run_dir" -maxdepth 1 -name "$f.log.*" | wc -l)
		((n <= KEEP)) || fail "$n rotated $f.log files in $run_dir, --log-keep is $KEEP"
		[[ ! -e $run_dir/$f.log.$((KEEP + 1)) ]] || fail "$f.log.$((KEEP + 1)) exists"
	done
}

# check_answers: the daemon answers while the guest floods
# What the guest was doing, for a failure message: its processes (through
# the agent) and the ends of the console and guest logs.
flood_diag() {
	echo "guest processes:"
	timeout 20 "$VMCTL_BIN" --socket "$SOCK" exec flood -- ps 2>&1 | tail -n 20
	echo "console.log ends:"
	tail -c 600 "$run_dir/console.log" 2>&1
	echo "guest.log ends:"
	tail -n 5 "$run_dir/guest.log" 2>&1 | cut -c1-200
}

check_answers() {
	timeout 10 "$VMCTL_BIN" --socket "$SOCK" info flood >/dev/null || fail "vmctl info does not answer"
	timeout 10 "$VMCTL_BIN" --socket "$SOCK" list >/dev/null || fail "vmctl list does not answer"
}

end=$((SECONDS + 8))
while ((SECONDS < end)); do
	check_bound
	check_answers
	sleep 0.5
done
[[ -e $run_dir/console.log.1 ]] || fail "the console flood never filled console.log (no console.log.1)"
ok "during the flood every log file stays within 64 KiB, at most $KEEP rotated, the daemon answers"

# a new daemon adopts the VM and continues its files under the same bound
stop_daemon
check_bound
start_daemon "${OPTS[@]}"
state_is flood STARTED || fail "vm flood not adopted: $(vm_field flood state)"
"$VMCTL_BIN" --socket "$SOCK" logs -f flood >"$T/follow.out" 2>"$T/follow.err" &
follow_pid=$!
end=$((SECONDS + 60))
until grep -q '^flood-done' "$run_dir/console.log" 2>/dev/null; do
	((SECONDS < end)) || fail "the payload never printed flood-done; $(flood_diag)"
	check_bound
	check_answers
	sleep 0.5
done
check_bound
[[ -e $run_dir/guest.log.1 ]] || fail "the guest log flood never filled guest.log (no guest.log.1)"
ok "after a daemon restart the adopted VM's logs stay bounded; console and guest log both rotated"

# vmctl logs: the rotated files oldest first, then the current one
wait_for 30 grep -q 'glog-done' "$run_dir/guest.log" || fail "glog-done not in guest.log"
for kind in console guest; do
	vmctl logs --kind "$kind" flood >"$T/$kind.out"
	files=()
	for ((i = KEEP; i >= 1; i--)); do
		[[ -e $run_dir/$kind.log.$i ]] && files+=("$run_dir/$kind.log.$i")
	done
	files+=("$run_dir/$kind.log")
	cat "${files[@]}" | cmp -s - "$T/$kind.out" ||
		fail "vmctl logs --kind $kind is not ${files[*]} in that order"
done
tail -n 1 "$T/console.out" | grep -q '^flood-done' || fail "vmctl logs does not end with the newest output"
grep -q 'glog-done' "$T/guest.out" || fail "vmctl logs --kind guest lacks the newest record"
ok "vmctl logs prints the rotated files then the current one, ending with the newest output"

# vmctl logs -f followed the rotations: the newest output, lines in order
wait_for 30 grep -q '^flood-done' "$T/follow.out" || fail "vmctl logs -f never printed flood-done: $(cat "$T/follow.err")"
awk '$1 == "con" && NF == 3 { if ($2 + 0 <= last) bad++; last = $2 + 0; n++ }
	END { printf "# vmctl logs -f: %d console lines after the restart, %d out of order\n", n, bad; exit bad > 0 }' \
	"$T/follow.out" || fail "vmctl logs -f repeated or reordered lines"
ok "vmctl logs -f follows the console across rotations"

# the VM still stops cleanly, and the follower ends with it
vmctl stop flood --timeout 30 >/dev/null || fail "vmctl stop failed"
[[ $(vm_field flood death_reason) == SHUTDOWN ]] || fail "stop: death reason $(vm_field flood death_reason)"
wait_for 10 bash -c "! kill -0 $follow_pid 2>/dev/null" || fail "vmctl logs -f did not end with the VM"
wait "$follow_pid" || fail "vmctl logs -f exited $?: $(cat "$T/follow.err")"
ok "the flooding VM stops cleanly (DEAD/SHUTDOWN) and vmctl logs -f ends with it"

echo "$NTESTS passed, 0 failed"
