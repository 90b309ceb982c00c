#!/bin/bash
# disk_store.sh - the per-owner disk image store (docs/storage.md) against a
# real virtmgrd, no guest: create raw, qcow2 and ext4 (--from-dir) images,
# list, grow (the ext4 inside too), import/export byte for byte, each error's
# message, owners seeing only their own images, InitializeWritablePartition
# on an fd, and nothing left behind (children reaped, fds back).
. "$top_srcdir/tests/integration/lib.sh"

STATE=$T/state
# other uids may use the API as members of nogroup (see "owners" below)
start_daemon --state-dir "$STATE" --group nogroup
fds0=$(fd_count "$DAEMON_PID")

expect_err() { # expect_err PATTERN vmctl-args...: fails, message matches
	local pat=$1 out
	shift
	if out=$(vmctl "$@" 2>&1); then fail "vmctl $* succeeded: $out"; fi
	grep -qE -- "$pat" <<<"$out" || fail "vmctl $*: '$out' does not match '$pat'"
}

# ---- create ----
vmctl disk create r1 --size 8M >/dev/null || fail "create raw"
vmctl disk create q1 --size 1G --format qcow2 >/dev/null || fail "create qcow2"
mkdir -p "$T/src/sub"
echo "hello from the host" >"$T/src/file"
echo nested >"$T/src/sub/n"
vmctl disk create e1 --size 16M --fs ext4 --from-dir "$T/src" >/dev/null || fail "create ext4 --from-dir"
ok "create raw, qcow2 and ext4 from a directory"

img=$STATE/images/$(id -u)
[[ $(debugfs -R 'cat /file' "$img/e1.img" 2>/dev/null) == "hello from the host" ]] || fail "ext4 lacks /file"
[[ $(debugfs -R 'cat /sub/n' "$img/e1.img" 2>/dev/null) == nested ]] || fail "ext4 lacks /sub/n"
ok "the ext4 image holds the directory's files"

# ---- list ----
list=$(vmctl --json disk list)
size_of() { python3 -c 'import json,sys
for l in sys.stdin:
    o=json.loads(l)
    if o["name"]==sys.argv[1]: print(o[sys.argv[2]])' "$1" "$2" <<<"$list"; }
[[ $(size_of r1 virtual_size) == 8388608 ]] || fail "r1 virtual size: $(size_of r1 virtual_size)"
[[ $(size_of q1 virtual_size) == 1073741824 ]] || fail "q1 virtual size"
[[ $(size_of q1 format) == qcow2 && $(size_of e1 filesystem) == ext4 ]] || fail "formats: $list"
(($(size_of q1 allocated_size) < 10485760)) || fail "a fresh qcow2 allocates little: $(size_of q1 allocated_size)"
vmctl disk list | grep -qE '^q1 +[0-9]+ +qcow2 +1073741824' || fail "table: $(vmctl disk list)"
ok "list shows formats, virtual and allocated sizes"

# ---- resize ----
blocks() { dumpe2fs -h "$img/e1.img" 2>/dev/null | awk -F: '/^Block count/ {print $2+0}'; }
b0=$(blocks)
vmctl disk resize e1 32M >/dev/null || fail "resize e1"
b1=$(blocks)
((b1 > b0)) || fail "ext4 block count $b0 -> $b1"
[[ $(debugfs -R 'cat /file' "$img/e1.img" 2>/dev/null) == "hello from the host" ]] || fail "resize lost /file"
vmctl disk resize q1 2G >/dev/null || fail "resize qcow2"
list=$(vmctl --json disk list)
[[ $(size_of q1 virtual_size) == 2147483648 ]] || fail "qcow2 after resize: $(size_of q1 virtual_size)"
ok "resize grows the image and the ext4 inside ($b0 -> $b1 blocks)"

# ---- import / export ----
head -c 3145728 /dev/urandom >"$T/in.raw"
vmctl disk import imp "$T/in.raw" >/dev/null || fail "import"
vmctl disk export imp "$T/out.raw" >/dev/null || fail "export"
cmp "$T/in.raw" "$T/out.raw" || fail "export differs from import"
qemu-img create -q -f qcow2 "$T/in.qcow2" 64M
vmctl disk import impq "$T/in.qcow2" >/dev/null || fail "import qcow2"
list=$(vmctl --json disk list)
[[ $(size_of impq format) == qcow2 && $(size_of impq virtual_size) == 67108864 ]] || fail "imported qcow2: $list"
vmctl disk export impq "$T/out.qcow2" >/dev/null && cmp "$T/in.qcow2" "$T/out.qcow2" || fail "qcow2 round trip"
ok "import/export round-trip byte for byte (raw and qcow2)"

# ---- errors ----
expect_err 'NOT_FOUND: no disk image "nope"' disk rm nope
expect_err 'NOT_FOUND: no disk image "nope"' disk resize nope 1G
expect_err 'NOT_FOUND: no disk image "nope"' disk export nope "$T/x"
expect_err "INVALID_ARGUMENT: name: \"\\.hidden\" is not a valid image name" disk create .hidden --size 1M
expect_err 'is not a valid image name' disk create 'a/b' --size 1M
expect_err "invalid size '12X'" disk create s --size 12X
expect_err "invalid size '0'" disk create s --size 0
expect_err 'not a multiple of 512' disk create s --size 1000
expect_err 'FAILED_PRECONDITION: disk image e1 is 33554432 bytes: shrinking it to 8388608 is not supported' \
	disk resize e1 8M
expect_err 'ALREADY_EXISTS: disk image r1 exists already' disk create r1 --size 1M
expect_err 'ALREADY_EXISTS: disk image r1 exists already' disk import r1 "$T/in.raw"
expect_err 'cannot import disk image bad:.*qcow2' disk import bad "$T/in.raw" --format qcow2
expect_err 'ext4 is made on raw images only' disk create eq --size 16M --format qcow2 --fs ext4
expect_err '--from-dir needs --fs ext4' disk create fd --size 16M --from-dir "$T/src"
[[ ! -e $img/bad.qcow2 && ! -e $img/bad.img ]] || fail "a failed import left its file"
echo keep >"$T/keep"
expect_err 'NOT_FOUND' disk export nope "$T/keep"
[[ $(cat "$T/keep") == keep ]] || fail "a failed export touched an existing file"
head -c 5000000 /dev/zero >"$T/long"
vmctl disk export imp "$T/long" >/dev/null && cmp "$T/in.raw" "$T/long" || fail "export over a longer file"
ok "each error gives its message"

# ---- owners ----
VMCTL_OTHER=$(for_other_users client/vmctl)
other() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$VMCTL_OTHER" --socket "$SOCK" "$@"; }
chmod 0666 "$SOCK"
other disk create mine --size 1M >/dev/null || fail "nobody cannot create an image"
[[ $(other disk list | awk 'NR > 1 {print $1}') == mine ]] || fail "nobody sees: $(other disk list)"
vmctl disk list | grep -q '^mine ' || fail "root does not see nobody's image"
nob=$(id -u nobody)
out=$(other disk rm r1 2>&1) && fail "nobody removed root's image"
grep -q 'NOT_FOUND: no disk image "r1"' <<<"$out" || fail "nobody rm r1: $out"
[[ $(stat -c %U "$STATE/images/$nob/mine.img") == nobody ]] || fail "nobody's image is not nobody's"
mkdir -m 0700 "$T/secret" && echo s >"$T/secret/f"
chmod 0755 "$T"
out=$(other disk create sec --size 16M --fs ext4 --from-dir "$T/secret" 2>&1) && fail "nobody read a 0700 root dir"
grep -qE 'FAILED_PRECONDITION: cannot create disk image sec: .*(Permission denied|secret)' <<<"$out" ||
	fail "--from-dir unreadable: $out"
[[ ! -e $STATE/images/$nob/sec.img ]] || fail "failed create left sec.img"
vmctl disk rm "$nob:mine" >/dev/null || fail "root cannot remove UID:NAME"
ok "owners see only their own images; --from-dir is read as the caller"

# ---- InitializeWritablePartition on an fd ----
IP=$top_builddir/tests/integration/disk_initpart
"$IP" "$SOCK" "$T/part.img" 16777216 ext4 || fail "init partition ext4"
[[ $(stat -c %s "$T/part.img") == 16777216 ]] || fail "partition size"
dumpe2fs -h "$T/part.img" 2>/dev/null | grep -q 'Filesystem magic number' || fail "no ext4 on the partition"
echo junk >"$T/part2.img"
"$IP" "$SOCK" "$T/part2.img" 1048576 "" || fail "init partition empty"
cmp -n 1048576 "$T/part2.img" /dev/zero || fail "empty partition is not zeroed"
out=$("$IP" "$SOCK" "$T/part3.img" 1048576 xfs 2>&1) && fail "xfs accepted"
grep -q 'filesystem: "xfs" is not supported' <<<"$out" || fail "xfs: $out"
ok "InitializeWritablePartition formats the passed fd"

# ---- delete, and nothing left behind ----
for i in r1 q1 e1 imp impq; do vmctl disk rm "$i" >/dev/null || fail "rm $i"; done
[[ -z $(vmctl disk list | awk 'NR > 1') ]] || fail "images left: $(vmctl disk list)"
[[ -z $(ls "$img") ]] || fail "files left in the store: $(ls "$img")"
[[ -z $(pgrep -P "$DAEMON_PID") ]] || fail "children left: $(pgrep -a -P "$DAEMON_PID")"
fds1=$(fd_count "$DAEMON_PID")
((fds1 <= fds0)) || fail "virtmgrd fds $fds0 -> $fds1"
ok "rm empties the store; no children or fds left ($fds0 -> $fds1)"
