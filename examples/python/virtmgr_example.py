#!/usr/bin/env python3
"""virtmgr_example.py - a virtmgr client in Python, with nothing but the
standard library and python3-protobuf.

The message classes come from protoc's Python output for the installed
protos ($(pkgdatadir)/protos/{ttrpc,virtmgr}.proto):

    protoc -I /usr/share/virtmgr --python_out=OUT protos/ttrpc.proto protos/virtmgr.proto

and OUT must be on PYTHONPATH (it holds protos/ttrpc_pb2.py and
protos/virtmgr_pb2.py). The ttrpc framing (docs/protocol.md) is a 10-byte
header: length and stream id as big-endian u32, then type and flags bytes.
A unary call is one Request frame and one Response frame on an odd stream id.

As a program it creates a VM running `sh -c 'exit CODE'` in the default
guest, starts it, waits for it to finish and prints the payload's exit code:

    virtmgr_example.py [--socket PATH] [--name NAME] [--code N]

Exit status: 0 when the guest reported exit code N, 1 otherwise.
"""
import argparse
import os
import socket
import struct
import sys

from protos import ttrpc_pb2, virtmgr_pb2

SERVICE = "virtmgr.v1.VirtualizationService"
TYPE_REQUEST, TYPE_RESPONSE, TYPE_DATA = 1, 2, 3
HEADER = struct.Struct(">IIBB")
MAX_FRAME = 4 << 20


class RpcError(Exception):
    """A call that the daemon answered with a non-zero ttrpc status."""

    def __init__(self, code, message):
        super().__init__("%d: %s" % (code, message))
        self.code = code
        self.message = message


class Client:
    """One connection to virtmgrd; unary calls only, one at a time."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.next_stream = 1

    def close(self):
        self.sock.close()

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("virtmgrd closed the connection")
            buf += chunk
        return bytes(buf)

    def call(self, method, request, response_type, timeout_s=0):
        """Send request to VirtualizationService/method, return the reply."""
        stream = self.next_stream
        self.next_stream += 2
        envelope = ttrpc_pb2.Request(service=SERVICE, method=method,
                                     payload=request.SerializeToString(),
                                     timeout_nano=int(timeout_s * 1e9))
        data = envelope.SerializeToString()
        self.sock.sendall(HEADER.pack(len(data), stream, TYPE_REQUEST, 0) + data)
        while True:
            length, sid, ftype, _ = HEADER.unpack(self._recv_exact(HEADER.size))
            if length > MAX_FRAME:
                raise ConnectionError("frame of %d bytes is over the limit" % length)
            body = self._recv_exact(length)
            if sid == stream and ftype == TYPE_RESPONSE:
                break
        resp = ttrpc_pb2.Response()
        resp.ParseFromString(body)
        if resp.status.code:
            raise RpcError(resp.status.code, resp.status.message)
        out = response_type()
        out.ParseFromString(resp.payload)
        return out

    # The calls the example uses.
    def create_vm(self, config):
        return self.call("CreateVm", virtmgr_pb2.CreateVmRequest(config=config),
                         virtmgr_pb2.CreateVmResponse).vm

    def start_vm(self, vm):
        return self.call("StartVm", virtmgr_pb2.VmRef(vm=vm), virtmgr_pb2.VmInfoResponse).vm

    def kill_vm(self, vm):
        return self.call("KillVm", virtmgr_pb2.VmRef(vm=vm), virtmgr_pb2.VmInfoResponse).vm

    def wait_vm(self, vm, state, timeout_ms=0):
        req = virtmgr_pb2.WaitVmRequest(vm=vm, state=state, timeout_ms=timeout_ms)
        return self.call("WaitVm", req, virtmgr_pb2.WaitVmResponse)

    def daemon_info(self):
        return self.call("GetDaemonInfo", virtmgr_pb2.GetDaemonInfoRequest(), virtmgr_pb2.DaemonInfo)


def state_name(value):
    return virtmgr_pb2.VmState.Name(value)


def reason_name(value):
    return virtmgr_pb2.DeathReason.Name(value)


def main(argv):
    ap = argparse.ArgumentParser(description="run a payload in a virtmgr VM")
    ap.add_argument("--socket", default=os.environ.get("VIRTMGR_SOCKET") or "/run/virtmgr/virtmgrd.sock")
    ap.add_argument("--name", default="python-example")
    ap.add_argument("--code", type=int, default=42, help="exit code the payload returns")
    args = ap.parse_args(argv[1:])

    client = Client(args.socket)
    info = client.daemon_info()
    print("virtmgrd %s, hypervisor %s" % (info.version, info.hypervisor))

    config = virtmgr_pb2.VmConfig(name=args.name, memory_mib=256, cpus=1,
                                  payload_args=["/bin/sh", "-c", "exit %d" % args.code])
    vm = client.create_vm(config)
    print("created %s (%s), CID %d, %s" % (vm.id, vm.name, vm.cid, state_name(vm.state)))
    vm = client.start_vm(vm.id)
    print("started: %s" % state_name(vm.state))

    # The VM is owned by this connection: it lives until it finishes or we close.
    done = client.wait_vm(vm.id, virtmgr_pb2.VM_STATE_DEAD)
    vm = done.vm
    print("%s: %s, death reason %s, payload exit code %s" %
          (vm.id, state_name(vm.state), reason_name(vm.death_reason),
           vm.exit_code if vm.has_exit_code else "none"))
    client.close()
    return 0 if vm.has_exit_code and vm.exit_code == args.code else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except RpcError as e:
        sys.exit("virtmgr_example.py: %s" % e)
    except OSError as e:
        sys.exit("virtmgr_example.py: %s" % e)
