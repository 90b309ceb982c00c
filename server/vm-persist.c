/* vm-persist.c - surviving a daemon restart.
 *
 * Every running VM is recorded in <run_dir>/vm.state (statefile.c), written
 * atomically whenever it changes. A daemon that restarts (crash, SIGKILL,
 * upgrade) reads them: detached VMs whose QEMU is still the same process
 * (pidfd + start time) are adopted - QMP reconnected, vsock backend watched
 * again - and owned VMs, whose owner connection died with the old daemon,
 * are stopped. A file that does not parse is reported and its directory
 * removed; it never stops the daemon from starting.
 */
#include "config.h"
#include "server/vm-persist.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/log.h"
#include "server/attest.h"
#include "server/statefile.h"
#include "server/uidpool.h"
#include "server/vm-config.h"
#include "server/vm-priv.h"
#include "server/vm-storage.h"

void vm_persist(struct vm *vm)
{
	struct statefile sf = { 0 };
	struct vm_error err = { 0 };
	cleanup_free char *path = NULL;
	uint64_t bst = 0;

	if (!vm->qemu || vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return;
	path = xasprintf("%s/vm.state", vm->run_dir);
	statefile_set(&sf, "id", vm->id);
	statefile_set(&sf, "name", vm->name);
	statefile_set_u64(&sf, "cid", vm->cid);
	statefile_set_u64(&sf, "state", (uint64_t)vm->state);
	statefile_set_u64(&sf, "owner_uid", vm->owner_uid);
	if (vm->uid)
		statefile_set_u64(&sf, "uid", vm->uid);
	statefile_set_u64(&sf, "owner_pid", (uint64_t)vm->owner_pid);
	statefile_set_u64(&sf, "detached", vm->detached);
	statefile_set_u64(&sf, "qemu_pid", (uint64_t)qemu_pid(vm->qemu));
	statefile_set_u64(&sf, "qemu_start_time", qemu_start_time(vm->qemu));
	statefile_set(&sf, "accel", vm->accel);
	statefile_set_u64(&sf, "memory_mib", vm->memory_mib);
	statefile_set_u64(&sf, "cpus", vm->cpus);
	statefile_set_u64(&sf, "on_hang", (uint64_t)vm->on_hang);
	statefile_set_u64(&sf, "created_ns", vm->created_ns);
	statefile_set_u64(&sf, "started_ns", vm->started_ns);
	if (vm->has_exit_code)
		statefile_set_u64(&sf, "exit_code", (uint64_t)vm->exit_code);
	if (vm->has_marker_key) {
		char hex[2 * MARKER_KEY_LEN + 1];

		/* the file is 0600 in the daemon's run directory, like config.dtb */
		statefile_set(&sf, "marker_key", marker_key_to_hex(&vm->markers.key, hex));
		statefile_set_u64(&sf, "marker_seq", vm->markers.last_seq);
		explicit_bzero(hex, sizeof(hex));
	}
	if (vm->vsock_watch.vm && vm->vsock.backend_pid > 0 && proc_start_time(vm->vsock.backend_pid, &bst) == 0) {
		statefile_set_u64(&sf, "backend_pid", (uint64_t)vm->vsock.backend_pid);
		statefile_set_u64(&sf, "backend_start_time", bst);
	}
	net_persist(&vm->net, &sf);
	vm_storage_persist(vm, &sf); /* disks and shares: vm-storage.c */
	attest_vm_save(vm->attest, &sf); /* measurement and REMs (docs/attestation.md) */
	if (statefile_write(&sf, path, &err) < 0)
		log_warn("vm %s: cannot record its state: %s", vm->id, err.message);
	statefile_clear(&sf);
}

/* Watch the adopted VM's backend again (it is no longer our child). */
static void restore_backend(struct vm *vm, const struct statefile *sf)
{
	struct vm_error err = { 0 };
	uint64_t pid, st, now;

	vm->vsock.mode = VSOCK_HOST_USER;
	vm->vsock.cid = vm->cid;
	vm->vsock.vhost_user_path = xasprintf("%s/vsock-vhost.sock", vm->run_dir);
	vm->vsock.uds_path = xasprintf("%s/vsock.sock", vm->run_dir);
	vm->vsock.backend_pid = -1;
	vm->vsock.backend_pidfd = -1;
	vm->vsock.uid = vm->uid;
	if (statefile_get_u64(sf, "backend_pid", INT32_MAX, &pid, &err) < 0 ||
	    statefile_get_u64(sf, "backend_start_time", UINT64_MAX, &st, &err) < 0) {
		if (!strcmp(vm->d->vsock_mode, "kernel"))
			vm->vsock.mode = VSOCK_HOST_KERNEL;
		vm_vsock_watch(vm, false);
		return;
	}
	vm->vsock.backend_pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (vm->vsock.backend_pidfd < 0 || proc_start_time((pid_t)pid, &now) < 0 || now != st) {
		snprintf(vm->message, sizeof(vm->message), "the vsock backend (pid %d) died while virtmgrd was down",
			 (int)pid);
		if (vm->vsock.backend_pidfd >= 0)
			close(steal_fd(&vm->vsock.backend_pidfd));
		vm->forced_reason = VIRTMGR__V1__DEATH_REASON__DEATH_REASON_INFRASTRUCTURE_ERROR;
		vm_vsock_watch(vm, false);
		qemu_kill(vm->qemu);
		return;
	}
	fd_set_cloexec(vm->vsock.backend_pidfd, true);
	vm->vsock.backend_pid = (pid_t)pid;
	vm_vsock_watch(vm, false); /* not ours to reap: PID 1 does */
}

/* Whether every uid of process @pid (real, effective, saved, fs) is @uid. */
static bool proc_runs_as(pid_t pid, uid_t uid)
{
	cleanup_free char *path = xasprintf("/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	char line[256];
	unsigned r, e, s, fs;
	bool ok = false;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Uid: %u %u %u %u", &r, &e, &s, &fs) == 4) {
			ok = r == uid && e == uid && s == uid && fs == uid;
			break;
		}
	if (f)
		fclose(f);
	return ok;
}

/*
 * A sandboxed VM's uid owns its run directory and so can replace what is in
 * it: believe vm.state only when it is the daemon's own file, and its uid
 * only when the directory and the QEMU process really are that uid's.
 */
static int restore_check(const char *dir, const char *path, uint64_t uid, uint64_t qpid, struct vm_error *err)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return vm_error_errno(err, errno, "%s", path);
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || st.st_nlink != 1)
		return vm_error_set(err, VM_DATA_LOSS, "%s: not a file of the daemon's (uid %u, links %u)", path,
				    (unsigned)st.st_uid, (unsigned)st.st_nlink);
	if (!uid)
		return 0;
	if (lstat(dir, &st) < 0)
		return vm_error_errno(err, errno, "%s", dir);
	if (!S_ISDIR(st.st_mode) || st.st_uid != (uid_t)uid)
		return vm_error_set(err, VM_DATA_LOSS, "%s: not owned by the VM's uid %" PRIu64, dir, uid);
	if (!proc_runs_as((pid_t)qpid, (uid_t)uid))
		return vm_error_set(err, VM_DATA_LOSS, "QEMU pid %" PRIu64 " does not run as the VM's uid %" PRIu64,
				    qpid, uid);
	return 0;
}

static int restore_one(struct daemon *d, const char *dir, struct vm_error *err)
{
	cleanup_free char *path = xasprintf("%s/vm.state", dir);
	struct statefile sf = { 0 };
	uint64_t cid, state, uid, opid, det, qpid, qst, mem, cpus, cns, sns, code, vuid = 0;
	const char *id, *name, *accel;
	struct vm *vm;
	int r = -1;

	if (statefile_read(&sf, path, err) < 0)
		return -1;
	id = statefile_get(&sf, "id");
	name = statefile_get(&sf, "name");
	accel = statefile_get(&sf, "accel");
	if (!id || strlen(id) != 12 || !name || !vm_config_name_valid(name) || !accel) {
		vm_error_set(err, VM_DATA_LOSS, "%s: id, name or accel missing or invalid", path);
		goto out;
	}
	if (statefile_get_u64(&sf, "cid", UINT32_MAX, &cid, err) < 0 ||
	    statefile_get_u64(&sf, "state", VIRTMGR__V1__VM_STATE__VM_STATE_FINISHED, &state, err) < 0 ||
	    statefile_get_u64(&sf, "owner_uid", UINT32_MAX, &uid, err) < 0 ||
	    statefile_get_u64(&sf, "owner_pid", INT32_MAX, &opid, err) < 0 ||
	    statefile_get_u64(&sf, "detached", 1, &det, err) < 0 ||
	    statefile_get_u64(&sf, "qemu_pid", INT32_MAX, &qpid, err) < 0 ||
	    statefile_get_u64(&sf, "qemu_start_time", UINT64_MAX, &qst, err) < 0 ||
	    statefile_get_u64(&sf, "memory_mib", UINT32_MAX, &mem, err) < 0 ||
	    statefile_get_u64(&sf, "cpus", UINT32_MAX, &cpus, err) < 0 ||
	    statefile_get_u64(&sf, "created_ns", UINT64_MAX, &cns, err) < 0 ||
	    statefile_get_u64(&sf, "started_ns", UINT64_MAX, &sns, err) < 0) {
		vm_error_prefix(err, "%s", path);
		goto out;
	}
	if (statefile_get(&sf, "uid") && statefile_get_u64(&sf, "uid", UINT32_MAX, &vuid, err) < 0) {
		vm_error_prefix(err, "%s", path);
		goto out;
	}
	if (restore_check(dir, path, vuid, qpid, err) < 0)
		goto out;
	if (vm_cid_in_use(d, (uint32_t)cid)) {
		vm_error_set(err, VM_DATA_LOSS, "%s: cid %" PRIu64 " is already taken", path, cid);
		goto out;
	}
	if (vuid && !d->uids) {
		vm_error_set(err, VM_FAILED_PRECONDITION,
			     "%s: the VM runs under uid %" PRIu64 " but this daemon gives VMs no uids (not root)", path,
			     vuid);
		goto out;
	}
	vm = vm_alloc(d);
	if (vuid) {
		/* before any new VM is given a uid */
		int m = uidpool_mark_used(d->uids, (uid_t)vuid, err);

		if (m < 0) {
			vm_free(vm);
			vm_error_prefix(err, "%s: uid", path);
			goto out;
		}
		if (m == 1)
			log_warn("%s: uid %" PRIu64 " is outside the configured range (--vm-uid-range); keeping it",
				 path, vuid);
		vm->uid = (uid_t)vuid;
	}
	snprintf(vm->id, sizeof(vm->id), "%s", id);
	vm->name = xstrdup(name);
	vm->accel = xstrdup(accel);
	vm->cid = (uint32_t)cid;
	vm->state = (vm_state_t)state;
	vm->owner_uid = (uid_t)uid;
	vm->owner_pid = (pid_t)opid;
	vm->detached = det;
	vm->owner_conn = det ? 0 : UINT64_MAX; /* an owned VM's owner died with the old daemon */
	vm->memory_mib = (uint32_t)mem;
	vm->cpus = (uint32_t)cpus;
	vm->created_ns = cns;
	vm->started_ns = sns;
	{
		uint64_t hang = VIRTMGR__V1__ON_HANG__ON_HANG_DEFAULT;

		/* absent in records of older daemons: the default policy */
		if (statefile_get(&sf, "on_hang") &&
		    statefile_get_u64(&sf, "on_hang", VIRTMGR__V1__ON_HANG__ON_HANG_KILL, &hang, err) < 0) {
			vm_error_prefix(err, "%s", path);
			vm_free(vm);
			goto out;
		}
		vm->on_hang = (Virtmgr__V1__OnHang)hang;
	}
	if (statefile_get_u64(&sf, "exit_code", 255, &code, NULL) == 0) {
		vm->exit_code = (int)code;
		vm->has_exit_code = true;
	}
	if (statefile_get(&sf, "marker_key")) {
		struct marker_key key;
		uint64_t seq = 0;

		/* the guest goes on signing with the key of its boot */
		if (marker_key_from_hex(&key, statefile_get(&sf, "marker_key"), err) < 0 ||
		    statefile_get_u64(&sf, "marker_seq", UINT64_MAX, &seq, err) < 0) {
			vm_error_prefix(err, "%s: marker_key", path);
			vm_free(vm);
			goto out;
		}
		marker_verifier_init(&vm->markers, &key);
		vm->markers.last_seq = seq;
		vm->has_marker_key = true;
		explicit_bzero(&key, sizeof(key));
	}
	vm->run_dir = xstrdup(dir);
	if (qemu_adopt(d->loop, (pid_t)qpid, qst, dir, &vm_qemu_callbacks, vm, &vm->qemu, err) < 0) {
		vm->qemu = NULL;
		vm_free(vm);
		vm_error_prefix(err, "%s: vm %s", path, id);
		goto out;
	}
	/* console.log and qemu.log go on under the bound of this daemon */
	qemu_set_log_limits(vm->qemu, &d->cfg.log_limits);
	vm->next = d->vms;
	d->vms = vm;
	d->nvms_alive++;
	if (d->next_cid <= vm->cid && vm->cid < d->cfg.cid_max)
		d->next_cid = vm->cid + 1;
	restore_backend(vm, &sf);
	vm_net_adopt(vm, &sf);
	vm_storage_restore(vm, &sf); /* disks and shares: vm-storage.c */
	if (!det) {
		log_info("vm %s (%s, cid %u): its owner is gone, stopping it", vm->id, vm->name, vm->cid);
		vm->kill_requested = true;
		qemu_kill(vm->qemu);
	} else {
		struct vm_error verr = { 0 };

		log_info("vm %s (%s, cid %u): adopted running QEMU %d (%s)", vm->id, vm->name, vm->cid, (int)qpid,
			 vm_state_name(vm->state));
		/* the guest agent reconnects to VirtualMachineService */
		vm_vms_new(vm, NULL, false);
		if (attest_vm_load(vm->attest, &sf, &verr) < 0)
			log_warn("vm %s: %s: its attestation state is lost: %s", vm->id, path, verr.message);
		if (vm_vms_listen(vm, &verr) < 0)
			log_warn("vm %s: %s", vm->id, verr.message);
	}
	r = 0;
out:
	if (r < 0)
		vm_storage_cleanup(&sf, dir); /* no virtiofsd outlives a VM not adopted */
	statefile_clear(&sf);
	return r;
}

unsigned vm_restore_all(struct daemon *d)
{
	cleanup_free char *base = xasprintf("%s/vms", d->cfg.run_dir);
	DIR *dir = opendir(base);
	struct dirent *de;
	unsigned n = 0;

	if (!dir)
		return 0;
	while ((de = readdir(dir))) {
		struct vm_error err = { 0 };
		cleanup_free char *path = NULL;
		char *end;

		strtoul(de->d_name, &end, 10);
		if (de->d_name[0] < '0' || de->d_name[0] > '9' || *end)
			continue;
		path = xasprintf("%s/%s", base, de->d_name);
		if (restore_one(d, path, &err) == 0) {
			n++;
			continue;
		}
		log_warn("not adopting %s: %s; removing it", path, err.message);
		remove_tree(path);
	}
	closedir(dir);
	return n;
}
