#!/usr/bin/env bash
# A real kube-apiserver and kube-scheduler (v1.20.2, built from Debian's source
# package) and etcd (Debian's etcd-server), for kplan-agent's end-to-end tests and
# the planner's ground truth (tests/tests/kube_scheduler.rs). Offline once built.
#
#   scripts/kube-apiserver.sh build      builds and caches the binaries (about 8 minutes
#                                        on 2 cores the first time; instant when cached)
#   scripts/kube-apiserver.sh paths      prints the cached binaries, one per line:
#                                        kube-apiserver, etcd, kube-scheduler (fails when missing)
#   scripts/kube-apiserver.sh run DIR [--remove-on-exit]
#                                        starts etcd and kube-apiserver on loopback, on free
#                                        ports, with their files under DIR (removed at the
#                                        end with --remove-on-exit); see below
#
# The binaries are cached in $KPLAN_KUBE_CACHE (default ~/.cache/kplan/kube), outside
# the repository, and rebuilt only when missing. Apt is pointed at private source
# lists and state under the cache, so the system's apt configuration stays untouched.
# See ../shared/notes/real-kube-apiserver.md for why this route (no registry ships the
# binaries; Go 1.19 miscompiles this tree's vendored reflect2, so Go 1.15 is used).
#
# `run DIR` writes into DIR: tokens.csv (users `admin`, in system:masters, and
# `kplan-agent`, in no group), the service-account keys, the serving certificate, and
# two kubeconfigs, `admin.kubeconfig` and `agent.kubeconfig`. It prints
# `ready <https url>` on stdout once /readyz answers, then stays in the foreground;
# SIGTERM or SIGINT stops both processes, and so does the death of its parent process
# (a test that crashes leaves nothing behind). Logs: DIR/etcd.log, DIR/apiserver.log.
# No controller-manager or scheduler runs: the ServiceAccount admission plugin is off
# (nothing would create the `default` service accounts it insists on).
set -euo pipefail

KUBE_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
CACHE="${KPLAN_KUBE_CACHE:-$HOME/.cache/kplan/kube}"
BIN="$CACHE/bin"

log() { echo "kube-apiserver.sh: $*" >&2; }
die() { log "$*"; exit 1; }

have_binaries() {
  [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/etcd" ] && [ -x "$BIN/kube-scheduler" ] \
    && "$BIN/kube-apiserver" --version >/dev/null 2>&1 \
    && "$BIN/kube-scheduler" --version >/dev/null 2>&1 \
    && "$BIN/etcd" --version >/dev/null 2>&1
}

# The Debian archive URI this machine already uses (deb.debian.org when none is found).
archive_uri() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

build() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.build.lock"
  flock 9 # one build at a time, also across test binaries running in parallel
  if have_binaries; then
    return 0
  fi
  local arch work uri keyring
  arch=$(dpkg --print-architecture)
  work="$CACHE/build"
  uri=$(archive_uri)
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$keyring" ] || die "missing $keyring (package debian-archive-keyring)"
  if ! command -v dpkg-source >/dev/null; then
    log "installing dpkg-dev (for dpkg-source)"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dpkg-dev >/dev/null
  fi
  log "building kube-apiserver $KUBE_VERSION and unpacking etcd into $CACHE (archive $uri); this takes a few minutes"
  rm -rf "$work"
  mkdir -p "$work/apt/lists/partial" "$work/apt/archives/partial" "$work/debs" "$work/root" "$work/src" "$BIN"
  cat >"$work/sources.list" <<EOF
deb-src [signed-by=$keyring] $uri bookworm main
deb-src [signed-by=$keyring] $uri bookworm-updates main
deb [signed-by=$keyring] $uri bookworm main
deb [signed-by=$keyring] $uri bullseye main
EOF
  local apt=(apt-get -q -o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache::archives=$work/apt/archives"
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  "${apt[@]}" update >"$work/apt-update.log" 2>&1 || die "apt-get update failed, see $work/apt-update.log"
  (cd "$work/src" && "${apt[@]}" source --download-only "kubernetes=$KUBE_VERSION") >"$work/apt-source.log" 2>&1 \
    || die "downloading the kubernetes source package failed, see $work/apt-source.log"
  (cd "$work/debs" && "${apt[@]}" download golang-1.15-go golang-1.15-src etcd-server rsync libpopt0) \
    >"$work/apt-download.log" 2>&1 || die "downloading go 1.15, etcd, rsync failed, see $work/apt-download.log"
  for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/root"; done
  (cd "$work/src" && dpkg-source -x ./kubernetes_*.dsc tree) >"$work/dpkg-source.log" 2>&1 \
    || die "unpacking the kubernetes source failed, see $work/dpkg-source.log"

  local goroot="$work/root/usr/lib/go-1.15"
  [ -x "$goroot/bin/go" ] || die "go 1.15 not found in $goroot"
  log "compiling kube-apiserver and kube-scheduler (log: $work/make.log)"
  (
    cd "$work/src/tree"
    export GOROOT="$goroot" GOPATH="$work/gopath" GOCACHE="$work/gocache" GOPROXY=off GOFLAGS=-mod=vendor
    export CGO_ENABLED=0 KUBE_VERBOSE=0
    export PATH="$goroot/bin:$work/root/usr/bin:$PATH"
    export LD_LIBRARY_PATH="$work/root/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo "$arch-linux-gnu"):$work/root/lib/$(gcc -print-multiarch 2>/dev/null || echo "$arch-linux-gnu")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    make WHAT="cmd/kube-apiserver cmd/kube-scheduler"
  ) >"$work/make.log" 2>&1 || die "make WHAT='cmd/kube-apiserver cmd/kube-scheduler' failed, see the end of $work/make.log"
  install -m 0755 "$work/src/tree/_output/bin/kube-apiserver" "$BIN/kube-apiserver"
  install -m 0755 "$work/src/tree/_output/bin/kube-scheduler" "$BIN/kube-scheduler"
  install -m 0755 "$work/root/usr/bin/etcd" "$BIN/etcd"
  have_binaries || die "the built binaries do not run"
  # The source tree, Go and its build cache take several GB; the two binaries are all we keep.
  rm -rf "$work"
  log "cached $BIN/kube-apiserver ($("$BIN/kube-apiserver" --version)), $BIN/kube-scheduler and $BIN/etcd"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

run() {
  dir="$1" remove="${2:-}" # globals, for the EXIT trap
  have_binaries || die "binaries missing: run '$0 build' first"
  mkdir -p "$dir/certs" "$dir/etcd"
  dir=$(cd "$dir" && pwd)
  local etcd_port peer_port api_port parent=$PPID
  etcd_port=$(free_port)
  peer_port=$(free_port)
  api_port=$(free_port)

  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
  local admin_token agent_token
  admin_token=$(openssl rand -hex 16)
  agent_token=$(openssl rand -hex 16)
  cat >"$dir/tokens.csv" <<EOF
$admin_token,admin,uid-admin,"system:masters"
$agent_token,kplan-agent,uid-kplan-agent
EOF

  "$BIN/etcd" --name default --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "default=http://127.0.0.1:$peer_port" >"$dir/etcd.log" 2>&1 &
  etcd_pid=$! # global: the EXIT trap runs after this function returned
  "$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" --cert-dir="$dir/certs" \
    --service-cluster-ip-range=10.96.0.0/24 --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$dir/sa.pub" --service-account-signing-key-file="$dir/sa.key" \
    --token-auth-file="$dir/tokens.csv" --authorization-mode=RBAC \
    --disable-admission-plugins=ServiceAccount >"$dir/apiserver.log" 2>&1 &
  api_pid=$!
  # shellcheck disable=SC2317 # called through the trap
  stop() {
    kill "$api_pid" "$etcd_pid" 2>/dev/null || true
    wait "$api_pid" "$etcd_pid" 2>/dev/null || true
    if [ "$remove" = --remove-on-exit ]; then rm -rf "$dir"; fi
  }
  trap 'stop; exit 0' TERM INT
  trap stop EXIT

  local url="https://127.0.0.1:$api_port" ca="$dir/certs/apiserver.crt"
  local deadline=$((SECONDS + 90))
  until [ -f "$ca" ] && curl -fsS --cacert "$ca" -H "Authorization: Bearer $admin_token" "$url/readyz" >/dev/null 2>&1; do
    if ! kill -0 "$api_pid" 2>/dev/null || ! kill -0 "$etcd_pid" 2>/dev/null; then
      tail -n 20 "$dir/etcd.log" "$dir/apiserver.log" >&2 || true
      die "etcd or kube-apiserver exited during startup (logs in $dir)"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "kube-apiserver not ready after 90 s (log: $dir/apiserver.log)"
    sleep 0.3
  done
  local user token
  for user in admin agent; do
    token=$admin_token
    [ "$user" = agent ] && token=$agent_token
    cat >"$dir/$user.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $url
    certificate-authority: $ca
users:
- name: $user
  user:
    token: $token
contexts:
- name: $user
  context: {cluster: local, user: $user}
current-context: $user
EOF
  done
  echo "ready $url"
  # Stay up while both run and the parent (a test) lives.
  while kill -0 "$api_pid" 2>/dev/null && kill -0 "$etcd_pid" 2>/dev/null && kill -0 "$parent" 2>/dev/null; do
    sleep 1
  done
}

case "${1:-}" in
  build) build ;;
  paths)
    have_binaries || die "binaries missing: run '$0 build' first"
    echo "$BIN/kube-apiserver"
    echo "$BIN/etcd"
    echo "$BIN/kube-scheduler"
    ;;
  run)
    [ $# -eq 2 ] || { [ $# -eq 3 ] && [ "$3" = --remove-on-exit ]; } || die "usage: $0 run DIR [--remove-on-exit]"
    run "$2" "${3:-}"
    ;;
  *)
    echo "usage: $0 build | paths | run DIR [--remove-on-exit]" >&2
    exit 64
    ;;
esac
