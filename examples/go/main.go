// Command virtmgr-go-example is a virtmgr client written against stock
// containerd ttrpc (github.com/containerd/ttrpc, Debian's
// golang-github-containerd-ttrpc-dev): it proves that virtmgrd speaks ttrpc
// as containerd's own implementation does.
//
// The message types are generated from the installed virtmgr.proto with
// protoc-gen-gogo (gogoprotobuf), the codec containerd ttrpc 1.1 uses:
//
//	protoc -I /usr/share/virtmgr/protos --gogo_out=$GOPATH/src/virtmgr.example/v1pb virtmgr.proto
//
// It prints the daemon's version, creates a VM whose payload exits with
// -code, starts it, waits for it to be DEAD and prints the payload's exit
// code. Exit status: 0 when the guest reported -code, 1 otherwise.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/containerd/ttrpc"
	pb "virtmgr.example/v1pb"
)

const service = "virtmgr.v1.VirtualizationService"

type client struct {
	tc *ttrpc.Client
}

func dial(path string) (*client, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	return &client{tc: ttrpc.NewClient(conn)}, nil
}

func (c *client) call(ctx context.Context, method string, req, resp interface{}) error {
	return c.tc.Call(ctx, service, method, req, resp)
}

func run() error {
	sock := os.Getenv("VIRTMGR_SOCKET")
	if sock == "" {
		sock = "/run/virtmgr/virtmgrd.sock"
	}
	flag.StringVar(&sock, "socket", sock, "virtmgrd's socket")
	name := flag.String("name", "go-example", "VM name")
	code := flag.Int("code", 42, "exit code of the payload")
	flag.Parse()

	ctx := context.Background()
	c, err := dial(sock)
	if err != nil {
		return err
	}
	defer c.tc.Close()

	var info pb.DaemonInfo
	if err := c.call(ctx, "GetDaemonInfo", &pb.GetDaemonInfoRequest{}, &info); err != nil {
		return err
	}
	fmt.Printf("virtmgrd %s, hypervisor %s\n", info.Version, info.Hypervisor)

	var created pb.CreateVmResponse
	cfg := &pb.VmConfig{
		Name:        *name,
		PayloadArgs: []string{"/bin/sh", "-c", fmt.Sprintf("exit %d", *code)},
	}
	if err := c.call(ctx, "CreateVm", &pb.CreateVmRequest{Config: cfg}, &created); err != nil {
		return err
	}
	vm := created.Vm
	fmt.Printf("created %s (%s), CID %d, %s\n", vm.Id, vm.Name, vm.Cid, vm.State)

	var started pb.VmInfoResponse
	if err := c.call(ctx, "StartVm", &pb.VmRef{Vm: vm.Id}, &started); err != nil {
		return err
	}
	fmt.Printf("started: %s\n", started.Vm.State)

	var done pb.WaitVmResponse
	req := &pb.WaitVmRequest{Vm: vm.Id, State: pb.VmState_VM_STATE_DEAD}
	if err := c.call(ctx, "WaitVm", req, &done); err != nil {
		return err
	}
	vm = done.Vm
	exit := "none"
	if vm.HasExitCode {
		exit = fmt.Sprint(vm.ExitCode)
	}
	fmt.Printf("%s: %s, death reason %s, payload exit code %s\n", vm.Id, vm.State, vm.DeathReason, exit)
	if !vm.HasExitCode || int(vm.ExitCode) != *code {
		return errors.New("the payload did not report the expected exit code")
	}
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "virtmgr-go-example: %v\n", err)
		os.Exit(1)
	}
}
