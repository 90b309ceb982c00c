/* reaper.c - reap children that nobody watches any more.
 *
 * When a VM goes, its helpers (QEMU after a kill, the vsock backend,
 * virtiofsd) may still be exiting. They are our children and must be
 * reaped, but never with a waitpid(-1) that could take the status another
 * watcher waits for: a reaper owns the child's pidfd and reaps exactly that
 * process from the event loop when the pidfd becomes readable. One list for
 * the whole process, so the daemon can drop what is left at exit (PID 1 then
 * reaps them).
 */
#include "config.h"
#include "lib/reaper.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct reaper {
	struct reaper *next;
	ev_io io;
	int pidfd;
};

static struct reaper *reapers;

static void reaper_free(struct ev_loop *loop, struct reaper *r)
{
	for (struct reaper **pp = &reapers; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	ev_io_stop(loop, &r->io);
	close(r->pidfd);
	free(r);
}

static void reaper_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct reaper *r = w->data;
	siginfo_t si = { 0 };

	(void)revents;
	if (waitid((idtype_t)P_PIDFD, (id_t)r->pidfd, &si, WEXITED | WNOHANG) < 0 && errno == EAGAIN)
		return;
	reaper_free(loop, r);
}

/**
 * reaper_take() - reap the child behind @pidfd once it exits
 * @loop: the event loop
 * @pidfd: a pidfd of a child of ours; owned by the reaper from now on
 *
 * Return: nothing; a negative @pidfd is ignored.
 */
void reaper_take(struct ev_loop *loop, int pidfd)
{
	struct reaper *r;

	if (pidfd < 0)
		return;
	r = xzalloc(sizeof(*r));
	r->pidfd = pidfd;
	ev_io_init(&r->io, reaper_cb, r->pidfd, EV_READ);
	r->io.data = r;
	ev_io_start(loop, &r->io);
	r->next = reapers;
	reapers = r;
}

/**
 * reaper_drop_all() - forget every pending reap (process exit)
 * Return: nothing.
 */
void reaper_drop_all(struct ev_loop *loop)
{
	while (reapers)
		reaper_free(loop, reapers);
}
