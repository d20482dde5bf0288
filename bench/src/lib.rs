//! kplan's benchmarks (issue 5): a deterministic estate generator ([`generate`]) and the
//! benchmark run that writes BENCHMARKS.md ([`run`]). The binary is `kplan-bench`;
//! `scripts/bench.sh` is the one documented command.

mod external;
pub mod generate;
pub mod ingest;
mod machine;
pub mod run;
mod server;
pub mod stats;
