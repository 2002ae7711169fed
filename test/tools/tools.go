//go:build tools

// Package tools pins the reference etcd binaries used by etcd-ts's
// integration tests. It is never compiled into anything; the blank imports
// only keep the requirements in go.mod when running `go mod tidy`.
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/etcdutl/v3"
	_ "go.etcd.io/etcd/server/v3"
	_ "go.etcd.io/etcd/v3/tools/benchmark"
)
