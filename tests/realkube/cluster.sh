#!/usr/bin/env bash
# A real single-node Kubernetes v1.20.2 for the project's tests, built from Debian bookworm's
# `kubernetes` source package and run inside one private network + mount namespace.
#
#   cluster.sh build                     build (or find cached) binaries and the pause image
#   cluster.sh start STATE_DIR           start a cluster; STATE_DIR must not exist yet
#   cluster.sh load-image STATE_DIR IMAGE [TAG...]
#   cluster.sh stop STATE_DIR            stop everything started, remove STATE_DIR (idempotent)
#   cluster.sh kubectl STATE_DIR ARGS... kubectl against the cluster, from inside its namespace
#   cluster.sh exec STATE_DIR CMD...     run CMD in the cluster's network namespace
#
# Why it is built the way it is (GOPATH mode, reflect2 swap, openapi-gen, restrict_oom_score_adj,
# the DNS stand-in...) is recorded in REAL-KUBERNETES.md; the comments below say the short why.
set -euo pipefail

SELF=$(readlink -f "$0")
readonly SELF
readonly DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
readonly KUBE_VERSION="v1.20.2"
readonly KUBE_COMMIT="faecb196815e248d3ecfb03c680a4507229c2a56"
readonly CACHE_ROOT="${RCLUSTER_KUBE_CACHE:-/var/cache/rcluster-kube}"
readonly CACHE="$CACHE_ROOT/$DEB_VERSION"
readonly BIN="$CACHE/bin"
readonly STAMPS="$CACHE/stamps"
readonly BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
readonly PAUSE_IMAGE="registry.k8s.io/pause:3.4.1"
readonly NODE_NAME="rcluster-node"
readonly NODE_IP="10.96.255.254"
readonly POD_CIDR="10.244.0.0/24"
readonly SERVICE_CIDR="10.97.0.0/16"
readonly PV_COUNT=12

log() { printf '[cluster.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Runs "$@" as one named step and prints how long it took.
step() {
  local name=$1 started
  shift
  started=$(date +%s.%N)
  log "$name ..."
  "$@"
  log "$name done in $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }')"
}

stamped() { [[ -f "$STAMPS/$1" ]]; }
stamp() {
  mkdir -p "$STAMPS"
  date -u +%FT%TZ >"$STAMPS/$1.tmp"
  mv "$STAMPS/$1.tmp" "$STAMPS/$1"
}

# ---------------------------------------------------------------------------------------------
# build

readonly PACKAGES=(golang-go etcd-server containerd runc containernetworking-plugins conntrack
  iptables dnsmasq-base openssl gcc libc6-dev socat golang-github-modern-go-reflect2-dev dpkg-dev
  iproute2 util-linux procps)

install_packages() {
  local missing=() package
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$package")
  done
  if ((${#missing[@]} == 0)); then
    log "all packages present"
    return
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends keeps etcd/containerd from pulling services we never start.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The source package comes through a private source list so /etc/apt is never touched.
fetch_source() {
  stamped source && return 0
  local apt="$CACHE/apt" work="$CACHE/src.partial"
  rm -rf "$apt" "$work"
  mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$work"
  cat >"$apt/sources.list" <<'EOF'
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-updates main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
EOF
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt" -o Dir::Cache::pkgcache=
    -o Dir::Cache::srcpkgcache=)
  apt-get "${opts[@]}" update -qq
  (cd "$work" && apt-get "${opts[@]}" source --download-only -qq "kubernetes=$DEB_VERSION")
  # apt checked every file against the signed Sources index; the .dsc's own OpenPGP
  # signature needs the uploader's key, which no Debian package here ships.
  (cd "$work" && dpkg-source --no-check -x ./*.dsc kubernetes >/dev/null)
  # Vendored reflect2 1.0.1 breaks at run time with Go >= 1.18; Debian's 1.0.2 works.
  rm -rf "$work/kubernetes/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 \
    "$work/kubernetes/vendor/github.com/modern-go/reflect2"
  rm -rf "$CACHE/src"
  mv "$work" "$CACHE/src"
  stamp source
}

go_env() {
  export GOPATH="$CACHE/gopath" GOCACHE="$CACHE/gocache" GO111MODULE=off CGO_ENABLED=0 \
    GOPROXY=off GOFLAGS='' GOTOOLCHAIN=local
  mkdir -p "$GOPATH/src/k8s.io" "$GOCACHE"
  ln -sfn "$CACHE/src/kubernetes" "$GOPATH/src/k8s.io/kubernetes"
}

# pkg/generated/openapi is not in the tarball; without it kube-apiserver does not compile.
generate_openapi() {
  stamped openapi && return 0
  go_env
  cd "$GOPATH/src/k8s.io/kubernetes"
  nice -n 10 go build -o "$CACHE/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
  local packages
  packages=$(grep -rl --include='*.go' '+k8s:openapi-gen=' pkg staging/src vendor/k8s.io 2>/dev/null |
    xargs -n1 dirname | sort -u |
    sed -e 's|^staging/src/|k8s.io/kubernetes/vendor/|' -e 's|^vendor/|k8s.io/kubernetes/vendor/|' \
      -e 's|^pkg/|k8s.io/kubernetes/pkg/|' | sort -u | paste -sd, -)
  rm -rf pkg/generated/openapi/zz_generated.openapi.go
  nice -n 10 "$CACHE/openapi-gen" --input-dirs "$packages" \
    --output-package k8s.io/kubernetes/pkg/generated/openapi \
    --output-file-base zz_generated.openapi \
    --output-base "$GOPATH/src" \
    --go-header-file vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
    --report-filename /dev/null
  [[ -s pkg/generated/openapi/zz_generated.openapi.go ]] || die "openapi-gen wrote nothing"
  stamp openapi
}

build_binaries() {
  local wanted=() name
  for name in "${BINARIES[@]}"; do
    stamped "$name" && [[ -x "$BIN/$name" ]] || wanted+=("$name")
  done
  if ((${#wanted[@]} == 0)); then
    log "binaries cached in $BIN"
    return
  fi
  go_env
  cd "$GOPATH/src/k8s.io/kubernetes"
  local version_pkgs=(k8s.io/kubernetes/vendor/k8s.io/component-base/version
    k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version k8s.io/kubernetes/pkg/version)
  local ldflags="-s -w" pkg
  for pkg in "${version_pkgs[@]}"; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=20"
    ldflags+=" -X $pkg.gitCommit=$KUBE_COMMIT -X $pkg.gitTreeState=clean"
    ldflags+=" -X $pkg.buildDate=2021-01-13T13:20:00Z"
  done
  local out="$CACHE/bin.partial"
  rm -rf "$out"
  mkdir -p "$out" "$BIN"
  log "go build ${wanted[*]}"
  nice -n 10 go build -p 2 -ldflags "$ldflags" -o "$out/" "${wanted[@]/#/./cmd/}"
  for name in "${wanted[@]}"; do
    mv "$out/$name" "$BIN/$name"
    stamp "$name"
  done
  rm -rf "$out"
}

# The pause binary, compiled statically from the same source, packed as a hand-made OCI image
# layout because no image can be pulled here.
build_pause_image() {
  stamped pause-image && [[ -f "$CACHE/pause.oci.tar" ]] && return 0
  local work="$CACHE/pause.partial"
  rm -rf "$work"
  mkdir -p "$work/rootfs" "$work/oci/blobs/sha256"
  gcc -Os -Wall -static -DVERSION="$KUBE_VERSION" -o "$work/rootfs/pause" \
    "$CACHE/src/kubernetes/build/pause/linux/pause.c"
  strip "$work/rootfs/pause"
  tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/rootfs" -cf "$work/layer.tar" pause
  local layer_sha layer_size config_sha config_size manifest_sha manifest_size
  layer_sha=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  layer_size=$(stat -c %s "$work/layer.tar")
  mv "$work/layer.tar" "$work/oci/blobs/sha256/$layer_sha"
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$layer_sha" >"$work/config.json"
  config_sha=$(sha256sum "$work/config.json" | cut -d' ' -f1)
  config_size=$(stat -c %s "$work/config.json")
  mv "$work/config.json" "$work/oci/blobs/sha256/$config_sha"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config_sha" "$config_size" "$layer_sha" "$layer_size" >"$work/manifest.json"
  manifest_sha=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
  manifest_size=$(stat -c %s "$work/manifest.json")
  mv "$work/manifest.json" "$work/oci/blobs/sha256/$manifest_sha"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"3.4.1"}}]}' \
    "$manifest_sha" "$manifest_size" "$PAUSE_IMAGE" >"$work/oci/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
  tar --owner=0 --group=0 --numeric-owner -C "$work/oci" -cf "$work/pause.oci.tar" .
  mv "$work/pause.oci.tar" "$CACHE/pause.oci.tar"
  rm -rf "$work"
  stamp pause-image
}

cmd_build() {
  local started
  started=$(date +%s)
  mkdir -p "$CACHE"
  # One build at a time per cache: a second caller waits instead of racing on the same files.
  exec 9>"$CACHE/build.lock"
  flock 9
  step "packages" install_packages
  step "source (kubernetes $DEB_VERSION)" fetch_source
  step "openapi-gen" generate_openapi
  step "binaries" build_binaries
  step "pause image" build_pause_image
  log "build ready in $(($(date +%s) - started)) s: $BIN"
  exec 9>&-
}

# ---------------------------------------------------------------------------------------------
# start

need_built() {
  local name
  for name in "${BINARIES[@]}"; do
    stamped "$name" || die "$name is not built: run \`$0 build\` first"
  done
  stamped pause-image || die "the pause image is not built: run \`$0 build\` first"
}

# A name for the cluster's host-side traces (its cgroup), derived from its state dir.
cluster_id() { printf 'rcluster-%s' "$(printf '%s' "$1" | sha256sum | cut -c1-12)"; }

# One CA, one serving certificate (IP SAN 127.0.0.1 for the host relay), one system:masters
# client certificate every component uses, and the service-account key pair.
make_pki() {
  local pki=$1
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -subj /CN=rcluster-test-ca -days 30 -out ca.crt 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out apiserver.key 2>/dev/null
    openssl req -new -key apiserver.key -subj /CN=kube-apiserver -out apiserver.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,IP:%s,IP:%s,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n' \
      "$NODE_IP" "${SERVICE_CIDR%.0/*}.1" >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out admin.key 2>/dev/null
    openssl req -new -key admin.key -subj "/O=system:masters/CN=admin" -out admin.csr 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile admin.ext -out admin.crt 2>/dev/null
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
    openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 600 ./*.key
  )
}

make_kubeconfig() {
  local file=$1 server=$2 pki=$3
  "$BIN/kubectl" config --kubeconfig="$file" set-cluster rcluster --server="$server" \
    --certificate-authority="$pki/ca.crt" --embed-certs=true >/dev/null
  "$BIN/kubectl" config --kubeconfig="$file" set-credentials admin \
    --client-certificate="$pki/admin.crt" --client-key="$pki/admin.key" --embed-certs=true >/dev/null
  "$BIN/kubectl" config --kubeconfig="$file" set-context rcluster --cluster=rcluster \
    --user=admin >/dev/null
  "$BIN/kubectl" config --kubeconfig="$file" use-context rcluster >/dev/null
  chmod 600 "$file"
}

write_configs() {
  local state=$1 id=$2
  mkdir -p "$state/cni" "$state/containerd" "$state/logs" "$state/run" "$state/varlog" \
    "$state/varlib" "$state/etcd" "$state/dns/hosts" "$state/pv"
  chmod 700 "$state/etcd"
  cat >"$state/containerd/config.toml" <<TOML
version = 2
root = "$state/containerd/root"
state = "$state/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$state/containerd.sock"
[ttrpc]
  address = "$state/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # The kubelet asks for oom_score_adj -998, which needs CAP_SYS_RESOURCE; without this runc
  # fails with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni"
TOML
  cat >"$state/cni/10-rcluster.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "rcluster", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
  cat >"$state/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$state/pki/ca.crt"}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
# Every pod cgroup under one root per cluster: stop removes it, two clusters never share it.
cgroupRoot: "/$id"
clusterDNS: ["$NODE_IP"]
clusterDomain: cluster.local
# No host search domains or resolvers in pods: only the cluster's DNS stand-in.
resolvConf: ""
failSwapOn: false
protectKernelDefaults: true
readOnlyPort: 0
serializeImagePulls: false
evictionHard: {nodefs.available: "2%", imagefs.available: "2%", nodefs.inodesFree: "1%", memory.available: "100Mi"}
imageGCHighThresholdPercent: 100
YAML
}

# Creates the cluster's cgroup in every v1 hierarchy (the kubelet requires cgroupRoot to exist).
make_cgroups() {
  local id=$1 hierarchy
  for hierarchy in /sys/fs/cgroup/*/; do
    [[ -f "$hierarchy/cgroup.procs" ]] || continue
    [[ "$hierarchy" == */unified/ ]] && continue
    mkdir -p "$hierarchy$id"
    if [[ -f "$hierarchy/cpuset.cpus" ]]; then
      cat "$hierarchy/cpuset.cpus" >"$hierarchy$id/cpuset.cpus"
      cat "$hierarchy/cpuset.mems" >"$hierarchy$id/cpuset.mems"
    fi
  done
}

remove_cgroups() {
  local id=$1 hierarchy
  for hierarchy in /sys/fs/cgroup/*/; do
    [[ -d "$hierarchy$id" ]] || continue
    find "$hierarchy$id" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

ns_pid() { cat "$1/ns.pid" 2>/dev/null || true; }

# kubectl from inside the cluster's network namespace, where the API server listens.
in_ns_kubectl() {
  local state=$1
  shift
  nsenter -t "$(ns_pid "$state")" -n -- "$BIN/kubectl" --kubeconfig="$state/kubeconfig" "$@"
}

# Polls "$@" every 0.5 s until it succeeds; dies after $1 seconds naming what it waited for.
wait_until() {
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$(($(date +%s) + seconds))
  until "$@" >/dev/null 2>&1; do
    (($(date +%s) < deadline)) || die "no $what within $seconds s"
    sleep 0.5
  done
}

cmd_start() {
  local state=${1:?usage: start STATE_DIR}
  need_built
  [[ ! -e "$state" || -z "$(ls -A "$state" 2>/dev/null)" ]] ||
    die "$state exists and is not empty: every cluster needs a fresh state dir"
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  local id started
  id=$(cluster_id "$state")
  started=$(date +%s)
  : >"$state/pids"
  printf '%s\n' "$id" >"$state/id"
  step "certificates and configuration" make_pki "$state/pki"
  make_kubeconfig "$state/kubeconfig" "https://127.0.0.1:6443" "$state/pki"
  write_configs "$state" "$id"
  make_cgroups "$id"
  log "starting the namespace"
  setsid unshare --net --mount --uts --propagation private --fork \
    "$SELF" _inside "$state" >"$state/logs/inside.log" 2>&1 </dev/null &
  printf 'unshare %s\n' "$!" >>"$state/pids"
  local deadline=$(($(date +%s) + 180))
  until [[ -f "$state/inside.ready" ]]; do
    if [[ -f "$state/inside.failed" ]] || (($(date +%s) > deadline)) ||
      ! kill -0 "$(recorded_pids "$state" unshare)" 2>/dev/null; then
      tail -n 30 "$state/logs/inside.log" >&2 || true
      die "the cluster did not start; logs in $state/logs (run \`$0 stop $state\`)"
    fi
    sleep 0.5
  done
  step "host relay" start_host_relay "$state"
  step "storage" create_storage "$state"
  step "node Ready" wait_until 180 "Ready node" node_ready "$state"
  step "default service account" wait_until 60 "default service account" \
    in_ns_kubectl "$state" get serviceaccount default
  log "cluster up in $(($(date +%s) - started)) s; kubeconfig (host): $state/host-kubeconfig"
}

node_ready() {
  [[ "$(in_ns_kubectl "$1" get node "$NODE_NAME" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}

# A free 127.0.0.1 port on the host, forwarded to the API server through a unix socket in the
# state dir (the namespace's socat listens there): pod IPs stay unreachable from the host.
start_host_relay() {
  local state=$1 port attempt
  for attempt in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    setsid socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$state/apiserver.sock" \
      >"$state/logs/host-relay.log" 2>&1 </dev/null &
    local pid=$!
    printf 'host-relay %s\n' "$pid" >>"$state/pids"
    sleep 0.3
    if kill -0 "$pid" 2>/dev/null; then
      make_kubeconfig "$state/host-kubeconfig" "https://127.0.0.1:$port" "$state/pki"
      printf '%s\n' "$port" >"$state/host-port"
      wait_until 30 "API server through the host relay" \
        "$BIN/kubectl" --kubeconfig="$state/host-kubeconfig" get --raw /readyz
      return
    fi
    log "host relay on port $port failed (attempt $attempt)"
  done
  die "no host relay"
}

# Static local PersistentVolumes behind a default StorageClass, as a cloud would provide.
create_storage() {
  local state=$1 i manifest
  manifest=$(
    cat <<YAML
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: rcluster-local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
YAML
  )
  for ((i = 0; i < PV_COUNT; i++)); do
    mkdir -p "$state/pv/pv-$i"
    chmod 0777 "$state/pv/pv-$i"
    manifest+=$(
      cat <<YAML

---
apiVersion: v1
kind: PersistentVolume
metadata: {name: rcluster-pv-$i}
spec:
  capacity: {storage: 100Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: rcluster-local
  local: {path: "$state/pv/pv-$i"}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [$NODE_NAME]}
YAML
    )
  done
  printf '%s\n' "$manifest" | in_ns_kubectl "$state" apply -f - >/dev/null
}

# ---------------------------------------------------------------------------------------------
# inside the namespace (run by start through unshare)

inside_bg() {
  local state=$1 name=$2
  shift 2
  "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
  printf '%s %s\n' "$name" "$!" >>"$state/pids"
}

inside_fail() {
  log "error: $*"
  : >"$INSIDE_STATE/inside.failed"
  exit 1
}

inside_wait() {
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$(($(date +%s) + seconds))
  until "$@" >/dev/null 2>&1; do
    (($(date +%s) < deadline)) || inside_fail "no $what within $seconds s"
    sleep 0.5
  done
}

cmd_inside() {
  local state=$1
  INSIDE_STATE=$state
  trap '[[ -f "$INSIDE_STATE/inside.ready" ]] || : >"$INSIDE_STATE/inside.failed"' EXIT
  printf '%s\n' "$$" >"$state/ns.pid"
  readlink /proc/self/ns/net >"$state/netns"
  printf 'namespace %s\n' "$$" >>"$state/pids"
  # Private copies of the directories the kubelet, CNI and runc hard-code.
  mount --bind "$state/run" /run
  mount --bind "$state/varlog" /var/log
  mount --bind "$state/varlib" /var/lib
  # The kubelet sets six kernel tunables that are global, not per namespace (kernel.panic,
  # vm.overcommit_memory...). Inside this mount namespace the files it reads show the values
  # it wants, so it changes nothing on the host (protectKernelDefaults makes it fail, not
  # write, should one still differ).
  local flag want have
  mkdir -p "$state/sysctl"
  for flag in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
    kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
    want=${flag#*=}
    flag=${flag%=*}
    have=$(cat "/proc/sys/$flag")
    if [[ "$have" != "$want" ]]; then
      printf '%s\n' "$want" >"$state/sysctl/${flag//\//.}"
      mount --bind -o ro "$state/sysctl/${flag//\//.}" "/proc/sys/$flag"
    fi
  done
  printf '%s\n' "$NODE_NAME" >/proc/sys/kernel/hostname
  ip link set lo up
  # No dummy module here: the node address lives on lo, and a blackhole default route gives
  # the components the "default interface" they look for.
  ip addr add "$NODE_IP/32" dev lo
  ip route add blackhole default
  sysctl -qw net.ipv4.ip_forward=1

  local pki=$state/pki kubeconfig=$state/kubeconfig
  step "etcd" inside_bg "$state" etcd etcd --name rcluster --data-dir "$state/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster rcluster=http://127.0.0.1:2380 --logger zap --log-level warn
  inside_bg "$state" containerd containerd --config "$state/containerd/config.toml"
  step "containerd" inside_wait 60 "containerd socket" \
    ctr --address "$state/containerd.sock" version
  step "pause image" ctr --address "$state/containerd.sock" -n k8s.io images import \
    "$CACHE/pause.oci.tar"
  inside_bg "$state" kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 --bind-address=0.0.0.0 --secure-port=6443 \
    --insecure-port=0 --advertise-address="$NODE_IP" \
    --service-cluster-ip-range="$SERVICE_CIDR" --allow-privileged=true \
    --authorization-mode=RBAC --client-ca-file="$pki/ca.crt" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --kubelet-client-certificate="$pki/admin.crt" --kubelet-client-key="$pki/admin.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --api-audiences=https://kubernetes.default.svc.cluster.local --profiling=false \
    --kubelet-preferred-address-types=InternalIP
  step "kube-apiserver" inside_wait 120 "ready API server" \
    "$BIN/kubectl" --kubeconfig="$kubeconfig" get --raw /readyz
  inside_bg "$state" kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$kubeconfig" --controllers='*,-nodeipam' --leader-elect=false \
    --bind-address=127.0.0.1 --port=0 --profiling=false \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key"
  inside_bg "$state" kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$kubeconfig" \
    --leader-elect=false --bind-address=127.0.0.1 --port=0 --profiling=false
  inside_bg "$state" kubelet "$BIN/kubelet" --config="$state/kubelet.yaml" \
    --kubeconfig="$kubeconfig" --container-runtime=remote \
    --container-runtime-endpoint="unix://$state/containerd.sock" \
    --node-ip="$NODE_IP" --hostname-override="$NODE_NAME" --v=1
  # --masquerade-all: a pod reaching a ClusterIP backed by a pod on the same bridge gets the
  # answer back through the host stack, where the NAT is undone.
  inside_bg "$state" kube-proxy "$BIN/kube-proxy" --kubeconfig="$kubeconfig" \
    --hostname-override="$NODE_NAME" --bind-address="$NODE_IP" --cluster-cidr="$POD_CIDR" \
    --proxy-mode=iptables --masquerade-all --conntrack-max-per-core=0 \
    --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
    --metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256
  # The DNS stand-in (no CoreDNS here): dnsmasq serving hosts files the refresher rewrites.
  inside_bg "$state" dnsmasq dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --user=root --listen-address="$NODE_IP" --bind-interfaces --hostsdir="$state/dns/hosts" \
    --local=/cluster.local/ --local-ttl=0 --no-negcache --pid-file= --log-facility=-
  inside_bg "$state" dns-refresh "$SELF" _dns-refresh "$state"
  inside_bg "$state" api-relay socat "UNIX-LISTEN:$state/apiserver.sock,fork,mode=600" \
    TCP:127.0.0.1:6443
  : >"$state/inside.ready"
  log "namespace ready"
  # This shell holds the namespace: it lives until stop kills it.
  sleep infinity &
  printf 'namespace-sleep %s\n' "$!" >>"$state/pids"
  wait
}

# Rewrites the DNS stand-in's hosts file every 0.5 s from Services and Endpoints: ClusterIP
# and headless Service names, and <hostname>.<service>.<ns>.svc.cluster.local for pods.
cmd_dns_refresh() {
  local state=$1 hosts=$1/dns/hosts/cluster next=$1/dns/next text
  local template='{range .items[*]}{.kind} {.metadata.namespace} {.metadata.name} {.spec.clusterIP}{range .subsets[*].addresses[*]} {.ip}/{.hostname}{end}{"\n"}{end}'
  while true; do
    if text=$("$BIN/kubectl" --kubeconfig="$state/kubeconfig" get services,endpoints \
      --all-namespaces -o "jsonpath=$template" 2>/dev/null); then
      printf '%s\n' "$text" | awk '
        $1 == "Service" && $4 != "" && $4 != "None" {
          print $4, $3 "." $2 ".svc.cluster.local"
        }
        $1 == "Endpoints" {
          for (i = 4; i <= NF; i++) {
            split($i, a, "/")
            if (a[1] == "") continue
            if (!(($2, $3) in clusterip)) print a[1], $3 "." $2 ".svc.cluster.local"
            if (a[2] != "") print a[1], a[2] "." $3 "." $2 ".svc.cluster.local"
          }
        }
        $1 == "Service" && ($4 != "" && $4 != "None") { clusterip[$2, $3] = 1 }
      ' >"$next"
      # Written beside the watched directory and renamed into it: dnsmasq never reads half.
      if ! cmp -s "$next" "$hosts"; then
        mv "$next" "$hosts"
      fi
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------------------------------------
# load-image, kubectl, exec

need_running() {
  local state=$1 pid
  pid=$(ns_pid "$state")
  if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
    die "no cluster running in $state"
  fi
}

cmd_load_image() {
  local state=${1:?usage: load-image STATE_DIR IMAGE [TAG...]} image=${2:?usage: load-image STATE_DIR IMAGE [TAG...]}
  shift 2
  need_running "$state"
  local ctr=(ctr --address "$state/containerd.sock" -n k8s.io)
  load() { docker save "$image" | "${ctr[@]}" images import - >/dev/null; }
  step "load $image" load
  local tag source
  source=$(normalized "$image")
  for tag in "$@"; do
    tag=$(normalized "$tag")
    [[ "$tag" == "$source" ]] && continue
    "${ctr[@]}" images rm "$tag" >/dev/null 2>&1 || true
    "${ctr[@]}" images tag "$source" "$tag" >/dev/null
    log "tagged $tag"
  done
}

# An image reference as containerd names it (docker.io/library/redis:7 for redis:7).
normalized() {
  local ref=$1 first=${1%%/*}
  if [[ "$ref" != */* ]]; then
    ref=docker.io/library/$ref
  elif [[ "$first" != *.* && "$first" != *:* && "$first" != localhost ]]; then
    ref=docker.io/$ref
  fi
  [[ "${ref##*/}" == *[:@]* ]] || ref+=":latest"
  printf '%s\n' "$ref"
}

cmd_kubectl() {
  local state=${1:?usage: kubectl STATE_DIR ARGS...}
  shift
  need_running "$state"
  in_ns_kubectl "$state" "$@"
}

cmd_exec() {
  local state=${1:?usage: exec STATE_DIR CMD...}
  shift
  need_running "$state"
  exec nsenter -t "$(ns_pid "$state")" -n -- "$@"
}

# ---------------------------------------------------------------------------------------------
# stop

# PIDs of processes in the network namespace whose id start recorded (any PID, whoever
# started it: pod processes, shims).
pids_in_netns() {
  local netns=$1 entry pid
  [[ -n "$netns" ]] || return 0
  for entry in /proc/[0-9]*/ns/net; do
    pid=${entry#/proc/}
    pid=${pid%%/*}
    [[ "$pid" == "$$" || "$pid" == "$BASHPID" ]] && continue
    [[ "$(readlink "$entry" 2>/dev/null)" == "$netns" ]] && printf '%s\n' "$pid"
  done
  return 0
}

# Shims serving this cluster's containerd: their command line names its socket.
shims_of() {
  local socket=$1 cmdline pid
  for cmdline in /proc/[0-9]*/cmdline; do
    pid=${cmdline#/proc/}
    pid=${pid%%/*}
    if { tr '\0' ' ' <"$cmdline"; } 2>/dev/null | grep -q -- "containerd-shim.* -address $socket "; then
      printf '%s\n' "$pid"
    fi
  done
  return 0
}

# The PIDs start recorded under these names.
recorded_pids() {
  local state=$1
  shift
  awk -v names=" $* " 'index(names, " " $1 " ") && $2 ~ /^[0-9]+$/ { print $2 }' \
    "$state/pids" 2>/dev/null || true
}

# SIGTERM, then SIGKILL after $2 seconds, for the PIDs given.
stop_pids() {
  local grace=$1 pid deadline alive
  shift
  (($#)) || return 0
  kill "$@" 2>/dev/null || true
  deadline=$(($(date +%s) + grace))
  while true; do
    alive=()
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    ((${#alive[@]})) || return 0
    (($(date +%s) < deadline)) || break
    sleep 0.2
  done
  kill -9 "${alive[@]}" 2>/dev/null || true
  for pid in "${alive[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  done
}

cmd_stop() {
  local state=${1:?usage: stop STATE_DIR}
  if [[ ! -d "$state" ]]; then
    log "$state does not exist: nothing to stop"
    return 0
  fi
  state=$(cd "$state" && pwd)
  local started netns id socket pid
  started=$(date +%s)
  netns=$(cat "$state/netns" 2>/dev/null || true)
  id=$(cat "$state/id" 2>/dev/null || cluster_id "$state")
  socket=$state/containerd.sock
  # The kubelet first, so it restarts nothing; then the pods' containers through containerd.
  local pids
  mapfile -t pids < <(recorded_pids "$state" kubelet host-relay)
  stop_pids 10 "${pids[@]}"
  if [[ -S "$socket" ]] && ctr --address "$socket" version >/dev/null 2>&1; then
    local task
    for task in $(ctr --address "$socket" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$socket" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
  fi
  local name
  for name in kube-proxy kube-scheduler kube-controller-manager kube-apiserver dns-refresh \
    dnsmasq api-relay containerd etcd; do
    mapfile -t pids < <(recorded_pids "$state" "$name")
    stop_pids 10 "${pids[@]}"
  done
  mapfile -t pids < <(shims_of "$socket")
  stop_pids 5 "${pids[@]}"
  mapfile -t pids < <(recorded_pids "$state" namespace-sleep namespace unshare)
  stop_pids 5 "${pids[@]}"
  # Whatever still lives in the namespace (a half-failed start, an orphaned pod process).
  mapfile -t pids < <(pids_in_netns "$netns")
  stop_pids 2 "${pids[@]}"
  remove_cgroups "$id"
  # The namespace's mounts went with its last process; a mount on the host would be a bug,
  # but never leave the state dir busy.
  local mount_point
  while read -r mount_point; do
    umount -l "$mount_point" 2>/dev/null || true
  done < <(awk -v s="$state" 'index($2, s) == 1 { print $2 }' /proc/mounts | sort -r)
  rm -rf "$state"
  log "stopped in $(($(date +%s) - started)) s"
}

# ---------------------------------------------------------------------------------------------

main() {
  local command=${1:-}
  shift || true
  case "$command" in
  build) cmd_build "$@" ;;
  start) cmd_start "$@" ;;
  load-image) cmd_load_image "$@" ;;
  stop) cmd_stop "$@" ;;
  kubectl) cmd_kubectl "$@" ;;
  exec) cmd_exec "$@" ;;
  _inside) cmd_inside "$@" ;;
  _dns-refresh) cmd_dns_refresh "$@" ;;
  *) die "usage: $0 build|start STATE_DIR|load-image STATE_DIR IMAGE [TAG...]|stop STATE_DIR|kubectl STATE_DIR ARGS...|exec STATE_DIR CMD..." ;;
  esac
}

main "$@"
