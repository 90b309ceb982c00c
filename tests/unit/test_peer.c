/* test_peer.c - what the ttrpc layer learns of a Unix peer when it connects:
 * credentials, a pidfd and the supplementary groups (SO_PEERGROUPS), taken
 * once, so a peer that changes its groups afterwards is still judged by the
 * groups it connected with. Real sockets and a real fork.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/ttrpc.h"
#include "lib/util.h"

Test(peer, groups_are_those_of_connect_time)
{
	gid_t mine[64];
	int n = getgroups(64, mine);
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct ttrpc_server *srv = ttrpc_server_new(loop);
	struct vm_error err = { 0 };
	int sv[2];

	cr_assert_geq(n, 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct ttrpc_conn *c = ttrpc_server_adopt(srv, sv[0], &err);
	cr_assert(c, "%s", err.message);
	const struct ttrpc_peer *p = ttrpc_conn_peer(c);

	cr_assert(p->has_cred);
	cr_assert(p->has_groups, "SO_PEERGROUPS on a Unix socket");
	cr_assert_eq(p->ngroups, (size_t)n);
	for (int i = 0; i < n; i++)
		cr_assert(ttrpc_peer_in_group(p, mine[i]), "group %u", (unsigned)mine[i]);
	cr_assert(ttrpc_peer_in_group(p, getgid()), "the primary group counts too");
	cr_assert_not(ttrpc_peer_in_group(p, (gid_t)4242424), "a group it never had");
	ttrpc_conn_close(c);
	close(sv[1]);
	ttrpc_server_free(srv);
	ev_loop_destroy(loop);
}

Test(peer, a_group_dropped_after_connect_is_still_the_one_judged)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct ttrpc_server *srv = ttrpc_server_new(loop);
	struct vm_error err = { 0 };
	const gid_t extra = 4242;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int pipefd[2];
	char b;
	pid_t pid;

	if (geteuid() != 0)
		cr_skip_test("needs root to set supplementary groups");
	cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
	/* an abstract address of this process: nothing on disk to clean */
	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "virtmgr-test-peer-%d", (int)getpid());
	/* the child connects with group 4242 and drops it right after */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (setgroups(1, &extra) < 0)
			_exit(1);
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (read(pipefd[0], &b, 1) != 1 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			_exit(2);
		/* drop it again at once: the daemon must still see it */
		if (setgroups(0, NULL) < 0)
			_exit(3);
		pause();
		_exit(0);
	}
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(l, 1), 0);
	cr_assert_eq(write(pipefd[1], "x", 1), 1);
	int a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(a, 0);
	usleep(100000); /* let the child drop the group */
	struct ttrpc_conn *c = ttrpc_server_adopt(srv, a, &err);
	cr_assert(c, "%s", err.message);
	cr_assert(ttrpc_peer_in_group(ttrpc_conn_peer(c), extra), "judged by the groups it connected with");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	ttrpc_conn_close(c);
	close(l);
	ttrpc_server_free(srv);
	ev_loop_destroy(loop);
}
