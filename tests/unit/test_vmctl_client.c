/* test_vmctl_client.c - libvirtmgr-client's own checks, without virtmgrd:
 * connection errors (the message vmctl prints, errno kept), the name
 * tables, and fault injection - a forked peer on a socketpair that answers
 * the first request with a hand-built ttrpc Response the real daemon would
 * never send (a 10-byte instance id, an fd reference with no fd, a status
 * error, a VmEvent stream that is not protobuf), to check that the library
 * reports each as an error instead of trusting it.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "lib/util.h"
#include "client/virtmgr-client.h"
#include "lib/ttrpc.h"
#include "protos/ttrpc.pb-c.h"
#include "protos/virtmgr.pb-c.h"

/* ---------------------------------------------------------------- no daemon */

Test(connect, missing_socket_names_path_and_keeps_errno)
{
	struct vmc_error err = { 0 };
	struct vmc_client *cl;

	errno = 0;
	cl = vmc_connect("/nonexistent/dir/virtmgrd.sock", &err);
	cr_assert_null(cl);
	cr_assert_eq(errno, ENOENT);
	cr_assert_eq(err.code, VMC_STATUS_UNAVAILABLE);
	cr_assert_str_eq(err.message, "cannot connect to /nonexistent/dir/virtmgrd.sock: No such file or directory");
}

Test(connect, path_too_long)
{
	struct vmc_error err = { 0 };
	char path[200];

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	cr_assert_null(vmc_connect(path, &err));
	cr_assert_eq(err.code, VMC_STATUS_INVALID_ARGUMENT);
	cr_assert(strstr(err.message, "socket path too long"));
}

Test(connect, default_socket)
{
	unsetenv("VIRTMGR_SOCKET");
	cr_assert_str_eq(vmc_default_socket(), "/run/virtmgr/virtmgrd.sock");
	setenv("VIRTMGR_SOCKET", "/tmp/y.sock", 1);
	cr_assert_str_eq(vmc_default_socket(), "/tmp/y.sock");
}

Test(names, tables)
{
	cr_assert_str_eq(vmc_state_name(VMC_STATE_READY), "READY");
	cr_assert_str_eq(vmc_state_name((enum vmc_vm_state)99), "?");
	cr_assert_str_eq(vmc_death_reason_name(VMC_DEATH_PAYLOAD_ERROR), "PAYLOAD_ERROR");
	cr_assert_str_eq(vmc_event_type_name(VMC_EVENT_DIED), "DIED");
	cr_assert_str_eq(vmc_log_kind_name(VMC_LOG_QEMU), "qemu");
	cr_assert_str_eq(vmc_status_name(12), "UNIMPLEMENTED");
	cr_assert_eq(vmc_state_from_name("dead"), VMC_STATE_DEAD);
	cr_assert_eq(vmc_state_from_name("NOT_STARTED"), VMC_STATE_NOT_STARTED);
	cr_assert_eq(vmc_state_from_name("gone"), -1);
	cr_assert_eq(vmc_state_from_name(NULL), -1);
	cr_assert_eq(vmc_log_kind_from_name("Guest"), VMC_LOG_GUEST);
	/* the library's values are the protocol's */
	cr_assert_eq(VMC_STATE_DEAD, VIRTMGR__V1__VM_STATE__VM_STATE_DEAD);
	cr_assert_eq(VMC_DEATH_PAYLOAD_ERROR, VIRTMGR__V1__DEATH_REASON__DEATH_REASON_PAYLOAD_ERROR);
	cr_assert_eq(VMC_EVENT_LOG, VIRTMGR__V1__EVENT_TYPE__EVENT_TYPE_LOG);
	cr_assert_eq(VMC_LOG_QEMU, VIRTMGR__V1__LOG_KIND__LOG_KIND_QEMU);
}

Test(config, init_sets_fds_to_none)
{
	struct vmc_vm_config cfg;

	memset(&cfg, 0x5a, sizeof(cfg));
	vmc_vm_config_init(&cfg);
	cr_assert_eq(cfg.kernel_fd, -1);
	cr_assert_eq(cfg.initrd_fd, -1);
	cr_assert_eq(cfg.console_out, -1);
	cr_assert_eq(cfg.console_in, -1);
	cr_assert_eq(cfg.log_out, -1);
	cr_assert_null(cfg.name);
	cr_assert_eq(cfg.n_disks, 0);
}

Test(spawn_early, missing_binary_fails_with_status)
{
	struct vmc_error err = { 0 };

	cr_assert_null(vmc_spawn_early("/nonexistent/virtmgrd", NULL, &err));
	cr_assert_eq(err.code, VMC_STATUS_UNAVAILABLE);
	cr_assert(strstr(err.message, "/nonexistent/virtmgrd"), "%s", err.message);
	cr_assert_null(vmc_spawn_early(NULL, NULL, &err));
	cr_assert_eq(err.code, VMC_STATUS_INVALID_ARGUMENT);
}

Test(spawn_early, daemon_that_exits_before_ready)
{
	struct vmc_error err = { 0 };

	/* /bin/false ignores its arguments and exits 1 without a ready byte */
	cr_assert_null(vmc_spawn_early("/bin/false", NULL, &err));
	cr_assert_str_eq(err.message, "/bin/false --early exited with status 1 before it was ready");
}

/* ---------------------------------------------------------------- fault injection */

/* Read one whole frame from @fd (blocking). */
static void read_frame(int fd, struct ttrpc_header *h)
{
	uint8_t hdr[TTRPC_HEADER_SIZE];
	uint8_t buf[4096];
	size_t left;

	if (recv(fd, hdr, sizeof(hdr), MSG_WAITALL) != (ssize_t)sizeof(hdr))
		_exit(2);
	ttrpc_header_decode(hdr, h);
	for (left = h->length; left;) {
		ssize_t n = read(fd, buf, MIN(left, sizeof(buf)));

		if (n <= 0)
			_exit(2);
		left -= (size_t)n;
	}
}

static void write_frame(int fd, uint32_t sid, uint8_t type, uint8_t flags, const uint8_t *body, size_t len)
{
	struct ttrpc_header h = { .length = (uint32_t)len, .stream_id = sid, .type = type, .flags = flags };
	uint8_t hdr[TTRPC_HEADER_SIZE];

	ttrpc_header_encode(&h, hdr);
	if (write_all(fd, hdr, sizeof(hdr)) < 0 || (len && write_all(fd, body, len) < 0))
		_exit(2);
}

/* Answer the first request with Response{status, payload = @msg}. */
static void write_response(int fd, uint32_t sid, int code, const char *message, const ProtobufCMessage *msg)
{
	Ttrpc__Response resp = TTRPC__RESPONSE__INIT;
	Ttrpc__Status st = TTRPC__STATUS__INIT;
	size_t plen = 0, blen;
	uint8_t *payload = NULL, *body;

	if (msg) {
		payload = ttrpc_pack(msg, &plen);
		resp.payload.data = payload;
		resp.payload.len = plen;
	}
	if (code) {
		st.code = code;
		st.message = (char *)message;
		resp.status = &st;
	}
	body = ttrpc_pack(&resp.base, &blen);
	write_frame(fd, sid, TTRPC_TYPE_RESPONSE, 0, body, blen);
	free(body);
	free(payload);
}

typedef void (*peer_fn)(int fd, uint32_t sid);

/* A client whose peer is @fn in a child process. */
static struct vmc_client *fake_daemon(peer_fn fn, pid_t *pid)
{
	int sv[2];
	char buf[64];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	*pid = fork();
	cr_assert_geq(*pid, 0);
	if (*pid == 0) {
		struct ttrpc_header h;

		close(sv[0]);
		read_frame(sv[1], &h);
		fn(sv[1], h.stream_id);
		/* wait for the client to go away */
		while (read(sv[1], buf, sizeof(buf)) > 0)
			;
		_exit(0);
	}
	close(sv[1]);
	return vmc_client_from_fd(sv[0]);
}

static void finish(struct vmc_client *cl, pid_t pid)
{
	int status;

	vmc_close(cl);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fake daemon failed");
}

static void short_instance_id(int fd, uint32_t sid)
{
	uint8_t ten[10] = { 1 };
	Virtmgr__V1__AllocateInstanceIdResponse r = VIRTMGR__V1__ALLOCATE_INSTANCE_ID_RESPONSE__INIT;

	r.instance_id.data = ten;
	r.instance_id.len = sizeof(ten);
	write_response(fd, sid, 0, NULL, &r.base);
}

Test(fault, short_instance_id_is_data_loss)
{
	struct vmc_error err = { 0 };
	uint8_t id[VMC_INSTANCE_ID_SIZE];
	pid_t pid;
	struct vmc_client *cl = fake_daemon(short_instance_id, &pid);

	cr_assert_eq(vmc_allocate_instance_id(cl, id, &err), -1);
	cr_assert_eq(err.code, VMC_STATUS_DATA_LOSS);
	cr_assert_str_eq(err.message, "AllocateInstanceId: got 10 bytes, expected 64");
	finish(cl, pid);
}

static void fdref_without_fd(int fd, uint32_t sid)
{
	Virtmgr__V1__OpenLogResponse r = VIRTMGR__V1__OPEN_LOG_RESPONSE__INIT;
	Virtmgr__V1__FdRef ref = VIRTMGR__V1__FD_REF__INIT;

	ref.index = 0;
	r.fd = &ref;
	write_response(fd, sid, 0, NULL, &r.base);
}

Test(fault, fd_reference_without_fd)
{
	struct vmc_error err = { 0 };
	pid_t pid;
	struct vmc_client *cl = fake_daemon(fdref_without_fd, &pid);

	cr_assert_eq(vmc_open_log(cl, "vm", VMC_LOG_CONSOLE, &err), -1);
	cr_assert_eq(err.code, VMC_STATUS_DATA_LOSS);
	cr_assert_str_eq(err.message, "OpenLog: response carries no file descriptor (got 0)");
	finish(cl, pid);
}

static void status_error(int fd, uint32_t sid)
{
	write_response(fd, sid, VM_PERMISSION_DENIED, "uid 1000 is not in group virtualmachine", NULL);
}

Test(fault, status_passes_through)
{
	struct vmc_error err = { 0 };
	struct vmc_vm_info info;
	pid_t pid;
	struct vmc_client *cl = fake_daemon(status_error, &pid);

	cr_assert_eq(vmc_get_vm_info(cl, "vm", &info, &err), -1);
	cr_assert_eq(err.code, VMC_STATUS_PERMISSION_DENIED);
	cr_assert_str_eq(err.message, "uid 1000 is not in group virtualmachine");
	finish(cl, pid);
}

static void bad_event(int fd, uint32_t sid)
{
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff };
	Virtmgr__V1__VmEvent ev = VIRTMGR__V1__VM_EVENT__INIT;
	size_t len;
	uint8_t *body;

	ev.vm = (char *)"vm1";
	ev.type = VIRTMGR__V1__EVENT_TYPE__EVENT_TYPE_DIED;
	ev.death_reason = VIRTMGR__V1__DEATH_REASON__DEATH_REASON_CRASH;
	body = ttrpc_pack(&ev.base, &len);
	write_frame(fd, sid, TTRPC_TYPE_DATA, 0, body, len);
	free(body);
	write_frame(fd, sid, TTRPC_TYPE_DATA, 0, junk, sizeof(junk));
	write_response(fd, sid, 0, NULL, NULL);
}

Test(fault, watch_decodes_events_and_rejects_junk)
{
	struct vmc_error err = { 0 };
	struct vmc_watch *w;
	struct vmc_event ev;
	pid_t pid;
	struct vmc_client *cl = fake_daemon(bad_event, &pid);

	cr_assert_eq(vmc_watch_vm(cl, "vm1", false, &w, &err), 0, "%s", err.message);
	cr_assert_eq(vmc_watch_next(w, -1, &ev, &err), 1, "%s", err.message);
	cr_assert_str_eq(ev.vm, "vm1");
	cr_assert_eq(ev.type, VMC_EVENT_DIED);
	cr_assert_eq(ev.death_reason, VMC_DEATH_CRASH);
	vmc_event_clear(&ev);
	cr_assert_eq(vmc_watch_next(w, -1, &ev, &err), -1);
	cr_assert_eq(err.code, VMC_STATUS_DATA_LOSS);
	cr_assert_eq(vmc_watch_next(w, -1, &ev, &err), 0, "the stream's OK Response ends it");
	cr_assert_eq(vmc_watch_next(w, 0, &ev, &err), 0, "and it stays ended");
	vmc_watch_close(w);
	finish(cl, pid);
}
