/* accel.h - choose the accelerator for guests: KVM only where it can run a
 * stock kernel (the CPU advertises vmx or svm and /dev/kvm opens), TCG
 * otherwise. Nested "PVM" KVM exposes /dev/kvm without vmx/svm in the CPU
 * flags and cannot boot stock Debian kernels, so /dev/kvm alone is not enough.
 */
#ifndef VIRTMGR_ACCEL_H
#define VIRTMGR_ACCEL_H

#include <stddef.h>

/**
 * accel_detect() - pick "kvm" or "tcg" for this host
 * @cpuinfo: path of the cpuinfo file (tests pass their own), NULL = /proc/cpuinfo
 * @kvm_dev: path of the KVM device, NULL = /dev/kvm
 * @reason: filled with a sentence saying why
 * Return: "kvm" or "tcg" (static strings).
 */
const char *accel_detect(const char *cpuinfo, const char *kvm_dev, char *reason, size_t reason_len);

#endif
