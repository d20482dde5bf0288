#!/usr/bin/env bash
# Installs what building and testing kplan needs on a Debian machine with Rust:
# cmake, libclang-dev and g++ for HiGHS (compiled from source by highs-sys), and the
# Python packages of the interoperability tests. Idempotent: skips what is there.
set -euo pipefail

need_apt=()
for pkg in cmake libclang-dev g++ pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ "${KPLAN_SKIP_PYTHON:-0}" != 1 ]; then
  if ! python3 -c 'import grpc_tools, grpc_health.v1, grpc_reflection.v1alpha, highspy' 2>/dev/null; then
    echo "setup: installing python packages for the interoperability tests" >&2
    python3 -m pip install --quiet --disable-pip-version-check \
      grpcio grpcio-tools grpcio-health-checking grpcio-reflection highspy
  fi
fi
