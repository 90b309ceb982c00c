/* seccomp.c - virtmgr-vsock's allow-list; what it allows and why is in
 * seccomp.h.
 *
 * The list was taken from the code and checked against `strace -f` of the
 * backend through tests/integration/vsock.sh (256 MiB each way, 64
 * concurrent streams, guest-initiated streams, resets, QEMU leaving).
 * Arguments are checked where that is cheap and closes a door: socket()
 * only for AF_UNIX, mmap()/mprotect() never with PROT_EXEC, fstatat() only
 * on an fd (AT_EMPTY_PATH), tgkill() only at this process (abort()).
 */
#include "config.h"
#include "server/vsock/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <ucontext.h>
#include <unistd.h>

#include "lib/log.h"

/* Sanitizer runtimes do more than the program: LeakSanitizer stops the
 * world at exit with a clone()d tracer thread that ptraces the process and
 * reads /proc/self/task and /proc/self/maps. Only in sanitizer builds. */
#if defined(__SANITIZE_ADDRESS__)
#define VSOCK_SECCOMP_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VSOCK_SECCOMP_SANITIZER 1
#endif
#endif

static const int allowed[] = {
	/* the event loop (libev's epoll backend) and time */
	SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait),
	SCMP_SYS(epoll_ctl),
	SCMP_SYS(clock_gettime),
	SCMP_SYS(gettimeofday),
	SCMP_SYS(nanosleep),
	SCMP_SYS(clock_nanosleep),
	/* sockets and eventfds it holds */
	SCMP_SYS(read),
	SCMP_SYS(readv),
	SCMP_SYS(write),
	SCMP_SYS(writev),
	SCMP_SYS(recvfrom),
	SCMP_SYS(recvmsg),
	SCMP_SYS(sendto),
	SCMP_SYS(sendmsg),
	SCMP_SYS(accept4),
	SCMP_SYS(connect),
	SCMP_SYS(shutdown),
	SCMP_SYS(close),
	SCMP_SYS(fcntl),
	/* memory: malloc, and unmapping old memory tables */
	SCMP_SYS(brk),
	SCMP_SYS(munmap),
	SCMP_SYS(mremap),
	SCMP_SYS(madvise),
	/* log lines, signal return, exit, abort() */
	SCMP_SYS(getpid),
	SCMP_SYS(gettid),
	SCMP_SYS(rt_sigreturn),
	SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(restart_syscall),
	SCMP_SYS(exit),
	SCMP_SYS(exit_group),
};

#ifdef VSOCK_SECCOMP_SANITIZER
static const int allowed_sanitizer[] = {
	SCMP_SYS(clone),	   SCMP_SYS(wait4),	   SCMP_SYS(ptrace),	  SCMP_SYS(prctl),
	SCMP_SYS(sched_yield),	   SCMP_SYS(rt_sigaction), SCMP_SYS(sigaltstack), SCMP_SYS(getdents),
	SCMP_SYS(getdents64),	   SCMP_SYS(open),	   SCMP_SYS(openat),	  SCMP_SYS(readlink),
	SCMP_SYS(readlinkat),	   SCMP_SYS(futex),	   SCMP_SYS(tgkill),	  SCMP_SYS(uname),
	SCMP_SYS(prlimit64),	   SCMP_SYS(getrlimit),	   SCMP_SYS(lseek),	  SCMP_SYS(pread64),
	SCMP_SYS(newfstatat),	   SCMP_SYS(fstat),	   SCMP_SYS(stat),	  SCMP_SYS(getppid),
	SCMP_SYS(set_robust_list), SCMP_SYS(sysinfo),
};
#endif

int vsock_seccomp_parse(const char *s, enum vsock_seccomp_mode *mode)
{
	if (!strcmp(s, "kill"))
		*mode = VSOCK_SECCOMP_KILL;
	else if (!strcmp(s, "log"))
		*mode = VSOCK_SECCOMP_LOG;
	else if (!strcmp(s, "off"))
		*mode = VSOCK_SECCOMP_OFF;
	else
		return -1;
	return 0;
}

static int add(scmp_filter_ctx ctx, int nr, unsigned n, const struct scmp_arg_cmp *cmp, struct vm_error *err)
{
	int r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, n, cmp);

	if (r < 0) {
		cleanup_free char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);

		return vm_error_set_errno(err, VM_INTERNAL, -r, "seccomp rule for %s", name ? name : "?");
	}
	return 0;
}

scmp_filter_ctx vsock_seccomp_build(enum vsock_seccomp_mode mode, struct vm_error *err)
{
	uint32_t deflt = mode == VSOCK_SECCOMP_LOG ? SCMP_ACT_TRAP : SCMP_ACT_KILL_PROCESS;
	scmp_filter_ctx ctx = seccomp_init(deflt);
	const struct scmp_arg_cmp no_exec = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
	const struct scmp_arg_cmp unix_only = SCMP_A0(SCMP_CMP_EQ, AF_UNIX);
	const struct scmp_arg_cmp on_fd = SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH);
	const struct scmp_arg_cmp self = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid());

	if (!ctx) {
		vm_error_set(err, VM_INTERNAL, "seccomp_init failed");
		return NULL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(allowed); i++)
		if (add(ctx, allowed[i], 0, NULL, err) < 0)
			goto fail;
	if (add(ctx, SCMP_SYS(mmap), 1, &no_exec, err) < 0 || add(ctx, SCMP_SYS(mprotect), 1, &no_exec, err) < 0 ||
	    add(ctx, SCMP_SYS(socket), 1, &unix_only, err) < 0 || add(ctx, SCMP_SYS(newfstatat), 1, &on_fd, err) < 0 ||
	    add(ctx, SCMP_SYS(fstat), 0, NULL, err) < 0 || add(ctx, SCMP_SYS(tgkill), 1, &self, err) < 0)
		goto fail;
#ifdef VSOCK_SECCOMP_SANITIZER
	for (size_t i = 0; i < ARRAY_SIZE(allowed_sanitizer); i++)
		if (add(ctx, allowed_sanitizer[i], 0, NULL, err) < 0)
			goto fail;
#endif
	return ctx;
fail:
	seccomp_release(ctx);
	return NULL;
}

/* --seccomp=log: say which call would have killed the process, and make it
 * fail with EPERM instead. Only write() here: it is async-signal-safe and
 * on the list. */
static void sigsys_log(int sig, siginfo_t *si, void *uc_)
{
	char msg[96] = "virtmgr-vsock: seccomp: forbidden system call ";
	size_t at = strlen(msg);
	char digits[12];
	size_t n = 0;
	unsigned nr = (unsigned)si->si_syscall;

	(void)sig;
	do
		digits[n++] = (char)('0' + nr % 10);
	while ((nr /= 10) && n < sizeof(digits));
	while (n && at + 40 < sizeof(msg))
		msg[at++] = digits[--n];
	memcpy(msg + at, ", failed with EPERM\n", 20);
	at += 20;
	if (write(STDERR_FILENO, msg, at) < 0) {
		/* nothing else to tell */
	}
#if defined(__x86_64__)
	((ucontext_t *)uc_)->uc_mcontext.gregs[REG_RAX] = -EPERM;
#elif defined(__aarch64__)
	((ucontext_t *)uc_)->uc_mcontext.regs[0] = (unsigned long long)-EPERM;
#else
	(void)uc_;
#endif
}

int vsock_seccomp_install(enum vsock_seccomp_mode mode, struct vm_error *err)
{
	scmp_filter_ctx ctx;
	int r;

	if (mode == VSOCK_SECCOMP_OFF)
		return 0;
	if (mode == VSOCK_SECCOMP_LOG) {
		struct sigaction sa = { .sa_sigaction = sigsys_log, .sa_flags = SA_SIGINFO };

		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGSYS, &sa, NULL) < 0)
			return vm_error_errno(err, errno, "SIGSYS handler");
	}
	ctx = vsock_seccomp_build(mode, err);
	if (!ctx)
		return -1;
	r = seccomp_load(ctx);
	seccomp_release(ctx);
	if (r < 0)
		return vm_error_set_errno(err, VM_INTERNAL, -r, "loading the seccomp filter");
	return 0;
}
