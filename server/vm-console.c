/* vm-console.c - a VM's serial console, one concern: the bytes QEMU's
 * console socket produces go to console.log (qemu.c), to the client's
 * console_out fd and to every AttachConsole socket, each through a bounded
 * non-blocking sink, so a client that does not read loses output instead of
 * growing the daemon or blocking the loop; what the client writes (its
 * console_in fd, AttachConsole sockets) goes to the console input, dropped
 * when QEMU does not take it, as a serial line would. The client's own fds
 * are never switched to O_NONBLOCK (that flag lives in the file description
 * the client shares, e.g. its terminal): vm_client_fd_own() reopens them
 * into descriptions of the daemon's own, or uses MSG_DONTWAIT on sockets.
 * The console lines are also scanned for vmagent's progress markers, in
 * console_marker() alone: only lines signed with the boot's marker key
 * count (marker.h); the console is the payload's stdout, so anything else
 * is its text.
 */
#include "config.h"
#include "server/vm-console.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "server/vm-priv.h"

#define CONSOLE_SINK_MAX (1u << 20) /* console bytes buffered for a slow client fd */

/* One AttachConsole client: console output is mirrored to it (bounded),
 * what it writes goes to the console input. */
struct console_attach {
	struct console_attach *next;
	struct vm *vm;
	struct fd_sink out;
	int fd;
	ev_io rio;
};

void vm_console_init(struct vm_console *c)
{
	c->out.fd = -1;
	c->in_fd = -1;
}

int vm_client_fd_own(int fd, int mode, const char *what, bool *sock, struct vm_error *err)
{
	char proc[32];
	struct stat st;
	int fl, acc, nfd;

	*sock = false;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fstat(fd, &st) < 0) {
		vm_error_errno(err, errno, "%s: fd", what);
		close(fd);
		return -1;
	}
	acc = fl & O_ACCMODE;
	/* never more access than the client's own description grants */
	if (acc != O_RDWR && acc != mode) {
		close(fd);
		return vm_error_set(err, VM_INVALID_ARGUMENT, "%s: the fd is not open for %s", what,
				    mode == O_WRONLY ? "writing" : "reading");
	}
	if (S_ISSOCK(st.st_mode)) {
		*sock = true;
		return fd;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	nfd = open(proc,
		   mode | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | (S_ISREG(st.st_mode) && mode == O_WRONLY ? O_APPEND : 0));
	if (nfd < 0) {
		vm_error_errno(err, errno, "%s: cannot reopen the fd for non-blocking use", what);
		close(fd);
		return -1;
	}
	close(fd);
	return nfd;
}

ssize_t vm_client_fd_write(int fd, bool sock, const void *buf, size_t len)
{
	if (sock)
		return send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	return write(fd, buf, len);
}

static void sink_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fd_sink *s = w->data;
	ssize_t n = vm_client_fd_write(s->fd, s->sock, s->buf, s->len);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		/* the client closed its end: stop mirroring */
		ev_io_stop(loop, w);
		if (!s->borrowed)
			close(s->fd);
		s->fd = -1;
		s->len = 0;
		return;
	}
	memmove(s->buf, s->buf + n, s->len - (size_t)n);
	s->len -= (size_t)n;
	if (!s->len)
		ev_io_stop(loop, w);
}

static void sink_write(struct ev_loop *loop, struct fd_sink *s, const char *data, size_t len)
{
	if (s->fd < 0)
		return;
	if (!s->len) {
		ssize_t n = vm_client_fd_write(s->fd, s->sock, data, len);

		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			if (!s->borrowed)
				close(s->fd);
			s->fd = -1;
			return;
		}
		if (n > 0) {
			data += n;
			len -= (size_t)n;
		}
		if (!len)
			return;
	}
	if (s->len + len > CONSOLE_SINK_MAX) {
		/* never let a client that does not read grow our memory */
		s->dropped += len;
		return;
	}
	if (!s->buf)
		s->buf = xmalloc(CONSOLE_SINK_MAX);
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	if (!ev_is_active(&s->io)) {
		ev_io_init(&s->io, sink_cb, s->fd, EV_WRITE);
		s->io.data = s;
		ev_io_start(loop, &s->io);
	}
}

static void sink_close(struct ev_loop *loop, struct fd_sink *s)
{
	if (ev_is_active(&s->io))
		ev_io_stop(loop, &s->io);
	if (s->fd >= 0) {
		/* a last blocking-free attempt to flush what is buffered */
		if (s->len && vm_client_fd_write(s->fd, s->sock, s->buf, s->len) < 0)
			s->len = 0;
		if (!s->borrowed)
			close(s->fd);
	}
	s->fd = -1;
	free(s->buf);
	s->buf = NULL;
	s->len = 0;
}

static void console_detach(struct console_attach *a)
{
	struct ev_loop *loop = a->vm->d->loop;

	for (struct console_attach **pp = &a->vm->console.attached; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	ev_io_stop(loop, &a->rio);
	sink_close(loop, &a->out); /* borrows a->fd, closed below */
	close(a->fd);
	free(a);
}

/* Console input: whatever arrives goes into QEMU's console socket; when
 * QEMU is not taking it the bytes are dropped, as a serial line would. */
static void console_input(struct vm *vm, int from, bool sock, bool *eof)
{
	char buf[4096];
	ssize_t n = sock ? recv(from, buf, sizeof(buf), MSG_DONTWAIT) : read(from, buf, sizeof(buf));
	ssize_t w;

	*eof = n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
	if (n > 0 && vm->qemu && (w = qemu_console_write(vm->qemu, buf, (size_t)n)) < 0 && w != -EAGAIN)
		log_debug("vm %s: console input: %s", vm->id, strerror((int)-w));
}

static void attach_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct console_attach *a = w->data;
	bool eof;

	console_input(a->vm, a->fd, false, &eof);
	if (eof)
		console_detach(a);
}

static void console_in_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vm *vm = w->data;
	bool eof;

	console_input(vm, vm->console.in_fd, vm->console.in_sock, &eof);
	if (eof) {
		ev_io_stop(loop, w);
		close(steal_fd(&vm->console.in_fd));
	}
}

int vm_attach_console(struct vm *vm, int *client_fd, struct vm_error *err)
{
	struct console_attach *a;
	int sv[2];

	if (!vm->qemu || vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return vm_error_set(err, VM_FAILED_PRECONDITION, "vm %s is %s: it has no console", vm->id,
				    vm_state_name(vm->state));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return vm_error_errno(err, errno, "vm %s: console socketpair", vm->id);
	fd_set_nonblock(sv[0], true);
	a = xzalloc(sizeof(*a));
	a->vm = vm;
	a->fd = sv[0];
	a->out.fd = sv[0];
	a->out.borrowed = true;
	ev_io_init(&a->rio, attach_read_cb, a->fd, EV_READ);
	a->rio.data = a;
	ev_io_start(vm->d->loop, &a->rio);
	a->next = vm->console.attached;
	vm->console.attached = a;
	*client_fd = sv[1];
	return 0;
}

/* Console input from the client's console_in fd (as from AttachConsole
 * sockets) is relayed into QEMU's console socket; the fd came through
 * vm_client_fd_own(), so reading it never blocks. */
void vm_console_start(struct vm *vm)
{
	if (vm->console.in_fd < 0)
		return;
	ev_io_init(&vm->console.in_io, console_in_cb, vm->console.in_fd, EV_READ);
	vm->console.in_io.data = vm;
	ev_io_start(vm->d->loop, &vm->console.in_io);
}

/*
 * The progress markers of a console line. This is the one place that reads
 * them: vmagent (and PID 1 of the default image) repeats its reports there,
 * signed with the boot's key. A line without a valid MAC and a fresh
 * sequence number (the payload's own "VIRTMGR: EXIT 0", a wrong MAC, a
 * replay) is the guest's text and changes nothing.
 */
static void console_marker(struct vm *vm, const char *line, size_t len)
{
	struct marker m;

	if (!vm->has_marker_key)
		return;
	switch (marker_parse(&vm->markers, line, len, &m)) {
	case MARKER_STARTED:
		vm_guest_started(vm);
		break;
	case MARKER_READY:
		vm_guest_ready(vm);
		break;
	case MARKER_EXIT:
		vm_guest_finished(vm, m.code);
		break;
	case MARKER_ERROR:
		vm_guest_error(vm, m.code, m.message);
		break;
	case MARKER_NONE:
		break;
	}
}

void vm_console_output(struct vm *vm, const char *buf, size_t len)
{
	sink_write(vm->d->loop, &vm->console.out, buf, len);
	for (struct console_attach *a = vm->console.attached, *next; a; a = next) {
		next = a->next;
		sink_write(vm->d->loop, &a->out, buf, len);
		if (a->out.fd < 0)
			console_detach(a); /* the client went away */
	}
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];

		if (c == '\n') {
			vm->console.line[vm->console.line_len] = '\0';
			console_marker(vm, vm->console.line, vm->console.line_len);
			vm->console.line_len = 0;
		} else if (c != '\r' && vm->console.line_len < sizeof(vm->console.line) - 1) {
			vm->console.line[vm->console.line_len++] = c;
		}
	}
}

void vm_console_release(struct vm *vm)
{
	struct ev_loop *loop = vm->d->loop;

	sink_close(loop, &vm->console.out);
	if (ev_is_active(&vm->console.in_io))
		ev_io_stop(loop, &vm->console.in_io);
	if (vm->console.in_fd >= 0)
		close(steal_fd(&vm->console.in_fd));
	while (vm->console.attached)
		console_detach(vm->console.attached);
}
