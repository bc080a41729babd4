//! DCMTK's query/retrieve pair, the pull reference for time to first image: `dcmqrscp` holds the
//! study as an archive would, and `getscu` retrieves it with C-GET, whose C-STORE
//! sub-operations come back on the same association (so it also works through the TCP shaper).

use crate::dcmtk::{self, Nagle};
use crate::peers::{DCMQRSCP, GETSCU};
use anyhow::Context;
use std::path::{Path, PathBuf};
use yilian_tests::harness::free_port;

/// The archive's AE title.
const AE_TITLE: &str = "QRSCP";

/// A dcmqrscp archive in a temp directory holding one study; killed on drop.
pub struct QrScp {
    _dir: tempfile::TempDir,
    child: tokio::process::Child,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
}

impl QrScp {
    /// Start an archive with its TCP set up as `nagle` says, and store `files` into it (with
    /// Nagle's algorithm off, to load it quickly: the load is not measured).
    pub async fn holding(files: &[PathBuf], nagle: Nagle) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("yilian-bench-dcmqrscp-").tempdir()?;
        let storage = dir.path().join("db");
        std::fs::create_dir_all(&storage)?;
        let port = free_port();
        let config = dir.path().join("dcmqrscp.cfg");
        std::fs::write(&config, config_text(port, &storage))?;
        let args = ["-c".into(), config.into(), port.to_string().into()];
        let child = dcmtk::serve(DCMQRSCP, &args, port, nagle).await?;
        let archive = Self { _dir: dir, child, port };
        dcmtk::store(AE_TITLE, port, files, 1, Nagle::Off)
            .await
            .context("loading the study into dcmqrscp")?;
        Ok(archive)
    }
}

impl Drop for QrScp {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// dcmqrscp's configuration: one storage area, any caller allowed.
fn config_text(port: u16, storage: &Path) -> String {
    format!(
        "NetworkTCPPort  = {port}\nMaxPDUSize      = 16384\nMaxAssociations = 16\n\n\
         HostTable BEGIN\nHostTable END\n\nVendorTable BEGIN\nVendorTable END\n\n\
         AETable BEGIN\n{AE_TITLE}   {}   RW   (100, 1024mb)   ANY\nAETable END\n",
        storage.display()
    )
}

/// Retrieve study `study_uid` with getscu (its TCP set up as `nagle` says) from the archive
/// listening at 127.0.0.1:`port` (the archive's own port, or a shaper in front of it) into `out`.
pub async fn get(port: u16, study_uid: &str, out: &Path, nagle: Nagle) -> anyhow::Result<()> {
    let program = GETSCU.require()?;
    let mut command = std::process::Command::new(program);
    nagle.apply(&mut command);
    let result = tokio::process::Command::from(command)
        .args(["-aet", "GETSCU", "-aec", AE_TITLE, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k"])
        .arg(format!("StudyInstanceUID={study_uid}"))
        .arg("-od")
        .arg(out)
        .args(["127.0.0.1", &port.to_string()])
        .kill_on_drop(true)
        .output()
        .await
        .context("running getscu")?;
    crate::peers::ensure_succeeded(&format!("getscu from {AE_TITLE}"), &result)
}
