//! `kplan-bench`: generate estates, run the benchmarks.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kplan_bench::generate::{EstateSpec, Size, generate, write};
use kplan_bench::run::{RunOptions, run};

#[derive(Debug, Parser)]
#[command(name = "kplan-bench", version, about = "kplan's estate generator and benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a generated estate: DIR/estate.toml, DIR/policy.toml, DIR/clusters/<id>.json.
    #[command(after_help = "Example:\n  kplan-bench generate --size M --seed 1 --out /tmp/estate-m\n  \
kplan --inventory /tmp/inv import --estate /tmp/estate-m/estate.toml\n  \
kplan --inventory /tmp/inv propose --policy /tmp/estate-m/policy.toml")]
    Generate {
        /// S (20 clusters, 500 nodes), M (100, 3,000), L (300, 10,000), XL (900, 20,000).
        #[arg(long, value_parser = Size::parse)]
        size: Size,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Run every benchmark and write the report (kplan and kplan-server are taken from
    /// this binary's directory, or KPLAN_BIN / KPLAN_SERVER_BIN).
    Run {
        /// Comma-separated sizes.
        #[arg(long, default_value = "S,M,L,XL", value_delimiter = ',', value_parser = Size::parse)]
        sizes: Vec<Size>,
        /// Timed `kplan propose` runs per size (and per scaling point).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Skip the external HiGHS comparison.
        #[arg(long)]
        no_external: bool,
        /// Skip the scaling series.
        #[arg(long)]
        no_scaling: bool,
        /// Ingest levels, `clients:snapshots` each (snapshots in all for the level); empty skips ingest.
        #[arg(long, default_value = "1:1000,4:2000,16:3000,64:4000", value_delimiter = ',')]
        ingest: Vec<String>,
        /// An older kplan binary, timed once per size in --baseline-sizes beside this build.
        #[arg(long, value_name = "PATH")]
        baseline_kplan: Option<PathBuf>,
        #[arg(long, default_value = "S,M", value_delimiter = ',', value_parser = Size::parse)]
        baseline_sizes: Vec<Size>,
        /// The shipped example estate to plan beside the generated sizes (estate.toml and
        /// policy.toml in it).
        #[arg(long, default_value = "examples/bank", value_name = "DIR")]
        example: PathBuf,
        /// Skip the example estate.
        #[arg(long)]
        no_example: bool,
        /// Profile notes (written by hand) included verbatim in the output.
        #[arg(long, default_value = "bench/PROFILE.md", value_name = "FILE")]
        profile_notes: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Generate { size, seed, out } => {
            let estate = generate(&EstateSpec::sized(size, seed), seed);
            write(&estate, &out)?;
            let n_nodes: usize = estate.snapshots.iter().map(|s| s.nodes.len()).sum();
            println!("{} clusters, {n_nodes} nodes written to {}", estate.snapshots.len(), out.display());
            Ok(())
        }
        Command::Run {
            sizes,
            repeats,
            out,
            seed,
            no_external,
            no_scaling,
            ingest,
            baseline_kplan,
            baseline_sizes,
            example,
            no_example,
            profile_notes,
        } => {
            let mut ingest_levels = Vec::new();
            for level in ingest.iter().filter(|l| !l.trim().is_empty()) {
                let (clients, snapshots) = level
                    .split_once(':')
                    .with_context(|| format!("ingest level {level:?} is not CLIENTS:SNAPSHOTS"))?;
                ingest_levels.push((clients.trim().parse()?, snapshots.trim().parse()?));
            }
            let command_line = std::env::var("KPLAN_BENCH_COMMAND").unwrap_or_else(|_| {
                std::iter::once("kplan-bench".to_string()).chain(std::env::args().skip(1)).collect::<Vec<_>>().join(" ")
            });
            run(&RunOptions {
                sizes,
                repeats: repeats.max(1),
                out,
                seed,
                external: !no_external,
                scaling: !no_scaling,
                ingest_levels,
                command_line,
                baseline: baseline_kplan,
                baseline_sizes,
                example: (!no_example).then_some(example),
                profile_notes: Some(profile_notes),
            })
        }
    }
}
