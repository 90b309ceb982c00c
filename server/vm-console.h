/* vm-console.h - a VM's serial console as the daemon handles it: the
 * client's console_out mirror, its console_in relay, AttachConsole
 * sockets, and the progress markers read from the console lines. Part of
 * the VM core (server/vm-priv.h); functions take the struct vm.
 */
#ifndef VIRTMGR_VM_CONSOLE_H
#define VIRTMGR_VM_CONSOLE_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

struct vm;

/* Bounded, non-blocking writer for a client-supplied fd (console mirror). */
struct fd_sink {
	int fd;
	bool borrowed;          /* fd owned by someone else: never closed here */
	char *buf;
	size_t len;
	size_t dropped;
	ev_io io;
};

struct console_attach;

struct vm_console {
	struct fd_sink out;             /* the client's console_out fd */
	int in_fd;                      /* the client's console_in fd (relayed) */
	ev_io in_io;
	struct console_attach *attached;
	char line[256];                 /* the console line being assembled */
	size_t line_len;
};

/* No fds yet. */
void vm_console_init(struct vm_console *c);
/* QEMU runs: start relaying console_in. */
void vm_console_start(struct vm *vm);
/* Console output from QEMU: mirror it and look for progress markers. */
void vm_console_output(struct vm *vm, const char *buf, size_t len);
/* The VM is gone: flush and close sinks, drop attached clients. */
void vm_console_release(struct vm *vm);

#endif
