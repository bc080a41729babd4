//! Scenario 4: the state machine at scale, in process on the real storage (redb) and state
//! machine: apply N case submissions (1 million; 100 000 with --quick) in Raft-sized batches,
//! each followed by a durable commit on the same database as a node's log append makes, then
//! measure resident memory, the time to take a snapshot (log compaction) and to encode one for a
//! follower, its size, the database size, and restart (reopen + load) time.
//! Yilian only: no peer holds the same state.

use crate::Settings;
use openraft::storage::{RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use std::collections::BTreeSet;
use std::io::SeekFrom;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncSeekExt;
use yilian_consensus::store;
use yilian_consensus::types::{Request, TypeConfig};
use yilian_referral::{
    Actor, CaseSubmission, Change, Command, FacilityId, FacilityLevel, FacilityRegistration, PatientKey,
    Priority, SpecialistId, SpecialistRegistration, Vitals,
};
use yilian_tests::report::{Better, Row};

/// Entries per `apply` call: 300, the node's `max_payload_entries` default when the published
/// scale figures were taken (kept so runs stay comparable; the default is 64 now).
const BATCH: usize = 300;

/// Resident set size of this process, in MiB.
fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

/// Largest resident set size of this process since the last [`reset_peak_rss`], in MiB.
fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// Start measuring the peak resident set size afresh (Linux 4.0 and later).
fn reset_peak_rss() -> std::io::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")
}

/// A size field of `/proc/self/status` (given in KiB), in MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

fn entry(index: u64, command: Command) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Request::Referral {
            at_ms: 1_700_000_000_000 + index,
            command: Arc::new(command),
        }),
    }
}

fn setup_commands() -> Vec<Command> {
    let ops = Actor::ops("bench");
    let facility = |id: &str, level, parent: Option<&str>| {
        Command::new(
            ops.clone(),
            Change::RegisterFacility(FacilityRegistration {
                id: FacilityId(id.into()),
                name: id.into(),
                level,
                region: "r".into(),
                parent: parent.map(|p| FacilityId(p.into())),
                location: None,
                devices: BTreeSet::new(),
            }),
        )
    };
    vec![
        facility("PROV", FacilityLevel::Provincial, None),
        facility("CTY", FacilityLevel::County, Some("PROV")),
        facility("TS", FacilityLevel::Township, Some("CTY")),
        Command::new(
            ops.clone(),
            Change::RegisterSpecialist(SpecialistRegistration {
                id: SpecialistId("DR".into()),
                name: "DR".into(),
                facility: FacilityId("CTY".into()),
                specialty: "cardiology".into(),
                modalities: BTreeSet::new(),
                licensed_regions: BTreeSet::new(),
                cap: 1000,
                on_shift: true,
            }),
        ),
    ]
}

fn submission(i: u64) -> Command {
    Command::new(
        Actor::staff("nurse", "TS"),
        Change::SubmitCase(CaseSubmission {
            patient: PatientKey(format!("{:064x}", i % 200_000)),
            complaint: format!("胸闷气短三天，活动后加重，伴心悸、出汗；既往高血压十年。病例 {i}"),
            vitals: Vitals::default(),
            priority: Priority::Routine,
            green_channel: None,
            specialty: "cardiology".into(),
            modality: None,
            origin: FacilityId("TS".into()),
            target: None,
            draft: false,
        }),
    )
}

/// Run the scenario and return its rows.
pub async fn run(s: &Settings) -> anyhow::Result<Vec<Row>> {
    let cases: u64 = if s.quick { 100_000 } else { 1_000_000 };
    let label = if cases >= 1_000_000 {
        format!("{}M cases", cases / 1_000_000)
    } else {
        format!("{}k cases", cases / 1000)
    };
    let mut apply_rate = Vec::new();
    let mut memory = Vec::new();
    let mut snapshot_s = Vec::new();
    let mut encode_s = Vec::new();
    let mut install_s = Vec::new();
    let mut install_mib = Vec::new();
    let mut snapshot_mb = Vec::new();
    let mut restart_s = Vec::new();
    let mut disk_mb = Vec::new();
    let mut db_mb = Vec::new();
    let mut figures_s = Vec::new();
    // One run: a million-case state takes minutes to build on two cores; the other scenarios repeat.
    let dir = tempfile::Builder::new().prefix("yilian-bench-scale-").tempdir()?;
    let before = rss_mib();
    let opened = store::open(dir.path())?;
    let (mut log, mut sm) = (opened.log, opened.state_machine);
    // A node makes a durable commit on the same database for every log append; here a durable
    // vote save after each batch stands in for it, so redb reuses freed pages as in a node.
    let vote = openraft::Vote::new(1, 1);
    let mut index = 1;
    let setup: Vec<_> = setup_commands()
        .into_iter()
        .map(|c| {
            index += 1;
            entry(index, c)
        })
        .collect();
    sm.apply(setup).await?;
    // Timed: applying and the state writer storing what was applied (it runs beside apply, as
    // in a node); not timed: the durable commits standing in for log appends.
    let mut applying = std::time::Duration::ZERO;
    let mut i = 0;
    while i < cases {
        let n = (cases - i).min(BATCH as u64);
        let batch: Vec<_> = (i..i + n)
            .map(|k| {
                index += 1;
                entry(index, submission(k))
            })
            .collect();
        let started = Instant::now();
        sm.apply(batch).await?;
        applying += started.elapsed();
        log.save_vote(&vote).await?;
        i += n;
    }
    let started = Instant::now();
    sm.stored().await?;
    applying += started.elapsed();
    apply_rate.push(cases as f64 / applying.as_secs_f64());
    memory.push(rss_mib() - before);
    let held = sm.shared().read().region.find_cases(&Default::default()).count();
    anyhow::ensure!(held as u64 == cases, "the state machine holds {held} cases, expected {cases}");
    let started = Instant::now();
    let figures = yilian_referral::Figures::compute(&sm.shared().read().region, 1_800_000_000_000);
    figures_s.push(started.elapsed().as_secs_f64());
    anyhow::ensure!(figures.totals.cases == cases, "the figures count {} cases", figures.totals.cases);
    let started = Instant::now();
    let mut snapshot = sm.get_snapshot_builder().await.build_snapshot().await?;
    snapshot_s.push(started.elapsed().as_secs_f64());
    let started = Instant::now();
    let size = snapshot.snapshot.seek(SeekFrom::End(0)).await?;
    encode_s.push(started.elapsed().as_secs_f64());
    snapshot_mb.push(size as f64 / 1e6);
    // A follower installing it: an empty store beside the source (which stays in memory, so the
    // peak counts only what installing adds).
    let follower = tempfile::Builder::new().prefix("yilian-bench-scale-follower-").tempdir()?;
    let mut target = store::open(follower.path())?.state_machine;
    snapshot.snapshot.seek(SeekFrom::Start(0)).await?;
    let resident = rss_mib();
    let peak_measured = match reset_peak_rss() {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "  cannot reset the peak resident size ({e}); the install's peak memory is not reported"
            );
            false
        }
    };
    let started = Instant::now();
    target.install_snapshot(&snapshot.meta, snapshot.snapshot).await?;
    install_s.push(started.elapsed().as_secs_f64());
    if peak_measured {
        install_mib.push(peak_rss_mib() - resident);
    }
    let held = target.shared().read().region.find_cases(&Default::default()).count();
    anyhow::ensure!(held as u64 == cases, "the follower installed {held} cases, expected {cases}");
    drop((target, follower));
    drop((log, sm));
    db_mb.push(std::fs::metadata(dir.path().join(store::DB_FILE))?.len() as f64 / 1e6);
    disk_mb.push(dir_size(dir.path())? as f64 / 1e6);
    let started = Instant::now();
    let reopened = store::open(dir.path())?;
    restart_s.push(started.elapsed().as_secs_f64());
    let held = reopened.state_machine.shared().read().region.find_cases(&Default::default()).count();
    anyhow::ensure!(
        held as u64 == cases,
        "after restart the state machine holds {held} cases, expected {cases}"
    );
    eprintln!(
        "  scale {label}: apply {:.0}/s, +{:.0} MiB RSS, figures {:.2} s, snapshot taken {:.3} s, encoded {:.2} s / {:.0} MB, installed {:.2} s / peak +{:.0} MiB, db {:.0} MB (data directory {:.0} MB), restart {:.2} s",
        apply_rate[0],
        memory[0],
        figures_s[0],
        snapshot_s[0],
        encode_s[0],
        snapshot_mb[0],
        install_s[0],
        install_mib.first().copied().unwrap_or(f64::NAN),
        db_mb[0],
        disk_mb[0],
        restart_s[0]
    );
    let row = |metric: &str, unit, better, v: &[f64]| {
        Row::alone("scale", format!("{metric} ({label})"), unit, better, v)
    };
    let mut rows = vec![
        row("apply rate, batches of 300", "cases/s", Better::Higher, &apply_rate),
        row("resident memory added", "MiB", Better::Lower, &memory),
        row("bureau figures (each /metrics scrape and /v1/figures)", "s", Better::Lower, &figures_s),
        row("snapshot taken (log compaction)", "s", Better::Lower, &snapshot_s),
        row("snapshot encoded for a follower", "s", Better::Lower, &encode_s),
        row("snapshot size", "MB", Better::Lower, &snapshot_mb),
        row("snapshot installed on an empty follower", "s", Better::Lower, &install_s),
    ];
    if !install_mib.is_empty() {
        rows.push(row("peak memory added while installing it", "MiB", Better::Lower, &install_mib));
    }
    rows.extend([
        row("database file size", "MB", Better::Lower, &db_mb),
        row("data directory size", "MB", Better::Lower, &disk_mb),
        row("restart (open + load state)", "s", Better::Lower, &restart_s),
    ]);
    Ok(rows)
}

/// Bytes held by the files under `dir`.
fn dir_size(dir: &std::path::Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { dir_size(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}
