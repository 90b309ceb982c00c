/* vm-crash.h - a VM's crash reports: guest uploads and kernel panics
 * (vm-crash.c, docs/crash-reports.md). Part of the VM core.
 */
#ifndef VIRTMGR_VM_CRASH_H
#define VIRTMGR_VM_CRASH_H

struct vm;

/** vm_crash_listen() - take uploads on host vsock port 7779 for @vm (user vsock mode; failures are logged). */
void vm_crash_listen(struct vm *vm);
/** vm_crash_release() - stop listening; uploads under way are dropped. */
void vm_crash_release(struct vm *vm);
/** vm_crash_panic() - @vm's guest kernel panicked: keep its console's last lines as a kernel report. */
void vm_crash_panic(struct vm *vm);

#endif
