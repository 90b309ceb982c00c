/* seccomp.h - virtmgr-vsock's own system call allow-list.
 *
 * The backend maps guest memory and parses what the guest puts in its
 * rings, so it is the process a guest attacks first. Once its set-up is
 * done (QEMU connected, host socket listening, event loop created) it keeps
 * only the calls its event loop makes: epoll, read/readv/write, recv/send
 * and recvmsg/sendmsg on its sockets and eventfds, accept4 on the host
 * socket, socket(AF_UNIX)+connect for guest-initiated streams, mmap (never
 * executable) and fstat for the memory tables QEMU sends at any time,
 * close, shutdown, fcntl, getpid and the clock for log lines, and exit.
 * Everything else (exec, open, fork, ptrace, other socket families, ...)
 * kills the process: the kernel ends it with SIGSYS, which its supervisor
 * reports. Sanitizer builds also allow what LeakSanitizer needs at exit.
 */
#ifndef VIRTMGR_VSOCK_SECCOMP_H
#define VIRTMGR_VSOCK_SECCOMP_H

#include <seccomp.h>

#include "lib/util.h"

enum vsock_seccomp_mode {
	VSOCK_SECCOMP_OFF,  /* --no-seccomp: for debugging only */
	VSOCK_SECCOMP_KILL, /* default: a forbidden call kills the process */
	VSOCK_SECCOMP_LOG,  /* development: log the call, fail it with EPERM */
};

/**
 * vsock_seccomp_parse() - read the value of --seccomp
 * @s: "kill", "log" or "off"
 * @mode: filled
 * Return: 0, or -1 for anything else.
 */
int vsock_seccomp_parse(const char *s, enum vsock_seccomp_mode *mode);

/**
 * vsock_seccomp_build() - the allow-list as a libseccomp filter
 * @mode: KILL or LOG (decides the default action)
 * @err: the libseccomp failure
 * Return: the filter (seccomp_release() it), or NULL with @err filled.
 */
scmp_filter_ctx vsock_seccomp_build(enum vsock_seccomp_mode mode, struct vm_error *err);

/**
 * vsock_seccomp_install() - build and load the filter for this process
 * @mode: OFF does nothing; LOG first installs the SIGSYS handler that logs
 * @err: what failed
 *
 * Sets NO_NEW_PRIVS (libseccomp's default) as loading requires it.
 * Return: 0, or -1 with @err filled.
 */
int vsock_seccomp_install(enum vsock_seccomp_mode mode, struct vm_error *err);

#endif
