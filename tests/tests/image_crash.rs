//! Crash consistency for images (see `yilian_tests::image_crash`): seeded plans kill node
//! processes -9 at random points while images arrive by `yilian upload`, DCMTK `storescu` and
//! STOW-RS, and while nodes prefetch studies from each other (killing the fetcher or its
//! source). After every kill and once transfers settle, no partial or corrupt object is
//! visible, the manifest agrees with every store both ways, and transfers resume.
//!
//! Each plan is printed with its seed; `YILIAN_IMAGE_CRASH_SEED=<seed>` replays one and
//! `YILIAN_IMAGE_CRASH_SEEDS=<n>` runs n more.

use yilian_tests::image_crash;

/// The seeds the normal test command runs.
const SEEDS: [u64; 2] = [0x1A6E_0001, 0x1A6E_0002];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_survive_kills_during_ingest_and_transfer() {
    let seeds: Vec<u64> = match std::env::var("YILIAN_IMAGE_CRASH_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let extra =
                std::env::var("YILIAN_IMAGE_CRASH_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
            SEEDS.into_iter().chain((0..extra).map(|i| 0x1A6E_1000 + i)).collect()
        }
    };
    let mut failed = Vec::new();
    for seed in seeds {
        let report = image_crash::run(seed).await;
        print!("{report}");
        if !report.violations.is_empty() {
            failed.push(report.to_string());
        }
    }
    assert!(failed.is_empty(), "violations found:\n{}", failed.join("\n"));
}
