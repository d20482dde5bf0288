#!/usr/bin/env bash
# The main job on the shipped example estate, embedded (no server): imports the
# bank's 15 clusters from kubectl JSON into a local inventory and proposes a
# staged consolidation plan with the example policy.
set -euo pipefail
cd "$(dirname "$0")/.."
KPLAN_SETUP=build scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kplan/target}"
cargo build --release --locked --bin kplan
kplan="$CARGO_TARGET_DIR/release/kplan"
inventory="${KPLAN_INVENTORY:-.kplan/example-inventory}"
"$kplan" --inventory "$inventory" import --estate examples/bank/estate.toml >/dev/null
"$kplan" --inventory "$inventory" propose --policy examples/bank/policy.toml "$@"
