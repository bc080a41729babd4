//! Scenario 5 (and 4): moving one CT study (512×512 16-bit slices; 300 full, 60 with --quick)
//! between two sites, on loopback, through a link shaped to a fixed rate (goodput as a share
//! of that rate), and through the same link with a wide-area round trip ([`Path`]). Yilian: a
//! 2-node cluster per path, the study uploaded into node 1 and prefetched by node 2 once its
//! case is assigned to a reader node 2 serves ([`prefetch`]); through the link, every node sits
//! behind the harness's UDP relay pacing each direction at the link rate with a bounded queue
//! (tbf-like) and the path's delay. DCMTK: storescu → storescp with the same files, direct and
//! through the TCP [`shaper`] at the same rate and delay. The same runs time Yilian's first
//! image at node 2 against two DCMTK references, each file listed every 5 ms: the first
//! instance stored by storescp (a push, from the start of storescu), and the first instance
//! getscu retrieves with C-GET from a dcmqrscp archive holding the study (a pull, as a reader's
//! workstation asks an archive: from the start of getscu, so its association, query and
//! retrieve are inside the time).

use crate::dcmqr::{self, QrScp};
use crate::dcmtk::Nagle;
use crate::peers::STORESCP;
use crate::prefetch::{self, Staged};
use crate::yilian::YilianCluster;
use crate::{dcmtk, shaper, Settings};
use anyhow::Context;
use std::time::Duration;
use yilian_tests::harness::free_port;
use yilian_tests::netfault::LinkRule;
use yilian_tests::report::{Better, Row};

/// Rate of the shaped link, Mbit/s (a county hospital's leased line).
pub const LINK_MBIT: f64 = 100.0;
const PEER: &str = "DCMTK storescu→storescp";

/// A storescp receiving into a temp directory; killed on drop.
struct StoreScp {
    dir: tempfile::TempDir,
    child: tokio::process::Child,
    port: u16,
}

impl StoreScp {
    async fn start(nagle: Nagle) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("yilian-bench-storescp-").tempdir()?;
        let port = free_port();
        let args =
            ["-aet".into(), "STORESCP".into(), "-od".into(), dir.path().into(), port.to_string().into()];
        let child = dcmtk::serve(STORESCP, &args, port, nagle).await?;
        Ok(Self { dir, child, port })
    }
}

impl Drop for StoreScp {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Round trip of the wide-area path, ms: a county hospital to its provincial hospital.
const WAN_RTT_MS: u64 = 40;

/// Goodput of `mb` megabytes moved in `secs` seconds, as a percentage of [`LINK_MBIT`].
pub fn link_share(mb: f64, secs: f64) -> f64 {
    100.0 * (mb * 8.0 / secs) / LINK_MBIT
}

/// Link rule of the shaped link: [`LINK_MBIT`] each way, packets beyond a 250 ms queue dropped.
pub fn shaped_link() -> LinkRule {
    LinkRule { rate: Some((LINK_MBIT * 1e6 / 8.0) as u64), ..LinkRule::default() }
}

/// A path between the two sites.
#[derive(Clone, Copy, PartialEq)]
enum Path {
    Loopback,
    /// The shaped link, with no delay beyond the hosts'.
    Link,
    /// The shaped link with [`WAN_RTT_MS`] of round trip.
    Wan,
}

impl Path {
    const ALL: [Path; 3] = [Path::Loopback, Path::Link, Path::Wan];

    /// Name in the rows and the progress lines.
    fn label(self) -> String {
        match self {
            Path::Loopback => "loopback".into(),
            Path::Link => format!("{LINK_MBIT} Mbit/s link"),
            Path::Wan => format!("{LINK_MBIT} Mbit/s link, {WAN_RTT_MS} ms round trip"),
        }
    }

    /// Delay each direction adds; `None` when the path is not shaped.
    fn one_way_delay(self) -> Option<Duration> {
        match self {
            Path::Loopback => None,
            Path::Link => Some(Duration::ZERO),
            Path::Wan => Some(Duration::from_millis(WAN_RTT_MS / 2)),
        }
    }

    /// A 2-node Yilian site pair ready to prefetch, its nodes behind this path.
    async fn site_pair(self) -> anyhow::Result<YilianCluster> {
        let toml = prefetch::imaging_toml();
        let ours = match self.one_way_delay() {
            Some(delay) => {
                let ours = YilianCluster::start_behind_relays(2, &toml).await?;
                ours.cluster.net().set_all(LinkRule { delay, ..shaped_link() });
                ours
            }
            None => YilianCluster::start(2, &toml).await?,
        };
        prefetch::add_reader(&ours).await?;
        Ok(ours)
    }

    /// Metric and unit of this path's rate row: MB/s on loopback, the share of the link through it.
    fn rate_metric(self) -> (String, &'static str) {
        match self {
            Path::Loopback => (format!("{} MB/s", self.label()), "MB/s"),
            Path::Link | Path::Wan => (format!("goodput share of a {}", self.label()), "%"),
        }
    }

    /// The rate of [`Path::rate_metric`] for `mb` megabytes moved in `secs` seconds.
    fn rate(self, mb: f64, secs: f64) -> f64 {
        match self {
            Path::Loopback => mb / secs,
            Path::Link | Path::Wan => link_share(mb, secs),
        }
    }

    /// The port a DCMTK client uses to reach a DCMTK server on `port` through this path, and the
    /// shaper in between (stops when dropped).
    async fn reach(self, port: u16) -> anyhow::Result<(u16, Option<shaper::Shaper>)> {
        let Some(delay) = self.one_way_delay() else { return Ok((port, None)) };
        let link = shaper::start(format!("127.0.0.1:{port}").parse()?, LINK_MBIT, delay).await?;
        Ok((link.port, Some(link)))
    }
}

/// What one Yilian transfer took: (first image servable at node 2, verified copy at node 2).
pub async fn prefetch_once(ours: &YilianCluster, staged: &Staged) -> anyhow::Result<(f64, f64)> {
    let since = prefetch::offer(ours, 1, staged).await?;
    let (first, copy) = tokio::join!(
        prefetch::first_image(ours, 2, staged, since),
        prefetch::copy_held(ours, 2, staged, since)
    );
    Ok((first?.as_secs_f64(), copy?.as_secs_f64()))
}

/// What one DCMTK transfer took, seconds from starting storescu: (first instance stored by
/// storescp, all stored).
struct DcmtkRun {
    first_s: f64,
    all_s: f64,
}

/// DCMTK storescu → storescp of `files` through `path`, both programs' TCP set up as `nagle` says.
async fn dcmtk_once(files: &[std::path::PathBuf], path: Path, nagle: Nagle) -> anyhow::Result<DcmtkRun> {
    let scp = StoreScp::start(nagle).await?;
    let watch = FileWatch::start(scp.dir.path().to_owned());
    let (port, _link) = path.reach(scp.port).await?;
    let took = dcmtk::store("STORESCP", port, files, 1, nagle).await?;
    let first = watch.first_complete().await?.context("storescp stored no file")?;
    Ok(DcmtkRun { first_s: first.as_secs_f64(), all_s: took.as_secs_f64() })
}

/// DCMTK getscu ← dcmqrscp of the study `staged` holds (loaded into a fresh archive first, not
/// timed) through `path`, both programs' TCP set up as `nagle` says: seconds from starting
/// getscu until the first instance is written.
async fn dcmtk_get_first(staged: &Staged, path: Path, nagle: Nagle) -> anyhow::Result<f64> {
    let archive = QrScp::holding(&staged.files, nagle).await?;
    let out = tempfile::Builder::new().prefix("yilian-bench-getscu-").tempdir()?;
    let (port, _link) = path.reach(archive.port).await?;
    let watch = FileWatch::start(out.path().to_owned());
    dcmqr::get(port, &staged.study_uid, out.path(), nagle).await?;
    let first = watch.first_complete().await?.context("getscu retrieved no file")?;
    Ok(first.as_secs_f64())
}

/// Watches the files appearing in a directory, to tell when the first of them was complete.
struct FileWatch {
    dir: std::path::PathBuf,
    started: std::time::Instant,
    stop: tokio::sync::oneshot::Sender<()>,
    seen: tokio::task::JoinHandle<std::collections::HashMap<std::ffi::OsString, (u64, std::time::Instant)>>,
}

impl FileWatch {
    /// How often the directory is listed: the resolution of the first-file time.
    const POLL: Duration = Duration::from_millis(5);

    /// Start listing `dir` every [`Self::POLL`], noting when each file first had each size.
    fn start(dir: std::path::PathBuf) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let listed = dir.clone();
        let seen = tokio::spawn(async move {
            let mut seen = std::collections::HashMap::new();
            while stopped.try_recv().is_err() {
                for entry in std::fs::read_dir(&listed).into_iter().flatten().flatten() {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    let now = std::time::Instant::now();
                    let noted = seen.entry(entry.file_name()).or_insert((size, now));
                    if noted.0 != size {
                        *noted = (size, now);
                    }
                }
                tokio::time::sleep(Self::POLL).await;
            }
            seen
        });
        Self { dir, started: std::time::Instant::now(), stop, seen }
    }

    /// Once every file is written: how long after the start the earliest file reached its final
    /// size (within [`Self::POLL`]).
    async fn first_complete(self) -> anyhow::Result<Option<Duration>> {
        let _ = self.stop.send(());
        let seen = self.seen.await?;
        let mut first = None;
        for entry in std::fs::read_dir(&self.dir)?.flatten() {
            let size = entry.metadata()?.len();
            if let Some((_, at)) = seen.get(&entry.file_name()).filter(|(noted, _)| *noted == size) {
                let after = at.saturating_duration_since(self.started);
                first = Some(first.map_or(after, |f: Duration| f.min(after)));
            }
        }
        Ok(first)
    }
}

/// Per-run values of one path.
#[derive(Default)]
struct Runs {
    yilian_s: Vec<f64>,
    /// DCMTK's seconds, per [`Nagle::BOTH`] setting.
    dcmtk_s: [Vec<f64>; 2],
    /// DCMTK's seconds to the first instance stored, per [`Nagle::BOTH`] setting.
    dcmtk_first_s: [Vec<f64>; 2],
    /// DCMTK's seconds to the first instance retrieved with C-GET, per [`Nagle::BOTH`] setting.
    dcmtk_get_first_s: [Vec<f64>; 2],
    first_image_s: Vec<f64>,
    mb: f64,
}

/// Run the scenario and return its rows.
pub async fn run(s: &Settings) -> anyhow::Result<Vec<Row>> {
    let slices: u32 = if s.quick { 60 } else { 300 };
    let mut pairs = Vec::new();
    for path in Path::ALL {
        pairs.push((path, path.site_pair().await?, Runs::default()));
    }
    for run in 0..s.runs {
        for (n, (path, ours, runs)) in pairs.iter_mut().enumerate() {
            let staged = prefetch::stage(ours, 1, 7000 + (run * Path::ALL.len() + n) as u64, slices).await?;
            let (first, copy) = prefetch_once(ours, &staged).await?;
            for (i, nagle) in Nagle::BOTH.into_iter().enumerate() {
                let dcmtk = dcmtk_once(&staged.files, *path, nagle).await?;
                runs.dcmtk_s[i].push(dcmtk.all_s);
                runs.dcmtk_first_s[i].push(dcmtk.first_s);
                runs.dcmtk_get_first_s[i].push(dcmtk_get_first(&staged, *path, nagle).await?);
            }
            runs.mb = staged.bytes as f64 / 1e6;
            runs.yilian_s.push(copy);
            runs.first_image_s.push(first);
            eprintln!(
                "  transfer run {} ({}): {:.0} MB, Yilian {copy:.2} s (first image {first:.3} s), DCMTK {:.2} s \
                 (first {:.3} s, C-GET first {:.3} s), with TCP_NODELAY=1 {:.2} s (first {:.3} s, C-GET first {:.3} s)",
                run + 1,
                path.label(),
                runs.mb,
                runs.dcmtk_s[0][run],
                runs.dcmtk_first_s[0][run],
                runs.dcmtk_get_first_s[0][run],
                runs.dcmtk_s[1][run],
                runs.dcmtk_first_s[1][run],
                runs.dcmtk_get_first_s[1][run],
            );
        }
    }
    let metric = |m: &str, mb: f64| format!("{m}, CT {slices}×512² ({mb:.0} MB)");
    let mut rows = Vec::new();
    for (i, nagle) in Nagle::BOTH.into_iter().enumerate() {
        let peer = format!("{PEER}{}", nagle.peer_suffix());
        for (path, _, runs) in &pairs {
            let (mb, label) = (runs.mb, path.label());
            let row = |m: String, unit: &str, better, ours: &[f64], theirs: &[f64]| {
                Row::compare("transfer", metric(&m, mb), unit, better, ours, &peer, theirs)
            };
            let (ours, theirs) = (&runs.yilian_s, &runs.dcmtk_s[i]);
            rows.push(row(format!("{label} seconds"), "s", Better::Lower, ours, theirs));
            let (rate_metric, unit) = path.rate_metric();
            let rates = |secs: &[f64]| secs.iter().map(|t| path.rate(mb, *t)).collect::<Vec<_>>();
            rows.push(row(rate_metric, unit, Better::Higher, &rates(ours), &rates(theirs)));
        }
    }
    let references = [
        (PEER, "push: storescu start → first instance stored", false),
        ("DCMTK getscu←dcmqrscp", "pull: getscu start → first instance retrieved (C-GET)", true),
    ];
    for (name, what, pull) in references {
        for (i, nagle) in Nagle::BOTH.into_iter().enumerate() {
            let peer = format!("{name}{}, {what}", nagle.peer_suffix());
            for (path, _, runs) in &pairs {
                rows.push(Row::compare(
                    "first-image",
                    metric(&format!("assigned → first image served, {}", path.label()), runs.mb),
                    "s",
                    Better::Lower,
                    &runs.first_image_s,
                    &peer,
                    if pull { &runs.dcmtk_get_first_s[i] } else { &runs.dcmtk_first_s[i] },
                ));
            }
        }
    }
    Ok(rows)
}
