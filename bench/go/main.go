// Command bench-go-ttrpc is bench/run's baseline from containerd's own ttrpc
// (github.com/containerd/ttrpc, Debian's golang-github-containerd-ttrpc-dev,
// built in GOPATH mode without network): a Go ttrpc server that answers
// virtmgr.v1.VirtualizationService/GetDaemonInfo, and a Go ttrpc client that
// measures calls per second against any server, so virtmgrd and the Go
// server are measured with the same client.
//
//	bench-go-ttrpc -serve SOCK -like DAEMON_SOCK
//	    serve GetDaemonInfo on SOCK with the answer virtmgrd gives on
//	    DAEMON_SOCK (same fields, same size); until killed
//	bench-go-ttrpc -socket SOCK -conns N -duration-ms D
//	    N connections, each one GetDaemonInfo at a time for D ms; prints
//	    "calls/s <n>"
//
// The message types are generated from protos/virtmgr.proto with
// protoc-gen-gogo, the codec containerd ttrpc 1.1 uses (bench/run does it).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/ttrpc"
	pb "virtmgr.bench/v1pb"
)

const service = "virtmgr.v1.VirtualizationService"

func fetchInfo(sock string) (*pb.DaemonInfo, error) {
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	c := ttrpc.NewClient(conn)
	defer c.Close()
	var info pb.DaemonInfo
	err = c.Call(context.Background(), service, "GetDaemonInfo", &pb.GetDaemonInfoRequest{}, &info)
	return &info, err
}

func serve(sock, like string) error {
	info, err := fetchInfo(like)
	if err != nil {
		return fmt.Errorf("GetDaemonInfo from %s: %w", like, err)
	}
	s, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	s.Register(service, map[string]ttrpc.Method{
		"GetDaemonInfo": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req pb.GetDaemonInfoRequest
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			return info, nil
		},
	})
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	return s.Serve(context.Background(), l)
}

func measure(sock string, conns int, d time.Duration) (float64, error) {
	var calls int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	clients := make([]*ttrpc.Client, conns)
	for i := range clients {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return 0, err
		}
		clients[i] = ttrpc.NewClient(conn)
		defer clients[i].Close()
	}
	start := time.Now()
	end := start.Add(d)
	for _, c := range clients {
		wg.Add(1)
		go func(c *ttrpc.Client) {
			defer wg.Done()
			var n int64
			for time.Now().Before(end) {
				var info pb.DaemonInfo
				if err := c.Call(context.Background(), service, "GetDaemonInfo", &pb.GetDaemonInfoRequest{}, &info); err != nil {
					errs <- err
					return
				}
				n++
			}
			atomic.AddInt64(&calls, n)
		}(c)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(calls) / time.Since(start).Seconds(), nil
}

func run() error {
	serveSock := flag.String("serve", "", "serve GetDaemonInfo on this socket")
	like := flag.String("like", "", "virtmgrd socket whose answer is served")
	sock := flag.String("socket", "", "server to measure")
	conns := flag.Int("conns", 1, "connections, one call at a time on each")
	ms := flag.Int("duration-ms", 1000, "measuring time")
	flag.Parse()
	if *serveSock != "" {
		return serve(*serveSock, *like)
	}
	rate, err := measure(*sock, *conns, time.Duration(*ms)*time.Millisecond)
	if err != nil {
		return err
	}
	fmt.Printf("calls/s %.0f\n", rate)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench-go-ttrpc: %v\n", err)
		os.Exit(1)
	}
}
