/* client.c - libvirtmgr-client: typed calls over the blocking ttrpc client.
 *
 * Each vmc_* call builds the protobuf-c request on the stack, makes one
 * ttrpc_client_call() (or opens a stream) on the client's connection with
 * the client's per-call deadline, and copies the answer into the plain C
 * structs of virtmgr-client.h, so that callers never see protobuf-c types.
 * The connection is made here rather than by ttrpc_client_connect_unix() so
 * that the error names the socket and keeps connect()'s errno, which vmctl
 * turns into its "is virtmgrd running?" hint.
 *
 * File descriptors in a VmConfig are gathered into one array sent as
 * SCM_RIGHTS with CreateVm, each referenced by its index (FdRef). Returned
 * fds arrive the same way and are checked against the response's FdRef.
 */
#include "config.h"
#include "lib/util.h"
#include "client/virtmgr-client.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <poll.h>

#include "lib/ttrpc.h"
#include "protos/virtmgr.pb-c.h"

struct vmc_client {
	struct ttrpc_client *tc;
	uint64_t timeout_ns;
	pid_t child;                    /* daemon started by vmc_spawn_early(), or 0 */
};

struct vmc_watch {
	struct vmc_client *cl;
	uint32_t stream_id;
	bool ended;
};

static char *dup_str(const char *s)
{
	return xstrdup(s ? s : "");
}

/* protobuf-c wants char * even for strings it only reads. */
static char *pb_str(const char *s)
{
	return (char *)(s ? s : "");
}

/* ------------------------------------------------------------ connection */

const char *vmc_default_socket(void)
{
	const char *env = getenv(VMC_SOCKET_ENV);

	return env && *env ? env : VMC_DEFAULT_SOCKET;
}

struct vmc_client *vmc_connect(const char *path, struct vm_error *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct vmc_client *cl;
	int fd, saved;

	if (!path)
		path = vmc_default_socket();
	if (strlen(path) >= sizeof(addr.sun_path)) {
		vm_error_set(err, VM_INVALID_ARGUMENT, "cannot connect to %s: socket path too long", path);
		errno = ENAMETOOLONG;
		return NULL;
	}
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		saved = errno;
		vm_error_set_errno(err, VM_UNAVAILABLE, saved, "cannot connect to %s", path);
		errno = saved;
		return NULL;
	}
	while (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		if (errno == EINTR)
			continue;
		saved = errno;
		close(fd);
		vm_error_set_errno(err, VM_UNAVAILABLE, saved, "cannot connect to %s", path);
		errno = saved;
		return NULL;
	}
	cl = xzalloc(sizeof(*cl));
	cl->tc = ttrpc_client_from_fd(fd);
	return cl;
}

struct vmc_client *vmc_client_from_fd(int fd)
{
	struct vmc_client *cl = xzalloc(sizeof(*cl));

	fd_set_cloexec(fd, true);
	cl->tc = ttrpc_client_from_fd(fd);
	return cl;
}

struct vmc_client *vmc_spawn_early(const char *virtmgrd_path, const char *const *extra_args,
				   struct vm_error *err)
{
	int sv[2], ready[2];
	char client_fd[16], ready_fd[16];
	size_t n_extra = 0, i, argc = 0;
	pid_t pid;
	char c;
	ssize_t r;

	if (!virtmgrd_path || !*virtmgrd_path) {
		vm_error_set(err, VM_INVALID_ARGUMENT, "vmc_spawn_early: no virtmgrd path");
		return NULL;
	}
	while (extra_args && extra_args[n_extra])
		n_extra++;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		vm_error_set_errno(err, VM_INTERNAL, errno, "socketpair");
		return NULL;
	}
	if (pipe2(ready, O_CLOEXEC) < 0) {
		vm_error_set_errno(err, VM_INTERNAL, errno, "pipe");
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	/* Everything the child needs is prepared before fork(). */
	cleanup_free char **argv = xcalloc(n_extra + 7, sizeof(char *));
	snprintf(client_fd, sizeof(client_fd), "%d", sv[1]);
	snprintf(ready_fd, sizeof(ready_fd), "%d", ready[1]);
	argv[argc++] = (char *)virtmgrd_path;
	argv[argc++] = (char *)"--early";
	argv[argc++] = (char *)"--client-fd";
	argv[argc++] = client_fd;
	argv[argc++] = (char *)"--ready-fd";
	argv[argc++] = ready_fd;
	for (i = 0; i < n_extra; i++)
		argv[argc++] = (char *)extra_args[i];
	argv[argc] = NULL;

	pid = fork();
	if (pid < 0) {
		vm_error_set_errno(err, VM_INTERNAL, errno, "fork");
		close(sv[0]);
		close(sv[1]);
		close(ready[0]);
		close(ready[1]);
		return NULL;
	}
	if (pid == 0) {
		/* child: only async-signal-safe calls from here */
		fcntl(sv[1], F_SETFD, 0);
		fcntl(ready[1], F_SETFD, 0);
		execv(virtmgrd_path, argv);
		_exit(127);
	}
	close(sv[1]);
	close(ready[1]);
	do
		r = read(ready[0], &c, 1);
	while (r < 0 && errno == EINTR);
	close(ready[0]);
	if (r != 1) {
		int status = 0;

		close(sv[0]);
		kill(pid, SIGTERM);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			vm_error_set(err, VM_UNAVAILABLE, "cannot start %s (exit status 127)", virtmgrd_path);
		else if (WIFEXITED(status))
			vm_error_set(err, VM_UNAVAILABLE, "%s --early exited with status %d before it was ready",
				     virtmgrd_path, WEXITSTATUS(status));
		else
			vm_error_set(err, VM_UNAVAILABLE, "%s --early died (signal %d) before it was ready",
				     virtmgrd_path, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		return NULL;
	}
	struct vmc_client *cl = xzalloc(sizeof(*cl));

	cl->tc = ttrpc_client_from_fd(sv[0]);
	cl->child = pid;
	return cl;
}

void vmc_close(struct vmc_client *cl)
{
	if (!cl)
		return;
	ttrpc_client_free(cl->tc);
	if (cl->child > 0) {
		kill(cl->child, SIGTERM);
		while (waitpid(cl->child, NULL, 0) < 0 && errno == EINTR)
			;
	}
	free(cl);
}

void vmc_set_timeout(struct vmc_client *cl, uint64_t timeout_ms)
{
	cl->timeout_ns = timeout_ms * 1000000ull;
}

int vmc_client_fd(const struct vmc_client *cl)
{
	return ttrpc_client_fd(cl->tc);
}

pid_t vmc_client_pid(const struct vmc_client *cl)
{
	return cl->child;
}

/* One unary call of VirtualizationService/@method. */
static int vmc_call(struct vmc_client *cl, const char *method, const ProtobufCMessage *req, const int *fds,
		    size_t nfds, const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
		    int *rfds, size_t *nrfds, uint64_t timeout_ns, struct vm_error *err)
{
	size_t none = 0;

	if (!cl)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "%s: not connected", method);
	return ttrpc_client_call(cl->tc, VMC_SERVICE, method, req, fds, nfds, resp_desc, resp, rfds,
				 nrfds ? nrfds : &none, timeout_ns ? timeout_ns : cl->timeout_ns, err);
}

static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* Pick the fd a response's FdRef names and close the others. */
static int take_fd(const char *method, const Virtmgr__V1__FdRef *ref, int *fds, size_t n, struct vm_error *err)
{
	int fd;

	if (!ref || ref->index >= n) {
		close_fds(fds, n);
		return vm_error_set(err, VM_DATA_LOSS, "%s: response carries no file descriptor (got %zu)", method,
				    n);
	}
	fd = fds[ref->index];
	fds[ref->index] = -1;
	close_fds(fds, n);
	fd_set_cloexec(fd, true);
	return fd;
}

/* ------------------------------------------------------------ daemon */

int vmc_get_daemon_info(struct vmc_client *cl, struct vmc_daemon_info *info, struct vm_error *err)
{
	Virtmgr__V1__GetDaemonInfoRequest req = VIRTMGR__V1__GET_DAEMON_INFO_REQUEST__INIT;
	Virtmgr__V1__DaemonInfo *di = NULL;

	memset(info, 0, sizeof(*info));
	if (vmc_call(cl, "GetDaemonInfo", &req.base, NULL, 0, &virtmgr__v1__daemon_info__descriptor,
		     (ProtobufCMessage **)&di, NULL, NULL, 0, err) < 0)
		return -1;
	info->version = dup_str(di->version);
	info->mode = dup_str(di->mode);
	info->hypervisor = dup_str(di->hypervisor);
	info->hypervisor_reason = dup_str(di->hypervisor_reason);
	info->vsock_mode = dup_str(di->vsock_mode);
	info->cid_min = di->cid_min;
	info->cid_max = di->cid_max;
	info->n_features = di->n_features;
	info->features = xcalloc(di->n_features + 1, sizeof(char *));
	for (size_t i = 0; i < di->n_features; i++)
		info->features[i] = dup_str(di->features[i]);
	info->pid = di->pid;
	info->run_dir = dup_str(di->run_dir);
	info->vm_count = di->vm_count;
	info->connection_count = di->connection_count;
	protobuf_c_message_free_unpacked(&di->base, NULL);
	return 0;
}

void vmc_daemon_info_clear(struct vmc_daemon_info *info)
{
	if (!info)
		return;
	free(info->version);
	free(info->mode);
	free(info->hypervisor);
	free(info->hypervisor_reason);
	free(info->vsock_mode);
	for (size_t i = 0; info->features && i < info->n_features; i++)
		free(info->features[i]);
	free(info->features);
	free(info->run_dir);
	memset(info, 0, sizeof(*info));
}

int vmc_is_feature_enabled(struct vmc_client *cl, const char *feature, struct vm_error *err)
{
	Virtmgr__V1__IsFeatureEnabledRequest req = VIRTMGR__V1__IS_FEATURE_ENABLED_REQUEST__INIT;
	Virtmgr__V1__IsFeatureEnabledResponse *resp = NULL;
	int ret;

	req.feature = pb_str(feature);
	if (vmc_call(cl, "IsFeatureEnabled", &req.base, NULL, 0, &virtmgr__v1__is_feature_enabled_response__descriptor,
		     (ProtobufCMessage **)&resp, NULL, NULL, 0, err) < 0)
		return -1;
	ret = resp->enabled ? 1 : 0;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ret;
}

int vmc_allocate_instance_id(struct vmc_client *cl, uint8_t id[VMC_INSTANCE_ID_SIZE], struct vm_error *err)
{
	Virtmgr__V1__AllocateInstanceIdRequest req = VIRTMGR__V1__ALLOCATE_INSTANCE_ID_REQUEST__INIT;
	Virtmgr__V1__AllocateInstanceIdResponse *resp = NULL;
	int ret = 0;

	if (vmc_call(cl, "AllocateInstanceId", &req.base, NULL, 0,
		     &virtmgr__v1__allocate_instance_id_response__descriptor, (ProtobufCMessage **)&resp, NULL, NULL, 0,
		     err) < 0)
		return -1;
	if (resp->instance_id.len != VMC_INSTANCE_ID_SIZE)
		ret = vm_error_set(err, VM_DATA_LOSS, "AllocateInstanceId: got %zu bytes, expected %d",
				   resp->instance_id.len, VMC_INSTANCE_ID_SIZE);
	else
		memcpy(id, resp->instance_id.data, VMC_INSTANCE_ID_SIZE);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ret;
}

/* ------------------------------------------------------------ VMs */

void vmc_vm_config_init(struct vmc_vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->kernel_fd = -1;
	cfg->initrd_fd = -1;
	cfg->console_out = -1;
	cfg->console_in = -1;
	cfg->log_out = -1;
}

static void vm_info_copy(struct vmc_vm_info *dst, const Virtmgr__V1__VmInfo *src)
{
	memset(dst, 0, sizeof(*dst));
	if (!src) {
		dst->id = xstrdup("");
		dst->name = xstrdup("");
		dst->message = xstrdup("");
		dst->run_dir = xstrdup("");
		dst->accel = xstrdup("");
		return;
	}
	dst->id = dup_str(src->id);
	dst->name = dup_str(src->name);
	dst->cid = src->cid;
	dst->state = (enum vmc_vm_state)src->state;
	dst->death_reason = (enum vmc_death_reason)src->death_reason;
	dst->exit_code = src->exit_code;
	dst->has_exit_code = src->has_exit_code;
	dst->message = dup_str(src->message);
	dst->qemu_pid = src->qemu_pid;
	dst->run_dir = dup_str(src->run_dir);
	dst->owner_uid = src->owner_uid;
	dst->owner_pid = src->owner_pid;
	dst->accel = dup_str(src->accel);
	dst->memory_mib = src->memory_mib;
	dst->cpus = src->cpus;
	dst->created_ns = src->created_ns;
	dst->started_ns = src->started_ns;
	dst->detached = src->detached;
	dst->early = src->early;
	dst->suspended = src->suspended;
}

void vmc_vm_info_clear(struct vmc_vm_info *info)
{
	if (!info)
		return;
	free(info->id);
	free(info->name);
	free(info->message);
	free(info->run_dir);
	free(info->accel);
	memset(info, 0, sizeof(*info));
}

void vmc_vm_info_array_free(struct vmc_vm_info *vms, size_t n)
{
	for (size_t i = 0; vms && i < n; i++)
		vmc_vm_info_clear(&vms[i]);
	free(vms);
}

/* Add @fd to the request's fd list and point @ref at it. */
static int add_fd(int fd, const char *what, int *fds, size_t *nfds, Virtmgr__V1__FdRef *ref,
		  Virtmgr__V1__FdRef **slot, struct vm_error *err)
{
	if (fd < 0)
		return 0;
	if (*nfds >= TTRPC_MAX_FDS)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "CreateVm: too many file descriptors (%s; at most %d)",
				    what, TTRPC_MAX_FDS);
	virtmgr__v1__fd_ref__init(ref);
	ref->index = (uint32_t)*nfds;
	fds[(*nfds)++] = fd;
	*slot = ref;
	return 0;
}

int vmc_create_vm(struct vmc_client *cl, const struct vmc_vm_config *cfg, struct vmc_vm_info *info,
		  struct vm_error *err)
{
	Virtmgr__V1__CreateVmRequest req = VIRTMGR__V1__CREATE_VM_REQUEST__INIT;
	Virtmgr__V1__VmConfig c = VIRTMGR__V1__VM_CONFIG__INIT;
	Virtmgr__V1__CreateVmResponse *resp = NULL;
	Virtmgr__V1__FdRef refs[5];
	int fds[TTRPC_MAX_FDS];
	size_t nfds = 0, i;

	if (cfg->n_disks > TTRPC_MAX_FDS * 4)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "CreateVm: too many disks (%zu)", cfg->n_disks);
	cleanup_free Virtmgr__V1__Disk *disks = xcalloc(cfg->n_disks + 1, sizeof(*disks));
	cleanup_free Virtmgr__V1__Disk **disk_ptrs = xcalloc(cfg->n_disks + 1, sizeof(*disk_ptrs));
	cleanup_free Virtmgr__V1__FdRef *disk_refs = xcalloc(cfg->n_disks + 1, sizeof(*disk_refs));

	c.name = pb_str(cfg->name);
	c.kernel = pb_str(cfg->kernel);
	c.initrd = pb_str(cfg->initrd);
	c.cmdline = pb_str(cfg->cmdline);
	c.memory_mib = cfg->memory_mib;
	c.cpus = cfg->cpus;
	c.payload_cwd = pb_str(cfg->payload_cwd);
	c.accel = pb_str(cfg->accel);
	c.detach = cfg->detach;
	c.boot_timeout_ms = cfg->boot_timeout_ms;
	c.debug = cfg->debug;
	if (cfg->instance_id && cfg->instance_id_len) {
		c.instance_id.data = (uint8_t *)cfg->instance_id;
		c.instance_id.len = cfg->instance_id_len;
	}
	c.n_payload_args = cfg->n_payload_args;
	c.payload_args = (char **)cfg->payload_args;
	c.n_payload_env = cfg->n_payload_env;
	c.payload_env = (char **)cfg->payload_env;

	if (add_fd(cfg->kernel_fd, "kernel", fds, &nfds, &refs[0], &c.kernel_fd, err) < 0 ||
	    add_fd(cfg->initrd_fd, "initrd", fds, &nfds, &refs[1], &c.initrd_fd, err) < 0 ||
	    add_fd(cfg->console_out, "console_out", fds, &nfds, &refs[2], &c.console_out, err) < 0 ||
	    add_fd(cfg->console_in, "console_in", fds, &nfds, &refs[3], &c.console_in, err) < 0 ||
	    add_fd(cfg->log_out, "log_out", fds, &nfds, &refs[4], &c.log_out, err) < 0)
		return -1;
	for (i = 0; i < cfg->n_disks; i++) {
		virtmgr__v1__disk__init(&disks[i]);
		disks[i].path = pb_str(cfg->disks[i].path);
		disks[i].read_only = cfg->disks[i].read_only;
		if (add_fd(cfg->disks[i].fd, "disk", fds, &nfds, &disk_refs[i], &disks[i].fd, err) < 0)
			return -1;
		disk_ptrs[i] = &disks[i];
	}
	c.n_disks = cfg->n_disks;
	c.disks = disk_ptrs;
	req.config = &c;

	if (vmc_call(cl, "CreateVm", &req.base, fds, nfds, &virtmgr__v1__create_vm_response__descriptor,
		     (ProtobufCMessage **)&resp, NULL, NULL, 0, err) < 0)
		return -1;
	if (info)
		vm_info_copy(info, resp->vm);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

/* A call whose request is a VmRef and whose answer a VmInfoResponse. */
static int vm_ref_call(struct vmc_client *cl, const char *method, const char *vm, struct vmc_vm_info *info,
		       struct vm_error *err)
{
	Virtmgr__V1__VmRef req = VIRTMGR__V1__VM_REF__INIT;
	Virtmgr__V1__VmInfoResponse *resp = NULL;

	req.vm = pb_str(vm);
	if (vmc_call(cl, method, &req.base, NULL, 0, &virtmgr__v1__vm_info_response__descriptor,
		     (ProtobufCMessage **)&resp, NULL, NULL, 0, err) < 0)
		return -1;
	if (info)
		vm_info_copy(info, resp->vm);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

int vmc_start_vm(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vm_error *err)
{
	return vm_ref_call(cl, "StartVm", vm, info, err);
}

int vmc_kill_vm(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vm_error *err)
{
	return vm_ref_call(cl, "KillVm", vm, info, err);
}

int vmc_suspend_vm(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vm_error *err)
{
	return vm_ref_call(cl, "SuspendVm", vm, info, err);
}

int vmc_resume_vm(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vm_error *err)
{
	return vm_ref_call(cl, "ResumeVm", vm, info, err);
}

int vmc_get_vm_info(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vm_error *err)
{
	return vm_ref_call(cl, "GetVmInfo", vm, info, err);
}

int vmc_stop_vm(struct vmc_client *cl, const char *vm, uint32_t timeout_ms, bool force,
		struct vmc_vm_info *info, struct vm_error *err)
{
	Virtmgr__V1__StopVmRequest req = VIRTMGR__V1__STOP_VM_REQUEST__INIT;
	Virtmgr__V1__VmInfoResponse *resp = NULL;
	uint64_t deadline = 0;

	req.vm = pb_str(vm);
	req.timeout_ms = timeout_ms;
	req.force = force;
	/* the call must outlive the graceful phase it asks for */
	if (cl && cl->timeout_ns && timeout_ms)
		deadline = cl->timeout_ns + timeout_ms * 1000000ull;
	if (vmc_call(cl, "StopVm", &req.base, NULL, 0, &virtmgr__v1__vm_info_response__descriptor,
		     (ProtobufCMessage **)&resp, NULL, NULL, deadline, err) < 0)
		return -1;
	if (info)
		vm_info_copy(info, resp->vm);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

int vmc_list_vms(struct vmc_client *cl, struct vmc_vm_info **vms, size_t *n, struct vm_error *err)
{
	Virtmgr__V1__ListVmsRequest req = VIRTMGR__V1__LIST_VMS_REQUEST__INIT;
	Virtmgr__V1__ListVmsResponse *resp = NULL;

	*vms = NULL;
	*n = 0;
	if (vmc_call(cl, "ListVms", &req.base, NULL, 0, &virtmgr__v1__list_vms_response__descriptor,
		     (ProtobufCMessage **)&resp, NULL, NULL, 0, err) < 0)
		return -1;
	*vms = xcalloc(resp->n_vms + 1, sizeof(**vms));
	for (size_t i = 0; i < resp->n_vms; i++)
		vm_info_copy(&(*vms)[i], resp->vms[i]);
	*n = resp->n_vms;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

int vmc_wait_vm(struct vmc_client *cl, const char *vm, enum vmc_vm_state state, uint32_t timeout_ms,
		struct vmc_vm_info *info, struct vm_error *err)
{
	Virtmgr__V1__WaitVmRequest req = VIRTMGR__V1__WAIT_VM_REQUEST__INIT;
	Virtmgr__V1__WaitVmResponse *resp = NULL;
	uint64_t deadline = 0;
	int ret;

	req.vm = pb_str(vm);
	req.state = (Virtmgr__V1__VmState)state;
	req.timeout_ms = timeout_ms;
	if (cl && cl->timeout_ns && timeout_ms)
		deadline = cl->timeout_ns + timeout_ms * 1000000ull;
	if (vmc_call(cl, "WaitVm", &req.base, NULL, 0, &virtmgr__v1__wait_vm_response__descriptor,
		     (ProtobufCMessage **)&resp, NULL, NULL, deadline, err) < 0)
		return -1;
	if (info)
		vm_info_copy(info, resp->vm);
	ret = resp->reached ? 1 : 0;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ret;
}

int vmc_watch_vm(struct vmc_client *cl, const char *vm, bool logs, struct vmc_watch **watch,
		 struct vm_error *err)
{
	Virtmgr__V1__WatchVmRequest req = VIRTMGR__V1__WATCH_VM_REQUEST__INIT;
	int64_t id;

	*watch = NULL;
	if (!cl)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "WatchVm: not connected");
	req.vm = pb_str(vm);
	req.logs = logs;
	/* the stream lives as long as the VM: no deadline */
	id = ttrpc_client_stream_open(cl->tc, VMC_SERVICE, "WatchVm", &req.base, TTRPC_FLAG_REMOTE_CLOSED, 0, err);
	if (id < 0)
		return -1;
	*watch = xzalloc(sizeof(**watch));
	(*watch)->cl = cl;
	(*watch)->stream_id = (uint32_t)id;
	return 0;
}

int vmc_watch_next(struct vmc_watch *watch, int timeout_ms, struct vmc_event *ev, struct vm_error *err)
{
	Virtmgr__V1__VmEvent *e;
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	memset(ev, 0, sizeof(*ev));
	if (watch->ended)
		return 0;
	r = ttrpc_client_stream_recv(watch->cl->tc, watch->stream_id, &data, &len, timeout_ms, err);
	if (r <= 0) {
		if (r == 0)
			watch->ended = true;
		return r;
	}
	e = virtmgr__v1__vm_event__unpack(NULL, len, data);
	free(data);
	if (!e)
		return vm_error_set(err, VM_DATA_LOSS, "WatchVm: cannot decode a VmEvent (%zu bytes)", len);
	ev->vm = dup_str(e->vm);
	ev->type = (enum vmc_event_type)e->type;
	ev->state = (enum vmc_vm_state)e->state;
	ev->death_reason = (enum vmc_death_reason)e->death_reason;
	ev->exit_code = e->exit_code;
	ev->error_code = e->error_code;
	ev->message = dup_str(e->message);
	ev->timestamp_ns = e->timestamp_ns;
	virtmgr__v1__vm_event__free_unpacked(e, NULL);
	return 1;
}

void vmc_watch_close(struct vmc_watch *watch)
{
	free(watch);
}

void vmc_event_clear(struct vmc_event *ev)
{
	if (!ev)
		return;
	free(ev->vm);
	free(ev->message);
	memset(ev, 0, sizeof(*ev));
}

int vmc_connect_vsock(struct vmc_client *cl, const char *vm, uint32_t port, struct vm_error *err)
{
	Virtmgr__V1__ConnectVsockRequest req = VIRTMGR__V1__CONNECT_VSOCK_REQUEST__INIT;
	Virtmgr__V1__ConnectVsockResponse *resp = NULL;
	int rfds[TTRPC_MAX_FDS];
	size_t nrfds = ARRAY_SIZE(rfds);
	int fd;

	req.vm = pb_str(vm);
	req.port = port;
	if (vmc_call(cl, "ConnectVsock", &req.base, NULL, 0, &virtmgr__v1__connect_vsock_response__descriptor,
		     (ProtobufCMessage **)&resp, rfds, &nrfds, 0, err) < 0)
		return -1;
	fd = take_fd("ConnectVsock", resp->fd, rfds, nrfds, err);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return fd;
}

int vmc_open_log(struct vmc_client *cl, const char *vm, enum vmc_log_kind kind, struct vm_error *err)
{
	Virtmgr__V1__OpenLogRequest req = VIRTMGR__V1__OPEN_LOG_REQUEST__INIT;
	Virtmgr__V1__OpenLogResponse *resp = NULL;
	int rfds[TTRPC_MAX_FDS];
	size_t nrfds = ARRAY_SIZE(rfds);
	int fd;

	req.vm = pb_str(vm);
	req.kind = (Virtmgr__V1__LogKind)kind;
	if (vmc_call(cl, "OpenLog", &req.base, NULL, 0, &virtmgr__v1__open_log_response__descriptor,
		     (ProtobufCMessage **)&resp, rfds, &nrfds, 0, err) < 0)
		return -1;
	fd = take_fd("OpenLog", resp->fd, rfds, nrfds, err);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return fd;
}

int vmc_attach_console(struct vmc_client *cl, const char *vm, struct vm_error *err)
{
	Virtmgr__V1__VmRef req = VIRTMGR__V1__VM_REF__INIT;
	Virtmgr__V1__AttachConsoleResponse *resp = NULL;
	int rfds[TTRPC_MAX_FDS];
	size_t nrfds = ARRAY_SIZE(rfds);
	int fd;

	req.vm = pb_str(vm);
	if (vmc_call(cl, "AttachConsole", &req.base, NULL, 0, &virtmgr__v1__attach_console_response__descriptor,
		     (ProtobufCMessage **)&resp, rfds, &nrfds, 0, err) < 0)
		return -1;
	fd = take_fd("AttachConsole", resp->fd, rfds, nrfds, err);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return fd;
}

/* ------------------------------------------------------------ names */

static const char *const state_names[] = {
	"NOT_STARTED", "STARTING", "STARTED", "READY", "FINISHED", "DEAD",
};

static const char *const death_names[] = {
	"NONE", "INFRASTRUCTURE_ERROR", "KILLED", "UNKNOWN", "SHUTDOWN", "START_FAILED", "REBOOT",
	"CRASH", "HANGUP", "AGENT_FAILED_TO_CONNECT", "INVALID_PAYLOAD_CONFIG", "PAYLOAD_ERROR",
};

static const char *const event_names[] = {
	"STATE_CHANGED", "PAYLOAD_STARTED", "PAYLOAD_READY", "PAYLOAD_FINISHED", "ERROR", "DIED", "LOG",
};

static const char *const log_kind_names[] = { "console", "guest", "qemu" };

static const char *name_of(const char *const *names, size_t n, int v)
{
	return v >= 0 && (size_t)v < n ? names[v] : "?";
}

static int value_of(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; name && i < n; i++)
		if (!strcasecmp(names[i], name))
			return (int)i;
	return -1;
}

const char *vmc_state_name(enum vmc_vm_state state)
{
	return name_of(state_names, ARRAY_SIZE(state_names), (int)state);
}

const char *vmc_death_reason_name(enum vmc_death_reason reason)
{
	return name_of(death_names, ARRAY_SIZE(death_names), (int)reason);
}

const char *vmc_event_type_name(enum vmc_event_type type)
{
	return name_of(event_names, ARRAY_SIZE(event_names), (int)type);
}

const char *vmc_log_kind_name(enum vmc_log_kind kind)
{
	return name_of(log_kind_names, ARRAY_SIZE(log_kind_names), (int)kind);
}

const char *vmc_status_name(int code)
{
	return vm_status_name(code);
}

int vmc_exit_code(const struct vmc_vm_info *vm)
{
	if (vm->has_exit_code)
		return vm->exit_code & 0xff;
	switch (vm->death_reason) {
	case VMC_DEATH_SHUTDOWN:
		return 0;
	case VMC_DEATH_HANGUP:
		return 128 + SIGHUP;
	case VMC_DEATH_CRASH:
		return 128 + SIGABRT;
	case VMC_DEATH_KILLED:
		return 128 + SIGKILL;
	case VMC_DEATH_START_FAILED:
		return 125;
	case VMC_DEATH_INVALID_PAYLOAD_CONFIG:
		return 126;
	case VMC_DEATH_PAYLOAD_ERROR:
		return 127;
	case VMC_DEATH_AGENT_FAILED_TO_CONNECT:
		return 124;
	case VMC_DEATH_INFRASTRUCTURE_ERROR:
		return 123;
	case VMC_DEATH_REBOOT:
		return 122;
	case VMC_DEATH_NONE:
	case VMC_DEATH_UNKNOWN:
	default:
		return 255;
	}
}

int vmc_state_from_name(const char *name)
{
	return value_of(state_names, ARRAY_SIZE(state_names), name);
}

int vmc_log_kind_from_name(const char *name)
{
	return value_of(log_kind_names, ARRAY_SIZE(log_kind_names), name);
}
