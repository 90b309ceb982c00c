/* logfwd.c - guest log records to the host (like a tiny syslogd).
 *
 * Design. As PID 1 the agent binds /dev/log (AF_UNIX datagram, what
 * syslog(3) and busybox logger write to) and follows /dev/kmsg (one kernel
 * record per read: "pri,seq,usec,flags;text"). Each record becomes a
 * LogRecord (source "syslog" or "kmsg", the syslog priority, the guest's
 * CLOCK_REALTIME) handed to host.c, which batches them into ForwardLog calls
 * with a bounded queue. Kernel records from before the agent started are
 * forwarded too, so the host's guest.log holds the whole boot.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "guest/vmagent/agent.h"
#include "lib/log.h"

#define LOGFWD_DEV_LOG "/dev/log"
#define LOGFWD_KMSG "/dev/kmsg"
#define LOGFWD_MAX 8192

struct agent_logfwd {
	struct agent *a;
	int log_fd, kmsg_fd;
	ev_io log_io, kmsg_io;
};

/* "<PRI>rest" -> priority and the rest; default user.notice. */
static const char *strip_pri(const char *s, uint32_t *pri)
{
	char *end;
	unsigned long v;

	*pri = 13;
	if (s[0] != '<')
		return s;
	v = strtoul(s + 1, &end, 10);
	if (*end != '>' || end == s + 1 || v > 191)
		return s;
	*pri = (uint32_t)v;
	return end + 1;
}

static void log_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct agent_logfwd *lf = w->data;
	char buf[LOGFWD_MAX + 1];

	(void)loop;
	(void)revents;
	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(lf->log_fd, buf, LOGFWD_MAX, MSG_DONTWAIT);
		uint32_t pri;
		const char *msg;

		if (n < 0)
			return;
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0'))
			n--;
		buf[n] = '\0';
		msg = strip_pri(buf, &pri);
		agent_host_log(lf->a->host, now_real_ns(), pri, "syslog", msg);
	}
}

static void kmsg_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct agent_logfwd *lf = w->data;
	char buf[LOGFWD_MAX + 1];

	(void)revents;
	for (int i = 0; i < 64; i++) {
		ssize_t n = read(lf->kmsg_fd, buf, LOGFWD_MAX);
		unsigned long pri;
		unsigned long long seq, usec;
		uint64_t mono, ts;
		char *text, *nl;

		if (n < 0 && errno == EPIPE)
			continue; /* records were overwritten before we read them */
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			ev_io_stop(loop, w);
			return;
		}
		buf[n] = '\0';
		text = strchr(buf, ';');
		if (!text || sscanf(buf, "%lu,%llu,%llu", &pri, &seq, &usec) != 3)
			continue;
		text++;
		nl = strchr(text, '\n');
		if (nl)
			*nl = '\0';
		/* usec is CLOCK_MONOTONIC-based: turn it into wall time */
		mono = now_mono_ns();
		ts = now_real_ns();
		if (usec * 1000ull <= mono)
			ts -= mono - usec * 1000ull;
		agent_host_log(lf->a->host, ts, (uint32_t)MIN(pri, 191ul), "kmsg", text);
	}
}

struct agent_logfwd *agent_logfwd_start(struct agent *a, bool dev_log, bool kmsg)
{
	struct agent_logfwd *lf = xzalloc(sizeof(*lf));

	lf->a = a;
	lf->log_fd = lf->kmsg_fd = -1;
	if (dev_log) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX, .sun_path = LOGFWD_DEV_LOG };
		int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		unlink(LOGFWD_DEV_LOG);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			agent_log(a, "cannot serve %s: %s", LOGFWD_DEV_LOG, strerror(errno));
			if (fd >= 0)
				close(fd);
		} else {
			int sz = 1 << 20;

			chmod(LOGFWD_DEV_LOG, 0666);
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
			lf->log_fd = fd;
			ev_io_init(&lf->log_io, log_cb, fd, EV_READ);
			lf->log_io.data = lf;
			ev_io_start(a->loop, &lf->log_io);
		}
	}
	if (kmsg) {
		lf->kmsg_fd = open(LOGFWD_KMSG, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (lf->kmsg_fd < 0) {
			agent_log(a, "cannot read %s: %s", LOGFWD_KMSG, strerror(errno));
		} else {
			ev_io_init(&lf->kmsg_io, kmsg_cb, lf->kmsg_fd, EV_READ);
			lf->kmsg_io.data = lf;
			ev_io_start(a->loop, &lf->kmsg_io);
		}
	}
	return lf;
}
