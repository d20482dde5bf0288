#!/usr/bin/env bash
# Crash soak: the SIGKILL test of tests/tests/reliability.rs with 1,000 kills
# (the test suite runs 200). Clients report continuously while kplan-server is
# killed at random moments; after every restart each acknowledged generation
# must be stored and intact, and the server must always open its store.
#
#   scripts/soak.sh          # 1,000 kills (about 15 minutes)
#   scripts/soak.sh 5000     # any number
#   KPLAN_TEST_SEED=N scripts/soak.sh   # replays the random kill moments of a run
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${1:-1000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kplan/target}"
cargo build --workspace --bins --locked
KPLAN_CRASH_KILLS="$kills" cargo test -p kplan-e2e --test reliability --locked -- \
    --exact acknowledged_reports_survive_sigkill --nocapture
