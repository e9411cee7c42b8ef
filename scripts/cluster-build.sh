#!/usr/bin/env bash
# Build (or reuse) the single-node cluster's binaries for `make cluster-test`:
# Kubernetes from tools/k8s, etcd from tools/etcd, the pause binary. Go's module
# and build caches live outside the work tree (~1-2 GB); the binaries go to
# $CLUSTER_CACHE/bin, keyed by the go.mod/go.sum they came from, so a warm run
# only checks. CGO off: static binaries, no C toolchain in the way.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

K8S_VERSION=$(awk '$1 == "k8s.io/kubernetes" {print $2}' tools/k8s/go.mod)
CLUSTER_CACHE=${CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sahara-api-deploy/cluster}
bin=$CLUSTER_CACHE/bin
stamp=$bin/.built-from
want=$(cat tools/k8s/go.mod tools/k8s/go.sum tools/k8s/pause/main.go tools/etcd/go.mod tools/etcd/go.sum tools/etcd/main.go | sha256sum | cut -c1-16)

if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    echo "[cluster-build] reusing $bin (Kubernetes $K8S_VERSION)"
    exit 0
fi
command -v go >/dev/null || { echo "[cluster-build] go not found: install Go >= 1.24 (these machines have 1.26)" >&2; exit 69; }
mkdir -p "$bin"
export CGO_ENABLED=0
start=$SECONDS
# Helm's kubeVersion checks read the server's version: without these the
# binaries say v0.0.0.
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor
 -X k8s.io/component-base/version.gitTreeState=clean"
(cd tools/k8s && go build -trimpath -ldflags "$ldflags" -o "$bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubeadm \
    k8s.io/kubernetes/cmd/kubectl ./pause)
(cd tools/etcd && go build -trimpath -ldflags "-s -w" -o "$bin/etcd" .)
echo "$want" > "$stamp"
echo "[cluster-build] built Kubernetes $K8S_VERSION and etcd into $bin in $((SECONDS - start)) s"
