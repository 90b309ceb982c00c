/* servicevm_proto.h - what the daemon (server/servicevm.c) and the Service
 * VM's program (guest/servicevm/main.c) agree on: the vsock port, the
 * message bound and the error codes of {"Err": code}. The message shapes
 * are in docs/attestation.md, "The Service VM".
 */
#ifndef VIRTMGR_SERVICEVM_PROTO_H
#define VIRTMGR_SERVICEVM_PROTO_H

/* host port the Service VM connects to (AVF: 5680 for a non-protected VM) */
#define SVM_PORT 5680
/* one CBOR message, either way */
#define SVM_MAX_MSG (64 * 1024)
/* hashed into the platform token's implementation id (claim 2396) */
#define SVM_IMPLEMENTATION "virtmgr Service VM, no hardware isolation"

enum svm_error {
	SVM_ERR_UNKNOWN = 0,
	SVM_ERR_INVALID_REQUEST = 1, /* not a request this program knows, or a bad field */
	SVM_ERR_INTERNAL = 2,	     /* signing failed */
};

#endif
