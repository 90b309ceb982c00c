/* measure-vm.c - a created VM's launch measurement (server/measure-vm.h).
 *
 * The inputs are exactly what QEMU is given: the kernel, initrd and disk
 * fds vm-config.c opened (as the caller, or the daemon's default image),
 * the memory and vCPU counts after defaults, the labels disks got. Only
 * the client's own command-line words are measured, not the fixed options
 * virtmgrd adds nor the payload repeated there: both follow from virtmgrd
 * itself (a software component of the platform token) and from the payload
 * item, which is measured on its own.
 */
#include "config.h"
#include "server/measure-vm.h"

#include <string.h>

#include "lib/log.h"
#include "server/attest.h"
#include "server/measure.h"
#include "server/vm-priv.h"

int measure_vm(struct vm *vm, const Virtmgr__V1__VmConfig *c, struct vm_error *err)
{
	const char *alg = c->attestation && c->attestation->hash_alg ? c->attestation->hash_alg : "";
	struct measure_disk disks[16];
	struct measure_input in = { 0 };
	uint8_t rim[MEASURE_MAX];
	char msg[VM_ERROR_MSG_MAX], hex[2 * MEASURE_MAX + 1];
	size_t n = 0, len;

	if (*alg && strcmp(alg, "sha-256") && strcmp(alg, "sha-384"))
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "attestation.hash_alg: \"%.32s\" is neither sha-256 nor sha-384", alg);
	for (size_t i = 0; i < c->n_disks && i < vm->ndisks; i++) {
		if (!c->disks[i]->measured)
			continue;
		if (!c->disks[i]->read_only)
			return vm_error_set(err, VM_INVALID_ARGUMENT,
					    "disks[%zu]: a measured disk must be read-only (its content is part of "
					    "the launch measurement)",
					    i);
		if (n == sizeof(disks) / sizeof(disks[0]))
			break;
		disks[n].label = vm->disks[i].label;
		disks[n].fd = vm->disks[i].fd;
		n++;
	}
	in.hash_alg = alg;
	in.memory_mib = vm->memory_mib;
	in.cpus = vm->cpus;
	in.kernel_fd = vm->kernel_fd;
	in.initrd_fd = vm->initrd_fd;
	in.cmdline = c->cmdline;
	in.argv = (const char *const *)c->payload_args;
	in.argc = c->n_payload_args;
	in.env = (const char *const *)c->payload_env;
	in.envc = c->n_payload_env;
	in.cwd = c->payload_cwd;
	in.has_user = c->payload_user != NULL;
	in.uid = c->payload_user ? c->payload_user->uid : 0;
	in.gid = c->payload_user ? c->payload_user->gid : 0;
	in.disks = disks;
	in.ndisks = n;
	if (measure_launch(&in, rim, &len, msg, sizeof(msg)) < 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "measured launch: %s", msg);
	if (vm->attest)
		attest_vm_set_rim(vm->attest, rim, len);
	log_info("vm %s: launch measurement %s:%s", vm->id, *alg ? alg : "sha-256", measure_hex(rim, len, hex));
	return 0;
}
