/* attest.c - the guest side of attestation: the attestation socket and the
 * payload's measurement.
 *
 * Design. The host accepts one VirtualMachineService connection per boot,
 * the agent's (server/vms.c), so a payload cannot call the host itself.
 * The agent serves ExtendMeasurement and RequestAttestation, and nothing
 * else, on its own ttrpc server bound to the abstract Unix socket
 * AGENT_ATTEST_SOCKET, and forwards each call on its host connection. An
 * abstract socket belongs to the network namespace, not to a file system,
 * so a payload that runs in a root filesystem of its own (chroot or
 * pivot_root) reaches it the same way; any guest process may use it (the
 * registers and tokens are the VM's, and a guest process could hash its
 * way into REM 1..3 anyway). `vmattest` (guest/vmattest/) is the client.
 *
 * Before the payload runs, REM[0] is extended with the SHA-256 of its
 * executable, queued in order with the agent's reports, so any token the
 * payload asks for already covers it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "guest/vmagent/agent.h"
#include "lib/log.h"
#include "server/marker.h"

#define ATTEST_SERVICE "virtmgr.v1.VirtualMachineService"
/* a cold Service VM boots first: TCG on a loaded host is slow */
#define ATTEST_CALL_TIMEOUT_NS (180ull * 1000000000ull)

struct relay {
	struct ttrpc_call *call; /* NULL once the guest caller went away */
	const ProtobufCMessageDescriptor *resp_desc;
};

static void relay_cancel(struct ttrpc_call *call, void *opaque)
{
	struct relay *r = opaque;

	(void)call;
	r->call = NULL;
}

static void relay_reply(const struct vm_error *status, const uint8_t *payload, size_t len, void *opaque)
{
	struct relay *r = opaque;
	ProtobufCMessage *m;

	if (!r->call) {
		free(r);
		return;
	}
	ttrpc_call_set_cancel(r->call, NULL, NULL);
	if (status->code) {
		ttrpc_call_fail_error(r->call, status);
	} else if (!(m = protobuf_c_message_unpack(r->resp_desc, NULL, len, payload))) {
		ttrpc_call_fail(r->call, VM_INTERNAL, "the host's answer does not decode");
	} else {
		ttrpc_call_reply(r->call, m, NULL, 0);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	free(r);
}

static void relay(struct agent *a, struct ttrpc_call *call, const char *method, const ProtobufCMessage *msg,
		  const ProtobufCMessageDescriptor *resp_desc)
{
	struct ttrpc_conn *conn = agent_host_conn(a->host);
	struct relay *r;

	if (!conn) {
		ttrpc_call_fail(call, VM_UNAVAILABLE, "the guest agent has no connection to the host");
		return;
	}
	r = xzalloc(sizeof(*r));
	r->call = call;
	r->resp_desc = resp_desc;
	ttrpc_call_set_cancel(call, relay_cancel, r);
	/* on failure relay_reply has already run and answered */
	ttrpc_conn_call(conn, ATTEST_SERVICE, method, msg, ATTEST_CALL_TIMEOUT_NS, relay_reply, r);
}

static void on_extend(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	relay(opaque, call, "ExtendMeasurement", msg, &virtmgr__v1__empty__descriptor);
}

static void on_attest(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	relay(opaque, call, "RequestAttestation", msg, &virtmgr__v1__request_attestation_response__descriptor);
}

void agent_attest_start(struct agent *a)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vm_error err = { 0 };
	socklen_t salen;
	int fd;

	/* abstract: sun_path starts with NUL */
	memcpy(sa.sun_path + 1, AGENT_ATTEST_SOCKET, strlen(AGENT_ATTEST_SOCKET));
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(AGENT_ATTEST_SOCKET));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, salen) < 0 || listen(fd, 16) < 0) {
		agent_log(a, "attestation socket @%s: %s", AGENT_ATTEST_SOCKET, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	a->attest_server = ttrpc_server_new(a->loop);
	ttrpc_server_add_method(a->attest_server, ATTEST_SERVICE, "ExtendMeasurement",
				&virtmgr__v1__extend_measurement_request__descriptor, on_extend, a);
	ttrpc_server_add_method(a->attest_server, ATTEST_SERVICE, "RequestAttestation",
				&virtmgr__v1__request_attestation_request__descriptor, on_attest, a);
	if (!ttrpc_server_listen_fd(a->attest_server, fd, &err))
		agent_log(a, "attestation socket: %s", err.message);
}

/* execvp()'s search: the first regular, executable @name in @path. */
static int open_exe(const char *name, const char *path)
{
	char buf[4096];

	if (strchr(name, '/'))
		return open(name, O_RDONLY | O_CLOEXEC);
	for (const char *p = path; p && *p;) {
		const char *end = strchrnul(p, ':');
		int fd;

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)(end - p), p, name);
		if (access(buf, X_OK) == 0 && (fd = open(buf, O_RDONLY | O_CLOEXEC)) >= 0)
			return fd;
		p = *end ? end + 1 : end;
	}
	errno = ENOENT;
	return -1;
}

void agent_attest_payload(struct agent *a, const char *argv0, const char *path)
{
	uint8_t digest[32];
	int fd = open_exe(argv0, path);

	if (fd < 0) {
		agent_log(a, "measuring the payload: %s: %s (REM[0] not extended)", argv0, strerror(errno));
		return;
	}
	if (marker_sha256_fd(fd, digest) < 0) {
		agent_log(a, "measuring the payload: reading %s: %s (REM[0] not extended)", argv0, strerror(errno));
		close(fd);
		return;
	}
	close(fd);
	agent_host_extend(a->host, 0, digest, sizeof(digest));
}
