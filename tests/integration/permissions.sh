#!/usr/bin/env bash
# The permission model, with real uids (setpriv): root or members of the
# daemon's group may use the API; a VM is visible only to its owner and root.
source "$(dirname "$0")/lib.sh"
group=nogroup
gid=$(getent group "$group" | cut -d: -f3)
[[ -n $gid ]] || fail "group $group does not exist"
start_daemon --group "$group"
chmod 0666 "$SOCK"      # let other uids reach the daemon's own check
# other uids run a copy of vmctl they can reach (the build tree may not be)
vmctl_others=$(for_other_users client/vmctl)
as() { local uid=$1 g=$2; shift 2; setpriv --reuid "$uid" --regid "$g" --clear-groups "$vmctl_others" --socket "$SOCK" "$@"; }

set +e
msg=$(as 60001 60001 list 2>&1)
rc=$?
set -e
[[ $rc -eq 1 ]] && grep -q PERMISSION_DENIED <<<"$msg" || fail "outsider: rc $rc: $msg"
ok "uid outside the group -> PERMISSION_DENIED ($msg)"

id=$(as 60002 "$gid" run --detach --name member-vm -- /bin/sleep 600)
[[ -n $id ]] || fail "group member could not create a VM"
ok "group member creates a VM"

set +e
msg=$(as 60003 "$gid" info "$id" 2>&1)
rc=$?
set -e
[[ $rc -eq 1 ]] && grep -q NOT_FOUND <<<"$msg" || fail "other member sees the VM: rc $rc: $msg"
[[ $(as 60003 "$gid" --json list | grep -c "$id" || true) -eq 0 ]] || fail "other member lists the VM"
ok "another member gets NOT_FOUND for it and does not list it"

[[ $(vm_field "$id" owner_uid) == 60002 ]] || fail "root cannot see the VM's owner"
as 60002 "$gid" kill "$id" >/dev/null
ok "root sees every VM; the owner controls its own"

[[ $(stat -c %a "$SOCK") == 666 ]]
stop_daemon
start_daemon --group "$group"
[[ $(stat -c %a "$SOCK") == 660 ]] || fail "socket mode $(stat -c %a "$SOCK")"
[[ $(stat -c %G "$SOCK") == "$group" ]] || fail "socket group $(stat -c %G "$SOCK")"
ok "socket created 0660 root:$group"
echo "$NTESTS passed, 0 failed"
