//! The directory beside the database (`<data_dir>/snapshots`) where snapshots are encoded.
//!
//! A snapshot is encoded only to be sent to a follower, into an unnamed temporary file here that
//! disappears when it is closed. Earlier builds kept each snapshot they built as a named file
//! (`<id>.snap`, written via `<id>.snap.tmp`); those are removed when the node opens.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// Endings of the files earlier builds kept here.
const STORED_EXTENSIONS: [&str; 2] = ["snap", "tmp"];

/// The directory of a node's snapshot files.
#[derive(Debug, Clone)]
pub(super) struct SnapshotDir {
    dir: PathBuf,
}

impl SnapshotDir {
    /// Snapshots are encoded in `dir` (created when the first one is).
    pub(super) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// A new unnamed file in the directory, removed from the disk when it is closed.
    pub(super) fn temp_file(&self) -> io::Result<File> {
        fs::create_dir_all(&self.dir)?;
        tempfile::tempfile_in(&self.dir)
    }

    /// Remove the snapshot files an earlier build stored here (and temporary files a crash left).
    pub(super) fn remove_stored(&self) -> io::Result<()> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            let stored =
                Path::new(&path).extension().is_some_and(|e| STORED_EXTENSIONS.iter().any(|s| e == *s));
            if stored && path.is_file() {
                fs::remove_file(&path)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn stored_files_of_earlier_builds_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
        snapshots.remove_stored().expect("a missing directory holds nothing to remove");
        let mut temp = snapshots.temp_file().expect("temp file");
        temp.write_all(b"encoded").expect("write");
        temp.rewind().expect("rewind");
        let mut back = String::new();
        temp.read_to_string(&mut back).expect("read");
        assert_eq!(back, "encoded");
        for name in ["3-5000-1700000000000.snap", "4-9000-1700000000001.snap.tmp", "notes.txt"] {
            fs::write(dir.path().join("snapshots").join(name), b"x").expect("file");
        }
        snapshots.remove_stored().expect("remove");
        let left: Vec<_> = fs::read_dir(dir.path().join("snapshots"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("notes.txt")], "only files of ours are removed");
    }
}
