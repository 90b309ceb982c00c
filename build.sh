#!/usr/bin/env bash
# build.sh - set up a Debian 12 machine and build virtmgr.
#
#   ./build.sh demo    install packages, build, boot the default guest through
#                      virtmgrd + vmctl and show the payload's output
#   ./build.sh check   install packages, build with ASan+UBSan, run `make check`
#
# Both run as root on a fresh machine (apt-get); as another user they need the
# packages installed already, or sudo.
set -euo pipefail

top=$(cd "$(dirname "$0")" && pwd)
cd "$top"

# Every Debian package the build, the tests and the demo need.
PACKAGES=(
	build-essential autoconf automake libtool pkg-config
	libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
	libxml2-dev libxml2-utils libev-dev libfdt-dev libjson-c-dev libcriterion-dev
	libseccomp-dev
	python3 python3-protobuf
	qemu-system-x86 busybox-static cpio gzip kmod lz4
	qemu-utils e2fsprogs
	clang libclang-rt-14-dev
	util-linux procps iproute2 socat tmux groff-base
	golang-go golang-github-containerd-ttrpc-dev gogoprotobuf
	libcbor-dev libssl-dev zlib1g-dev libdw-dev libelf-dev libmicrohttpd-dev elfutils
	passt nftables fio iperf3
	python3-cbor2 python3-cryptography python3-prometheus-client
)

log() { printf '==> %s\n' "$*" >&2; }

install_packages() {
	local missing=()
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	((${#missing[@]})) || { log "all ${#PACKAGES[@]} Debian packages present"; return 0; }
	log "installing: ${missing[*]}"
	local sudo=()
	((EUID == 0)) || sudo=(sudo)
	export DEBIAN_FRONTEND=noninteractive
	# wait for another apt run (a second build in parallel) instead of failing
	local lock=(-o DPkg::Lock::Timeout=600)
	"${sudo[@]}" apt-get "${lock[@]}" update -q
	"${sudo[@]}" apt-get "${lock[@]}" install -y -q --no-install-recommends "${missing[@]}"
}

configure_in() { # DIR CONFIGURE-ARGS...
	local dir=$1; shift
	[[ -x configure ]] || autoreconf -fi
	mkdir -p "$dir"
	if [[ ! -f $dir/Makefile || configure -nt $dir/Makefile ]]; then
		(cd "$dir" && "$top/configure" "$@")
	fi
}

jobs=$(nproc 2>/dev/null || echo 2)

case "${1:-}" in
demo)
	install_packages
	autoreconf -fi
	configure_in _build/demo --enable-werror
	make -C _build/demo -j"$jobs"
	make -C _build/demo guest-image
	exec bash "$top/tests/demo.sh" "$top/_build/demo"
	;;
check)
	install_packages
	autoreconf -fi
	configure_in _build/check --enable-werror --enable-asan --enable-ubsan --enable-test-hooks
	make -C _build/check -j"$jobs"
	make -C _build/check guest-image
	# CI also fuzzes every target for 30 s under ASan+UBSan and soaks real
	# guests for 3 minutes (docs/testing.md); developers opt in with the
	# same variables.
	if [[ ${CI:-} == true ]]; then
		export VIRTMGR_FUZZ_SECONDS=${VIRTMGR_FUZZ_SECONDS:-30}
		export VIRTMGR_SOAK_MINUTES=${VIRTMGR_SOAK_MINUTES:-3}
	fi
	make -C _build/check -j"$jobs" check || {
		find _build/check -name '*.log' -newer _build/check/Makefile -path '*tests*' \
			-exec grep -l -E '^(FAIL|ERROR)' {} + 2>/dev/null | while read -r f; do
			log "---- $f"; tail -n 80 "$f"; done
		exit 1
	}
	if [[ -n ${VIRTMGR_FUZZ_SECONDS:-} ]]; then
		log "fuzzing every target for $VIRTMGR_FUZZ_SECONDS s"
		make -C _build/check fuzz-ci
	fi
	;;
*)
	echo "usage: $0 demo|check" >&2
	exit 2
	;;
esac
