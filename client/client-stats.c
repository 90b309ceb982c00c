/* client-stats.c - libvirtmgr-client's resource calls: GetVmStats copied
 * into a plain struct the caller owns, and SetBalloon.
 */
#include "config.h"
#include "client/client-priv.h"

#include <stdlib.h>
#include <string.h>

#include "protos/virtmgr.pb-c.h"

static char *dup_str(const char *s)
{
	return xstrdup(s ? s : "");
}

static void stats_copy(struct vmc_vm_stats *out, const Virtmgr__V1__VmStats *in)
{
	const Virtmgr__V1__BalloonStats *b = in->balloon;

	out->vm = dup_str(in->vm);
	out->timestamp_ns = in->timestamp_ns;
	out->cpu_ns = in->cpu_ns;
	out->rss_bytes = in->rss_bytes;
	out->memory_bytes = in->memory_bytes;
	out->cpus = in->cpus;
	out->vsock_rx_bytes = in->vsock_rx_bytes;
	out->vsock_tx_bytes = in->vsock_tx_bytes;
	out->n_processes = in->n_processes;
	out->processes = xcalloc(in->n_processes + 1, sizeof(*out->processes));
	for (size_t i = 0; i < in->n_processes; i++) {
		const Virtmgr__V1__ProcessStats *p = in->processes[i];
		struct vmc_process_stats *o = &out->processes[i];

		o->name = dup_str(p->name);
		o->pid = p->pid;
		o->cpu_user_ns = p->cpu_user_ns;
		o->cpu_system_ns = p->cpu_system_ns;
		o->rss_bytes = p->rss_bytes;
		o->read_bytes = p->read_bytes;
		o->write_bytes = p->write_bytes;
	}
	out->n_disks = in->n_disks;
	out->disks = xcalloc(in->n_disks + 1, sizeof(*out->disks));
	for (size_t i = 0; i < in->n_disks; i++) {
		const Virtmgr__V1__DiskStats *dk = in->disks[i];
		struct vmc_disk_stats *o = &out->disks[i];

		o->label = dup_str(dk->label);
		o->read_bytes = dk->read_bytes;
		o->write_bytes = dk->write_bytes;
		o->read_ops = dk->read_ops;
		o->write_ops = dk->write_ops;
		o->flush_ops = dk->flush_ops;
	}
	out->n_nets = in->n_nets;
	out->nets = xcalloc(in->n_nets + 1, sizeof(*out->nets));
	for (size_t i = 0; i < in->n_nets; i++) {
		const Virtmgr__V1__NetStats *n = in->nets[i];
		struct vmc_net_stats *o = &out->nets[i];

		o->name = dup_str(n->name);
		o->rx_bytes = n->rx_bytes;
		o->tx_bytes = n->tx_bytes;
		o->rx_packets = n->rx_packets;
		o->tx_packets = n->tx_packets;
	}
	if (b) {
		out->balloon = b->present;
		out->balloon_actual_bytes = b->actual_bytes;
		out->balloon_target_bytes = b->target_bytes;
		out->guest_stats_valid = b->guest_stats_valid;
		out->guest_total_bytes = b->guest_total_bytes;
		out->guest_free_bytes = b->guest_free_bytes;
		out->guest_available_bytes = b->guest_available_bytes;
		out->guest_stats_age_s = b->guest_stats_age_s;
	}
}

static int get_vm_stats(struct vmc_client *cl, const char *vm, struct vmc_vm_stats *out, struct vm_error *err)
{
	Virtmgr__V1__GetVmStatsRequest req = VIRTMGR__V1__GET_VM_STATS_REQUEST__INIT;
	Virtmgr__V1__GetVmStatsResponse *resp = NULL;

	memset(out, 0, sizeof(*out));
	req.vm = (char *)(vm ? vm : "");
	if (client_unary(cl, "GetVmStats", &req.base, &virtmgr__v1__get_vm_stats_response__descriptor,
			 (ProtobufCMessage **)&resp, err) < 0)
		return -1;
	if (!resp->stats) {
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		return vm_error_set(err, VM_DATA_LOSS, "GetVmStats: the answer holds no statistics");
	}
	stats_copy(out, resp->stats);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;
}

int vmc_get_vm_stats(struct vmc_client *cl, const char *vm, struct vmc_vm_stats *out, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return client_result(get_vm_stats(cl, vm, out, &e), &e, err);
}

void vmc_vm_stats_clear(struct vmc_vm_stats *st)
{
	if (!st)
		return;
	free(st->vm);
	for (size_t i = 0; i < st->n_processes; i++)
		free(st->processes[i].name);
	for (size_t i = 0; i < st->n_disks; i++)
		free(st->disks[i].label);
	for (size_t i = 0; i < st->n_nets; i++)
		free(st->nets[i].name);
	free(st->processes);
	free(st->disks);
	free(st->nets);
	memset(st, 0, sizeof(*st));
}

static int set_balloon(struct vmc_client *cl, const char *vm, uint64_t target, struct vm_error *err)
{
	Virtmgr__V1__SetBalloonRequest req = VIRTMGR__V1__SET_BALLOON_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;

	req.vm = (char *)(vm ? vm : "");
	req.target_bytes = target;
	if (client_unary(cl, "SetBalloon", &req.base, &virtmgr__v1__empty__descriptor, &resp, err) < 0)
		return -1;
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

int vmc_set_balloon(struct vmc_client *cl, const char *vm, uint64_t target_bytes, struct vmc_error *err)
{
	struct vm_error e = { 0 };

	return client_result(set_balloon(cl, vm, target_bytes, &e), &e, err);
}
