/* client-priv.h - what client.c lends the library's other files (not
 * exported: only vmc_ names leave libvirtmgr-client). */
#ifndef VIRTMGR_CLIENT_PRIV_H
#define VIRTMGR_CLIENT_PRIV_H

#include <protobuf-c/protobuf-c.h>

#include "client/virtmgr-client.h"
#include "lib/util.h"

/**
 * client_unary() - one unary VirtualizationService call without fds, with
 * the client's deadline
 * Return: 0 with *@resp (free with protobuf_c_message_free_unpacked), or -1 with @err.
 */
int client_unary(struct vmc_client *cl, const char *method, const ProtobufCMessage *req,
		 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, struct vm_error *err);
/** client_result() - @ret, with @in copied to @out when it is a failure. Return: @ret. */
int client_result(int ret, const struct vm_error *in, struct vmc_error *out);

#endif
