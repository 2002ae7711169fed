# etcd-ts: every target installs what it needs, so `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
ETCD_TS_CACHE ?= $(HOME)/.cache/etcd-ts
export ETCD_TS_CACHE
NODE_BIN := node dist/src/bin/etcd-ts.js

.PHONY: all install build run cluster sim test test-unit test-integration tools bench bench-patroni bench-operator lint clean

all: build

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.installed

build: install
	npx tsc -p tsconfig.json

# One member with etcd's defaults (name "default", data dir ./default.etcd), on 127.0.0.1:2379 / 2380.
run: build
	$(NODE_BIN) --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
	  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
	  --initial-cluster default=http://127.0.0.1:2380

# A local 3-member cluster: client ports 2379/2381/2383, peer ports 2380/2382/2384 (Ctrl-C stops it).
cluster: build
	test/tools/cluster.sh

# Reference etcd/etcdctl/etcdutl/benchmark 3.6, built from the Go module proxy and cached;
# PostgreSQL and Patroni for the Patroni integration test and bench/patroni.ts.
tools:
	@test/tools/build.sh >/dev/null
	@test/tools/patroni.sh >/dev/null

# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (Kubernetes 1.37) for the
# kube-apiserver integration test, built from Kubernetes' Go modules and cached (the first build
# takes several minutes).
.PHONY: k8s-tools
k8s-tools:
	@test/tools/k8s.sh >/dev/null
	@# the test kubelet (test/e2e) puts each pod in a network namespace: it needs iproute2's ip
	@command -v ip >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends iproute2; }

# helm v4, promtool and prometheus for the Helm chart tests (lint, template, install into the e2e control
# plane; checking and unit-testing the alert rules; a real Prometheus scraping etcd-ts with the chart's rules
# and dashboard queries), built from their Go modules and cached.
.PHONY: chart-tools chart-lint
chart-tools:
	@test/tools/charts.sh >/dev/null

# Lint the operator's chart with its defaults and with every optional feature on.
chart-lint: chart-tools
	@h="$$(test/tools/charts.sh)/helm"; \
	  "$$h" lint charts/etcd-ts-operator && \
	  "$$h" lint charts/etcd-ts-operator --set metrics.serviceMonitor.enabled=true \
	    --set members.monitor.enabled=true --set prometheusRule.enabled=true --set grafanaDashboard.enabled=true

lint: install
	npx eslint src test bench operator

test: build tools k8s-tools chart-tools lint
	npx jest --ci

test-unit: build
	npx jest --ci test/unit

test-integration: build tools k8s-tools chart-tools
	npx jest --ci test/integration

# The long Raft simulation (make test runs a short one).
SIM_SEEDS ?= 500
sim: install
	SIM_SEEDS=$(SIM_SEEDS) npx jest --ci test/sim

bench: build tools k8s-tools
	bench/run.sh

# Only the Patroni failover comparison, spliced into BENCHMARKS.md (make bench runs it too).
bench-patroni: build tools
	bench/patroni.sh > dist/patroni-bench.md
	node bench/report.js --section patroni dist/patroni-bench.md BENCHMARKS.md

# Only the operator's create and scale times on a real control plane, spliced into BENCHMARKS.md.
bench-operator: build tools k8s-tools
	bench/operator.sh > dist/operator-bench.md
	node bench/report.js --section operator dist/operator-bench.md BENCHMARKS.md

# The CRDs in crds/ and charts/etcd-ts-operator/crds/, generated from the zod schemas in operator/api (a unit
# test fails when they are stale).
.PHONY: crds
crds: build
	node dist/operator/api/generate-crds.js

clean:
	rm -rf dist

# ---- Container image (Dockerfile) and the kind e2e -------------------------------------------------------
# image-stage: the runtime tree the Dockerfile's build stage makes and its runtime stage copies
#   (IMAGE_STAGE=<new or empty dir>; the Dockerfile runs `make image-stage IMAGE_STAGE=/out`).
# image-rootfs: the same tree plus node and its shared libraries as a local root filesystem, cached by a hash
#   of the sources, for running the image's contents without Docker.
# image-test: starts that rootfs the way a container runtime starts the image (test/integration/image.test.ts).
# e2e-kind: the operator end to end on kind, for machines with Docker (test/kind/e2e.sh).
.PHONY: image-stage image-rootfs image-test e2e-kind
IMAGE_STAGE ?=
image-stage:
	@test -n "$(IMAGE_STAGE)" || { echo "make image-stage: set IMAGE_STAGE to a new or empty directory" >&2; exit 2; }
	test/tools/image.sh stage "$(IMAGE_STAGE)"

image-rootfs:
	@test/tools/image.sh rootfs >/dev/null

image-test: install tools image-rootfs
	npx jest --ci test/integration/image.test.ts

e2e-kind:
	test/kind/e2e.sh

# The image test in `make test` / `make test-integration` finds the rootfs built.
test test-integration: image-rootfs
