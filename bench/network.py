"""bench/network.py - the net section of bench/run (docs/network.md, "Benchmarks").

TCP throughput between the guest and the host with iperf3, guest -> host and
host -> guest, in `user` (passt) and `tap` mode, each against a bare QEMU with
the same netdev; and user against tap through virtmgr. Every figure is a pair
measured in the same run, alternated (ours, bare, ours, bare...), user and tap
pairs interleaved.

  guest  iperf3 (Debian's, from the host) in a root image built here with
         tests/integration/rootfs-lib.sh and mke2fs -d, run as the payload:
         `iperf3 -c GATEWAY -p 15201 -t T -f m` (guest -> host), then the same
         with -R on port 15202 (host -> guest). The figure is iperf3's
         "receiver" line of each test: what the receiving side counted.
  host   two one-off `iperf3 -s -1` servers, started before each VM.
  ours   `vmctl run --net MODE --root iperf3.img -- /bin/sh -c ...`.
  bare   the daemon's own QEMU command line for that VM (bench/storage.py's
         probe: read from /proc, fw_cfg blobs copied, QMP and vsock stripped,
         fdsets replaced by the image path), its netdev fd replaced by:
         user: a socketpair end, the other end given to a passt started here
               with the daemon's own passt argv (read from /proc too);
         tap:  a tap made here (/dev/net/tun, IFF_TAP|IFF_NO_PI, as the
               daemon makes it), named vmtap* so the daemon's nftables rules
               see it as theirs, with the host end address the daemon gave.

Everything runs in a network namespace the section makes (unshare(CLONE_NEWNET)
of bench/run's own thread, lo up, the daemon started inside it; setns back at
the end): no packet leaves it. Needs root (the namespace, tap mode).
"""
import ctypes
import fcntl
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time

import storage

TESTS_INTEGRATION = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "integration")

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
PORT_G2H = 15201
PORT_H2G = 15202
BARE_TAP = "vmtap99999"  # vmtap*: the daemon's nftables rules treat it as one of theirs
RECEIVER = re.compile(rb"([0-9.]+) Mbits/sec\s+(?:[0-9]+\s+)?receiver")


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def secs(smoke):
    return 1 if smoke else 5


def payload(gateway, t):
    return ["/bin/sh", "-c", "iperf3 -c %s -p %d -t %d -f m && iperf3 -c %s -p %d -t %d -f m -R"
            % (gateway, PORT_G2H, t, gateway, PORT_H2G, t)]


def parse(out):
    """(guest->host, host->guest) Mbit/s from the payload's output, or None."""
    r = RECEIVER.findall(out)
    if len(r) != 2:
        return None
    return float(r[0]), float(r[1])


def build_root(b):
    """A root image with the host's iperf3, its libraries and loader."""
    if not shutil.which("iperf3"):
        raise RuntimeError("iperf3 is not installed on this host (Debian package iperf3)")
    tree = os.path.join(b.tmp, "iperf3-tree")
    img = os.path.join(b.tmp, "iperf3-root.img")
    lib = os.path.join(TESTS_INTEGRATION, "rootfs-lib.sh")
    subprocess.run(["bash", "-c", 'source "$1"; rootfs_tree "$2" iperf3', "-", lib, tree], check=True)
    open(img, "w").close()  # else mke2fs says "Creating regular file"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", tree, img, "64M"], check=True,
                   env=dict(os.environ, PATH=os.environ.get("PATH", "") + ":/sbin:/usr/sbin"))
    return img


# ------------------------------------------------------------ the namespace

def enter_netns():
    """Move this thread (bench/run is single-threaded) into a new network namespace,
    lo up. Return: an fd of the old one, for leave_netns()."""
    libc = ctypes.CDLL(None, use_errno=True)
    old = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    if libc.unshare(CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        os.close(old)
        raise RuntimeError("unshare(CLONE_NEWNET): %s" % os.strerror(e))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    return old


def leave_netns(old):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(old, CLONE_NEWNET) != 0:
        raise RuntimeError("setns back to the host's network namespace: %s" % os.strerror(ctypes.get_errno()))
    os.close(old)


def wait_listen(port, timeout=10):
    """Until something listens on TCP port (without connecting: an iperf3 -1 server
    would take a probe connection for its one test)."""
    want = ":%04X" % port
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):  # iperf3 -s listens on [::]
            try:
                with open(table) as f:
                    lines = f.readlines()[1:]
            except FileNotFoundError:
                continue
            for line in lines:
                p = line.split()
                if p[1].endswith(want) and p[3] == "0A":
                    return
        time.sleep(0.05)
    raise RuntimeError("iperf3 -s on port %d does not listen" % port)


def start_servers(b):
    log = open(os.path.join(b.tmp, "iperf3-servers.log"), "ab")
    s = [b.spawn(["iperf3", "-s", "-1", "-p", str(p)], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
         for p in (PORT_G2H, PORT_H2G)]
    for p in (PORT_G2H, PORT_H2G):
        wait_listen(p)
    return s


def stop_servers(b, servers):
    for s in servers:
        b.stop(s, timeout=5)


# ------------------------------------------------------------ probe

def passt_argv_of(run_dir):
    """The argv of the only passt whose log file is under run_dir (the bench's daemon's
    --run-dir: other passts on the machine are not ours), from /proc."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % d) as f:
                if not f.read().startswith("passt"):  # Debian's passt runs passt.avx2 where it can
                    continue
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = [a.decode() for a in f.read().split(b"\0")[:-1]]
        except (OSError, UnicodeDecodeError):
            continue
        if "--log-file" in argv and argv[argv.index("--log-file") + 1].startswith(run_dir + "/"):
            found.append(argv)
    if len(found) != 1:
        raise RuntimeError("expected one passt of the bench's virtmgrd, found %d" % len(found))
    return found[0]


def probe(b, mode, root):
    """The bare QEMU argv for MODE (netdev fd still the daemon's number), the VM's
    network info, and for user mode the daemon's passt argv."""
    # the gateway goes into the payload: learn it from a VM that is killed at once
    pre = b.vmctl("run", "--detach", "--net", mode, "--root", root, "--", "/bin/true").strip()
    net = json.loads(b.vmctl("--json", "info", pre).splitlines()[0])["network"]
    b.vmctl("kill", pre, check=False)
    b.vmctl("wait", pre, "--timeout", "60", check=False)
    seen = {}

    def peek(pid, info):
        seen["info"] = info["network"]
        if mode == "user":
            seen["passt"] = passt_argv_of(os.path.join(b.tmp, "net", "run"))

    argv = storage.probe(b, ["--net", mode, "--root", root, "--"] + payload(net["gateway"], secs(b.args.smoke)),
                         [root], peek=peek)
    if seen["info"]["gateway"] != net["gateway"]:
        raise RuntimeError("the probe VM got gateway %s, not %s" % (seen["info"]["gateway"], net["gateway"]))
    return argv, seen["info"], seen.get("passt")


def netdev_index(argv):
    for k, a in enumerate(argv):
        if k and argv[k - 1] == "-netdev":
            return k
    raise RuntimeError("the daemon's QEMU command line has no -netdev")


# ------------------------------------------------------------ runs

def run_ours(b, mode, root, gateway):
    servers = start_servers(b)
    try:
        argv = [b.vmctl_bin, "--socket", b.sock, "run", "--net", mode, "--root", root, "--"]
        r = subprocess.run(argv + payload(gateway, secs(b.args.smoke)), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=900)
    finally:
        stop_servers(b, servers)
    res = parse(r.stdout)
    if r.returncode != 0 or res is None:
        raise RuntimeError("iperf3 through virtmgr (%s) exited %d: %s %s" % (
            mode, r.returncode, r.stdout.decode(errors="replace")[-300:], r.stderr.decode(errors="replace")[-300:]))
    return res


def make_tap(gateway):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", BARE_TAP.encode(), IFF_TAP | IFF_NO_PI))
        # the daemon's /30: host end .1, the guest .2
        subprocess.run(["ip", "addr", "add", gateway + "/30", "dev", BARE_TAP], check=True)
        subprocess.run(["ip", "link", "set", BARE_TAP, "up"], check=True)
    except (OSError, subprocess.CalledProcessError):
        os.close(fd)
        raise
    return fd


def run_bare(b, mode, argv, gateway, passt):
    argv = list(argv)
    k = netdev_index(argv)
    closeme = []
    passt_p = None
    servers = start_servers(b)
    try:
        if mode == "tap":
            fd = make_tap(gateway)
            closeme.append(fd)
            argv[k] = re.sub(r",fd=\d+", ",fd=%d" % fd, argv[k])
        else:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            closeme += [ours.detach(), theirs.detach()]
            qfd, pfd = closeme
            pa = list(passt)
            pa[0] = "/usr/bin/passt"  # it picks its .avx2 build again, as the daemon's did
            pa[pa.index("--fd") + 1] = str(pfd)
            pa[pa.index("--log-file") + 1] = os.path.join(b.tmp, "bare-passt.log")
            passt_p = subprocess.Popen(pa, pass_fds=[pfd], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
            b.bare_pids.add(passt_p.pid)
            os.close(closeme.pop())  # passt has it
            argv[k] = re.sub(r"addr\.str=\d+", "addr.str=%d" % qfd, argv[k])
        p, backend = b.spawn_bare(argv, pass_fds=closeme)
        for fd in closeme:
            os.close(fd)
        closeme = []
        try:
            out, err = p.communicate(timeout=900)
        finally:
            b.reap_bare(p, backend)
    finally:
        for fd in closeme:
            os.close(fd)
        if passt_p is not None:
            try:
                passt_p.wait(10)  # it leaves once QEMU's end is closed
            except subprocess.TimeoutExpired:
                passt_p.kill()
                passt_p.wait()
            b.bare_pids.discard(passt_p.pid)
        stop_servers(b, servers)
    res = parse(out)
    if res is None:
        raise RuntimeError("iperf3 in bare QEMU (%s) printed no results: %s %s" % (
            mode, out.decode(errors="replace")[-300:], (err or b"").decode(errors="replace")[-300:]))
    return res


def run_net(b):
    if os.geteuid() != 0:
        b.notes.append("net: not run: needs root (a network namespace of its own, tap mode)")
        return
    if not os.path.exists("/usr/bin/passt"):
        raise RuntimeError("passt is not installed (Debian package passt)")
    reps = 1 if b.args.smoke else b.vm_reps
    warm = 0 if b.args.smoke else b.warmup
    old = enter_netns()
    try:
        b.start_daemon("net")
        root = build_root(b)
        bare = {m: probe(b, m, root) for m in ("user", "tap")}
        o = {(m, d): [] for m in ("user", "tap") for d in (0, 1)}
        z = {(m, d): [] for m in ("user", "tap") for d in (0, 1)}
        for i in range(-warm, reps):
            for m in ("user", "tap"):
                argv, info, passt = bare[m]
                ours = run_ours(b, m, root, info["gateway"])
                base = run_bare(b, m, argv, info["gateway"], passt)
                log("net %s pair %d: ours %.0f/%.0f Mbit/s, bare %.0f/%.0f Mbit/s (g2h/h2g)"
                      % (m, i, ours[0], ours[1], base[0], base[1]))
                if i < 0:
                    continue
                for d in (0, 1):
                    o[(m, d)].append(ours[d])
                    z[(m, d)].append(base[d])
        t = secs(b.args.smoke)
        for m, base in (("user", "bare QEMU + passt, the daemon's options"),
                        ("tap", "bare QEMU + a tap, the same addresses")):
            b.add("net_%s_g2h" % m, "iperf3 TCP guest->host %d s, %s mode (base: %s)" % (t, m, base), "Mbit/s",
                  o[(m, 0)], z[(m, 0)])
            b.add("net_%s_h2g" % m, "iperf3 TCP host->guest %d s, %s mode (base: bare QEMU)" % (t, m), "Mbit/s",
                  o[(m, 1)], z[(m, 1)])
        b.add("net_uvt_g2h", "iperf3 guest->host, user mode (base: tap mode, both through virtmgr)", "Mbit/s",
              o[("user", 0)], o[("tap", 0)])
        b.add("net_uvt_h2g", "iperf3 host->guest, user mode (base: tap mode, both through virtmgr)", "Mbit/s",
              o[("user", 1)], o[("tap", 1)])
        b.notes.append("net: `%s` in the guest (a root image of the host's own iperf3) against `iperf3 -s -1` "
                       "on the host, in a network namespace of the bench's own; bare QEMU runs the daemon's own "
                       "command line with its own passt (the daemon's passt argv) or its own tap (%s, the "
                       "daemon's addresses). TCG: the figures measure the emulated guest as much as the "
                       "network path." % (payload("GW", t)[2], BARE_TAP))
        b.stop_daemon()
    finally:
        b.stop_daemon()
        leave_netns(old)
