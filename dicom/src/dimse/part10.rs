//! Writing an incoming instance straight to a Part-10 file in the temp directory as its data set
//! fragments arrive, within a size limit; the file is removed on every path that does not hand
//! it over.

use super::negotiate::{IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME};
use dicom_object::FileMetaTableBuilder;
use std::io;
use std::path::{Path, PathBuf};
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncWriteExt, BufWriter};

/// Buffer between P-DATA fragments and the file: fewer, larger writes.
const WRITE_BUFFER: usize = 256 << 10;

/// A temp file that is deleted when dropped, unless [`TempFile::keep`] hands it over.
#[derive(Debug)]
pub(crate) struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Hand the file over: it is no longer deleted on drop.
    pub(crate) fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot remove DICOM temp file")
            }
        }
    }
}

/// What the Part-10 header of a received instance says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header<'a> {
    /// Media Storage SOP Class UID.
    pub sop_class_uid: &'a str,
    /// Media Storage SOP Instance UID.
    pub sop_instance_uid: &'a str,
    /// Transfer Syntax UID of the data set.
    pub transfer_syntax: &'a str,
    /// Source Application Entity Title (the sender).
    pub source_ae: &'a str,
}

/// Why a fragment could not be appended.
#[derive(Debug)]
pub(crate) enum AppendError {
    /// The file would exceed the size limit; nothing more was written.
    TooLarge,
    /// Writing failed.
    Io(io::Error),
}

/// A Part-10 file being written.
#[derive(Debug)]
pub(crate) struct PartialInstance {
    out: BufWriter<File>,
    written: u64,
    limit: u64,
    file: TempFile,
}

impl PartialInstance {
    /// Create `path` (which must not exist) and write the preamble, `DICM` and the file meta
    /// group. Fails with `TooLarge` when even that exceeds `limit` bytes.
    pub(crate) async fn create(path: PathBuf, header: Header<'_>, limit: u64) -> Result<Self, AppendError> {
        let mut meta = Vec::with_capacity(512);
        meta.extend_from_slice(&[0u8; 128]);
        meta.extend_from_slice(b"DICM");
        FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(header.sop_class_uid)
            .media_storage_sop_instance_uid(header.sop_instance_uid)
            .transfer_syntax(header.transfer_syntax)
            .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
            .source_application_entity_title(header.source_ae)
            .build()
            .and_then(|table| table.write(&mut meta))
            .map_err(|e| AppendError::Io(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        let handle =
            OpenOptions::new().write(true).create_new(true).open(&path).await.map_err(AppendError::Io)?;
        let mut instance = PartialInstance {
            out: BufWriter::with_capacity(WRITE_BUFFER, handle),
            written: 0,
            limit,
            file: TempFile { path, armed: true },
        };
        instance.append(&meta).await?;
        Ok(instance)
    }

    /// Append data set bytes.
    pub(crate) async fn append(&mut self, bytes: &[u8]) -> Result<(), AppendError> {
        let total = self.written.saturating_add(bytes.len() as u64);
        if total > self.limit {
            return Err(AppendError::TooLarge);
        }
        self.out.write_all(bytes).await.map_err(AppendError::Io)?;
        self.written = total;
        Ok(())
    }

    /// Flush the file to the operating system (not fsynced: the sink makes durable what it
    /// keeps); the returned guard still deletes it unless kept.
    pub(crate) async fn finish(mut self) -> io::Result<TempFile> {
        self.out.flush().await?;
        Ok(self.file)
    }
}
