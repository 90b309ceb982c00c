#!/bin/bash
# bench/resources.sh - what a VM costs the host, today's settings against
# the new ones (docs/performance.md, "Memory and the TCG buffer"):
#   rss      QEMU RSS of an idle default-image guest of 96 MiB, 30 s after
#            STARTED, for each configuration
#   boot     `vmctl run --mem 96 -- /bin/true` wall time, configurations
#            alternated run by run (A B A B ...), median/min/max
#   bootcpu  CPU time QEMU (and the backend) spent until STARTED: less
#            sensitive to other work on a shared machine than wall time
#   density  N guests of 96 MiB started at once: host memory in use
#            (MemTotal - MemAvailable) before and 30 s after all are STARTED
# Configurations: "old" = --tcg-tb-size 0 --no-balloon (QEMU's own TCG
# buffer, no balloon: the settings before), "new" = the defaults, and
# "tbN" = the defaults with --tcg-tb-size N for each N of --tb-sizes.
#
# "--config NAME=OPTIONS" adds a configuration of its own (daemon options).
#
# Usage: bench/resources.sh --builddir DIR [--reps N] [--tb-sizes "16 32"] [--config NAME=OPTS]...
#                           [--only rss,boot,density] [--vms N] [--settle SEC]
# Prints one line per figure; nothing is asserted.
set -euo pipefail

builddir=
reps=5
tb_sizes=
only=rss,boot,bootcpu,density
nvms=32
settle=30
extra=()
while (($#)); do
	case $1 in
	--builddir) builddir=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	--tb-sizes) tb_sizes=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--vms) nvms=$2; shift 2 ;;
	--settle) settle=$2; shift 2 ;;
	--config) extra+=("$2"); shift 2 ;;
	*) echo "bench/resources.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
[[ -n $builddir ]] || { echo "bench/resources.sh: --builddir DIR is required" >&2; exit 2; }
builddir=$(cd "$builddir" && pwd)
VIRTMGRD=$builddir/server/virtmgrd
VMCTL=$builddir/client/vmctl
GUEST=$builddir/guest/image
T=$(mktemp -d /tmp/virtmgr-bench-res.XXXXXX)
chmod 0755 "$T"
DPID=

stop_daemon() {
	if [[ -n $DPID ]]; then
		kill "$DPID" 2>/dev/null || true
		wait "$DPID" 2>/dev/null || true
	fi
	DPID=
}
trap 'stop_daemon; pkill -9 -f "qemu-system.*$T/" 2>/dev/null || true; rm -rf "$T"' EXIT

declare -A OPTS=([old]="--tcg-tb-size 0 --no-balloon" [new]="")
configs=(old new)
for n in $tb_sizes; do
	OPTS[tb$n]="--tcg-tb-size $n"
	configs+=("tb$n")
done
for e in "${extra[@]}"; do
	OPTS[${e%%=*}]=${e#*=}
	configs+=("${e%%=*}")
done

# start CONFIG: a daemon of its own with that configuration
start() {
	SOCK=$T/$1.sock
	# shellcheck disable=SC2086
	"$VIRTMGRD" --socket "$SOCK" --run-dir "$T/run-$1" --guest-dir "$GUEST" \
		--vsock-backend "$builddir/server/virtmgr-vsock" --accel tcg --boot-timeout 900 \
		--max-vms 64 ${OPTS[$1]} >>"$T/daemon-$1.log" 2>&1 &
	DPID=$!
	for _ in $(seq 200); do [[ -S $SOCK ]] && break; sleep 0.05; done
	V() { "$VMCTL" --socket "$SOCK" "$@"; }
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
host_used_kib() { awk '/^MemTotal:/ {t=$2} /^MemAvailable:/ {a=$2} END {print t - a}' /proc/meminfo; }
stats() { sort -n | awk '{v[NR]=$1} END {m = NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%.3f [%.3f-%.3f]", m, v[1], v[NR]}'; }

if [[ ,$only, == *,rss,* ]]; then
	for c in "${configs[@]}"; do
		start "$c"
		id=$(V run --detach --name idle --mem 96 -- /bin/sleep 3600)
		V wait "$id" --state STARTED --timeout 600 >/dev/null
		pid=$(V --json info "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["qemu_pid"])')
		at0=$(rss_kib "$pid")
		sleep "$settle"
		at1=$(rss_kib "$pid")
		echo "rss $c: QEMU RSS of an idle 96 MiB guest: ${at0} KiB at STARTED, $at1 KiB ${settle} s later"
		echo "raw rss-$c $at1"
		V kill "$id" >/dev/null
		stop_daemon
	done
fi

if [[ ,$only, == *,boot,* ]]; then
	for c in "${configs[@]}"; do : >"$T/boot-$c"; done
	for ((i = 0; i <= reps; i++)); do
		for c in "${configs[@]}"; do
			start "$c"
			t0=$(date +%s.%N)
			V run --mem 96 -- /bin/true >/dev/null
			t1=$(date +%s.%N)
			stop_daemon
			# the first round warms caches up and is not counted
			((i > 0)) && echo "$t1 - $t0" | bc >>"$T/boot-$c"
		done
	done
	for c in "${configs[@]}"; do
		echo "boot $c: vmctl run --mem 96 -- /bin/true: $(stats <"$T/boot-$c") s over $reps runs"
	done
fi

if [[ ,$only, == *,bootcpu,* ]]; then
	for c in "${configs[@]}"; do : >"$T/cpu-$c"; done
	for ((i = 0; i <= reps; i++)); do
		for c in "${configs[@]}"; do
			start "$c"
			id=$(V run --detach --name cpu --mem 96 -- /bin/sleep 3600)
			V wait "$id" --state STARTED --timeout 600 >/dev/null
			cpu=$(V --json stats "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cpu_ns"] / 1e9)')
			V kill "$id" >/dev/null
			stop_daemon
			((i > 0)) && echo "$cpu" >>"$T/cpu-$c"
		done
	done
	for c in "${configs[@]}"; do
		echo "bootcpu $c: CPU time of the VM's processes at STARTED: $(stats <"$T/cpu-$c") s over $reps runs"
		echo "raw bootcpu-$c $(paste -sd' ' "$T/cpu-$c")"
	done
fi

if [[ ,$only, == *,density,* ]]; then
	for c in old new; do
		start "$c"
		before=$(host_used_kib)
		ids=()
		for ((i = 0; i < nvms; i++)); do
			ids+=("$(V run --detach --name "d$i" --mem 96 -- /bin/sleep 3600)")
		done
		started=0
		for id in "${ids[@]}"; do
			V wait "$id" --state STARTED --timeout 900 >/dev/null 2>&1 && started=$((started + 1))
		done
		sleep "$settle"
		after=$(host_used_kib)
		total=0
		for id in "${ids[@]}"; do
			pid=$(V --json info "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["qemu_pid"])')
			[[ $pid -gt 0 && -d /proc/$pid ]] && total=$((total + $(rss_kib "$pid")))
		done
		echo "raw density-$c $(((after - before) / 1024))"
		echo "density $c: $started of $nvms guests of 96 MiB STARTED; host memory in use $((before / 1024)) MiB before," \
			"$((after / 1024)) MiB ${settle} s after (+$(((after - before) / 1024)) MiB); QEMU RSS sum $((total / 1024)) MiB"
		for id in "${ids[@]}"; do V kill "$id" >/dev/null 2>&1 || true; done
		stop_daemon
	done
fi
