#!/usr/bin/env bash
# .ci/packages.sh - build the Debian packages, check them with lintian,
# install them on this machine and use them: the installed virtmgrd is
# started the way virtmgrd.socket starts it (socket activation without
# systemd as PID 1: tests/integration/sd_activate.py binds the unit's
# ListenStream and execs the unit's ExecStart), `vmctl info` talks to it and
# `vmctl run` boots the installed guest image and returns its payload's code.
#
#   .ci/packages.sh [--keep]    run as root (apt-get, dpkg)
#
# --keep leaves the packages installed; by default they are purged at the
# end. The packages land in _build/packages/. The kernel .deb for
# virtmgr-guest comes from $VIRTMGR_GUEST_CACHE when it holds one, else
# `apt-get download` fetches it (debian/README.source).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
keep=false
[[ ${1:-} == --keep ]] && keep=true
((EUID == 0)) || { echo "packages.sh: run as root (it installs packages)" >&2; exit 2; }

log() { printf '==> %s\n' "$*" >&2; }
start=$SECONDS

# Packages used only by this step, not by ./build.sh.
PACKAGING_PACKAGES=(debhelper dh-autoreconf fakeroot lintian dpkg-dev)
export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${PACKAGING_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	log "installing ${missing[*]}"
	apt-get install -y -q --no-install-recommends "${missing[@]}" ||
		{ apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }
fi

out=$top/_build/packages
src=$out/virtmgr-src
rm -rf "$src" "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
mkdir -p "$src"
# the tracked files as they are in the working tree
(cd "$top" && git ls-files -z | xargs -0 cp --parents -t "$src")
log "build dependencies"
apt-get build-dep -y -q --no-install-recommends "$src" >/dev/null
export VIRTMGR_GUEST_CACHE=${VIRTMGR_GUEST_CACHE:-$out/guest-cache}
mkdir -p "$VIRTMGR_GUEST_CACHE"
log "dpkg-buildpackage (log: $out/build.log)"
(cd "$src" && dpkg-buildpackage -us -uc -b -j"$(nproc)") >"$out/build.log" 2>&1 || {
	tail -n 60 "$out/build.log" >&2
	exit 1
}
ls "$out"/*.deb >&2
log "lintian"
lintian --fail-on error --info "$out"/virtmgr_*.changes | tee "$out/lintian.log" >&2

log "installing"
debs=()
for d in "$out"/*.deb; do [[ $d == *-dbgsym_* ]] || debs+=("$d"); done
pkgs=$(for d in "${debs[@]}"; do dpkg-deb -f "$d" Package; done | tr '\n' ' ')
# a fresh installation: the maintainer scripts run as on a new machine, and
# an installed copy of the same version is not taken for this one
# shellcheck disable=SC2086
apt-get purge -y -q $pkgs >/dev/null 2>&1 || true
apt-get install -y -q --no-install-recommends "${debs[@]}" >"$out/install.log" 2>&1 || {
	tail -n 30 "$out/install.log" >&2
	exit 1
}

t=$(mktemp -d)
lpid=
cleanup() {
	local rc=$?
	if [[ -n $lpid ]]; then kill "$lpid" 2>/dev/null || true; wait "$lpid" 2>/dev/null || true; fi
	((rc == 0)) || { [[ -f $t/daemon.log ]] && tail -n 40 "$t/daemon.log" >&2; }
	rm -rf "$t"
	if ! $keep; then
		log "purging $pkgs"
		# shellcheck disable=SC2086
		apt-get purge -y -q $pkgs >/dev/null 2>&1 || true
	fi
	exit "$rc"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# what the packages put in place
for f in /usr/sbin/virtmgrd /usr/bin/vmctl /usr/libexec/virtmgr/virtmgr-vsock \
	/usr/share/virtmgr/guest/initramfs.img \
	/lib/systemd/system/virtmgrd.socket /lib/systemd/system/virtmgrd.service \
	/usr/lib/sysusers.d/virtmgr.conf /usr/lib/tmpfiles.d/virtmgr.conf \
	/usr/share/bash-completion/completions/vmctl /usr/share/man/man8/virtmgrd.8.gz \
	/usr/share/man/man1/vmctl.1.gz /usr/include/virtmgr-client.h \
	/usr/share/virtmgr/protos/virtmgr.proto; do
	[[ -e $f ]] || fail "$f is not installed"
done
getent group virtualmachine >/dev/null || fail "the postinst did not create the group virtualmachine"
[[ -d /run/virtmgr ]] || fail "the postinst did not create /run/virtmgr"
pkg-config --exists virtmgr-client || fail "pkg-config does not find virtmgr-client"
log "files, group, run directory and pkg-config are in place"

# a program against the installed library
cat >"$t/hello.c" <<'C'
#include <stdio.h>
#include <virtmgr-client.h>
int main(void)
{
	struct vmc_error err = { 0 };
	struct vmc_client *cl = vmc_connect(NULL, &err);
	struct vmc_daemon_info info;

	if (!cl || vmc_get_daemon_info(cl, &info, &err) < 0) {
		fprintf(stderr, "%s\n", err.message);
		return 1;
	}
	printf("daemon %s pid %d\n", info.version, info.pid);
	vmc_daemon_info_clear(&info);
	vmc_close(cl);
	return 0;
}
C
# shellcheck disable=SC2046
cc -o "$t/hello" "$t/hello.c" $(pkg-config --cflags --libs virtmgr-client) || fail "building against libvirtmgr-client-dev"

# socket activation as the installed units describe it
sock=$(sed -n 's/^ListenStream=//p' /lib/systemd/system/virtmgrd.socket)
mode=$(sed -n 's/^SocketMode=//p' /lib/systemd/system/virtmgrd.socket)
group=$(sed -n 's/^SocketGroup=//p' /lib/systemd/system/virtmgrd.socket)
read -r -a exec_start <<<"$(sed -n 's/^ExecStart=//p' /lib/systemd/system/virtmgrd.service)"
[[ -n $sock && ${exec_start[0]} == /usr/sbin/virtmgrd ]] || fail "unexpected units: $sock ${exec_start[*]}"
log "activating: ${exec_start[*]} on $sock"
rm -f "$sock" # a stale socket of an earlier run would look ready
python3 "$top/tests/integration/sd_activate.py" "$sock" --mode "${mode:-0660}" -- "${exec_start[@]}" \
	>"$t/daemon.log" 2>&1 &
lpid=$!
for _ in $(seq 300); do [[ -S $sock ]] && break; sleep 0.05; done
[[ -S $sock ]] || fail "no socket at $sock"
[[ -z $group ]] || chgrp "$group" "$sock"
vmctl info || fail "vmctl info"
"$t/hello" || fail "the program built against the installed library"
rc=0
vmctl run --name packaged -- /bin/sh -c 'echo hello from the packaged guest; exit 3' >"$t/run.out" 2>&1 || rc=$?
[[ $rc == 3 ]] || { cat "$t/run.out" >&2; fail "vmctl run: exit $rc, expected 3"; }
grep -q 'hello from the packaged guest' "$t/run.out" || fail "no payload output"
log "vmctl info, a libvirtmgr-client program and vmctl run (payload exit 3) work against the installed daemon"
kill "$lpid"
wait "$lpid" || fail "virtmgrd exited with $? on SIGTERM"
lpid=
log "packages built, checked and used in $((SECONDS - start)) s"
