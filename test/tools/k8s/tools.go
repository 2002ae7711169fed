//go:build tools

// Package tools pins the Kubernetes control-plane binaries (kube-apiserver,
// kube-controller-manager, kube-scheduler, kubectl) that etcd-ts's
// kube-apiserver integration test runs. It is never compiled into anything;
// the blank imports only keep the requirements in go.mod when running
// `go mod tidy`. test/tools/k8s.sh builds the commands.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
