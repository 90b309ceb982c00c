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
#include <sys/types.h>

struct vm;
struct vm_error;

/* Bounded, non-blocking writer for a client-supplied fd (console mirror). */
struct fd_sink {
	int fd;
	bool borrowed; /* fd owned by someone else: never closed here */
	bool sock;     /* a socket shared with the client: send(MSG_DONTWAIT) */
	char *buf;
	size_t len;
	size_t dropped;
	ev_io io;
};

struct console_attach;

struct vm_console {
	struct fd_sink out; /* the client's console_out fd */
	int in_fd;	    /* the client's console_in fd (relayed) */
	bool in_sock;	    /* it is a socket shared with the client: recv(MSG_DONTWAIT) */
	ev_io in_io;
	struct console_attach *attached;
	char line[256]; /* the console line being assembled */
	size_t line_len;
};

/* No fds yet. */
void vm_console_init(struct vm_console *c);
/**
 * vm_client_fd_own() - a non-blocking way to use a client's fd without touching its file description
 * @fd: received from the client (consumed: closed, or returned)
 * @mode: O_RDONLY or O_WRONLY, what the daemon does with it (the client's must allow it)
 * @what: its name in errors ("console_out")
 * @sock: out: true when @fd is a socket, used with MSG_DONTWAIT instead
 *
 * O_NONBLOCK belongs to the open file description, which the client shares
 * (its terminal, its stdout): setting it would break the client's own
 * blocking I/O. A pipe, FIFO, terminal or file is reopened through
 * /proc/self/fd into a description of the daemon's own (files for
 * appending); a socket cannot be reopened and is kept as it is.
 * Return: the fd to use, or -1 with @err filled.
 */
int vm_client_fd_own(int fd, int mode, const char *what, bool *sock, struct vm_error *err);
/* Write to an fd from vm_client_fd_own(): never blocks. Return: as write(2). */
ssize_t vm_client_fd_write(int fd, bool sock, const void *buf, size_t len);
/* QEMU runs: start relaying console_in. */
void vm_console_start(struct vm *vm);
/* Console output from QEMU: mirror it and look for progress markers. */
void vm_console_output(struct vm *vm, const char *buf, size_t len);
/* The VM is gone: flush and close sinks, drop attached clients. */
void vm_console_release(struct vm *vm);

#endif
