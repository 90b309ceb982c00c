/* vm-persist.h - a running VM's record in <run_dir>/vm.state, and its
 * re-adoption by the next daemon (vm_restore_all() in vm.h). Part of the
 * VM core (server/vm-priv.h).
 */
#ifndef VIRTMGR_VM_PERSIST_H
#define VIRTMGR_VM_PERSIST_H

struct vm;

/* Record @vm (if it runs) in <run_dir>/vm.state; failures are logged only. */
void vm_persist(struct vm *vm);

#endif
