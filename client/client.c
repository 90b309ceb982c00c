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
 * Errors: inside, the library follows the project's contract (lib/util.h's
 * struct vm_error, filled by static functions named for what they do); the
 * exported functions at the end of the file are thin wrappers that copy it
 * into the installed header's struct vmc_error, so that the header defines
 * no name of virtmgr's internals.
 *
 * File descriptors in a VmConfig are gathered into one array sent as
 * SCM_RIGHTS with CreateVm, each referenced by its index (FdRef). Returned
 * fds arrive the same way and are checked against the response's FdRef.
 *
 * Exec: a session owns a ttrpc connection of its own to the guest's agent
 * (ConnectVsock to VMC_AGENT_PORT, or a socket the caller connected) with
 * one Exec stream on it: ExecInput Data frames up, ExecOutput Data frames
 * down, a Response at the end. Flow control is the agent's (docs/guest.md):
 * at most VMC_EXEC_WINDOW stdin bytes beyond ExecOutput.stdin_written are
 * in flight; output is written to the caller's fds with blocking writes, so
 * a slow reader stops us reading the socket, which stops the agent reading
 * the command's output. Nothing is buffered here beyond one frame.
 */
#include "config.h"
#include "lib/util.h"
#include "client/virtmgr-client.h"
#include "client/client-priv.h"

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
	pid_t child; /* daemon started by vmc_spawn_early(), or 0 */
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

static struct vmc_client *connect_socket(const char *path, struct vm_error *err)
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

static struct vmc_client *spawn_early(const char *virtmgrd_path, const char *const *extra_args, struct vm_error *err)
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
static int vmc_call(struct vmc_client *cl, const char *method, const ProtobufCMessage *req, const int *fds, size_t nfds,
		    const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, int *rfds, size_t *nrfds,
		    uint64_t timeout_ns, struct vm_error *err)
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
		return vm_error_set(err, VM_DATA_LOSS, "%s: response carries no file descriptor (got %zu)", method, n);
	}
	fd = fds[ref->index];
	fds[ref->index] = -1;
	close_fds(fds, n);
	fd_set_cloexec(fd, true);
	return fd;
}

/* ------------------------------------------------------------ daemon */

static int get_daemon_info(struct vmc_client *cl, struct vmc_daemon_info *info, struct vm_error *err)
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
	info->vm_sandbox = di->vm_sandbox;
	info->vm_uid_range = dup_str(di->vm_uid_range);
	info->vm_sandbox_reason = dup_str(di->vm_sandbox_reason);
	info->service_vm = dup_str(di->service_vm ? di->service_vm->vm : NULL);
	if (di->service_vm) {
		info->service_vm_running = di->service_vm->running;
		info->service_vm_cid = di->service_vm->cid;
		if (di->service_vm->instance_id.len == sizeof(info->service_vm_instance_id)) {
			memcpy(info->service_vm_instance_id, di->service_vm->instance_id.data,
			       sizeof(info->service_vm_instance_id));
			info->has_service_vm_instance_id = true;
		}
	}
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
	free(info->vm_uid_range);
	free(info->vm_sandbox_reason);
	free(info->service_vm);
	for (size_t i = 0; info->features && i < info->n_features; i++)
		free(info->features[i]);
	free(info->features);
	free(info->run_dir);
	memset(info, 0, sizeof(*info));
}

static int is_feature_enabled(struct vmc_client *cl, const char *feature, struct vm_error *err)
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

static int allocate_instance_id(struct vmc_client *cl, uint8_t id[VMC_INSTANCE_ID_SIZE], struct vm_error *err)
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

static int get_platform_key(struct vmc_client *cl, uint8_t **der, size_t *len, struct vm_error *err)
{
	Virtmgr__V1__GetPlatformKeyRequest req = VIRTMGR__V1__GET_PLATFORM_KEY_REQUEST__INIT;
	Virtmgr__V1__GetPlatformKeyResponse *resp = NULL;

	if (vmc_call(cl, "GetPlatformKey", &req.base, NULL, 0, &virtmgr__v1__get_platform_key_response__descriptor,
		     (ProtobufCMessage **)&resp, NULL, NULL, 0, err) < 0)
		return -1;
	*len = resp->public_key.len;
	*der = xmalloc(MAX(*len, (size_t)1));
	memcpy(*der, resp->public_key.data, *len);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
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
	dst->measurement_len = src->measurement.len <= sizeof(dst->measurement) ? src->measurement.len : 0;
	if (dst->measurement_len)
		memcpy(dst->measurement, src->measurement.data, dst->measurement_len);
	dst->measurement_alg = dup_str(src->measurement_alg);
	dst->has_usage = src->usage != NULL;
	if (src->usage) {
		dst->cpu_ns = src->usage->cpu_ns;
		dst->rss_bytes = src->usage->rss_bytes;
	}
	if (src->network) {
		const Virtmgr__V1__NetworkInfo *n = src->network;
		struct vmc_net_info *ni = xzalloc(sizeof(*ni));

		ni->mode = dup_str(n->mode);
		ni->mac = dup_str(n->mac);
		ni->address = dup_str(n->address);
		ni->gateway = dup_str(n->gateway);
		ni->mtu = n->mtu;
		ni->dns = xcalloc(n->n_dns + 1, sizeof(*ni->dns));
		for (size_t i = 0; i < n->n_dns; i++)
			ni->dns[i] = dup_str(n->dns[i]);
		ni->n_dns = n->n_dns;
		ni->ports = xcalloc(n->n_ports + 1, sizeof(*ni->ports));
		for (size_t i = 0; i < n->n_ports; i++) {
			ni->ports[i].host_address = dup_str(n->ports[i]->host_address);
			ni->ports[i].host_port = n->ports[i]->host_port;
			ni->ports[i].guest_port = n->ports[i]->guest_port;
			ni->ports[i].udp = n->ports[i]->protocol && !strcmp(n->ports[i]->protocol, "udp");
		}
		ni->n_ports = n->n_ports;
		dst->network = ni;
	}
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
	free(info->measurement_alg);
	if (info->network) {
		struct vmc_net_info *ni = info->network;

		free(ni->mode);
		free(ni->mac);
		free(ni->address);
		free(ni->gateway);
		for (size_t i = 0; i < ni->n_dns; i++)
			free(ni->dns[i]);
		free(ni->dns);
		for (size_t i = 0; i < ni->n_ports; i++)
			free((char *)ni->ports[i].host_address);
		free(ni->ports);
		free(ni);
	}
	memset(info, 0, sizeof(*info));
}

void vmc_vm_info_array_free(struct vmc_vm_info *vms, size_t n)
{
	for (size_t i = 0; vms && i < n; i++)
		vmc_vm_info_clear(&vms[i]);
	free(vms);
}

/* Add @fd to the request's fd list and point @ref at it. */
static int add_fd(int fd, const char *what, int *fds, size_t *nfds, Virtmgr__V1__FdRef *ref, Virtmgr__V1__FdRef **slot,
		  struct vm_error *err)
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

static int create_vm(struct vmc_client *cl, const struct vmc_vm_config *cfg, struct vmc_vm_info *info,
		     struct vm_error *err)
{
	Virtmgr__V1__CreateVmRequest req = VIRTMGR__V1__CREATE_VM_REQUEST__INIT;
	Virtmgr__V1__VmConfig c = VIRTMGR__V1__VM_CONFIG__INIT;
	Virtmgr__V1__GuestUser user = VIRTMGR__V1__GUEST_USER__INIT;
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
	if (cfg->has_payload_user) {
		user.uid = cfg->payload_uid;
		user.gid = cfg->payload_gid;
		c.payload_user = &user;
	}
	c.accel = pb_str(cfg->accel);
	c.detach = cfg->detach;
	c.boot_timeout_ms = cfg->boot_timeout_ms;
	c.debug = cfg->debug;
	c.on_hang = (Virtmgr__V1__OnHang)cfg->on_hang;
	c.crash_core_limit = cfg->crash_core_limit;
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
		disks[i].measured = cfg->disks[i].measured;
		disks[i].image = pb_str(cfg->disks[i].image);
		disks[i].label = pb_str(cfg->disks[i].label);
		disks[i].format = cfg->disks[i].qcow2 ? VIRTMGR__V1__DISK_FORMAT__DISK_FORMAT_QCOW2
						      : VIRTMGR__V1__DISK_FORMAT__DISK_FORMAT_RAW;
		if (add_fd(cfg->disks[i].fd, "disk", fds, &nfds, &disk_refs[i], &disks[i].fd, err) < 0)
			return -1;
		disk_ptrs[i] = &disks[i];
	}
	c.n_disks = cfg->n_disks;
	c.disks = disk_ptrs;
	if (cfg->n_mounts > 64)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "CreateVm: too many mounts (%zu)", cfg->n_mounts);
	cleanup_free Virtmgr__V1__Mount *mounts = xcalloc(cfg->n_mounts + 1, sizeof(*mounts));
	cleanup_free Virtmgr__V1__Mount **mount_ptrs = xcalloc(cfg->n_mounts + 1, sizeof(*mount_ptrs));

	for (i = 0; i < cfg->n_mounts; i++) {
		virtmgr__v1__mount__init(&mounts[i]);
		mounts[i].source = pb_str(cfg->mounts[i].source);
		mounts[i].target = pb_str(cfg->mounts[i].target);
		mounts[i].fstype = pb_str(cfg->mounts[i].fstype);
		mounts[i].read_only = cfg->mounts[i].read_only;
		mounts[i].options = pb_str(cfg->mounts[i].options);
		mount_ptrs[i] = &mounts[i];
	}
	c.n_mounts = cfg->n_mounts;
	c.mounts = mount_ptrs;
	if (cfg->n_shares > 64)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "CreateVm: too many shares (%zu)", cfg->n_shares);
	cleanup_free Virtmgr__V1__Share *shares = xcalloc(cfg->n_shares + 1, sizeof(*shares));
	cleanup_free Virtmgr__V1__Share **share_ptrs = xcalloc(cfg->n_shares + 1, sizeof(*share_ptrs));
	for (i = 0; i < cfg->n_shares; i++) {
		virtmgr__v1__share__init(&shares[i]);
		shares[i].host_dir = pb_str(cfg->shares[i].host_dir);
		shares[i].tag = pb_str(cfg->shares[i].tag);
		shares[i].guest_path = pb_str(cfg->shares[i].guest_path);
		shares[i].read_only = cfg->shares[i].read_only;
		share_ptrs[i] = &shares[i];
	}
	c.n_shares = cfg->n_shares;
	c.shares = share_ptrs;
	Virtmgr__V1__RootFilesystem root = VIRTMGR__V1__ROOT_FILESYSTEM__INIT;

	if (cfg->root && *cfg->root) {
		root.source = pb_str(cfg->root);
		root.fstype = pb_str(cfg->root_fstype);
		root.writable = cfg->root_writable;
		c.root = &root;
	}
	Virtmgr__V1__NetworkConfig net = VIRTMGR__V1__NETWORK_CONFIG__INIT;
	if (cfg->n_ports > 64)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "CreateVm: too many forwarded ports (%zu)", cfg->n_ports);
	cleanup_free Virtmgr__V1__PortForward *pfs = xcalloc(cfg->n_ports + 1, sizeof(*pfs));
	cleanup_free Virtmgr__V1__PortForward **pf_ptrs = xcalloc(cfg->n_ports + 1, sizeof(*pf_ptrs));
	if ((cfg->net_mode && *cfg->net_mode) || cfg->n_ports || (cfg->mac && *cfg->mac)) {
		net.mode = pb_str(cfg->net_mode);
		net.mac = pb_str(cfg->mac);
		for (i = 0; i < cfg->n_ports; i++) {
			virtmgr__v1__port_forward__init(&pfs[i]);
			pfs[i].host_address = pb_str(cfg->ports[i].host_address);
			pfs[i].host_port = cfg->ports[i].host_port;
			pfs[i].guest_port = cfg->ports[i].guest_port;
			pfs[i].protocol = cfg->ports[i].udp ? "udp" : "tcp";
			pf_ptrs[i] = &pfs[i];
		}
		net.n_ports = cfg->n_ports;
		net.ports = pf_ptrs;
		c.network = &net;
	}
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

static int stop_vm(struct vmc_client *cl, const char *vm, uint32_t timeout_ms, bool force, struct vmc_vm_info *info,
		   struct vm_error *err)
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

static int list_vms(struct vmc_client *cl, struct vmc_vm_info **vms, size_t *n, struct vm_error *err)
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

static int wait_vm(struct vmc_client *cl, const char *vm, enum vmc_vm_state state, uint32_t timeout_ms,
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

static int watch_vm(struct vmc_client *cl, const char *vm, bool logs, struct vmc_watch **watch, struct vm_error *err)
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

static int watch_next(struct vmc_watch *watch, int timeout_ms, struct vmc_event *ev, struct vm_error *err)
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

static int connect_vsock(struct vmc_client *cl, const char *vm, uint32_t port, struct vm_error *err)
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

/* OpenLog: the rotated files (the newest that fit in @max - 1), then the current one. */
static int open_log(struct vmc_client *cl, const char *vm, enum vmc_log_kind kind, int *fds, size_t max,
		    struct vm_error *err)
{
	Virtmgr__V1__OpenLogRequest req = VIRTMGR__V1__OPEN_LOG_REQUEST__INIT;
	Virtmgr__V1__OpenLogResponse *resp = NULL;
	int rfds[TTRPC_MAX_FDS];
	size_t nrfds = ARRAY_SIZE(rfds), first, n = 0;

	if (max < 1)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "OpenLog: no room for a file descriptor");
	req.vm = pb_str(vm);
	req.kind = (Virtmgr__V1__LogKind)kind;
	if (vmc_call(cl, "OpenLog", &req.base, NULL, 0, &virtmgr__v1__open_log_response__descriptor,
		     (ProtobufCMessage **)&resp, rfds, &nrfds, 0, err) < 0)
		return -1;
	if (!resp->fd || resp->fd->index >= nrfds) {
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		return take_fd("OpenLog", NULL, rfds, nrfds, err);
	}
	for (size_t i = 0; i < resp->n_older; i++)
		if (!resp->older[i] || resp->older[i]->index >= nrfds || resp->older[i]->index == resp->fd->index)
			goto bad;
	first = resp->n_older > max - 1 ? resp->n_older - (max - 1) : 0;
	for (size_t i = first; i < resp->n_older; i++) {
		uint32_t idx = resp->older[i]->index;

		if (rfds[idx] < 0)
			goto bad_taken; /* one fd named twice */
		fds[n++] = steal_fd(&rfds[idx]);
	}
	fds[n++] = steal_fd(&rfds[resp->fd->index]);
	for (size_t i = 0; i < n; i++)
		fd_set_cloexec(fds[i], true);
	close_fds(rfds, nrfds);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return (int)n;
bad_taken:
	close_fds(fds, n);
bad:
	close_fds(rfds, nrfds);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return vm_error_set(err, VM_DATA_LOSS, "OpenLog: response names file descriptors it does not carry (got %zu)",
			    nrfds);
}

static int attach_console(struct vmc_client *cl, const char *vm, struct vm_error *err)
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

/* ------------------------------------------------------------ exec */

#define EXEC_CHUNK (64u << 10) /* stdin read size of vmc_exec_simple() */

struct vmc_exec {
	struct ttrpc_client *tc;
	uint32_t stream_id;
	int out_fd[3];	 /* [VMC_EXEC_STDOUT], [VMC_EXEC_STDERR]; -1 = to output() */
	bool dropped[3]; /* the fd's reader went away (EPIPE): output discarded */
	vmc_exec_output_fn output;
	void *opaque;
	uint64_t sent, acked; /* stdin bytes sent, and written to the command by the agent */
	bool stdin_closed;
	bool exited, ended;
	struct vmc_exec_status status;
};

void vmc_exec_params_init(struct vmc_exec_params *p)
{
	memset(p, 0, sizeof(*p));
	p->stdin_fd = -1;
	p->stdout_fd = -1;
	p->stderr_fd = -1;
}

static void exec_free(struct vmc_exec *ex)
{
	if (!ex)
		return;
	ttrpc_client_free(ex->tc);
	free(ex);
}

static int exec_open(int fd, const struct vmc_exec_params *p, struct vmc_exec **out, struct vm_error *err)
{
	Virtmgr__V1__ExecRequest req = VIRTMGR__V1__EXEC_REQUEST__INIT;
	Virtmgr__V1__GuestUser user = VIRTMGR__V1__GUEST_USER__INIT;
	Virtmgr__V1__WindowSize ws = VIRTMGR__V1__WINDOW_SIZE__INIT;
	struct vmc_exec *ex;
	int64_t id;

	*out = NULL;
	if (!p->argv || !p->argc || !p->argv[0] || !*p->argv[0]) {
		close(fd);
		return vm_error_set(err, VM_INVALID_ARGUMENT, "exec: no command");
	}
	/* the ttrpc client waits in poll(); a vsock fd from the daemon arrives non-blocking */
	fd_set_cloexec(fd, true);
	fd_set_nonblock(fd, false);
	ex = xzalloc(sizeof(*ex));
	ex->tc = ttrpc_client_from_fd(fd);
	ex->out_fd[VMC_EXEC_STDOUT] = p->stdout_fd;
	ex->out_fd[VMC_EXEC_STDERR] = p->stderr_fd;
	ex->output = p->output;
	ex->opaque = p->opaque;

	req.argv = (char **)p->argv;
	req.n_argv = p->argc;
	req.env = (char **)p->env;
	req.n_env = p->env ? p->n_env : 0;
	req.cwd = pb_str(p->cwd);
	if (p->has_user) {
		user.uid = p->uid;
		user.gid = p->gid;
		req.user = &user;
	}
	req.tty = p->tty;
	if (p->tty && p->rows && p->cols) {
		ws.rows = p->rows;
		ws.cols = p->cols;
		req.window = &ws;
	}
	id = ttrpc_client_stream_open(ex->tc, "virtmgr.v1.Agent", "Exec", &req.base, TTRPC_FLAG_REMOTE_OPEN, 0, err);
	if (id < 0) {
		exec_free(ex);
		return -1;
	}
	ex->stream_id = (uint32_t)id;
	*out = ex;
	return 0;
}

static int exec_start(struct vmc_client *cl, const char *vm, const struct vmc_exec_params *p, struct vmc_exec **ex,
		      struct vm_error *err)
{
	int fd = connect_vsock(cl, vm, VMC_AGENT_PORT, err);

	*ex = NULL;
	if (fd < 0)
		return -1;
	return exec_open(fd, p, ex, err);
}

/* Write all of @len to @fd, waiting for room when it is non-blocking. Return: 0, or -1 with errno. */
static int write_out(int fd, const uint8_t *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };

			if (poll(&p, 1, -1) < 0 && errno != EINTR)
				return -1;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static int exec_deliver(struct vmc_exec *ex, enum vmc_exec_stream stream, const uint8_t *data, size_t len,
			struct vm_error *err)
{
	int fd = ex->out_fd[stream];

	if (!len)
		return 0;
	if (fd < 0) {
		if (ex->output)
			ex->output(ex->opaque, stream, data, len);
		return 0;
	}
	if (ex->dropped[stream])
		return 0;
	if (write_out(fd, data, len) < 0) {
		/* a reader that went away ends nothing: the command runs on, as under a shell */
		if (errno == EPIPE) {
			ex->dropped[stream] = true;
			return 0;
		}
		return vm_error_errno(err, errno, "exec: writing the command's %s to fd %d",
				      stream == VMC_EXEC_STDOUT ? "stdout" : "stderr", fd);
	}
	return 0;
}

static int exec_process(struct vmc_exec *ex, int timeout_ms, struct vmc_exec_status *st, struct vm_error *err)
{
	memset(st, 0, sizeof(*st));
	if (ex->ended) {
		*st = ex->status;
		return 0;
	}
	for (;;) {
		cleanup_free uint8_t *data = NULL;
		Virtmgr__V1__ExecOutput *out;
		size_t len = 0;
		int r = ttrpc_client_stream_recv(ex->tc, ex->stream_id, &data, &len, timeout_ms, err);

		/* the first frame may be waited for; the rest only taken if already there */
		timeout_ms = 0;
		if (r < 0 && err->code == VM_DEADLINE_EXCEEDED)
			return 1;
		if (r < 0)
			return -1;
		if (r == 0) {
			ex->ended = true;
			if (!ex->exited)
				return vm_error_set(err, VM_DATA_LOSS,
						    "exec: the agent ended the call without an exit status");
			*st = ex->status;
			return 0;
		}
		out = virtmgr__v1__exec_output__unpack(NULL, len, data);
		if (!out)
			return vm_error_set(err, VM_DATA_LOSS,
					    "exec: the agent sent a Data frame that is not an ExecOutput (%zu bytes)",
					    len);
		if (exec_deliver(ex, VMC_EXEC_STDOUT, out->stdout.data, out->stdout.len, err) < 0 ||
		    exec_deliver(ex, VMC_EXEC_STDERR, out->stderr.data, out->stderr.len, err) < 0) {
			virtmgr__v1__exec_output__free_unpacked(out, NULL);
			return -1;
		}
		if (out->stdin_written > ex->acked)
			ex->acked = out->stdin_written;
		if (out->exited) {
			ex->exited = true;
			ex->status.exit_code = out->exit_code & 0xff;
			ex->status.signal = out->signal;
		}
		virtmgr__v1__exec_output__free_unpacked(out, NULL);
	}
}

static size_t exec_stdin_room(const struct vmc_exec *ex)
{
	uint64_t in_flight = ex->sent > ex->acked ? ex->sent - ex->acked : 0;

	if (ex->stdin_closed || in_flight >= VMC_EXEC_WINDOW)
		return 0;
	return (size_t)(VMC_EXEC_WINDOW - in_flight);
}

static int exec_send(struct vmc_exec *ex, const Virtmgr__V1__ExecInput *in, bool close, struct vm_error *err)
{
	size_t len = protobuf_c_message_get_packed_size(&in->base);
	cleanup_free uint8_t *buf = xmalloc(len ? len : 1);

	protobuf_c_message_pack(&in->base, buf);
	return ttrpc_client_stream_send(ex->tc, ex->stream_id, buf, len, close, err);
}

static ssize_t exec_write_stdin(struct vmc_exec *ex, const void *data, size_t len, struct vm_error *err)
{
	Virtmgr__V1__ExecInput in = VIRTMGR__V1__EXEC_INPUT__INIT;

	if (ex->stdin_closed)
		return vm_error_set(err, VM_FAILED_PRECONDITION, "exec: stdin is already closed");
	len = MIN(len, exec_stdin_room(ex));
	if (!len)
		return 0;
	in.stdin.data = (uint8_t *)data;
	in.stdin.len = len;
	if (exec_send(ex, &in, false, err) < 0)
		return -1;
	ex->sent += len;
	return (ssize_t)len;
}

static int exec_close_stdin(struct vmc_exec *ex, struct vm_error *err)
{
	Virtmgr__V1__ExecInput in = VIRTMGR__V1__EXEC_INPUT__INIT;

	if (ex->stdin_closed)
		return 0;
	in.stdin_eof = true;
	/* the last input frame also closes our side of the stream */
	if (exec_send(ex, &in, true, err) < 0)
		return -1;
	ex->stdin_closed = true;
	return 0;
}

static int exec_resize(struct vmc_exec *ex, uint16_t rows, uint16_t cols, struct vm_error *err)
{
	Virtmgr__V1__ExecInput in = VIRTMGR__V1__EXEC_INPUT__INIT;
	Virtmgr__V1__WindowSize ws = VIRTMGR__V1__WINDOW_SIZE__INIT;

	if (!rows || !cols)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "exec: window size %ux%u", rows, cols);
	ws.rows = rows;
	ws.cols = cols;
	in.resize = &ws;
	return exec_send(ex, &in, false, err);
}

static int exec_signal(struct vmc_exec *ex, int sig, struct vm_error *err)
{
	Virtmgr__V1__ExecInput in = VIRTMGR__V1__EXEC_INPUT__INIT;

	if (sig <= 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "exec: signal %d", sig);
	in.signal = sig;
	return exec_send(ex, &in, false, err);
}

/* The blocking form: one poll() loop over the session and the caller's stdin fd. */
static int exec_run(struct vmc_exec *ex, int stdin_fd, struct vmc_exec_status *st, struct vm_error *err)
{
	cleanup_free uint8_t *buf = xmalloc(EXEC_CHUNK);
	int r;

	if (stdin_fd < 0 && exec_close_stdin(ex, err) < 0)
		return -1;
	while ((r = exec_process(ex, 0, st, err)) == 1) {
		size_t room = exec_stdin_room(ex);
		struct pollfd p[2] = {
			{ .fd = ttrpc_client_fd(ex->tc), .events = POLLIN },
			{ .fd = room ? stdin_fd : -1, .events = POLLIN },
		};
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return vm_error_errno(err, errno, "exec: poll");
		}
		if (!p[1].revents)
			continue;
		n = read(stdin_fd, buf, MIN(room, EXEC_CHUNK));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return vm_error_errno(err, errno, "exec: reading stdin from fd %d", stdin_fd);
		if (n == 0 ? exec_close_stdin(ex, err) < 0 : exec_write_stdin(ex, buf, (size_t)n, err) < 0)
			return -1;
	}
	return r < 0 ? -1 : 0;
}

static int exec_simple_fd(int fd, const struct vmc_exec_params *p, struct vmc_exec_status *st, struct vm_error *err)
{
	struct vmc_exec *ex;
	int r;

	memset(st, 0, sizeof(*st));
	if (exec_open(fd, p, &ex, err) < 0)
		return -1;
	r = exec_run(ex, p->stdin_fd, st, err);
	exec_free(ex);
	return r;
}

static int exec_simple(struct vmc_client *cl, const char *vm, const struct vmc_exec_params *p,
		       struct vmc_exec_status *st, struct vm_error *err)
{
	int fd = connect_vsock(cl, vm, VMC_AGENT_PORT, err);

	memset(st, 0, sizeof(*st));
	if (fd < 0)
		return -1;
	return exec_simple_fd(fd, p, st, err);
}

/* ------------------------------------------------------------ names */

static const char *const state_names[] = {
	"NOT_STARTED", "STARTING", "STARTED", "READY", "FINISHED", "DEAD",
};

static const char *const death_names[] = {
	"NONE",
	"INFRASTRUCTURE_ERROR",
	"KILLED",
	"UNKNOWN",
	"SHUTDOWN",
	"START_FAILED",
	"REBOOT",
	"CRASH",
	"HANGUP",
	"AGENT_FAILED_TO_CONNECT",
	"INVALID_PAYLOAD_CONFIG",
	"PAYLOAD_ERROR",
	"WATCHDOG",
};

static const char *const event_names[] = {
	"STATE_CHANGED", "PAYLOAD_STARTED", "PAYLOAD_READY", "PAYLOAD_FINISHED", "ERROR", "DIED", "LOG",
	"CRASH",
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
	case VMC_DEATH_WATCHDOG:
		return 121;
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

/* ------------------------------------------------------------ exported calls
 *
 * Each wraps the function above that does the work and copies its struct
 * vm_error into the caller's struct vmc_error (which may be NULL).
 */

_Static_assert((int)VMC_STATUS_UNAUTHENTICATED == (int)VM_UNAUTHENTICATED && (int)VMC_STATUS_OK == (int)VM_OK,
	       "vmc_status mirrors lib/util.h's vm_status");
_Static_assert(VMC_ERROR_MSG_MAX == VM_ERROR_MSG_MAX, "vmc_error carries a whole vm_error message");

static void export_error(struct vmc_error *out, const struct vm_error *in)
{
	if (!out)
		return;
	/* a failure always carries a status, even from a path that forgot one */
	out->code = in->code ? in->code : VMC_STATUS_UNKNOWN;
	memcpy(out->message, in->message, sizeof(out->message));
	out->message[sizeof(out->message) - 1] = '\0';
}

/* Return @ret, exporting @in when it is a failure. */
static int result(int ret, const struct vm_error *in, struct vmc_error *out)
{
	if (ret < 0)
		export_error(out, in);
	return ret;
}

struct vmc_client *vmc_connect(const char *path, struct vmc_error *err)
{
	struct vm_error e = { 0 };
	struct vmc_client *cl = connect_socket(path, &e);
	int saved = errno;

	if (!cl)
		export_error(err, &e);
	errno = saved;
	return cl;
}

struct vmc_client *vmc_spawn_early(const char *virtmgrd_path, const char *const *extra_args, struct vmc_error *err)
{
	struct vm_error e = { 0 };
	struct vmc_client *cl = spawn_early(virtmgrd_path, extra_args, &e);

	if (!cl)
		export_error(err, &e);
	return cl;
}

int vmc_get_daemon_info(struct vmc_client *cl, struct vmc_daemon_info *info, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(get_daemon_info(cl, info, &e), &e, err);
}

int vmc_is_feature_enabled(struct vmc_client *cl, const char *feature, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(is_feature_enabled(cl, feature, &e), &e, err);
}

int vmc_get_platform_key(struct vmc_client *cl, uint8_t **der, size_t *len, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(get_platform_key(cl, der, len, &e), &e, err);
}

int vmc_allocate_instance_id(struct vmc_client *cl, uint8_t id[VMC_INSTANCE_ID_SIZE], struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(allocate_instance_id(cl, id, &e), &e, err);
}

int vmc_create_vm(struct vmc_client *cl, const struct vmc_vm_config *cfg, struct vmc_vm_info *info,
		  struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(create_vm(cl, cfg, info, &e), &e, err);
}

int vmc_start_vm(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(vm_ref_call(cl, "StartVm", vm, info, &e), &e, err);
}

int vmc_kill_vm(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(vm_ref_call(cl, "KillVm", vm, info, &e), &e, err);
}

int vmc_suspend_vm(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(vm_ref_call(cl, "SuspendVm", vm, info, &e), &e, err);
}

int vmc_resume_vm(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(vm_ref_call(cl, "ResumeVm", vm, info, &e), &e, err);
}

int vmc_get_vm_info(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(vm_ref_call(cl, "GetVmInfo", vm, info, &e), &e, err);
}

int vmc_stop_vm(struct vmc_client *cl, const char *vm, uint32_t timeout_ms, bool force, struct vmc_vm_info *info,
		struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(stop_vm(cl, vm, timeout_ms, force, info, &e), &e, err);
}

int vmc_list_vms(struct vmc_client *cl, struct vmc_vm_info **vms, size_t *n, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(list_vms(cl, vms, n, &e), &e, err);
}

int vmc_wait_vm(struct vmc_client *cl, const char *vm, enum vmc_vm_state state, uint32_t timeout_ms,
		struct vmc_vm_info *info, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(wait_vm(cl, vm, state, timeout_ms, info, &e), &e, err);
}

int vmc_watch_vm(struct vmc_client *cl, const char *vm, bool logs, struct vmc_watch **watch, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(watch_vm(cl, vm, logs, watch, &e), &e, err);
}

int vmc_watch_next(struct vmc_watch *watch, int timeout_ms, struct vmc_event *ev, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(watch_next(watch, timeout_ms, ev, &e), &e, err);
}

int vmc_connect_vsock(struct vmc_client *cl, const char *vm, uint32_t port, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(connect_vsock(cl, vm, port, &e), &e, err);
}

int vmc_open_log(struct vmc_client *cl, const char *vm, enum vmc_log_kind kind, struct vmc_error *err)
{
	struct vm_error e = { 0 };
	int fd;

	if (open_log(cl, vm, kind, &fd, 1, &e) < 0)
		return result(-1, &e, err);
	return result(fd, &e, err);
}

int vmc_open_log_all(struct vmc_client *cl, const char *vm, enum vmc_log_kind kind, int *fds, size_t max,
		     struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(open_log(cl, vm, kind, fds, max, &e), &e, err);
}

int vmc_attach_console(struct vmc_client *cl, const char *vm, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(attach_console(cl, vm, &e), &e, err);
}

int vmc_exec_start(struct vmc_client *cl, const char *vm, const struct vmc_exec_params *p, struct vmc_exec **ex,
		   struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(exec_start(cl, vm, p, ex, &e), &e, err);
}

int vmc_exec_start_fd(int fd, const struct vmc_exec_params *p, struct vmc_exec **ex, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(exec_open(fd, p, ex, &e), &e, err);
}

int vmc_exec_fd(const struct vmc_exec *ex)
{
	return ttrpc_client_fd(ex->tc);
}

int vmc_exec_process(struct vmc_exec *ex, int timeout_ms, struct vmc_exec_status *st, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(exec_process(ex, timeout_ms, st, &e), &e, err);
}

size_t vmc_exec_stdin_room(const struct vmc_exec *ex)
{
	return exec_stdin_room(ex);
}

ssize_t vmc_exec_write_stdin(struct vmc_exec *ex, const void *data, size_t len, struct vmc_error *err)
{
	struct vm_error e = { 0 };
	ssize_t n = exec_write_stdin(ex, data, len, &e);

	if (n < 0)
		export_error(err, &e);
	return n;
}

int vmc_exec_close_stdin(struct vmc_exec *ex, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(exec_close_stdin(ex, &e), &e, err);
}

int vmc_exec_resize(struct vmc_exec *ex, uint16_t rows, uint16_t cols, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(exec_resize(ex, rows, cols, &e), &e, err);
}

int vmc_exec_signal(struct vmc_exec *ex, int sig, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(exec_signal(ex, sig, &e), &e, err);
}

void vmc_exec_free(struct vmc_exec *ex)
{
	exec_free(ex);
}

int vmc_exec_simple(struct vmc_client *cl, const char *vm, const struct vmc_exec_params *p, struct vmc_exec_status *st,
		    struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(exec_simple(cl, vm, p, st, &e), &e, err);
}

int vmc_exec_simple_fd(int fd, const struct vmc_exec_params *p, struct vmc_exec_status *st, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return result(exec_simple_fd(fd, p, st, &e), &e, err);
}

/* ------------------------------------------------------------ disk images */

static void disk_image_copy(struct vmc_disk_image *out, const Virtmgr__V1__DiskImage *in)
{
	memset(out, 0, sizeof(*out));
	if (!in) {
		out->name = dup_str(NULL);
		out->filesystem = dup_str(NULL);
		out->vm = dup_str(NULL);
		return;
	}
	out->name = dup_str(in->name);
	out->owner_uid = in->owner_uid;
	out->format = (enum vmc_disk_format)in->format;
	out->virtual_size = in->virtual_size;
	out->allocated_size = in->allocated_size;
	out->filesystem = dup_str(in->filesystem);
	out->vm = dup_str(in->vm);
}

void vmc_disk_image_clear(struct vmc_disk_image *img)
{
	if (!img)
		return;
	free(img->name);
	free(img->filesystem);
	free(img->vm);
	memset(img, 0, sizeof(*img));
}

void vmc_disk_list_free(struct vmc_disk_image *imgs, size_t n)
{
	for (size_t i = 0; imgs && i < n; i++)
		vmc_disk_image_clear(&imgs[i]);
	free(imgs);
}

/* A call answered with a DiskImageResponse. */
static int disk_image_call(struct vmc_client *cl, const char *method, const ProtobufCMessage *req, const int *fds,
			   size_t nfds, struct vmc_disk_image *out, struct vm_error *err)
{
	Virtmgr__V1__DiskImageResponse *resp = NULL;

	if (vmc_call(cl, method, req, fds, nfds, &virtmgr__v1__disk_image_response__descriptor,
		     (ProtobufCMessage **)&resp, NULL, NULL, 0, err) < 0)
		return -1;
	if (out)
		disk_image_copy(out, resp->image);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

int vmc_disk_create(struct vmc_client *cl, const struct vmc_disk_create_opts *o, struct vmc_disk_image *out,
		    struct vmc_error *err)
{
	Virtmgr__V1__CreateDiskImageRequest req = VIRTMGR__V1__CREATE_DISK_IMAGE_REQUEST__INIT;
	struct vm_error e = { 0 };

	if (!o)
		return result(vm_error_set(&e, VM_INVALID_ARGUMENT, "vmc_disk_create: no options"), &e, err);
	req.name = pb_str(o->name);
	req.size = o->size;
	req.format = (Virtmgr__V1__DiskFormat)o->format;
	req.filesystem = pb_str(o->filesystem);
	req.from_dir = pb_str(o->from_dir);
	return result(disk_image_call(cl, "CreateDiskImage", &req.base, NULL, 0, out, &e), &e, err);
}

int vmc_disk_resize(struct vmc_client *cl, const char *name, uint64_t size, struct vmc_disk_image *out,
		    struct vmc_error *err)
{
	Virtmgr__V1__ResizeDiskImageRequest req = VIRTMGR__V1__RESIZE_DISK_IMAGE_REQUEST__INIT;
	struct vm_error e = { 0 };

	req.name = pb_str(name);
	req.size = size;
	return result(disk_image_call(cl, "ResizeDiskImage", &req.base, NULL, 0, out, &e), &e, err);
}

int vmc_disk_list(struct vmc_client *cl, struct vmc_disk_image **imgs, size_t *n, struct vmc_error *err)
{
	Virtmgr__V1__ListDiskImagesRequest req = VIRTMGR__V1__LIST_DISK_IMAGES_REQUEST__INIT;
	Virtmgr__V1__ListDiskImagesResponse *resp = NULL;
	struct vm_error e = { 0 };

	*imgs = NULL;
	*n = 0;
	if (vmc_call(cl, "ListDiskImages", &req.base, NULL, 0, &virtmgr__v1__list_disk_images_response__descriptor,
		     (ProtobufCMessage **)&resp, NULL, NULL, 0, &e) < 0)
		return result(-1, &e, err);
	*imgs = xcalloc(resp->n_images ? resp->n_images : 1, sizeof(**imgs));
	for (size_t i = 0; i < resp->n_images; i++)
		disk_image_copy(&(*imgs)[i], resp->images[i]);
	*n = resp->n_images;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

int vmc_disk_delete(struct vmc_client *cl, const char *name, struct vmc_error *err)
{
	Virtmgr__V1__DiskImageRef req = VIRTMGR__V1__DISK_IMAGE_REF__INIT;
	ProtobufCMessage *resp = NULL;
	struct vm_error e = { 0 };

	req.name = pb_str(name);
	if (vmc_call(cl, "DeleteDiskImage", &req.base, NULL, 0, &virtmgr__v1__empty__descriptor, &resp, NULL, NULL, 0,
		     &e) < 0)
		return result(-1, &e, err);
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

static int disk_transfer(struct vmc_client *cl, const char *method, const char *name, int fd,
			 enum vmc_disk_format format, struct vmc_disk_image *out, struct vmc_error *err)
{
	Virtmgr__V1__TransferDiskImageRequest req = VIRTMGR__V1__TRANSFER_DISK_IMAGE_REQUEST__INIT;
	Virtmgr__V1__FdRef ref = VIRTMGR__V1__FD_REF__INIT;
	struct vm_error e = { 0 };

	req.name = pb_str(name);
	req.fd = &ref;
	req.format = (Virtmgr__V1__DiskFormat)format;
	return result(disk_image_call(cl, method, &req.base, &fd, 1, out, &e), &e, err);
}

int vmc_disk_import(struct vmc_client *cl, const char *name, int fd, enum vmc_disk_format format,
		    struct vmc_disk_image *out, struct vmc_error *err)
{
	return disk_transfer(cl, "ImportDiskImage", name, fd, format, out, err);
}

int vmc_disk_export(struct vmc_client *cl, const char *name, int fd, struct vmc_disk_image *out, struct vmc_error *err)
{
	return disk_transfer(cl, "ExportDiskImage", name, fd, VMC_DISK_FORMAT_RAW, out, err);
}

int vmc_disk_init_partition(struct vmc_client *cl, int fd, uint64_t size, const char *filesystem, struct vmc_error *err)
{
	Virtmgr__V1__InitializeWritablePartitionRequest req = VIRTMGR__V1__INITIALIZE_WRITABLE_PARTITION_REQUEST__INIT;
	Virtmgr__V1__FdRef ref = VIRTMGR__V1__FD_REF__INIT;
	ProtobufCMessage *resp = NULL;
	struct vm_error e = { 0 };

	req.fd = &ref;
	req.size = size;
	req.filesystem = pb_str(filesystem);
	if (vmc_call(cl, "InitializeWritablePartition", &req.base, &fd, 1, &virtmgr__v1__empty__descriptor, &resp, NULL,
		     NULL, 0, &e) < 0)
		return result(-1, &e, err);
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

/* ---- for the library's other files (client/client-priv.h) ---- */

int client_unary(struct vmc_client *cl, const char *method, const ProtobufCMessage *req,
		 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, struct vm_error *err)
{
	return vmc_call(cl, method, req, NULL, 0, resp_desc, resp, NULL, NULL, 0, err);
}

int client_result(int ret, const struct vm_error *in, struct vmc_error *out)
{
	return result(ret, in, out);
}
