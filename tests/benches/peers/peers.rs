//! The peer programs the benchmarks run next to Yilian, and the check that they are installed.
//! The runner installs nothing: a missing peer stops it with the package and the script to run.

use std::path::PathBuf;
use yilian_tests::imaging_client::output_text;

/// Refuse a finished program run that failed, with `what` it was and everything it printed.
pub fn ensure_succeeded(what: &str, out: &std::process::Output) -> anyhow::Result<()> {
    anyhow::ensure!(out.status.success(), "{what} failed: {}", output_text(out));
    Ok(())
}

/// A program from a Debian package.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Program name looked up on PATH (and in /usr/sbin).
    pub program: &'static str,
    /// Debian package that ships it.
    pub package: &'static str,
}

/// etcd 3.4 server.
pub const ETCD: Peer = Peer { program: "etcd", package: "etcd-server" };
/// Orthanc 1.10.
pub const ORTHANC: Peer = Peer { program: "Orthanc", package: "orthanc" };
/// DCMTK's C-STORE SCU.
pub const STORESCU: Peer = Peer { program: "storescu", package: "dcmtk" };
/// DCMTK's C-STORE SCP.
pub const STORESCP: Peer = Peer { program: "storescp", package: "dcmtk" };
/// DCMTK's query/retrieve SCP (an archive answering C-FIND, C-MOVE and C-GET).
pub const DCMQRSCP: Peer = Peer { program: "dcmqrscp", package: "dcmtk" };
/// DCMTK's C-GET SCU.
pub const GETSCU: Peer = Peer { program: "getscu", package: "dcmtk" };

/// Script that installs every peer (run as root).
pub const INSTALL_SCRIPT: &str = "deploy/bench/install-peers.sh";

impl Peer {
    /// Full path of the program, if installed.
    pub fn locate(&self) -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
            .map(|dir| dir.join(self.program))
            .find(|p| p.is_file())
    }

    /// Full path of the program, or an error saying how to install it.
    pub fn require(&self) -> anyhow::Result<PathBuf> {
        self.locate().ok_or_else(|| {
            anyhow::anyhow!(
                "`{}` is not installed: install Debian's `{}` package (`sudo apt-get install -y {}`), or every \
                 benchmark peer at once with `sudo bash {INSTALL_SCRIPT}`",
                self.program,
                self.package,
                self.package
            )
        })
    }
}

/// Check all `peers` at once; the error lists every missing one.
pub fn require_all(peers: &[Peer]) -> anyhow::Result<()> {
    let missing: Vec<String> =
        peers.iter().filter_map(|p| p.require().err()).map(|e| e.to_string()).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", missing.join("\n"))
    }
}
