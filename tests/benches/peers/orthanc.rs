//! An Orthanc 1.10 server on loopback (Debian `orthanc`) with its own temp storage and index
//! directories and ports, default storage settings, no plugins; killed on drop.

use crate::dcmtk::Nagle;
use crate::etcd::wait_ok;
use crate::peers::ORTHANC;
use anyhow::Context;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;
use yilian_tests::harness::free_port;

/// AE title Orthanc answers to.
pub const AE_TITLE: &str = "ORTHANC";

/// A running Orthanc.
pub struct Orthanc {
    _dir: TempDir,
    child: Child,
    /// DICOM (DIMSE) port.
    pub dicom_port: u16,
    /// REST API base URL.
    pub http_base: String,
}

impl Orthanc {
    /// Start Orthanc (its DICOM side is DCMTK's, TCP set up as `nagle` says) and wait until
    /// its REST API answers.
    pub async fn start(http: &reqwest::Client, nagle: Nagle) -> anyhow::Result<Self> {
        let program = ORTHANC.require()?;
        let dir = tempfile::Builder::new().prefix("yilian-bench-orthanc-").tempdir()?;
        let (dicom_port, http_port) = (free_port(), free_port());
        let config = json!({
            "Name": "yilian-bench",
            "StorageDirectory": dir.path().join("storage"),
            "IndexDirectory": dir.path().join("index"),
            "HttpPort": http_port,
            "DicomPort": dicom_port,
            "DicomAet": AE_TITLE,
            "DicomCheckCalledAet": false,
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false,
            "Plugins": [],
        });
        let path = dir.path().join("orthanc.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
        let log = std::fs::File::create(dir.path().join("orthanc.log"))?;
        let mut command = Command::new(program);
        nagle.apply(&mut command);
        let child = command
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting Orthanc")?;
        let server =
            Self { _dir: dir, child, dicom_port, http_base: format!("http://127.0.0.1:{http_port}") };
        let url = format!("{}/system", server.http_base);
        wait_ok("Orthanc's REST API to answer", Duration::from_secs(30), || {
            let (h, u) = (http.clone(), url.clone());
            async move { h.get(u).send().await?.error_for_status().map(drop).map_err(Into::into) }
        })
        .await?;
        Ok(server)
    }
}

impl Orthanc {
    /// The Orthanc process's id (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
