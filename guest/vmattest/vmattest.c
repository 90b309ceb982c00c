/* vmattest - the guest's attestation tool (in the default image as
 * /bin/vmattest):
 *
 *   vmattest token --challenge HEX    the CCA attestation token, raw, on stdout
 *   vmattest extend INDEX HEXDATA     REM[INDEX] = H(REM[INDEX] || DATA)
 *
 * It calls VirtualMachineService's RequestAttestation / ExtendMeasurement
 * through the guest agent's abstract socket @virtmgr-attest
 * (guest/vmagent/attest.c), which forwards them to virtmgrd. The challenge
 * is 32..64 bytes, the data at most 64. Exit status: 0, 1 when the call
 * failed (the reason on stderr), 2 for bad arguments.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "lib/ttrpc.h"
#include "lib/util.h"
#include "protos/virtmgr.pb-c.h"

#define VMATTEST_SOCKET "virtmgr-attest"
#define VMATTEST_SERVICE "virtmgr.v1.VirtualMachineService"
#define VMATTEST_TIMEOUT_NS (180ull * 1000000000ull)
/* the agent may still be connecting to the host: retry UNAVAILABLE so long */
#define VMATTEST_RETRY_S 30

static int usage(void)
{
	fputs("Usage: vmattest token --challenge HEX\n"
	      "       vmattest extend INDEX HEXDATA\n",
	      stderr);
	return 2;
}

/* Return: bytes decoded, or -1 when @hex is not even-length hex or longer than @max bytes. */
static ssize_t unhex(const char *hex, uint8_t *out, size_t max)
{
	size_t n = strlen(hex);

	if (n % 2 || n / 2 > max)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1 || !strchr("0123456789abcdefABCDEF", hex[2 * i]) ||
		    !strchr("0123456789abcdefABCDEF", hex[2 * i + 1]))
			return -1;
		out[i] = (uint8_t)v;
	}
	return (ssize_t)(n / 2);
}

static struct ttrpc_client *connect_agent(struct vm_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(VMATTEST_SOCKET));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memcpy(sa.sun_path + 1, VMATTEST_SOCKET, strlen(VMATTEST_SOCKET));
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, salen) < 0) {
		vm_error_errno(err, errno, "cannot reach the guest agent's attestation socket @%s", VMATTEST_SOCKET);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	return ttrpc_client_from_fd(fd);
}

static int call(const char *method, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc,
		ProtobufCMessage **resp)
{
	struct vm_error err = { 0 };
	time_t until = time(NULL) + VMATTEST_RETRY_S;

	for (;;) {
		struct ttrpc_client *cl = connect_agent(&err);
		int r = -1;

		if (cl) {
			r = ttrpc_client_call(cl, VMATTEST_SERVICE, method, req, NULL, 0, desc, resp, NULL, NULL,
					      VMATTEST_TIMEOUT_NS, &err);
			ttrpc_client_free(cl);
		}
		if (r == 0)
			return 0;
		if (err.code != VM_UNAVAILABLE || time(NULL) >= until)
			break;
		usleep(200000);
	}
	fprintf(stderr, "vmattest: %s: %s: %s\n", method, vm_status_name(err.code), err.message);
	return -1;
}

int main(int argc, char **argv)
{
	uint8_t buf[64];
	ssize_t n;

	if (argc == 4 && !strcmp(argv[1], "token") && !strcmp(argv[2], "--challenge")) {
		Virtmgr__V1__RequestAttestationRequest req = VIRTMGR__V1__REQUEST_ATTESTATION_REQUEST__INIT;
		Virtmgr__V1__RequestAttestationResponse *resp = NULL;

		n = unhex(argv[3], buf, sizeof(buf));
		if (n < 32) {
			fprintf(stderr, "vmattest: --challenge: expected 32..64 bytes as hex, got '%s'\n", argv[3]);
			return 2;
		}
		req.challenge.data = buf;
		req.challenge.len = (size_t)n;
		if (call("RequestAttestation", &req.base, &virtmgr__v1__request_attestation_response__descriptor,
			 (ProtobufCMessage **)&resp) < 0)
			return 1;
		if (fwrite(resp->token.data, 1, resp->token.len, stdout) != resp->token.len || fflush(stdout) != 0) {
			fprintf(stderr, "vmattest: writing the token: %s\n", strerror(errno));
			return 1;
		}
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "extend")) {
		Virtmgr__V1__ExtendMeasurementRequest req = VIRTMGR__V1__EXTEND_MEASUREMENT_REQUEST__INIT;
		Virtmgr__V1__Empty *resp = NULL;
		char *end;
		unsigned long idx = strtoul(argv[2], &end, 10);

		if (!*argv[2] || *end || idx > 3) {
			fprintf(stderr, "vmattest: INDEX: expected 0..3, got '%s'\n", argv[2]);
			return 2;
		}
		n = unhex(argv[3], buf, sizeof(buf));
		if (n < 0) {
			fprintf(stderr, "vmattest: HEXDATA: expected at most 64 bytes as hex, got '%s'\n", argv[3]);
			return 2;
		}
		req.index = (uint32_t)idx;
		req.data.data = buf;
		req.data.len = (size_t)n;
		if (call("ExtendMeasurement", &req.base, &virtmgr__v1__empty__descriptor, (ProtobufCMessage **)&resp) <
		    0)
			return 1;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		return 0;
	}
	return usage();
}
