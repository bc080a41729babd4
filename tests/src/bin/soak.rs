//! Soak: many seeded Jepsen-style schedules (process, network and membership faults under
//! concurrent referral clients), then a summary table. Any failing seed replays exactly with
//! `--schedules 1 --seed <seed>`.
//!
//! `cargo run --release -p yilian-tests --bin soak -- --schedules 100 [--seed 7] [--faults 6]`
//!
//! The nodes it starts are this same executable called as `soak node run ...`, so they are
//! always the build under test.

use clap::Parser;
use std::process::ExitCode;
use yilian_tests::jepsen::{self, RunReport, Settings};

/// Command line.
#[derive(Parser)]
#[command(about = "Run many seeded fault schedules against real Yilian nodes and check the histories")]
struct Args {
    /// Schedules to run.
    #[arg(long, default_value_t = 10)]
    schedules: u64,
    /// Seed of the first schedule (the others follow it); default: from the clock.
    #[arg(long)]
    seed: Option<u64>,
    /// Faults per schedule.
    #[arg(long, default_value_t = Settings::default().faults)]
    faults: usize,
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("node") {
        return yilian_node::main_entry();
    }
    let args = Args::parse();
    match std::env::current_exe() {
        // Before any other thread exists: the harness spawns nodes from YILIAN_NODE_BIN.
        Ok(me) => std::env::set_var("YILIAN_NODE_BIN", me),
        Err(e) => {
            eprintln!("soak: cannot find its own executable to run nodes with: {e}");
            return ExitCode::FAILURE;
        }
    }
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime.block_on(soak(args)),
        Err(e) => {
            eprintln!("soak: cannot start the Tokio runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn soak(args: Args) -> ExitCode {
    let first = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs())
    });
    let settings = Settings { faults: args.faults, ..Settings::default() };
    println!("soak: {} schedules from seed {first}", args.schedules);
    let mut runs: Vec<RunReport> = Vec::new();
    let mut harness_failures = Vec::new();
    for seed in first..first.saturating_add(args.schedules) {
        // A harness panic (a node never came back, say) fails the schedule, not the soak.
        match tokio::spawn(async move { jepsen::run(seed, &settings).await }).await {
            Ok(report) => {
                print!("{report}");
                runs.push(report);
            }
            Err(e) => {
                eprintln!("schedule {seed}: harness failure: {e}");
                harness_failures.push(seed);
            }
        }
    }
    println!("\n{}", jepsen::summary_table(&runs, harness_failures.len()));
    if !harness_failures.is_empty() {
        println!("harness failures (replay with --schedules 1 --seed <seed>): {harness_failures:?}");
    }
    if runs.iter().any(|r| !r.violations.is_empty()) || !harness_failures.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
