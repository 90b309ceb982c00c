#!/usr/bin/env python3
"""test_getdaemoninfo.py - interop: a Python ttrpc client (hand-made framing,
protoc-generated messages) against a real virtmgrd on a temporary socket.

Checks GetDaemonInfo's fields, IsFeatureEnabled for every advertised feature
and for an unknown one, AllocateInstanceId (64 bytes, fresh each time),
UNIMPLEMENTED for an unknown method and an unknown service, INVALID_ARGUMENT
for a payload that is not the request message, NOT_FOUND ending a WatchVm
server stream (ttrpc 1.2 flags) of a missing VM, and that several calls share
one connection. Runs out of tree: the generated *_pb2.py modules are found
in $top_builddir/tests/interop, ttrpc_client.py next to this file.
"""

import os
import sys

# No __pycache__ in the (possibly read-only) source tree.
sys.dont_write_bytecode = True

try:
    import google.protobuf  # noqa: F401
except ImportError:
    # Debian's python3-protobuf belongs to /usr/bin/python3; another python3
    # found first on PATH (a virtualenv, pyenv) may lack it.
    if sys.executable != '/usr/bin/python3' and os.path.exists('/usr/bin/python3'):
        os.execv('/usr/bin/python3', ['/usr/bin/python3'] + sys.argv)
    print('FAIL: python3-protobuf is not installed (Debian: python3-protobuf)', file=sys.stderr)
    sys.exit(99)

import shutil
import signal
import subprocess
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
top_builddir = os.environ.get('top_builddir', os.getcwd())
sys.path.insert(0, os.path.join(top_builddir, 'tests', 'interop'))
sys.path.insert(0, here)

import ttrpc_client  # noqa: E402
import virtmgr_pb2  # noqa: E402

SERVICE = 'virtmgr.v1.VirtualizationService'
UNIMPLEMENTED = 12
INVALID_ARGUMENT = 3
NOT_FOUND = 5
# A hang guard for the daemon's start, not a performance expectation.
START_LIMIT = 60.0

failures = []


def check(cond, what):
    if cond:
        print('ok: %s' % what)
    else:
        print('FAIL: %s' % what)
        failures.append(what)


def start_daemon(tmp):
    daemon = os.path.join(top_builddir, 'server', 'virtmgrd')
    if not os.access(daemon, os.X_OK):
        print('FAIL: %s is not built' % daemon, file=sys.stderr)
        sys.exit(99)
    sock = os.path.join(tmp, 'virtmgrd.sock')
    log = open(os.path.join(tmp, 'virtmgrd.log'), 'w')
    proc = subprocess.Popen([daemon, '--socket', sock, '--run-dir', os.path.join(tmp, 'run')],
                            stdout=log, stderr=subprocess.STDOUT)
    start = time.monotonic()
    while not os.path.exists(sock):
        if proc.poll() is not None:
            print(open(log.name).read(), file=sys.stderr)
            print('FAIL: virtmgrd exited with %d before listening' % proc.returncode, file=sys.stderr)
            sys.exit(1)
        if time.monotonic() - start > START_LIMIT:
            proc.kill()
            print('FAIL: virtmgrd did not create %s' % sock, file=sys.stderr)
            sys.exit(1)
        time.sleep(0.05)
    return proc, sock, log


def main():
    tmp = tempfile.mkdtemp(prefix='virtmgr-interop-')
    proc = None
    try:
        proc, sock, _log = start_daemon(tmp)
        with ttrpc_client.Client(sock, timeout=120) as c:
            info = c.call(SERVICE, 'GetDaemonInfo', virtmgr_pb2.GetDaemonInfoRequest(),
                          virtmgr_pb2.DaemonInfo)
            print(info)
            check(info.version != '', 'version is set (%r)' % info.version)
            check(info.mode == 'regular', 'mode is regular')
            check(info.hypervisor in ('kvm', 'tcg'), 'hypervisor is kvm or tcg')
            check(info.hypervisor_reason != '', 'hypervisor_reason says why')
            check(info.vsock_mode in ('kernel', 'user'), 'vsock_mode is kernel or user')
            check(0 < info.cid_min <= info.cid_max, 'CID range %d..%d' % (info.cid_min, info.cid_max))
            check(info.cid_min >= 3, 'CID range avoids the reserved CIDs 0..2')
            check(info.pid == proc.pid, 'pid is the daemon we started')
            check(os.path.realpath(info.run_dir) == os.path.realpath(os.path.join(tmp, 'run')),
                  'run_dir is --run-dir')
            check(info.vm_count == 0, 'no VMs yet')
            check(info.connection_count >= 1, 'counts this connection')
            check(len(info.features) > 0, 'advertises features')

            for f in info.features:
                r = c.call(SERVICE, 'IsFeatureEnabled', virtmgr_pb2.IsFeatureEnabledRequest(feature=f),
                           virtmgr_pb2.IsFeatureEnabledResponse)
                check(r.enabled, 'IsFeatureEnabled(%s) is true' % f)
            r = c.call(SERVICE, 'IsFeatureEnabled',
                       virtmgr_pb2.IsFeatureEnabledRequest(feature='no-such-feature'),
                       virtmgr_pb2.IsFeatureEnabledResponse)
            check(not r.enabled, 'IsFeatureEnabled(no-such-feature) is false')

            ids = set()
            for _ in range(3):
                r = c.call(SERVICE, 'AllocateInstanceId', virtmgr_pb2.AllocateInstanceIdRequest(),
                           virtmgr_pb2.AllocateInstanceIdResponse)
                check(len(r.instance_id) == 64, 'AllocateInstanceId gives 64 bytes')
                ids.add(r.instance_id)
            check(len(ids) == 3, 'instance ids are unique')

            for service, method in ((SERVICE, 'NoSuchMethod'), ('no.such.Service', 'GetDaemonInfo')):
                try:
                    c.call_raw(service, method, b'')
                    check(False, '%s/%s fails' % (service, method))
                except ttrpc_client.TtrpcError as e:
                    check(e.code == UNIMPLEMENTED, '%s/%s -> UNIMPLEMENTED (%s)' % (service, method, e))
                    check(method in e.message or service in e.message, 'the error names what is missing')

            try:
                c.call_raw(SERVICE, 'GetVmInfo', b'\xff\xff\xff')
                check(False, 'garbage payload fails')
            except ttrpc_client.TtrpcError as e:
                check(e.code == INVALID_ARGUMENT, 'garbage payload -> INVALID_ARGUMENT (%s)' % e)

            # a server stream (ttrpc 1.2) for a VM that does not exist ends with NOT_FOUND
            sid = c.open_stream(SERVICE, 'WatchVm', virtmgr_pb2.WatchVmRequest(vm='no-such-vm').SerializeToString(),
                                ttrpc_client.FLAG_REMOTE_CLOSED)
            try:
                c.recv_stream(sid)
                check(False, 'WatchVm of a missing VM fails')
            except ttrpc_client.TtrpcError as e:
                check(e.code == NOT_FOUND, 'WatchVm stream of a missing VM -> NOT_FOUND (%s)' % e)

            # the connection survived all of the above
            again = c.call(SERVICE, 'GetDaemonInfo', virtmgr_pb2.GetDaemonInfoRequest(),
                           virtmgr_pb2.DaemonInfo)
            check(again.pid == info.pid, 'the connection still works after errors')
            check(c.next_id == 1 + 2 * (10 + len(info.features)), 'stream ids are odd and increasing')
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print('%d check(s) failed' % len(failures))
        return 1
    print('all checks passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
