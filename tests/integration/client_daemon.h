/* client_daemon.h - start and stop a private virtmgrd for the C client
 * integration tests (client_load, client_fds).
 */
#ifndef VIRTMGR_TEST_CLIENT_DAEMON_H
#define VIRTMGR_TEST_CLIENT_DAEMON_H

#include <stdbool.h>
#include <sys/types.h>

struct test_daemon {
	char tmp[64]; /* temp dir: socket, run dir, log */
	char sock[128];
	pid_t pid;
};

/* Print "FAIL: ..." and exit 1. */
void test_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/**
 * test_daemon_start() - start $top_builddir/server/virtmgrd on a socket in
 * a fresh temp dir (--run-dir inside it) plus @extra_args, and wait until it
 * accepts connections. Fails the test if it exits first.
 */
void test_daemon_start(struct test_daemon *d, const char *const *extra_args);

/**
 * test_daemon_stop() - SIGTERM, reap, remove the temp dir.
 * Return: true if the daemon exited with status 0.
 */
bool test_daemon_stop(struct test_daemon *d);

/** test_top_builddir() - Return: $top_builddir, or "." */
const char *test_top_builddir(void);

/** test_open_image() - open $top_builddir/guest/image/@name read-only, or fail the test. Return: the fd. */
int test_open_image(const char *name);

#endif
