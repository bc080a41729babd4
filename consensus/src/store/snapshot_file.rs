//! Snapshot data in its own file beside the database (`<data_dir>/snapshots/<name>.snap`).
//!
//! A snapshot holds the whole state, hundreds of megabytes at a million cases. Stored as a redb
//! value it was copied into freshly allocated, checksummed pages on every snapshot and left the
//! old ones to the free list, so the database file grew by the state's size each time. The data
//! now goes to a file (temp file, fsync, rename, directory fsync) before the database commit that
//! names it, so the snapshot the database names is always complete on disk; files it does not
//! name (an older snapshot, or one a crash left before its commit) are removed afterwards.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Ending of snapshot file names.
const EXTENSION: &str = "snap";

/// The directory of a node's snapshot files.
#[derive(Debug, Clone)]
pub(super) struct SnapshotDir {
    dir: PathBuf,
}

impl SnapshotDir {
    /// Snapshot files live in `dir` (created when the first one is written).
    pub(super) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// A file name for the snapshot `snapshot_id`: its characters outside `[A-Za-z0-9_-]` become
    /// `_` (an id received from a leader must not name a path outside the directory).
    pub(super) fn file_name(snapshot_id: &str) -> String {
        let safe: String = snapshot_id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        format!("{safe}.{EXTENSION}")
    }

    /// Write `data` durably as `name`: a temporary file, fsync, rename, fsync of the directory.
    pub(super) fn write(&self, name: &str, data: &[u8]) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let temp = self.dir.join(format!("{name}.tmp"));
        let mut file = File::create(&temp)?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, self.dir.join(name))?;
        File::open(&self.dir)?.sync_all()
    }

    /// Read the snapshot file `name`, which must hold `len` bytes.
    pub(super) fn read(&self, name: &str, len: u64) -> io::Result<Vec<u8>> {
        let path = self.dir.join(name);
        let mut file = File::open(&path)?;
        let found = file.metadata()?.len();
        if found != len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "snapshot file {} holds {found} bytes, the database recorded {len}; \
                     the node will build a new snapshot, or restore the data directory from a backup",
                    path.display()
                ),
            ));
        }
        let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.read_to_end(&mut data)?;
        Ok(data)
    }

    /// Remove every snapshot file (and leftover temporary file) but `keep`.
    pub(super) fn remove_others(&self, keep: Option<&str>) -> io::Result<()> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let ours = Path::new(name).extension().is_some_and(|e| e == EXTENSION || e == "tmp");
            if ours && Some(name) != keep {
                fs::remove_file(&path)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_the_directory() {
        assert_eq!(SnapshotDir::file_name("3-5000-1700000000000"), "3-5000-1700000000000.snap");
        assert_eq!(SnapshotDir::file_name("../../etc/passwd"), "______etc_passwd.snap");
    }

    #[test]
    fn written_files_read_back_and_others_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
        snapshots.write("a.snap", b"first").expect("write a");
        snapshots.write("b.snap", b"second").expect("write b");
        assert_eq!(snapshots.read("b.snap", 6).expect("read"), b"second");
        assert!(snapshots.read("b.snap", 7).is_err(), "a length other than recorded is refused");
        snapshots.remove_others(Some("b.snap")).expect("remove");
        assert!(snapshots.read("a.snap", 5).is_err(), "the other snapshot is gone");
        assert_eq!(snapshots.read("b.snap", 6).expect("kept"), b"second");
    }
}
