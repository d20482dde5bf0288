#!/usr/bin/env bash
# Installs what building and testing kplan needs on a Debian machine with Rust.
#   build: cmake, libclang-dev and g++ for HiGHS (compiled from source by highs-sys)
#   tests (unless KPLAN_SETUP=build): chromium for the HTML report test, kubectl
#   (kubernetes-client) and systemd-analyze for the deploy checks, and the Python
#   packages of the interoperability tests (grpcio, highspy, kubernetes-validate)
# Idempotent: skips what is there.
set -euo pipefail

mode="${KPLAN_SETUP:-test}"
want=(cmake libclang-dev g++ pkg-config)
if [ "$mode" = test ]; then
  want+=(chromium systemd)
  command -v kubectl >/dev/null 2>&1 || want+=(kubernetes-client)
fi
need_apt=()
for pkg in "${want[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ "$mode" = test ]; then
  if ! python3 -c 'import grpc_tools, grpc_health.v1, grpc_reflection.v1alpha, highspy, kubernetes_validate' 2>/dev/null; then
    echo "setup: installing python packages for the interoperability tests" >&2
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
      grpcio grpcio-tools grpcio-health-checking grpcio-reflection highspy kubernetes-validate
  fi
fi
