//! kplan's benchmarks (issue 5): a deterministic estate generator ([`generate`]) and the
//! benchmark run that writes BENCHMARKS.md ([`run`]). The binary is `kplan-bench`;
//! `scripts/bench.sh` is the one documented command.

pub mod generate;
pub mod ingest;
pub mod run;
pub mod stats;
