/* test_vsock_dev.c - the vsock device between synthetic rings and real Unix
 * sockets: guest-initiated connections to <uds>_P, data both ways, credit
 * limits in both directions, RST for unserved ports and unsupported types,
 * a guest overrunning its credit, and a broken chain stopping the device.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "server/vsock/vq_synth.h"
#include "server/vsock/vsock_dev.h"
#include "server/vsock/vsock_pkt.h"

#define GUEST_CID 9
#define RXBUF 4096
#define NRX 64

static char dir[64], uds[80];
static struct vq_synth rx, tx;
static struct ev_loop *loop;
static struct vsock_dev *dev;
static uint16_t rx_seen, tx_next;
static const char *fatal_why;

static void on_fatal(void *opaque, const char *why)
{
	fatal_why = why;
}

static void rx_refill(void)
{
	for (unsigned i = 0; i < NRX; i++) {
		vq_synth_desc(&rx, i, vq_synth_gpa(&rx, VQ_SYNTH_DATA + i * RXBUF), RXBUF, VRING_DESC_F_WRITE, 0);
		vq_synth_avail(&rx, (uint16_t)i);
	}
}

static void setup(void)
{
	struct vm_error err;

	strcpy(dir, "/tmp/vsock-dev-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(uds, sizeof(uds), "%s/v.sock", dir);
	cr_assert_eq(vq_synth_init(&rx, NRX, 1u << 20), 0);
	cr_assert_eq(vq_synth_init(&tx, 16, 4u << 20), 0);
	loop = ev_loop_new(0);
	dev = vsock_dev_new(loop, GUEST_CID, uds, -1, &rx.vq, &tx.vq, on_fatal, NULL, &err);
	cr_assert_not_null(dev, "%s", err.message);
	rx_seen = tx_next = 0;
	fatal_why = NULL;
	rx_refill();
}

static void teardown(void)
{
	vsock_dev_free(dev);
	ev_loop_destroy(loop);
	vq_synth_free(&rx);
	vq_synth_free(&tx);
	remove_tree(dir);
}

TestSuite(vsock_dev, .init = setup, .fini = teardown);

/* Queue one guest packet (header + payload in one descriptor) and kick. */
static void guest_send(struct vsock_hdr h, const void *payload)
{
	uint8_t wire[VSOCK_HDR_SIZE];
	size_t off = VQ_SYNTH_DATA + (size_t)(tx_next % 16) * 0x10000 * 2;
	uint16_t slot = tx_next % 16;

	h.src_cid = h.src_cid ? h.src_cid : GUEST_CID;
	h.dst_cid = h.dst_cid ? h.dst_cid : VSOCK_HOST_CID;
	h.type = h.type ? h.type : VSOCK_TYPE_STREAM;
	vsock_hdr_encode(&h, wire);
	memcpy(tx.ram + off, wire, sizeof(wire));
	if (h.len)
		memcpy(tx.ram + off + VSOCK_HDR_SIZE, payload, h.len);
	vq_synth_desc(&tx, slot, vq_synth_gpa(&tx, off), VSOCK_HDR_SIZE + h.len, 0, 0);
	vq_synth_avail(&tx, slot);
	tx_next++;
	vsock_dev_kick(dev, VSOCK_QUEUE_TX);
}

/* Next packet the device put in the rx ring; false if none. */
static bool guest_recv(struct vsock_hdr *h, uint8_t *payload)
{
	for (int i = 0; i < 50 && le16toh(rx.used->idx) == rx_seen; i++)
		ev_run(loop, EVRUN_NOWAIT);
	if (le16toh(rx.used->idx) == rx_seen)
		return false;
	struct vring_used_elem e = rx.used->ring[rx_seen % NRX];
	rx_seen++;
	uint8_t *buf = rx.ram + VQ_SYNTH_DATA + le32toh(e.id) * RXBUF;
	vsock_hdr_decode(buf, h);
	cr_assert_eq(le32toh(e.len), VSOCK_HDR_SIZE + h->len);
	if (payload)
		memcpy(payload, buf + VSOCK_HDR_SIZE, h->len);
	/* give the buffer back */
	vq_synth_avail(&rx, (uint16_t)le32toh(e.id));
	return true;
}

static int host_listen(uint32_t port)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", uds, port);
	cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 4) == 0);
	return fd;
}

/* Guest port 1025 connects to host port 5000; returns the host's side. */
static int connect_guest(uint32_t guest_buf_alloc)
{
	struct vsock_hdr h;
	int lfd = host_listen(5000);

	guest_send(
		(struct vsock_hdr){
			.src_port = 1025, .dst_port = 5000, .op = VSOCK_OP_REQUEST, .buf_alloc = guest_buf_alloc },
		NULL);
	cr_assert(guest_recv(&h, NULL));
	cr_assert_eq(h.op, VSOCK_OP_RESPONSE);
	cr_assert_eq(h.src_cid, VSOCK_HOST_CID);
	cr_assert_eq(h.dst_cid, GUEST_CID);
	cr_assert_eq(h.src_port, 5000);
	cr_assert_eq(h.dst_port, 1025);
	cr_assert_eq(h.buf_alloc, VSOCK_DEV_BUF_ALLOC);
	int s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	cr_assert(s >= 0);
	close(lfd);
	return s;
}

Test(vsock_dev, data_both_ways)
{
	struct vsock_hdr h;
	uint8_t buf[RXBUF];
	int s = connect_guest(65536);

	guest_send(
		(struct vsock_hdr){
			.src_port = 1025, .dst_port = 5000, .op = VSOCK_OP_RW, .len = 5, .buf_alloc = 65536 },
		"hello");
	cr_assert_eq(read(s, buf, sizeof(buf)), 5);
	cr_assert_eq(memcmp(buf, "hello", 5), 0);

	cr_assert_eq(write(s, "world", 5), 5);
	cr_assert(guest_recv(&h, buf));
	cr_assert_eq(h.op, VSOCK_OP_RW);
	cr_assert_eq(h.len, 5);
	cr_assert_eq(h.fwd_cnt, 5, "advertises what reached the host socket");
	cr_assert_eq(memcmp(buf, "world", 5), 0);

	/* host EOF -> SHUTDOWN(SEND); guest close -> RST and the socket closes */
	shutdown(s, SHUT_WR);
	cr_assert(guest_recv(&h, NULL));
	cr_assert_eq(h.op, VSOCK_OP_SHUTDOWN);
	cr_assert_eq(h.flags, VSOCK_SHUTDOWN_SEND);
	guest_send(
		(struct vsock_hdr){
			.src_port = 1025, .dst_port = 5000, .op = VSOCK_OP_SHUTDOWN, .flags = 3, .buf_alloc = 65536 },
		NULL);
	cr_assert(guest_recv(&h, NULL));
	cr_assert_eq(h.op, VSOCK_OP_RST);
	cr_assert_eq(read(s, buf, sizeof(buf)), 0);
	close(s);
}

Test(vsock_dev, host_to_guest_respects_guest_credit)
{
	struct vsock_hdr h;
	uint8_t buf[RXBUF];
	int s = connect_guest(3);

	cr_assert_eq(write(s, "world", 5), 5);
	cr_assert(guest_recv(&h, buf));
	cr_assert_eq(h.len, 3);
	cr_assert_eq(memcmp(buf, "wor", 3), 0);
	cr_assert_not(guest_recv(&h, buf), "no credit left: nothing more may be sent");
	guest_send((struct vsock_hdr){ .src_port = 1025,
				       .dst_port = 5000,
				       .op = VSOCK_OP_CREDIT_UPDATE,
				       .buf_alloc = 3,
				       .fwd_cnt = 3 },
		   NULL);
	cr_assert(guest_recv(&h, buf));
	cr_assert_eq(h.op, VSOCK_OP_RW);
	cr_assert_eq(h.len, 2);
	cr_assert_eq(memcmp(buf, "ld", 2), 0);
	close(s);
}

Test(vsock_dev, credit_request_gets_credit_update)
{
	struct vsock_hdr h;
	int s = connect_guest(65536);

	guest_send(
		(struct vsock_hdr){
			.src_port = 1025, .dst_port = 5000, .op = VSOCK_OP_CREDIT_REQUEST, .buf_alloc = 65536 },
		NULL);
	cr_assert(guest_recv(&h, NULL));
	cr_assert_eq(h.op, VSOCK_OP_CREDIT_UPDATE);
	cr_assert_eq(h.buf_alloc, VSOCK_DEV_BUF_ALLOC);
	close(s);
}

/* Interrupts owed to the guest are sent once per queue per loop iteration,
 * before the loop sleeps, however many buffers were used meanwhile. */
Test(vsock_dev, one_notification_per_queue_per_loop_iteration)
{
	uint64_t n;
	int rx_call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), tx_call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	cr_assert(rx_call >= 0 && tx_call >= 0);
	rx.vq.call_fd = rx_call;
	tx.vq.call_fd = tx_call;
	/* three packets to unserved ports, each kicked: three tx buffers used, three RSTs */
	for (uint32_t port = 7000; port < 7003; port++)
		guest_send(
			(struct vsock_hdr){
				.src_port = 1025, .dst_port = port, .op = VSOCK_OP_RW, .len = 1, .buf_alloc = 65536 },
			"x");
	cr_assert_eq(read(tx_call, &n, sizeof(n)), -1, "nothing before the loop runs");
	ev_run(loop, EVRUN_NOWAIT);
	cr_assert_eq(read(tx_call, &n, sizeof(n)), (ssize_t)sizeof(n));
	cr_assert_eq(n, 1, "three kicks handled before the loop slept: one interrupt");
	cr_assert_eq(read(rx_call, &n, sizeof(n)), (ssize_t)sizeof(n));
	cr_assert_eq(n, 1, "the RSTs of all three kicks: one interrupt");
	ev_run(loop, EVRUN_NOWAIT);
	cr_assert_eq(read(rx_call, &n, sizeof(n)), -1, "none owed, none sent");
	rx.vq.call_fd = tx.vq.call_fd = -1;
	close(rx_call);
	close(tx_call);
}

Test(vsock_dev, guest_overrunning_credit_is_reset)
{
	static uint8_t chunk[65536];
	struct vsock_hdr h;
	int s = connect_guest(65536);
	bool reset = false;

	/* the host never reads: socket buffer, then our 256 KiB, then too much */
	for (int i = 0; i < 16 && !reset; i++) {
		guest_send((struct vsock_hdr){ .src_port = 1025,
					       .dst_port = 5000,
					       .op = VSOCK_OP_RW,
					       .len = sizeof(chunk),
					       .buf_alloc = 65536 },
			   chunk);
		while (guest_recv(&h, NULL))
			if (h.op == VSOCK_OP_RST)
				reset = true;
	}
	cr_assert(reset, "a guest sending beyond buf_alloc must be reset");
	cr_assert_null(fatal_why, "only the connection, not the device");
	close(s);
}

Test(vsock_dev, unserved_port_gets_rst)
{
	struct vsock_hdr h;

	guest_send((struct vsock_hdr){ .src_port = 1026, .dst_port = 5001, .op = VSOCK_OP_REQUEST }, NULL);
	cr_assert(guest_recv(&h, NULL));
	cr_assert_eq(h.op, VSOCK_OP_RST);
	cr_assert_eq(h.dst_port, 1026);
	cr_assert_eq(h.src_port, 5001);
}

Test(vsock_dev, other_cid_and_seqpacket_get_rst)
{
	struct vsock_hdr h;

	guest_send((struct vsock_hdr){ .dst_cid = 77, .src_port = 1027, .dst_port = 5000, .op = VSOCK_OP_REQUEST },
		   NULL);
	cr_assert(guest_recv(&h, NULL));
	cr_assert_eq(h.op, VSOCK_OP_RST);
	cr_assert_eq(h.src_cid, 77, "the RST comes from the CID the guest addressed");
	guest_send(
		(struct vsock_hdr){
			.type = VSOCK_TYPE_SEQPACKET, .src_port = 1028, .dst_port = 5000, .op = VSOCK_OP_REQUEST },
		NULL);
	cr_assert(guest_recv(&h, NULL));
	cr_assert_eq(h.op, VSOCK_OP_RST);
}

Test(vsock_dev, packet_for_unknown_connection_gets_rst_but_rst_does_not)
{
	struct vsock_hdr h;

	guest_send((struct vsock_hdr){ .src_port = 1029, .dst_port = 5000, .op = VSOCK_OP_RW, .len = 1 }, "x");
	cr_assert(guest_recv(&h, NULL));
	cr_assert_eq(h.op, VSOCK_OP_RST);
	guest_send((struct vsock_hdr){ .src_port = 1029, .dst_port = 5000, .op = VSOCK_OP_RST }, NULL);
	cr_assert_not(guest_recv(&h, NULL));
}

Test(vsock_dev, broken_chain_stops_the_device)
{
	vq_synth_desc(&tx, 0, vq_synth_gpa(&tx, VQ_SYNTH_DATA), 44, VRING_DESC_F_NEXT, 0);
	vq_synth_avail(&tx, 0);
	vsock_dev_kick(dev, VSOCK_QUEUE_TX);
	cr_assert_not_null(fatal_why);
	cr_assert(strstr(fatal_why, "loop"), "%s", fatal_why);
}

Test(vsock_dev, payload_beyond_buffer_stops_the_device)
{
	uint8_t wire[VSOCK_HDR_SIZE];
	struct vsock_hdr h = { .src_cid = GUEST_CID, .dst_cid = 2, .type = 1, .op = VSOCK_OP_RW, .len = 100 };

	vsock_hdr_encode(&h, wire);
	memcpy(tx.ram + VQ_SYNTH_DATA, wire, sizeof(wire));
	vq_synth_desc(&tx, 0, vq_synth_gpa(&tx, VQ_SYNTH_DATA), VSOCK_HDR_SIZE + 10, 0, 0);
	vq_synth_avail(&tx, 0);
	vsock_dev_kick(dev, VSOCK_QUEUE_TX);
	cr_assert_not_null(fatal_why);
	cr_assert(strstr(fatal_why, "exceeds"), "%s", fatal_why);
}
