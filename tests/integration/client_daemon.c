/* client_daemon.c - a private virtmgrd for the C client integration tests.
 * The daemon runs on a socket in a temp dir with --run-dir in that dir, its
 * output goes to a log file there, which is printed if the test fails.
 * Waiting for the socket uses a generous hang guard, never a timing
 * expectation.
 */
#include "config.h"
#include "tests/integration/client_daemon.h"

#include <errno.h>
#include <ftw.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct test_daemon *current;

/* Without libvirtmgr's helpers: the tests that use this file link only
 * libvirtmgr-client, as its users do. */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void dump_log(void)
{
	char path[256];
	char buf[4096];
	ssize_t n;
	int fd;

	if (!current)
		return;
	snprintf(path, sizeof(path), "%s/virtmgrd.log", current->tmp);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	fprintf(stderr, "---- %s\n", path);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stderr);
	close(fd);
}

void test_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("FAIL: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	dump_log();
	if (current && current->pid > 0)
		kill(current->pid, SIGKILL);
	exit(1);
}

int test_open_image(const char *name)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/guest/image/%s", test_top_builddir(), name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		test_fail("%s: %s (run 'make guest-image')", path, strerror(errno));
	return fd;
}

const char *test_top_builddir(void)
{
	const char *t = getenv("top_builddir");

	return t && *t ? t : ".";
}

static bool can_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (strlen(path) >= sizeof(a.sun_path)) {
		close(fd);
		return false;
	}
	memcpy(a.sun_path, path, strlen(path) + 1);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

void test_daemon_start(struct test_daemon *d, const char *const *extra_args)
{
	const struct timespec pause = { .tv_nsec = 20 * 1000 * 1000 };
	char daemon[512], run_dir[160], log[160];
	const char *argv[32];
	size_t argc = 0;
	int status;

	memset(d, 0, sizeof(*d));
	snprintf(d->tmp, sizeof(d->tmp), "/tmp/virtmgr-client-XXXXXX");
	if (!mkdtemp(d->tmp))
		test_fail("mkdtemp: %s", strerror(errno));
	/* as root the VMs' processes run under uids of their own, which must
	 * reach their run directories below this one (docs/sandbox.md) */
	if (chmod(d->tmp, 0711) < 0)
		test_fail("chmod %s: %s", d->tmp, strerror(errno));
	current = d;
	snprintf(d->sock, sizeof(d->sock), "%s/virtmgrd.sock", d->tmp);
	snprintf(run_dir, sizeof(run_dir), "%s/run", d->tmp);
	snprintf(log, sizeof(log), "%s/virtmgrd.log", d->tmp);
	snprintf(daemon, sizeof(daemon), "%s/server/virtmgrd", test_top_builddir());
	if (access(daemon, X_OK) < 0)
		test_fail("%s: %s (build it first)", daemon, strerror(errno));
	argv[argc++] = daemon;
	argv[argc++] = "--socket";
	argv[argc++] = d->sock;
	argv[argc++] = "--run-dir";
	argv[argc++] = run_dir;
	for (size_t i = 0; extra_args && extra_args[i] && argc < (sizeof(argv) / sizeof(argv[0])) - 1; i++)
		argv[argc++] = extra_args[i];
	argv[argc] = NULL;

	d->pid = fork();
	if (d->pid < 0)
		test_fail("fork: %s", strerror(errno));
	if (d->pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execv(daemon, (char **)argv);
		_exit(127);
	}
	/* hang guard only: a daemon that neither listens nor exits in 60 s is broken */
	for (int i = 0; i < 3000; i++) {
		if (can_connect(d->sock))
			return;
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			test_fail("virtmgrd exited (status %d) before listening", status);
		}
		nanosleep(&pause, NULL);
	}
	test_fail("virtmgrd did not listen on %s", d->sock);
}

bool test_daemon_stop(struct test_daemon *d)
{
	int status = -1;

	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		while (waitpid(d->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	d->pid = 0;
	if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		fprintf(stderr, "virtmgrd exit status %d\n", status);
		dump_log();
	}
	nftw(d->tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	current = NULL;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
