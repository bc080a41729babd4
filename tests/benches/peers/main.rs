//! Yilian's benchmark runner: each scenario runs the same workload against Yilian and against the
//! system people would use instead (etcd, Orthanc, DCMTK), on loopback, in the same run, repeated;
//! prints a side-by-side table (medians, min–max, Yilian's advantage) and writes a JSON report.
//! Nothing is installed: a missing peer stops the run with the package to install.
//!
//! `cargo bench -p yilian-tests --bench peers -- [SCENARIO...] [--quick] [--runs N] [--out FILE]`

mod bulk;
mod dcmqr;
mod dcmtk;
mod etcd;
mod failover;
mod ingest;
mod lossy;
mod machine;
mod orthanc;
mod peers;
mod prefetch;
mod scale;
mod shaper;
mod transfer;
mod writes;
mod yilian;

use clap::{Parser, ValueEnum};
use peers::Peer;
use std::path::{Path, PathBuf};
use std::time::Duration;
use yilian_tests::report::Report;

/// One benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Scenario {
    /// Every scenario below, in order.
    All,
    /// Replicated writes and linearizable reads: 3-node Yilian vs 3-member etcd 3.4.
    Writes,
    /// C-STORE ingest of one CT study: a Yilian node vs Orthanc 1.10, same files, same associations.
    Ingest,
    /// kill -9 the leader → first acknowledged write: Yilian vs etcd.
    Failover,
    /// One million cases in the state machine: memory, snapshot size and time, restart time.
    Scale,
    /// One CT study node to node: Yilian's prefetch vs DCMTK storescu→storescp, on loopback and
    /// through a shaped link; also Yilian's time to first image.
    Transfer,
    /// Raft write latency while a study transfer saturates the links vs idle, same cluster.
    Bulk,
    /// One CT study through a link that loses 1 % of packets: Yilian's nodes sending with BBR
    /// vs as shipped (Cubic).
    Lossy,
}

impl Scenario {
    const EACH: [Scenario; 7] = [
        Scenario::Writes,
        Scenario::Ingest,
        Scenario::Failover,
        Scenario::Scale,
        Scenario::Transfer,
        Scenario::Bulk,
        Scenario::Lossy,
    ];

    fn peers(self) -> &'static [Peer] {
        match self {
            Scenario::All => &[],
            Scenario::Writes | Scenario::Failover => &[peers::ETCD],
            Scenario::Ingest => &[peers::ORTHANC, peers::STORESCU],
            Scenario::Scale | Scenario::Bulk | Scenario::Lossy => &[],
            Scenario::Transfer => &[peers::STORESCU, peers::STORESCP, peers::DCMQRSCP, peers::GETSCU],
        }
    }
}

/// Command line of the runner.
#[derive(Debug, Parser)]
#[command(name = "peers", about = "Benchmark Yilian side by side with etcd, Orthanc and DCMTK")]
struct Cli {
    /// Scenarios to run (default: all).
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,
    /// Short windows and fewer runs, for development; not for published numbers.
    #[arg(long)]
    quick: bool,
    /// Runs per measurement (default 3, or 2 with --quick).
    #[arg(long)]
    runs: Option<usize>,
    /// Client counts for `writes` (default 1, 16, 64 and 256), e.g. `--clients 64` to profile one.
    #[arg(long, value_delimiter = ',')]
    clients: Vec<usize>,
    /// Where to write the JSON report; a relative path is taken from the repository root
    /// (`cargo bench` runs the runner in `tests/`).
    #[arg(long, default_value = "target/bench/report.json")]
    out: PathBuf,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// How long and how often every measurement runs.
pub struct Settings {
    /// Whether `--quick` is on.
    pub quick: bool,
    /// Runs per measurement.
    pub runs: usize,
    /// Warm-up before each measured window.
    pub warmup: Duration,
    /// Length of each measured window.
    pub window: Duration,
    /// Client counts the `writes` scenario runs at.
    pub clients: Vec<usize>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(mut cli: Cli) -> anyhow::Result<()> {
    cli.out = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(&cli.out);
    let mut scenarios: Vec<Scenario> = if cli.scenarios.is_empty() || cli.scenarios.contains(&Scenario::All) {
        Scenario::EACH.to_vec()
    } else {
        cli.scenarios.clone()
    };
    scenarios.sort();
    scenarios.dedup();
    let needed: Vec<Peer> = scenarios.iter().flat_map(|s| s.peers().iter().copied()).collect();
    peers::require_all(&needed)?;
    let node = yilian_tests::harness::node_binary();
    anyhow::ensure!(
        node.is_file(),
        "the node binary {} is missing; run the benchmarks with `cargo bench -p yilian-tests --bench peers`, \
         which builds it, or point YILIAN_NODE_BIN at a `yilian` binary",
        node.display()
    );
    let settings = Settings {
        quick: cli.quick,
        runs: cli.runs.unwrap_or(if cli.quick { 2 } else { 3 }).max(1),
        warmup: Duration::from_millis(if cli.quick { 500 } else { 1000 }),
        window: Duration::from_secs(if cli.quick { 2 } else { 5 }),
        clients: if cli.clients.is_empty() { vec![1, 16, 64, 256] } else { cli.clients.clone() },
    };
    let http =
        reqwest::Client::builder().pool_max_idle_per_host(1024).timeout(Duration::from_secs(30)).build()?;
    let mut report = Report {
        command: std::env::args().skip(1).filter(|a| a != "--bench").collect::<Vec<_>>().join(" "),
        started_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs(),
        runs: settings.runs,
        quick: settings.quick,
        machine: machine::describe(),
        rows: Vec::new(),
        skipped: Vec::new(),
    };
    for scenario in scenarios {
        eprintln!("== {scenario:?}");
        let rows = match scenario {
            Scenario::All => Vec::new(),
            Scenario::Writes => writes::run(&settings, &http).await?,
            Scenario::Ingest => ingest::run(&settings, &http).await?,
            Scenario::Failover => failover::run(&settings, &http).await?,
            Scenario::Scale => scale::run(&settings).await?,
            Scenario::Transfer => transfer::run(&settings).await?,
            Scenario::Bulk => bulk::run(&settings, &http).await?,
            Scenario::Lossy => lossy::run(&settings).await?,
        };
        report.rows.extend(rows);
        report.write_json(&cli.out)?;
    }
    println!("{}", report.table());
    report.write_json(&cli.out)?;
    eprintln!("JSON report: {}", cli.out.display());
    Ok(())
}
