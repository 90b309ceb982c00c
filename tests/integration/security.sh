#!/usr/bin/env bash
# Hostile input and privilege boundaries with real guests and real uids:
# VM names that could escape or confuse (sent without vmctl's own checks),
# commas and "file=" in kernel/initrd/disk paths (QEMU option injection),
# files a group member may not read reached through a symlink or through a
# supplementary group of the daemon, QEMU's seccomp sandbox, and the modes
# of run directories and the socket.
source "$(dirname "$0")/lib.sh"
CHURN=$top_builddir/tests/integration/client_churn
group=nogroup
gid=$(getent group "$group" | cut -d: -f3)
secret_gid=$(getent group adm | cut -d: -f3)
[[ -n $gid && -n $secret_gid ]] || fail "groups nogroup and adm must exist"
# other uids run a copy of vmctl they can reach (the build tree may not be)
vmctl_others=$(for_other_users client/vmctl)
as() { local uid=$1; shift; setpriv --reuid "$uid" --regid "$gid" --clear-groups "$vmctl_others" --socket "$SOCK" "$@"; }

# The daemon runs with a supplementary group (adm) that its clients lack, as
# a daemon started from an administrator's shell may.
real=$VIRTMGRD
VIRTMGRD=$T/virtmgrd-adm
printf '#!/bin/sh\nexec setpriv --groups %s %q "$@"\n' "$secret_gid" "$real" >"$VIRTMGRD"
chmod +x "$VIRTMGRD"
start_daemon --group "$group"
VIRTMGRD=$real
grep -Eq "^Groups:.*\b$secret_gid\b" "/proc/$DAEMON_PID/status" || fail "the daemon lacks its supplementary group"

# ---------------------------------------------------------------- names
for name in ../x a/b .hidden -dash "$(printf 'a%.0s' {1..65})" 'a b' "$(printf 'new\nline')" 'x;rm' 'ü'; do
	out=$("$CHURN" "$SOCK" create-name "$name")
	[[ $out == INVALID_ARGUMENT:*name* ]] || fail "name $(printf %q "$name"): $out"
done
out=$("$CHURN" "$SOCK" create-name "$(printf 'a%.0s' {1..64})")
[[ $out == OK ]] || fail "a 64-character name is refused: $out"
set +e
msg=$(vmctl run --detach --name "" -- /bin/true 2>&1)
rc=$?
set -e
((rc == 125)) && grep -q "empty" <<<"$msg" || fail "vmctl --name '': rc $rc: $msg"
ok "names ../x a/b .hidden -dash, 65 chars, space, newline, ';', non-ASCII -> INVALID_ARGUMENT; 64 chars OK; vmctl refuses an empty name"

# ---------------------------------------------------------------- commas in paths
evil="$T/dir,file=etc-shadow,if=none"
mkdir -p "$evil"
cp "$GUEST_DIR/vmlinuz" "$evil/vmlinuz,format=raw,readonly=off"
cp "$GUEST_DIR/initramfs.img" "$evil/initrd,id=x"
truncate -s 1M "$evil/disk,format=qcow2,file.driver=ssh"
id=$(vmctl run --detach --name commas --kernel "$evil/vmlinuz,format=raw,readonly=off" \
	--initrd "$evil/initrd,id=x" --disk "$evil/disk,format=qcow2,file.driver=ssh" -- /bin/sleep 600)
vmctl wait "$id" --state STARTED --timeout 180 >/dev/null || fail "VM with commas in its paths did not start"
qpid=$(vm_field "$id" qemu_pid)
tr '\0' '\n' <"/proc/$qpid/cmdline" >"$T/cmdline"
grep -q "shadow\|file.driver\|format=qcow2\|dir,file" "$T/cmdline" && fail "a client path reached QEMU's argv: $(grep -n 'shadow\|dir,file' "$T/cmdline")"
grep -qx '/proc/self/fd/[0-9]*' "$T/cmdline" || fail "kernel not passed as an fd"
grep -q 'file=/dev/fdset/1,' "$T/cmdline" || fail "disk not passed through an fdset"
ok "commas and option names in kernel/initrd/disk paths never reach QEMU's argv (fds and /dev/fdset only); the VM boots"

# ---------------------------------------------------------------- sandbox, modes
sandbox=$(grep -A1 -x -- -sandbox "$T/cmdline" | tail -1)
[[ $sandbox == on,* ]] || fail "QEMU runs without -sandbox on: $sandbox"
seccomp=$(awk '/^Seccomp:/ { print $2 }' "/proc/$qpid/status")
[[ $seccomp == 2 ]] || fail "QEMU's Seccomp mode is $seccomp, not 2 (filter)"
run_dir=$(vm_field "$id" run_dir)
[[ $(stat -c %a "$run_dir") == 700 ]] || fail "run dir mode $(stat -c %a "$run_dir")"
[[ $(stat -c %a "$SOCK") == 660 && $(stat -c %G "$SOCK") == "$group" ]] ||
	fail "socket $(stat -c '%a %G' "$SOCK")"
vmctl kill "$id" >/dev/null
ok "QEMU: -sandbox $sandbox, Seccomp: $seccomp; run dir 0700; socket 0660 root:$group"

# ---------------------------------------------------------------- files a member may not read
chmod 0666 "$SOCK"      # let the member reach the daemon
umask 022
install -m 0600 -o 0 -g 0 "$GUEST_DIR/vmlinuz" "$T/root-only-kernel"
ln -s "$T/root-only-kernel" "$T/link-to-root-only"
install -m 0640 -o 0 -g "$secret_gid" "$GUEST_DIR/vmlinuz" "$T/adm-kernel"
install -m 0600 -o 60002 -g "$gid" "$GUEST_DIR/vmlinuz" "$T/member-kernel"
install -m 0600 -o 60002 -g "$gid" "$GUEST_DIR/initramfs.img" "$T/member-initrd"
for path in "$T/link-to-root-only" "$T/root-only-kernel" "$T/adm-kernel"; do
	set +e
	msg=$(as 60002 run --detach --kernel "$path" --initrd "$T/member-initrd" -- /bin/true 2>&1)
	rc=$?
	set -e
	((rc == 125)) && grep -q "PERMISSION_DENIED: kernel: cannot open $path: Permission denied" <<<"$msg" ||
		fail "member opened $path through the daemon: rc $rc: $msg"
done
grep -Eq "^Groups:.*\b$secret_gid\b" "/proc/$DAEMON_PID/status" || fail "the daemon did not get its own groups back"
ok "a member cannot make the daemon read a root-only kernel (directly or through a symlink) or one only the daemon's supplementary group may read"
mkfifo -m 0666 "$T/fifo"
for path in "$T/fifo" /dev/zero; do
	set +e
	msg=$(timeout 30 "$VMCTL_BIN" --socket "$SOCK" run --detach --kernel "$path" -- /bin/true 2>&1)
	rc=$?
	set -e
	((rc == 125)) && grep -q "kernel: $path is not a regular file" <<<"$msg" || fail "kernel $path: rc $rc: $msg"
done
vmctl version >/dev/null || fail "the daemon does not answer after a FIFO kernel"
ok "a FIFO or a device as kernel -> INVALID_ARGUMENT (opened O_PATH first: open() never blocks the daemon)"
id=$(as 60002 run --detach --name own-files --kernel "$T/member-kernel" --initrd "$T/member-initrd" -- /bin/sleep 600)
vmctl wait "$id" --state STARTED --timeout 180 >/dev/null || fail "member's own kernel did not boot"
as 60002 kill "$id" >/dev/null
ok "the member's own 0600 kernel and initrd are opened as the member and boot"

echo "$NTESTS passed, 0 failed"
