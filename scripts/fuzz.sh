#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/README.md): the kubectl output parser, snapshot
# validation and the policy parser, each for SECONDS (default 600), then minimises
# each corpus (cargo fuzz cmin) so what is committed stays small.
#
#   scripts/fuzz.sh              # every target, 10 minutes each
#   scripts/fuzz.sh 60 policy_parser
#
# Needs a nightly toolchain and cargo-fuzz (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(kubectl_parser snapshot_validation policy_parser)
fi
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo fuzz --version >/dev/null 2>&1 || cargo install --locked cargo-fuzz
export CARGO_TARGET_DIR="${KPLAN_FUZZ_TARGET_DIR:-$HOME/.cache/kplan/fuzz-target}"
cargo +nightly fuzz build -O
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    echo "fuzz: $target for ${seconds} s" >&2
    # -rss_limit_mb bounds memory per input; -max_len lets whole kubectl lists through.
    cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=262144 -print_final_stats=1 2>&1 |
        tee "artifacts/$target/last-run.log" | grep -E '^(#[0-9]+.*DONE|stat::|==[0-9]+==|Done|SUMMARY|.*panicked)' || true
    if ls "artifacts/$target" | grep -qE '^(crash|oom|timeout|leak)-'; then
        echo "fuzz: $target found a failing input in fuzz/artifacts/$target" >&2
        exit 1
    fi
    cargo +nightly fuzz cmin -O "$target" "corpus/$target" -- -rss_limit_mb=2048 -max_len=262144 >/dev/null 2>&1
    echo "fuzz: $target: $(ls "corpus/$target" | wc -l) corpus entries after cmin" >&2
done
