#!/usr/bin/env bash
# A real single-node Kubernetes on this machine for `make cluster-test`:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd,
# a kubelet and kube-proxy, built from Go modules by scripts/cluster-build.sh,
# with a CNI bridge whose addresses exist only on this machine.
#
#   scripts/cluster.sh free        exit 1 if a cluster is up or a run was interrupted (its
#                                  state is there): not a new run's to tear down
#   scripts/cluster.sh up          build or reuse the binaries, start everything, import the images
#   scripts/cluster.sh down        stop everything of the run and remove what it made (idempotent)
#   scripts/cluster.sh leftovers   list what a run left (processes, mounts, netns, links,
#                                  iptables rules); exit 1 if anything
#   scripts/cluster.sh import IMAGE...   podman save | ctr import into the cluster's containerd
#   scripts/cluster.sh kubectl ARGS...   kubectl with the run's admin kubeconfig
#   scripts/cluster.sh env-file    print the path of the run's cluster.env (what `up` wrote)
#
# Everything lives in $CLUSTER_RUN (state, PKI, logs; deleted by `down`, the logs
# kept in $CLUSTER_CACHE/logs). `up` prints each step's time; a failed `up`
# leaves the run for `down`, which the caller always runs (make cluster-test's
# finally, or by hand after an interrupted run).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER_CACHE=${CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sahara-api-deploy/cluster}
BIN=$CLUSTER_CACHE/bin
# On disk, not /run's tmpfs: containerd unpacks the images here.
RUN=${CLUSTER_RUN:-/var/lib/sahara-api-cluster}
PKI=$RUN/pki
KC=$RUN/kubeconfig
SOCK=$RUN/containerd/containerd.sock
K8S_VERSION=$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$ROOT/tools/k8s/go.mod")

# Addresses: pods and Services live only inside this machine. Neither may
# overlap podman's network (10.88.0.0/16) or anything on `ip route`; `up` checks.
POD_CIDR=${CLUSTER_POD_CIDR:-10.244.0.0/24}
SERVICE_CIDR=${CLUSTER_SERVICE_CIDR:-10.96.0.0/24}
GATEWAY=${POD_CIDR%.*}.1        # the bridge's address: the node's IP and where pods reach the stack
BRIDGE=sahara-k8s0
NODE=$(hostname | tr '[:upper:]' '[:lower:]')
# Non-default ports for etcd and the API server, so another etcd/cluster on
# the default ones does not collide; the others bind 127.0.0.1 or the bridge.
ETCD_PORT=12379
ETCD_PEER_PORT=12380
APISERVER_PORT=16443
COMMENT=sahara-api-cluster      # tags the iptables rules this script adds itself
PAUSE_IMAGE=localhost/sahara-pause:3.10
# Sysctls the kubelet, kube-proxy or the CNI bridge plugin may change; `down` puts them back.
SYSCTLS=(net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
    net.bridge.bridge-nf-call-ip6tables kernel.panic kernel.panic_on_oops vm.overcommit_memory
    vm.panic_on_oom kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
APT_PACKAGES=(containerd runc containernetworking-plugins iptables conntrack socat podman buildah)
# Debian installs the CNI plugins here (containernetworking-plugins).
CNI_BIN=/usr/lib/cni

say() { printf '[cluster] %s\n' "$*"; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

now() { date +%s.%N; }
# step NAME FUNCTION: run it and print its time (make cluster-test's step lines).
step() {
    local t0 name=$1
    shift
    t0=$(now)
    "$@"
    printf '[cluster] step %-22s %6.1f s\n' "$name" "$(awk -v a="$t0" -v b="$(now)" 'BEGIN {print b - a}')"
}

# wait_until SECONDS WHAT CMD...: poll CMD every 0.2 s.
wait_until() {
    local limit=$1 deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what not ready within $limit s (logs: $RUN/logs/)"
        sleep 0.2
    done
}

kctl() { "$BIN/kubectl" --kubeconfig "$KC/super-admin.conf" "$@"; }
ctr_() { ctr --address "$SOCK" --namespace k8s.io "$@"; }

# start NAME CMD...: in a session of its own, its pid in $RUN/pids (down stops it).
start() {
    local name=$1
    shift
    setsid "$@" >"$RUN/logs/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/pids/$name"
}

# ---------------------------------------------------------------- up

check_networks() {
    python3 - "$POD_CIDR" "$SERVICE_CIDR" <<'PY'
import ipaddress, subprocess, sys
mine = [ipaddress.ip_network(n) for n in sys.argv[1:]]
taken = {"podman": ipaddress.ip_network("10.88.0.0/16")}
for line in subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout.splitlines():
    dest = line.split()[0] if line.split()[0] not in ("local", "broadcast", "unreachable") else line.split()[1]
    if dest != "default":
        try:
            taken[line] = ipaddress.ip_network(dest, strict=False)
        except ValueError:
            pass
for net in mine:
    for what, other in taken.items():
        if net.overlaps(other):
            sys.exit(f"{net} overlaps {other} ({what}): set CLUSTER_POD_CIDR / CLUSTER_SERVICE_CIDR")
PY
    local port
    for port in $ETCD_PORT $ETCD_PEER_PORT 10248 10249 10256 10257 10259; do
        ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "port $port is taken on 127.0.0.1 (ss -ltnp)"
    done
}

packages() {
    "$ROOT/scripts/stack.sh" packages "${APT_PACKAGES[@]}"
    # The Debian package may start its own containerd (where there is an init
    # system); ours runs on its own socket and state, so it does not matter.
    ctr --version >/dev/null
    local plugin
    for plugin in bridge host-local loopback; do
        [ -x "$CNI_BIN/$plugin" ] || die "CNI plugin $plugin not in $CNI_BIN (dpkg -L containernetworking-plugins)"
    done
}

build() { "$ROOT/scripts/cluster-build.sh"; }

# The host side: record what `down` must put back, make the bridge (so the
# stack's relays can bind its address before the first pod), and the
# kubelet's needs (rshared /, /dev/kmsg).
host_prepare() {
    [ ! -e "$RUN/pids" ] || die "$RUN exists: a run is up or was interrupted; scripts/cluster.sh down first"
    mkdir -p "$RUN"/{logs,pids,cni/net.d,cni/ipam,containerd,kubelet} "$PKI" "$KC"
    local s
    for s in "${SYSCTLS[@]}"; do
        [ -e "/proc/sys/${s//.//}" ] && echo "$s=$(sysctl -n "$s")"
    done >"$RUN/sysctl.before"
    findmnt -no PROPAGATION / >"$RUN/root-propagation.before"
    [ -d /run/netns ] && echo yes >"$RUN/run-netns.existed"
    [ -d /run/containerd ] && echo yes >"$RUN/run-containerd.existed"
    ip link add "$BRIDGE" type bridge
    ip addr add "$GATEWAY/${POD_CIDR#*/}" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    # Nothing from the pods is routed off this machine (the bridge plugin turns
    # ip_forward on): mangle runs before kube-proxy's filter rules.
    iptables -t mangle -I FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -m comment --comment "$COMMENT" -j DROP
    # A Docker daemon sets FORWARD's policy to DROP: allow this bridge only.
    if iptables -S FORWARD | grep -qx -- '-P FORWARD DROP'; then
        iptables -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "$COMMENT" -j ACCEPT
    fi
    if [ "$(cat "$RUN/root-propagation.before")" != shared ]; then
        mount --make-rshared /   # the kubelet's volume mounts must propagate into containers
    fi
    [ -e /dev/kmsg ] || die "/dev/kmsg is missing: the kubelet's OOM watcher reads it"
}

pki() {
    cat >"$RUN/kubeadm.yaml" <<EOF
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: $GATEWAY
  bindPort: $APISERVER_PORT
nodeRegistration:
  name: $NODE
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: $K8S_VERSION
certificatesDir: $PKI
# The API server listens on the bridge's address only (kubeadm's kubeconfigs
# for the controllers name the advertise address).
controlPlaneEndpoint: $GATEWAY:$APISERVER_PORT
networking:
  serviceSubnet: $SERVICE_CIDR
  podSubnet: $POD_CIDR
apiServer:
  certSANs: [127.0.0.1, $GATEWAY]
EOF
    "$BIN/kubeadm" init phase certs all --config "$RUN/kubeadm.yaml" >"$RUN/logs/kubeadm.log" 2>&1
    "$BIN/kubeadm" init phase kubeconfig all --config "$RUN/kubeadm.yaml" --kubeconfig-dir "$KC" \
        >>"$RUN/logs/kubeadm.log" 2>&1
}

start_etcd() {
    # Plain HTTP on loopback: only the API server talks to it.
    start etcd "$BIN/etcd" --name "$NODE" --data-dir "$RUN/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "$NODE=http://127.0.0.1:$ETCD_PEER_PORT"
    wait_until 30 etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
    # --advertise-address, --bind-address: the bridge's address, on this
    # machine only (the kubernetes Service's endpoint too).
    # --kubelet-preferred-address-types: logs/exec/port-forward go to the node IP.
    start kube-apiserver "$BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
        --bind-address "$GATEWAY" --secure-port "$APISERVER_PORT" --advertise-address "$GATEWAY" \
        --service-cluster-ip-range "$SERVICE_CIDR" \
        --client-ca-file "$PKI/ca.crt" \
        --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
        --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
        --kubelet-preferred-address-types InternalIP \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
        --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
        --profiling=false
    wait_until 90 kube-apiserver kctl get --raw /readyz
}

start_controllers() {
    # --leader-elect=false: one of each; --use-service-account-credentials: each
    # controller with its own RBAC role, as kubeadm runs it.
    start kube-controller-manager "$BIN/kube-controller-manager" \
        --kubeconfig "$KC/controller-manager.conf" \
        --authentication-kubeconfig "$KC/controller-manager.conf" \
        --authorization-kubeconfig "$KC/controller-manager.conf" \
        --bind-address 127.0.0.1 --leader-elect=false \
        --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
        --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
        --use-service-account-credentials --service-cluster-ip-range "$SERVICE_CIDR" \
        --profiling=false
    start kube-scheduler "$BIN/kube-scheduler" \
        --kubeconfig "$KC/scheduler.conf" \
        --authentication-kubeconfig "$KC/scheduler.conf" --authorization-kubeconfig "$KC/scheduler.conf" \
        --bind-address 127.0.0.1 --leader-elect=false --profiling=false
    # The default ServiceAccount exists once the controllers run: pods need it.
    wait_until 60 "kube-controller-manager (default ServiceAccount)" kctl get serviceaccount default
}

start_containerd() {
    cat >"$RUN/containerd/config.toml" <<EOF
version = 2
# All state of the run under $RUN, its own socket: never the host's containerd.
root = "$RUN/containerd/root"
state = "$RUN/containerd/state"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$RUN/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  # No registry: the pause image is built here and imported.
  sandbox_image = "$PAUSE_IMAGE"
  # Root here lacks CAP_SYS_RESOURCE: runc cannot set the sandbox's
  # oom_score_adj -998 ("can't get final child's PID from pipe: EOF"); keep
  # every container's at or above containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # The kubelet's cgroupDriver: cgroupfs (no systemd here).
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$RUN/cni/net.d"
EOF
    cat >"$RUN/cni/net.d/10-sahara.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "sahara-k8s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$GATEWAY"}]],
        "dataDir": "$RUN/cni/ipam"
      }
    }
  ]
}
EOF
    start containerd containerd --config "$RUN/containerd/config.toml"
    wait_until 30 containerd ctr_ version
    ctr_ plugins ls | awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" && $NF == "ok" {ok = 1} END {exit !ok}' ||
        die "containerd's CRI plugin is not ok: $(ctr_ plugins ls | grep cri)"
}

# The pause image: tools/k8s/pause's static binary in an image FROM scratch.
pause_image() {
    if ! podman image exists "$PAUSE_IMAGE"; then
        local dir
        dir=$(mktemp -d)
        cp "$BIN/pause" "$dir/pause"
        printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >"$dir/Containerfile"
        podman build -q --pull=never -t "$PAUSE_IMAGE" "$dir" >/dev/null
        rm -rf "$dir"
    fi
    import "$PAUSE_IMAGE"
}

start_kubelet() {
    cat >"$RUN/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Its API on the bridge address only (the API server's logs, exec, port-forward).
address: $GATEWAY
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
# Only the API server's client certificate gets past authentication.
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$SOCK
# This VM: cgroup v1 (hybrid), no systemd, swap allowed.
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
# No cluster DNS in this cluster: the chart is given addresses.
resolvConf: /etc/resolv.conf
# The images are imported, never pulled again: keep them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# A shared machine's disk: evict only when really short.
evictionHard: {nodefs.available: 2%, imagefs.available: 2%, memory.available: 100Mi}
rotateCertificates: false
EOF
    start kubelet "$BIN/kubelet" --config "$RUN/kubelet.yaml" --kubeconfig "$KC/kubelet.conf" \
        --root-dir "$RUN/kubelet" --cert-dir "$RUN/kubelet/pki" \
        --node-ip "$GATEWAY" --hostname-override "$NODE"
    wait_until 120 "kubelet (node Ready)" kctl wait --for=condition=Ready "node/$NODE" --timeout=2s
}

start_kube_proxy() {
    cat >"$RUN/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $KC/super-admin.conf}
hostnameOverride: $NODE
mode: iptables
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# NodePorts only on the bridge address, never on the machine's own interfaces;
# no route_localnet change for NodePorts on 127.0.0.1.
nodePortAddresses: [$GATEWAY/32]
iptables: {localhostNodePorts: false}
# Leave the machine's conntrack settings alone (a VM's /proc/sys is read-only there).
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
    start kube-proxy "$BIN/kube-proxy" --config "$RUN/kube-proxy.yaml"
    wait_until 60 kube-proxy curl -sf http://127.0.0.1:10256/healthz
}

# import IMAGE...: from podman's storage into the cluster's containerd (no registry).
import() {
    local image
    for image in "$@"; do
        podman save --format docker-archive "$image" | ctr_ images import - >>"$RUN/logs/import.log"
    done
}

project_image() {
    local version
    version=$(sed -n 's/^sahara==//p' "$ROOT/requirements/runtime.txt")
    podman image exists "localhost/sahara-api:$version" || die "no image localhost/sahara-api:$version: make image"
    import "localhost/sahara-api:$version"
}

write_env() {
    cat >"$RUN/cluster.env" <<EOF
KUBECONFIG=$KC/super-admin.conf
CLUSTER_BIN=$BIN
CLUSTER_GATEWAY=$GATEWAY
CLUSTER_POD_CIDR=$POD_CIDR
CLUSTER_SERVICE_CIDR=$SERVICE_CIDR
CLUSTER_NODE=$NODE
CLUSTER_K8S_VERSION=$K8S_VERSION
CLUSTER_CONTAINERD=$SOCK
EOF
}

up() {
    local t0=$SECONDS
    [ "$(id -u)" -eq 0 ] || die "needs root (a kubelet, containerd, mounts, iptables)"
    step packages packages
    step build build
    check_networks
    step host host_prepare
    step pki pki
    step etcd start_etcd
    step kube-apiserver start_apiserver
    step controllers+scheduler start_controllers
    step containerd start_containerd
    step pause-image pause_image
    step kubelet start_kubelet
    step kube-proxy start_kube_proxy
    step image-import project_image
    write_env
    say "up in $((SECONDS - t0)) s: KUBECONFIG=$KC/super-admin.conf ($RUN/cluster.env)"
}

# ---------------------------------------------------------------- down

stop_pid() {  # stop_pid NAME [SECONDS]: TERM, then KILL after SECONDS (default 20)
    local file=$RUN/pids/$1 pid i
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if kill -TERM "$pid" 2>/dev/null; then
        for ((i = 0; i < ${2:-20} * 5; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

# Every pod away through the kubelet, so it tears down each sandbox's network (CNI DEL).
delete_pods() {
    [ -f "$RUN/pids/kube-apiserver" ] && [ -f "$RUN/pids/kubelet" ] || return 0
    kctl get --raw /readyz >/dev/null 2>&1 || return 0
    kctl delete pods --all --all-namespaces --grace-period=2 --wait=false >/dev/null 2>&1 || true
    local i
    for ((i = 0; i < 300; i++)); do
        [ -z "$(ctr_ tasks ls -q 2>/dev/null)" ] && [ -z "$(kctl get pods -A -o name 2>/dev/null)" ] && return 0
        sleep 0.2
    done
    say "pods still there after 60 s: removing them through containerd"
}

# What the kubelet did not remove: tasks, containers, their shims.
containerd_leftovers() {
    if [ -S "$SOCK" ]; then
        local id
        for id in $(ctr_ tasks ls -q 2>/dev/null); do
            ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
        done
        sleep 0.5
        for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks rm -f "$id" >/dev/null 2>&1 || true; done
        for id in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers rm "$id" >/dev/null 2>&1 || true; done
    fi
}

# Processes still attached to this run: shims (their command line names our
# socket) and any process still in a k8s.io cgroup of the run.
kill_run_processes() {
    local pid cg
    for pid in $(pgrep -f -- "-address $SOCK" || true); do kill -KILL "$pid" 2>/dev/null || true; done
    for cg in /sys/fs/cgroup/*/k8s.io; do
        [ -d "$cg" ] || continue
        find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do
            kill -KILL "$pid" 2>/dev/null || true
        done
    done
    sleep 0.3
    for cg in /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/unified/k8s.io; do
        if [ -d "$cg" ]; then find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
    done
}

unmount_run() {
    local m
    # Deepest first; lazily if busy.
    for m in $(findmnt -rn -o TARGET | grep -E "^($RUN|/run/containerd|/run/netns/cni-)" | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    local ns
    for ns in /run/netns/cni-*; do
        [ -e "$ns" ] || continue
        ip netns delete "$(basename "$ns")" 2>/dev/null || rm -f "$ns"
    done
    [ -f "$RUN/run-netns.existed" ] || rmdir /run/netns 2>/dev/null || true
    if [ ! -f "$RUN/run-containerd.existed" ] && [ -d /run/containerd ]; then
        findmnt -rn -o TARGET | grep -q '^/run/containerd' || rm -rf /run/containerd
    fi
}

# iptables: kube-proxy's own cleanup, then any KUBE-* chain left (the kubelet's
# too) and this script's tagged rules, in every table, IPv4 and IPv6. Not
# CNI-* chains: the run's bridge config makes none (no ipMasq, no portmap),
# and podman's CNI network keeps its own there.
clean_iptables() {
    if [ -x "$BIN/kube-proxy" ]; then "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
    local ipt table rule chain
    for ipt in iptables ip6tables; do
        command -v "$ipt" >/dev/null || continue
        for table in filter nat mangle raw; do
            "$ipt" -t "$table" -S >/dev/null 2>&1 || continue
            # Rules that jump to our chains or carry our comment, in built-in chains first.
            { "$ipt" -t "$table" -S | grep -E -- "^-A .*(-j KUBE-|--comment \"?$COMMENT)" || true; } |
                while read -r rule; do
                    # shellcheck disable=SC2086  # the rule's words, as iptables -S printed them
                    eval "$ipt -t $table ${rule/-A/-D}" 2>/dev/null || true
                done
            for chain in $("$ipt" -t "$table" -S | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
                "$ipt" -t "$table" -F "$chain" 2>/dev/null || true
            done
            for chain in $("$ipt" -t "$table" -S | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
                "$ipt" -t "$table" -X "$chain" 2>/dev/null || true
            done
        done
    done
}

restore_host() {
    ip link delete "$BRIDGE" 2>/dev/null || true
    local line
    if [ -f "$RUN/sysctl.before" ]; then
        while read -r line; do sysctl -q -w "$line" >/dev/null 2>&1 || true; done <"$RUN/sysctl.before"
    fi
    if [ -f "$RUN/root-propagation.before" ] && [ "$(cat "$RUN/root-propagation.before")" = private ]; then
        mount --make-rprivate /
    fi
}

down() {
    [ -d "$RUN" ] || { say "nothing to stop ($RUN absent)"; return 0; }
    local t0=$SECONDS
    step delete-pods delete_pods
    step stop-kube-proxy stop_pid kube-proxy
    step stop-kubelet stop_pid kubelet
    step containerd-leftovers containerd_leftovers
    step stop-containerd stop_pid containerd
    step kill-run-processes kill_run_processes
    step stop-scheduler stop_pid kube-scheduler
    step stop-controllers stop_pid kube-controller-manager
    step stop-kube-apiserver stop_pid kube-apiserver
    step stop-etcd stop_pid etcd
    step unmount unmount_run
    step iptables clean_iptables
    step restore-host restore_host
    mkdir -p "$CLUSTER_CACHE/logs"
    rm -rf "$CLUSTER_CACHE/logs/last"
    cp -r "$RUN/logs" "$CLUSTER_CACHE/logs/last" 2>/dev/null || true
    rm -rf "$RUN"
    say "down in $((SECONDS - t0)) s (logs kept in $CLUSTER_CACHE/logs/last)"
}

# What a run may leave; exit 1 and name it if anything is there.
leftovers() {
    local found=0 out
    out=$(pgrep -af "$BIN/|containerd|etcd" | grep -v -e pgrep -e "cluster.sh" || true)
    [ -z "$out" ] || { echo "processes:"; echo "$out"; found=1; }
    out=$(findmnt -rn -o TARGET | grep -E "^($RUN|/run/containerd|/run/netns/cni-)" || true)
    [ -z "$out" ] || { echo "mounts:"; echo "$out"; found=1; }
    out=$(ip netns list 2>/dev/null | grep '^cni-' || true)
    [ -z "$out" ] || { echo "netns:"; echo "$out"; found=1; }
    # The bridge, a port of it, or a veth on no bridge (its bridge gone);
    # podman's veths on its own bridge are not the run's.
    out=$({ ip -o link show dev "$BRIDGE" 2>/dev/null; ip -o link show type veth | grep -v ' master '; } || true)
    [ -z "$out" ] || { echo "links:"; echo "$out"; found=1; }
    out=$({ iptables-save; ip6tables-save; } 2>/dev/null | grep -E "KUBE-|$COMMENT|$BRIDGE" || true)
    [ -z "$out" ] || { echo "iptables:"; echo "$out" | head -20; found=1; }
    [ ! -e "$RUN" ] || { echo "state: $RUN"; found=1; }
    [ "$found" -eq 0 ] && say "nothing left of the run" && return 0
    return 1
}

free() {
    [ ! -e "$RUN" ] || die "$RUN exists: a cluster is up or a run was interrupted; scripts/cluster.sh down first"
}

case "${1:-}" in
    free) free ;;
    up) up ;;
    down) down ;;
    leftovers) leftovers ;;
    import) shift && import "$@" ;;
    kubectl) shift && kctl "$@" ;;
    env-file) echo "$RUN/cluster.env" ;;
    *) die "usage: $0 free|up|down|leftovers|import IMAGE...|kubectl ARGS...|env-file" ;;
esac
