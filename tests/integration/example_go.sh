#!/bin/bash
# example_go.sh - examples/go/main.go, a client built on stock containerd
# ttrpc (Debian's golang-github-containerd-ttrpc-dev, GOPATH mode, no
# network), against a real virtmgrd on a temp socket: the message types are
# generated with protoc-gen-gogo from protos/virtmgr.proto into the build
# tree, the program creates, starts and waits for a real TCG guest and
# checks its payload's exit code. A daemon error comes back as a ttrpc status.
set -euo pipefail
source "$top_srcdir/tests/integration/lib.sh"

for tool in go protoc protoc-gen-gogo; do
	command -v "$tool" >/dev/null ||
		fail "$tool is not installed (Debian: golang-go, protobuf-compiler, gogoprotobuf)"
done
[[ -d /usr/share/gocode/src/github.com/containerd/ttrpc ]] ||
	fail "containerd ttrpc sources missing (Debian: golang-github-containerd-ttrpc-dev)"

gobuild=$top_builddir/examples/go
mkdir -p "$gobuild/gopath/src/virtmgr.example/v1pb" "$gobuild/cache"
protoc -I"$top_srcdir/protos" --gogo_out="$gobuild/gopath/src/virtmgr.example/v1pb" virtmgr.proto ||
	fail "protoc --gogo_out"
export GO111MODULE=off GOPATH=$gobuild/gopath:/usr/share/gocode GOCACHE=$gobuild/cache GOFLAGS= GOPROXY=off
go build -o "$gobuild/virtmgr-go-example" "$top_srcdir/examples/go/main.go" || fail "go build"
ok "built against containerd ttrpc"

start_daemon
"$gobuild/virtmgr-go-example" -socket "$SOCK" -name go-example -code 42 >"$T/out" 2>&1 ||
	fail "the Go example failed: $(cat "$T/out")"
grep -q '^created .* (go-example), CID [0-9]*, VM_STATE_NOT_STARTED$' "$T/out" || fail "no 'created' line: $(cat "$T/out")"
grep -q 'payload exit code 42$' "$T/out" || fail "no exit code 42: $(cat "$T/out")"
ok "create, start, wait, exit code 42 from a real guest through containerd ttrpc"

rc=0
"$gobuild/virtmgr-go-example" -socket "$SOCK" -name '.bad' >"$T/out2" 2>&1 || rc=$?
[[ $rc == 1 ]] && grep -q 'InvalidArgument' "$T/out2" || fail "invalid name: exit $rc: $(cat "$T/out2")"
ok "a daemon error arrives as a ttrpc status ($(cat "$T/out2"))"
