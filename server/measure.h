/* measure.h - the launch measurement (CCA's RIM) of a VM, computed from
 * what the VM is launched with, and the runtime register extension (REM).
 *
 * One hash chain, documented in docs/attestation.md ("Measured launch"):
 * it starts from a descriptor of the launch parameters (memory, vCPUs,
 * machine type, accelerator class) and is extended, in a fixed order, with
 * the kernel, the initrd, the client's kernel command line, the payload
 * configuration and every measured disk. The same code runs in virtmgrd
 * (before QEMU starts, server/measure-vm.c) and in `vmctl measure`, so a
 * relying party can predict the value bit for bit. Nothing that changes per
 * boot (CID, run directory, console marker key) goes in.
 *
 * Errors: 0 / -1 with a message in @err (@errsz bytes).
 */
#ifndef VIRTMGR_MEASURE_H
#define VIRTMGR_MEASURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEASURE_MAX 64
/* Hashing runs in CreateVm, on the daemon's loop: an item (kernel, initrd,
 * a measured disk) larger than this is refused rather than measured. */
#define MEASURE_MAX_ITEM (1ULL << 30)
/* The QEMU machine type virtmgr launches (server/qemu.c: -machine pc). */
#define MEASURE_MACHINE "pc"
/* Accelerator class: KVM and TCG alike give the host full access to guest
 * memory, so both are "unprotected"; the value does not depend on whether
 * a host has /dev/kvm. */
#define MEASURE_ACCEL_CLASS "unprotected"
/* What virtmgrd gives a VM when its config leaves these at 0 (vm-config.c). */
#define MEASURE_DEFAULT_MEMORY_MIB 256
#define MEASURE_DEFAULT_CPUS 1

/* Item kinds, in chain order. */
enum measure_kind {
	MEASURE_KERNEL = 1,
	MEASURE_INITRD = 2,
	MEASURE_CMDLINE = 3,
	MEASURE_PAYLOAD = 4,
	MEASURE_DISK = 5,
};

struct measure_disk {
	const char *label; /* the guest's virtio serial: 1-20 characters */
	int fd;		   /* read with pread(): the offset is left alone */
};

struct measure_input {
	const char *hash_alg; /* "sha-256" (NULL or "") or "sha-384" */
	uint32_t memory_mib, cpus;
	int kernel_fd;	     /* required */
	int initrd_fd;	     /* -1: none (measured as empty) */
	const char *cmdline; /* the client's words; NULL = "" */
	const char *const *argv;
	size_t argc;
	const char *const *env; /* KEY=VALUE */
	size_t envc;
	const char *cwd; /* NULL = "" */
	bool has_user;
	uint32_t uid, gid;
	const struct measure_disk *disks; /* the measured disks, in config order */
	size_t ndisks;
};

/**
 * measure_hash_size() - digest size of "sha-256"/"sha-384" (NULL/"" is sha-256)
 * Return: 32 or 48, or 0 for any other name.
 */
size_t measure_hash_size(const char *alg);

/**
 * measure_launch() - the launch measurement of @in
 * @out: MEASURE_MAX bytes; *@out_len gets 32 or 48.
 * Return: 0, or -1 with @err naming what could not be read or was invalid.
 */
int measure_launch(const struct measure_input *in, uint8_t *out, size_t *out_len, char *err, size_t errsz);

/**
 * measure_extend() - REM = H(REM || @data) with @alg (RSI_MEASUREMENT_EXTEND)
 * @rem: the register, measure_hash_size(@alg) bytes, updated in place.
 * Return: 0, or -1 for an unknown algorithm.
 */
int measure_extend(const char *alg, uint8_t *rem, const uint8_t *data, size_t len);

/** measure_hex() - @len bytes as lowercase hex into @out (2*@len+1 bytes). Return: @out. */
char *measure_hex(const uint8_t *b, size_t len, char *out);

#endif
