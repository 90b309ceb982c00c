#!/usr/bin/env bash
# bench/net/run.sh - the net section of bench/run on its own
# (bench/network.py, docs/network.md "Benchmarks"): iperf3 TCP throughput
# guest -> host and host -> guest in user and tap mode, each against a bare
# QEMU with the same netdev, and user vs tap. Root; everything runs in a
# network namespace the bench makes. Extra arguments go to bench/run
# (--quick, --smoke, --vm-reps N, --keep...).
#
# Usage: bench/net/run.sh BUILDDIR [bench/run options]
set -euo pipefail
B=${1:?usage: $0 BUILDDIR [bench/run options]}
shift
exec python3 "$(dirname "$0")/../run" --builddir "$B" --only net "$@"
