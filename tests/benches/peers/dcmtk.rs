//! DCMTK as the benchmarks run it: storescu as the C-STORE client for every DIMSE measurement, so
//! Yilian and the peers receive the same bytes from the same sender, and its servers (storescp,
//! dcmqrscp) started on loopback.

use crate::peers::{Peer, STORESCU};
use anyhow::Context;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How DCMTK's network code sets up its TCP connections. Debian's DCMTK 3.6.7 leaves Nagle's
/// algorithm on unless the environment says `TCP_NODELAY=1` (dcmnet's runtime switch): then a
/// response sent in two writes waits for the peer's delayed ACK (~40 ms on Linux) before its
/// second part leaves, once per C-STORE. Every DCMTK measurement is taken both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nagle {
    /// As DCMTK ships: Nagle's algorithm on.
    On,
    /// `TCP_NODELAY=1`: Nagle's algorithm off.
    Off,
}

impl Nagle {
    /// Both settings, the shipped one first.
    pub const BOTH: [Nagle; 2] = [Nagle::On, Nagle::Off];

    /// Set the environment of a DCMTK program (storescu, storescp, Orthanc) for this setting.
    pub fn apply(self, command: &mut std::process::Command) {
        match self {
            Nagle::On => command.env_remove("TCP_NODELAY"),
            Nagle::Off => command.env("TCP_NODELAY", "1"),
        };
    }

    /// What a report row adds to the peer's name for this setting.
    pub fn peer_suffix(self) -> &'static str {
        match self {
            Nagle::On => "",
            Nagle::Off => ", TCP_NODELAY=1",
        }
    }
}

/// Send `files` to `ae_title` at 127.0.0.1:`port` over `associations` parallel associations
/// (one storescu process each, files dealt round-robin), storescu's TCP set up as `nagle` says;
/// the wall time until all are stored.
pub async fn store(
    ae_title: &str,
    port: u16,
    files: &[PathBuf],
    associations: usize,
    nagle: Nagle,
) -> anyhow::Result<Duration> {
    let program = STORESCU.require()?;
    let count = associations.max(1);
    let mut shares: Vec<Vec<PathBuf>> = vec![Vec::new(); count];
    for (i, f) in files.iter().enumerate() {
        shares[i % count].push(f.clone());
    }
    let started = Instant::now();
    let mut children = Vec::new();
    for share in shares.into_iter().filter(|s| !s.is_empty()) {
        let mut command = std::process::Command::new(&program);
        nagle.apply(&mut command);
        let child = tokio::process::Command::from(command)
            .args(["-aec", ae_title, "127.0.0.1", &port.to_string()])
            .args(&share)
            .kill_on_drop(true)
            .output();
        children.push(tokio::spawn(child));
    }
    for child in children {
        let out = child.await?.context("running storescu")?;
        crate::peers::ensure_succeeded(&format!("storescu to {ae_title}"), &out)?;
    }
    Ok(started.elapsed())
}

/// Start DCMTK server `peer` with `args`, its TCP set up as `nagle` says and its output
/// discarded, and wait until it accepts connections on 127.0.0.1:`port`. Killed when the
/// returned child is dropped.
pub async fn serve(
    peer: Peer,
    args: &[std::ffi::OsString],
    port: u16,
    nagle: Nagle,
) -> anyhow::Result<tokio::process::Child> {
    let mut command = std::process::Command::new(peer.require()?);
    nagle.apply(&mut command);
    let child = tokio::process::Command::from(command)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", peer.program))?;
    let addr = format!("127.0.0.1:{port}");
    crate::etcd::wait_ok(&format!("{} to listen", peer.program), Duration::from_secs(10), || {
        let a = addr.clone();
        async move { tokio::net::TcpStream::connect(a).await.map(drop).map_err(Into::into) }
    })
    .await?;
    Ok(child)
}
