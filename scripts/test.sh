#!/usr/bin/env bash
# Runs every test of kplan: unit, property, end-to-end and interoperability tests.
# Installs what it needs first (scripts/setup.sh). The build cache lives outside
# the clone (CARGO_TARGET_DIR, default ~/.cache/kplan/target) so warm runs are fast.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kplan/target}"
# The end-to-end tests start the real binaries: build them first.
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
