#!/bin/bash
# mkroot.sh - guest/mkroot.sh builds a Debian root image offline from the
# host's installed python3 and its dependencies, and the flow of
# docs/getting-started.md works: `vmctl run --root py.img -- python3 -c
# 'print(6*7)'` prints 42 from the image's own interpreter; --help and the
# refusal of a package that is not installed. No network is used.
source "$(dirname "$0")/lib.sh"
LIMIT=${GUEST_BOOT_LIMIT:-600}
MKROOT=$top_srcdir/guest/mkroot.sh
command -v mke2fs >/dev/null || PATH=$PATH:/sbin:/usr/sbin
dpkg-query -W python3 >/dev/null 2>&1 || { echo "SKIP: python3 is not installed on this host"; exit 77; }

"$MKROOT" --help | grep -q -- '--mmdebstrap' || fail "mkroot.sh --help"
rc=0
"$MKROOT" -o "$T/x.img" virtmgr-no-such-package 2>"$T/e.err" || rc=$?
[[ $rc != 0 ]] && grep -q 'package virtmgr-no-such-package is not installed' "$T/e.err" ||
	fail "an unknown package: exit $rc; $(cat "$T/e.err")"
[[ ! -e $T/x.img ]] || fail "an image was written for an unknown package"
ok "mkroot.sh refuses a package that is not installed, naming it"

"$MKROOT" -o "$T/py.img" python3 2>"$T/mk.err" || fail "mkroot.sh python3: $(cat "$T/mk.err")"
e2fsck -fn "$T/py.img" >/dev/null 2>&1 || fail "the image is not a clean ext4"
debugfs -R 'stat /usr/bin/python3' "$T/py.img" 2>&1 | grep -q 'Type: symlink' || fail "no /usr/bin/python3 in the image"
ok "mkroot.sh writes an ext4 root image with python3 from this host's packages ($(grep -o '[0-9]* packages' "$T/mk.err"))"

start_daemon --accel tcg --state-dir "$T/state"
export VIRTMGR_SOCKET=$SOCK
rc=0
timeout "$LIMIT" "$VMCTL_BIN" run --mem 512 --root "$T/py.img" -- python3 -c 'import sys; print(6*7, sys.executable)' \
	>"$T/run.out" 2>"$T/run.err" || rc=$?
[[ $rc == 0 ]] || fail "python3 from the root: exit $rc; $(cat "$T/run.err") $(tail -20 "$T/run.out")"
grep -qE '^42 (/usr)?/bin/python3' "$T/run.out" || fail "python3 from the root: $(tail -20 "$T/run.out")"
ok "vmctl run --root py.img -- python3 -c 'print(6*7)' prints 42 from the image"

timeout "$LIMIT" "$VMCTL_BIN" disk import py "$T/py.img" >/dev/null || fail "disk import py"
rc=0
timeout "$LIMIT" "$VMCTL_BIN" run --mem 512 --root py -- python3 -c 'import platform; print(platform.libc_ver())' \
	>"$T/run2.out" 2>"$T/run2.err" || rc=$?
[[ $rc == 0 ]] && grep -q "('glibc', '" "$T/run2.out" || fail "--root py (store): exit $rc; $(cat "$T/run2.err") $(tail -5 "$T/run2.out")"
ok "a store image imported from it is a root too (--root NAME)"
echo "1..$NTESTS"
