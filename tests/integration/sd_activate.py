#!/usr/bin/env python3
"""sd_activate.py - start a daemon the way systemd socket activation does.

    sd_activate.py SOCKET-PATH [--mode OCTAL] -- PROGRAM [ARG]...

Binds and listens on the Unix socket SOCKET-PATH (a stale socket is removed),
then runs PROGRAM with the listening socket as fd 3, LISTEN_FDS=1 and
LISTEN_PID set to PROGRAM's own pid (the launcher forks, the child sets the
variables and execs, so the pid matches). The launcher waits for PROGRAM and
exits with its status (128+N when killed by signal N); SIGTERM and SIGINT
are passed on to it.
"""
import os
import signal
import socket
import sys


def main(argv):
    if "--" not in argv:
        sys.exit("usage: sd_activate.py SOCKET-PATH [--mode OCTAL] -- PROGRAM [ARG]...")
    sep = argv.index("--")
    opts, prog = argv[1:sep], argv[sep + 1:]
    if not opts or not prog:
        sys.exit("sd_activate.py: a socket path and a program are needed")
    path, mode = opts[0], 0o660
    if len(opts) == 3 and opts[1] == "--mode":
        mode = int(opts[2], 8)
    elif len(opts) != 1:
        sys.exit("sd_activate.py: unexpected arguments %r" % (opts[1:],))

    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, mode)
    sock.listen(128)

    pid = os.fork()
    if pid == 0:
        fd = sock.fileno()
        if fd != 3:
            os.dup2(fd, 3)  # dup2 leaves fd 3 inheritable
        else:
            os.set_inheritable(3, True)
        os.environ["LISTEN_FDS"] = "1"
        os.environ["LISTEN_PID"] = str(os.getpid())
        os.environ["LISTEN_FDNAMES"] = "virtmgrd.sock"
        try:
            os.execvp(prog[0], prog)
        except OSError as e:
            sys.stderr.write("sd_activate.py: %s: %s\n" % (prog[0], e.strerror))
            os._exit(127)
    sock.close()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, f: os.kill(pid, s))
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
