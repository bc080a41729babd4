//! Content-addressed object store: every object is a file named by the SHA-256 of its bytes.
//!
//! Layout under the store directory:
//!
//! ```text
//! objects/<first 2 hex digits>/<64 hex digits>   complete, verified-at-write objects (read-only)
//! tmp/put-<pid>-<n>.part                        objects being written (never under objects/)
//! ```
//!
//! A put streams its source into a temp file in `tmp/` in 1 MiB chunks while hashing it, fsyncs
//! the file, renames it to its final name and fsyncs the directory, so an object is visible under
//! `objects/` only once it is complete and durable. An object that is already present is kept
//! and the temp file removed (deduplication). Temp files left by a crash are removed by
//! [`Store::open`]. A store directory is owned by one process at a time.

use crate::digest::{Digest, CHUNK};
use crate::error::StoreError;
use sha2::{Digest as _, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const OBJECTS: &str = "objects";
const TMP: &str = "tmp";

/// A content-addressed object store in a directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    objects: PathBuf,
    tmp: PathBuf,
    next_tmp: AtomicU64,
}

/// The result of storing an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Put {
    /// The object's SHA-256, which is its name.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// True when an object with this digest was already stored (nothing new was written).
    pub deduplicated: bool,
}

impl Store {
    /// Open (creating if needed) the store in `dir`, and remove temp files a crash left behind.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store, StoreError> {
        let root = dir.as_ref().to_path_buf();
        let objects = root.join(OBJECTS);
        let tmp = root.join(TMP);
        for d in [&root, &objects, &tmp] {
            fs::create_dir_all(d).map_err(io("create directory", d))?;
        }
        let entries = fs::read_dir(&tmp).map_err(io("list", &tmp))?;
        let mut removed = false;
        for entry in entries {
            let entry = entry.map_err(io("list", &tmp))?;
            let path = entry.path();
            let result = if entry.file_type().map_err(io("inspect", &path))?.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            result.map_err(io("remove leftover temp file", &path))?;
            removed = true;
        }
        if removed {
            sync_dir(&tmp)?;
        }
        sync_dir(&root)?;
        Ok(Store { root, objects, tmp, next_tmp: AtomicU64::new(0) })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Store a copy of the file at `src`.
    pub fn put_file(&self, src: impl AsRef<Path>) -> Result<Put, StoreError> {
        let src = src.as_ref();
        let file = File::open(src).map_err(io("open", src))?;
        self.put_reader(file)
    }

    /// Move the file at `src` into the store under `digest`, without copying it: fsync it,
    /// rename it to its final name and fsync the directory. The caller vouches that `digest`
    /// is the SHA-256 of the file's bytes (e.g. from [`crate::inspect`]) and that nothing else
    /// writes the file. An object already stored leaves `src` where it is (deduplicated); a
    /// file on another filesystem is copied (and hashed again) instead. Refused when the file's
    /// size is not `size`.
    pub fn adopt_file(&self, src: impl AsRef<Path>, digest: &Digest, size: u64) -> Result<Put, StoreError> {
        let src = src.as_ref();
        let file = File::open(src).map_err(io("open", src))?;
        let actual = file.metadata().map_err(io("inspect", src))?.len();
        if actual != size {
            return Err(StoreError::Changed { path: src.to_owned(), expected: size, actual });
        }
        let final_path = self.path_of(digest);
        if self.already_stored(&final_path, size) {
            return Ok(Put { digest: *digest, size, deduplicated: true });
        }
        file.sync_all().map_err(io("fsync", src))?;
        drop(file);
        let fan = self.fan_dir(&final_path)?;
        make_read_only(src)?;
        match fs::rename(src, &final_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                let put = self.put_file(src)?;
                if put.digest != *digest {
                    return Err(StoreError::Corrupt { digest: *digest, actual: put.digest });
                }
                return Ok(put);
            }
            Err(source) => return Err(StoreError::Io { op: "rename into place", path: final_path, source }),
        }
        sync_dir(fan)?;
        Ok(Put { digest: *digest, size, deduplicated: false })
    }

    /// Store everything `reader` yields. Memory use is one 1 MiB buffer, whatever the size.
    pub fn put_reader(&self, mut reader: impl Read) -> Result<Put, StoreError> {
        self.put_via_temp(|tmp_path| self.write_temp(&mut reader, tmp_path))
    }

    /// Store `bytes` under `digest` without hashing them again: the caller vouches that `digest`
    /// is their SHA-256 (it has just checked them against it, as a fetched object is).
    pub fn put_verified(&self, bytes: &[u8], digest: &Digest) -> Result<Put, StoreError> {
        self.put_via_temp(|tmp_path| {
            let mut out = create_temp(tmp_path)?;
            out.write_all(bytes).map_err(io("write", tmp_path))?;
            out.sync_all().map_err(io("fsync", tmp_path))?;
            Ok((*digest, bytes.len() as u64))
        })
    }

    /// Write a durable temp file with `write` (which returns the content's digest and size),
    /// then move it into place; the temp file is removed if anything fails.
    fn put_via_temp(
        &self,
        write: impl FnOnce(&Path) -> Result<(Digest, u64), StoreError>,
    ) -> Result<Put, StoreError> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp_path = self.tmp.join(format!("put-{}-{n}.part", std::process::id()));
        let result = write(&tmp_path).and_then(|(digest, size)| {
            let final_path = self.path_of(&digest);
            self.publish(&tmp_path, &final_path, size).map(|deduplicated| Put { digest, size, deduplicated })
        });
        if result.is_err() {
            let _ = fs::remove_file(&tmp_path);
        }
        result
    }

    fn write_temp(&self, reader: &mut impl Read, tmp_path: &Path) -> Result<(Digest, u64), StoreError> {
        let mut out = create_temp(tmp_path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        loop {
            let k = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(StoreError::Source { source }),
            };
            hasher.update(&buf[..k]);
            out.write_all(&buf[..k]).map_err(io("write", tmp_path))?;
            size += k as u64;
        }
        out.sync_all().map_err(io("fsync", tmp_path))?;
        Ok((Digest::from_bytes(hasher.finalize().into()), size))
    }

    /// Move a complete temp file to its final name, or drop it if the object is already there.
    fn publish(&self, tmp_path: &Path, final_path: &Path, size: u64) -> Result<bool, StoreError> {
        if self.already_stored(final_path, size) {
            fs::remove_file(tmp_path).map_err(io("remove temp file", tmp_path))?;
            return Ok(true);
        }
        let fan = self.fan_dir(final_path)?;
        make_read_only(tmp_path)?;
        fs::rename(tmp_path, final_path).map_err(io("rename into place", final_path))?;
        sync_dir(fan)?;
        Ok(false)
    }

    /// Whether a complete object is stored at `final_path`. Same name means same content; a
    /// size mismatch means the stored copy is damaged, so a fresh copy replaces it.
    fn already_stored(&self, final_path: &Path, size: u64) -> bool {
        fs::metadata(final_path).is_ok_and(|existing| existing.is_file() && existing.len() == size)
    }

    /// The fan-out directory `final_path` goes in, created (durably) if missing.
    fn fan_dir<'p>(&'p self, final_path: &'p Path) -> Result<&'p Path, StoreError> {
        let fan = final_path.parent().unwrap_or(&self.objects);
        if !fan.is_dir() {
            fs::create_dir_all(fan).map_err(io("create directory", fan))?;
            sync_dir(&self.objects)?;
        }
        Ok(fan)
    }

    /// Where the object with this digest is (or would be) stored.
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.objects.join(&hex[..2]).join(hex)
    }

    /// Whether an object with this digest is stored.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path_of(digest).is_file()
    }

    /// The path of a stored object, or [`StoreError::NotFound`].
    pub fn locate(&self, digest: &Digest) -> Result<PathBuf, StoreError> {
        let path = self.path_of(digest);
        if path.is_file() {
            Ok(path)
        } else {
            Err(StoreError::NotFound { digest: *digest })
        }
    }

    /// Open a stored object for reading.
    pub fn get(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.path_of(digest);
        File::open(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound { digest: *digest },
            _ => StoreError::Io { op: "open", path, source },
        })
    }

    /// Re-hash a stored object and check it still matches its name; returns its size.
    pub fn verify(&self, digest: &Digest) -> Result<u64, StoreError> {
        let file = self.get(digest)?;
        let (actual, size) = Digest::of_reader(file).map_err(io("read", &self.path_of(digest)))?;
        if actual != *digest {
            return Err(StoreError::Corrupt { digest: *digest, actual });
        }
        Ok(size)
    }

    /// Digests of every stored object, sorted. Files under `objects/` that are not named like an
    /// object are ignored.
    pub fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let mut out = Vec::new();
        for fan in fs::read_dir(&self.objects).map_err(io("list", &self.objects))? {
            let fan = fan.map_err(io("list", &self.objects))?.path();
            if !fan.is_dir() {
                continue;
            }
            for entry in fs::read_dir(&fan).map_err(io("list", &fan))? {
                let entry = entry.map_err(io("list", &fan))?;
                if let Some(d) = entry.file_name().to_str().and_then(|n| n.parse::<Digest>().ok()) {
                    if d.to_hex() == entry.file_name().to_string_lossy() {
                        out.push(d);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The directory holding in-progress writes (exposed for crash tests and monitoring).
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { op, path: path.to_owned(), source }
}

/// Objects are never written after they are stored.
fn make_read_only(path: &Path) -> Result<(), StoreError> {
    let mut perms = fs::metadata(path).map_err(io("inspect", path))?.permissions();
    perms.set_readonly(true);
    fs::set_permissions(path, perms).map_err(io("make read-only", path))
}

/// Create a new temp file for writing (never an existing one).
fn create_temp(tmp_path: &Path) -> Result<File, StoreError> {
    OpenOptions::new().write(true).create_new(true).open(tmp_path).map_err(io("create temp file", tmp_path))
}

/// fsync a directory so a rename or unlink in it is durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io("fsync directory", dir))
}
