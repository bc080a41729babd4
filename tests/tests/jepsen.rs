//! Jepsen-style runs on real nodes behind fault-injecting relays (see `yilian_tests::jepsen`):
//! concurrent referral clients while a seeded schedule kills, freezes, partitions, degrades
//! links and replaces members; the history must be linearizable per case, acknowledged writes
//! durable on every member, members identical and audit chains valid.
//!
//! Each schedule is printed with its seed; `YILIAN_JEPSEN_SEED=<seed>` replays one and
//! `YILIAN_JEPSEN_SEEDS=<n>` runs n more (the soak binary runs many: README).

use yilian_tests::jepsen::{self, Fault, Mix, RunReport, Settings};

/// One run at a time: three-node clusters side by side would only slow each other down.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Run `seeds` (or the replay seed from the environment) and fail on any violation.
async fn run_seeds(seeds: &[u64], settings: Settings) -> Vec<RunReport> {
    let _serial = SERIAL.lock().await;
    let seeds: Vec<u64> = match std::env::var("YILIAN_JEPSEN_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let extra = std::env::var("YILIAN_JEPSEN_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
            seeds.iter().copied().chain((0..extra).map(|i| 0x50A4_0000 + i)).collect()
        }
    };
    let mut runs = Vec::new();
    for seed in seeds {
        let report = jepsen::run(seed, &settings).await;
        print!("{report}");
        runs.push(report);
    }
    println!("{}", jepsen::summary_table(&runs, 0));
    let failed: Vec<String> =
        runs.iter().filter(|r| !r.violations.is_empty()).map(ToString::to_string).collect();
    assert!(failed.is_empty(), "violations found:\n{}", failed.join("\n"));
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_under_crashes_and_pauses() {
    let mix = Mix { process: true, network: false, membership: false };
    run_seeds(&[0x5EED_0000], Settings { mix, faults: 6, ..Settings::default() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_under_partitions_loss_and_reordering() {
    let mix = Mix { process: false, network: true, membership: false };
    let runs = run_seeds(&[0x5EED_0100], Settings { mix, ..Settings::default() }).await;
    // Node-to-node traffic really crosses the relays.
    assert!(runs.iter().all(|r| r.packets_dropped > 0), "the relays dropped nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_under_every_kind_of_fault_with_a_member_replaced() {
    let runs = run_seeds(&[0x5EED_0200], Settings { faults: 5, ..Settings::default() }).await;
    let replaces = |r: &RunReport| r.schedule.steps.iter().any(|s| matches!(s.fault, Fault::Replace(_)));
    assert!(runs.iter().all(replaces), "the seed should replace a member under load");
}

/// Regression, soak schedule 2013 (`--faults 6`): a member is replaced at the start while other
/// faults follow. Removal used to retire the node id before the membership change, so followers
/// refused a removed leader before it had replicated its own removal; it stayed a retired member
/// that still believed it led. A node now retires only once a membership without it applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_soak_2013_member_replaced_at_the_start() {
    let runs = run_seeds(&[2013], Settings { faults: 6, ..Settings::default() }).await;
    let replaces = |r: &RunReport| r.schedule.steps.iter().any(|s| matches!(s.fault, Fault::Replace(_)));
    assert!(runs.iter().all(replaces), "schedule 2013 replaces a member");
}
