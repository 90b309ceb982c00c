/* test_vsock_seccomp.c - virtmgr-vsock's allow-list, loaded for real in
 * forked children: what the event loop needs still works, and a call
 * outside the list (exec, a non-Unix socket, executable memory) kills the
 * process with SIGSYS, or with --seccomp=log fails with EPERM and a log
 * line. tests/integration/vsock.sh runs the backend itself under it.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server/vsock/seccomp.h"

enum act { ACT_ALLOWED, ACT_EXEC, ACT_INET, ACT_EXEC_MEM };

static int act(enum act a)
{
	char *argv[] = { "true", NULL };
	void *p;
	int fd;

	switch (a) {
	case ACT_ALLOWED:
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return 10;
		close(fd);
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return 11;
		munmap(p, 4096);
		return getpid() > 0 ? 0 : 12;
	case ACT_EXEC:
		execv("/bin/true", argv);
		return errno == EPERM ? 0 : 20;
	case ACT_INET:
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		return fd < 0 && errno == EPERM ? 0 : 30;
	case ACT_EXEC_MEM:
		p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED && errno == EPERM ? 0 : 40;
	}
	return 99;
}

/* Run @a under the filter in @mode; return the wait status, stderr in @log. */
static int run(enum vsock_seccomp_mode mode, enum act a, char *log, size_t loglen)
{
	int errp[2], ws;
	ssize_t n;

	cr_assert_eq(pipe2(errp, O_CLOEXEC), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct vm_error err;

		dup2(errp[1], STDERR_FILENO);
		if (vsock_seccomp_install(mode, &err) < 0)
			_exit(100);
		_exit(act(a));
	}
	close(errp[1]);
	n = read(errp[0], log, loglen - 1);
	log[n > 0 ? n : 0] = 0;
	close(errp[0]);
	cr_assert_eq(waitpid(pid, &ws, 0), pid);
	return ws;
}

Test(vsock_seccomp, event_loop_calls_are_allowed)
{
	char log[256];
	int ws = run(VSOCK_SECCOMP_KILL, ACT_ALLOWED, log, sizeof(log));

	cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "status %#x, stderr: %s", ws, log);
}

Test(vsock_seccomp, forbidden_calls_kill)
{
	enum act bad[] = { ACT_EXEC, ACT_INET, ACT_EXEC_MEM };
	char log[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ws = run(VSOCK_SECCOMP_KILL, bad[i], log, sizeof(log));

		cr_assert(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGSYS, "act %d: status %#x, stderr: %s", bad[i], ws, log);
	}
}

Test(vsock_seccomp, log_mode_fails_with_eperm_and_says_so)
{
	char log[256];
	int ws = run(VSOCK_SECCOMP_LOG, ACT_INET, log, sizeof(log));

	cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "status %#x, stderr: %s", ws, log);
	cr_assert(strstr(log, "seccomp: forbidden system call 41, failed with EPERM"), "stderr: %s", log);
}

Test(vsock_seccomp, parse)
{
	enum vsock_seccomp_mode m;

	cr_assert(vsock_seccomp_parse("kill", &m) == 0 && m == VSOCK_SECCOMP_KILL);
	cr_assert(vsock_seccomp_parse("log", &m) == 0 && m == VSOCK_SECCOMP_LOG);
	cr_assert(vsock_seccomp_parse("off", &m) == 0 && m == VSOCK_SECCOMP_OFF);
	cr_assert_eq(vsock_seccomp_parse("on", &m), -1);
}
