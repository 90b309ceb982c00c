"""bench/storage.py - the storage section of bench/run (docs/performance.md).

Disk I/O inside the guest through virtmgr against a bare QEMU with the same
image and the same device, and the start of a payload from a root image
against the default initramfs guest. Every figure is a pair measured in the
same run, alternated (ours, bare, ours, bare...).

  I/O    fio (Debian's, from the host, in a root image built here with
         tests/integration/rootfs-lib.sh and mke2fs -d) on the raw block
         device /dev/disk/by-id/virtio-data: sequential write and read (1 MiB
         blocks, O_DIRECT) and 4 KiB random reads (IOPS), on a raw and on a
         qcow2 image made afresh for every run. Ours: `vmctl run --root
         fio.img --disk data...`; bare: the daemon's own QEMU command line for
         that VM (read from /proc, fw_cfg blobs copied, QMP and vsock
         stripped, the fdsets replaced by the image paths).
  start  `vmctl run --root fio.img -- /bin/sh -c "echo ..."` to its output, against
         the same in the default initramfs guest (busybox sh instead of dash).
"""
import json
import os
import re
import shutil
import subprocess
import time

FIO_MARK = re.compile(rb"^3;fio-[^;]*;", re.M)


def fio_args(smoke):
    size = "8M" if smoke else "128M"
    rt = "1" if smoke else "5"
    return ["fio", "--filename=/dev/disk/by-id/virtio-data", "--direct=1", "--ioengine=psync",
            "--output-format=terse", "--terse-version=3",
            "--name=seqwrite", "--rw=write", "--bs=1M", "--size=" + size,
            "--name=seqread", "--stonewall", "--rw=read", "--bs=1M", "--size=" + size,
            "--name=randread", "--stonewall", "--rw=randread", "--bs=4k", "--size=" + size,
            "--runtime=" + rt, "--time_based"]


def parse_fio(text):
    """{job: (read KiB/s, read IOPS, write KiB/s, write IOPS)} from terse v3 lines."""
    out = {}
    for line in text.splitlines():
        f = line.strip().split(";")
        if len(f) >= 50 and f[0] == "3":
            out[f[2]] = (float(f[6]), float(f[7]), float(f[47]), float(f[48]))
    return out


def build_root(b):
    """A root image with the host's fio, its libraries and loader."""
    if not shutil.which("fio"):
        raise RuntimeError("fio is not installed on this host (Debian package fio)")
    tree = os.path.join(b.tmp, "fio-tree")
    img = os.path.join(b.tmp, "fio-root.img")
    lib = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "integration",
                       "rootfs-lib.sh")
    subprocess.run(["bash", "-c", 'source "$1"; rootfs_tree "$2" fio cat', "-", lib, tree], check=True)
    open(img, "w").close()  # else mke2fs says "Creating regular file"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", tree, img, "256M"], check=True,
                   env=dict(os.environ, PATH=os.environ.get("PATH", "") + ":/sbin:/usr/sbin"))
    return img


def make_data(b, fmt, n):
    path = os.path.join(b.tmp, "data%d.%s" % (n, "qcow2" if fmt == "qcow2" else "img"))
    if os.path.exists(path):
        os.unlink(path)
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, path, "256M"], check=True)
    return path


def bare_disk_argv(argv, images):
    """Drop -add-fd and name the images themselves: file=/dev/fdset/S becomes images[S-1]
    (the fd numbers of -add-fd are gone once QEMU has started, so the bench says which
    file each drive is, in the order of the disks it asked for)."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "-add-fd":
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return [re.sub(r"file=/dev/fdset/(\d+),", lambda m: "file=%s," % images[int(m.group(1)) - 1].replace(",", ",,"),
                   a) for a in out]


def probe(b, args, images, peek=None):
    """Start `vmctl run --detach ARGS`, read its QEMU's argv, fds and fw_cfg blobs, kill it.
    @images: the disks' files in the VM's order; @peek(qemu_pid, vm_info), if given, is
    called while the VM runs (bench/network.py reads its passt there).
    Return: the bare QEMU argv."""
    b.nprobe = getattr(b, "nprobe", 0) + 1
    vid = b.vmctl("run", "--detach", "--name", "sprobe%d" % b.nprobe, *args).strip()
    info = json.loads(b.vmctl("--json", "info", vid).splitlines()[0])
    pid = info["qemu_pid"]
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0")[:-1]]
    keep = os.path.join(b.tmp, "sprobe%d" % b.nprobe)
    os.makedirs(keep)
    links = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            links[fd] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass
    for k, a in enumerate(argv):
        m = re.match(r"(name=[^,]+,file=)(.+)$", a) if k and argv[k - 1] == "-fw_cfg" else None
        if m:
            src = m.group(2)
            fdm = re.match(r"/proc/self/fd/([0-9]+)$", src)
            if fdm:
                src = "/proc/%d/fd/%s" % (pid, fdm.group(1))
            dst = os.path.join(keep, "fwcfg%d.bin" % k)
            shutil.copyfile(src, dst)
            argv[k] = m.group(1) + dst
    if peek:
        peek(pid, info)
    b.vmctl("kill", vid, check=False)
    b.vmctl("wait", vid, "--timeout", "60", check=False)
    argv = bare_disk_argv(argv, images)
    return b.bare_argv(argv, links)


def run_ours_fio(b, data, fmt, root, smoke):
    argv = [b.vmctl_bin, "--socket", b.sock, "run", "-m", "256", "--root", root,
            "--disk", "%s,label=data%s" % (data, ",format=qcow2" if fmt == "qcow2" else ""), "--"]
    argv += fio_args(smoke)
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=900)
    res = parse_fio(r.stdout.decode(errors="replace"))
    if r.returncode != 0 or len(res) != 3:
        raise RuntimeError("fio through virtmgr (%s) exited %d: %s" % (fmt, r.returncode,
                                                                        r.stderr.decode(errors="replace")[-300:]))
    return res


def run_bare_fio(b, argv):
    p, backend = b.spawn_bare(argv)
    try:
        out, err = p.communicate(timeout=900)
    finally:
        b.reap_bare(p, backend)
    res = parse_fio(out.decode(errors="replace"))
    if len(res) != 3:
        raise RuntimeError("fio in bare QEMU printed no results: %s %s" % (out.decode(errors="replace")[-300:],
                                                                          (err or b"").decode(errors="replace")[-300:]))
    return res


def first_output(b, extra):
    argv = [b.vmctl_bin, "--socket", b.sock, "run"] + extra + ["--", "/bin/sh", "-c", "echo first-output"]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen, _, rc = b.watch(p, {"out": ("out", re.compile(rb"^first-output", re.M))})
    if rc != 0 or "out" not in seen:
        raise RuntimeError("vmctl run %s exited %d without its output" % (" ".join(extra), rc))
    return seen["out"] - t0


def run_storage(b):
    smoke = b.args.smoke
    reps = 1 if smoke else b.vm_reps
    warm = 0 if smoke else b.warmup
    b.start_daemon("storage")
    root = build_root(b)
    for fmt in ("raw", "qcow2"):
        data = make_data(b, fmt, 0)
        bare = probe(b, ["-m", "256", "--root", root, "--disk",
                         "%s,label=data%s" % (data, ",format=qcow2" if fmt == "qcow2" else ""), "--"]
                     + fio_args(smoke), [data, root])  # vmctl adds the root disk after --disk
        o = {"sw": [], "sr": [], "rr": []}
        z = {"sw": [], "sr": [], "rr": []}
        for i in range(-warm, reps):
            make_data(b, fmt, 0)
            ours = run_ours_fio(b, data, fmt, root, smoke)
            make_data(b, fmt, 0)
            base = run_bare_fio(b, bare)
            if i < 0:
                continue
            for res, d in ((ours, o), (base, z)):
                d["sw"].append(round(res["seqwrite"][2] / 1024, 1))
                d["sr"].append(round(res["seqread"][0] / 1024, 1))
                d["rr"].append(round(res["randread"][1]))
        b.add("disk_%s_seqwrite" % fmt, "fio seq write 1 MiB, %s image (base: bare QEMU, same image and device)"
              % fmt, "MiB/s", o["sw"], z["sw"])
        b.add("disk_%s_seqread" % fmt, "fio seq read 1 MiB, %s image (base: bare QEMU)" % fmt, "MiB/s",
              o["sr"], z["sr"])
        b.add("disk_%s_randread" % fmt, "fio 4 KiB random read, %s image (base: bare QEMU)" % fmt, "IOPS",
              o["rr"], z["rr"])
    r_o, r_b = [], []
    for i in range(-warm, reps):
        t_root = first_output(b, ["--root", root])
        t_init = first_output(b, [])
        if i >= 0:
            r_o.append(round(t_root, 3))
            r_b.append(round(t_init, 3))
    b.add("root_first_output", "vmctl run --root IMG -> payload's first output (base: default initramfs guest)",
          "s", r_o, r_b)
    b.notes.append("storage: `%s` in the guest, fio from a root image of the host's own fio, on a fresh "
                   "256 MiB image every run; bare QEMU runs the daemon's own command line for that VM "
                   "(fdsets replaced by the image paths). TCG: the figures measure the emulated guest as "
                   "much as the I/O path." % " ".join(fio_args(smoke)))
    b.stop_daemon()
