//! Ingest validation: decide whether one file is a DICOM instance Yilian can file, and describe it.
//!
//! [`inspect`] never panics and never trusts a declared length: the file size is read first, a
//! structural scan checks every element header against it while hashing the bytes (one pass,
//! 64 KiB of memory), and only then does dicom-object parse the attributes, stopping before the
//! pixel data. A refused file gets one typed [`IngestError`] that says what is wrong and what the
//! sender should do.

use crate::digest::Digest;
use crate::error::IngestError;
use crate::pixel_location::PixelLocation;
use crate::scan::{self, cut};
use crate::sop::{self, Payload};
use dicom_core::Tag;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use serde::Serialize;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use yilian_referral::is_dicom_uid;

/// Default largest file accepted as one instance: 2 GiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 2 << 30;

/// Hard limits applied while inspecting a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestLimits {
    /// Largest file accepted, in bytes; also bounds every declared element length.
    pub max_file_size: u64,
    /// Deepest nesting of sequences accepted.
    pub max_depth: u32,
    /// Most element and item headers accepted in one file.
    pub max_elements: u64,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits { max_file_size: DEFAULT_MAX_FILE_SIZE, max_depth: 32, max_elements: 1_000_000 }
    }
}

/// What ingest learned about an accepted instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceInfo {
    /// SOP Class UID (0008,0016).
    pub sop_class_uid: String,
    /// The SOP class's name.
    pub sop_class_name: &'static str,
    /// SOP Instance UID (0008,0018).
    pub sop_instance_uid: String,
    /// Study Instance UID (0020,000D).
    pub study_instance_uid: String,
    /// Series Instance UID (0020,000E).
    pub series_instance_uid: String,
    /// Modality (0008,0060), if present.
    pub modality: Option<String>,
    /// Transfer Syntax UID (0002,0010).
    pub transfer_syntax_uid: String,
    /// What the instance carries besides attributes.
    pub payload: Payload,
    /// Number of frames: Number of Frames (0028,0008) for multi-frame images, 1 for single-frame
    /// images, 0 for instances without pixels (waveforms, documents).
    pub frames: u32,
    /// Rows (0028,0010), for images.
    pub rows: Option<u16>,
    /// Columns (0028,0011), for images.
    pub columns: Option<u16>,
    /// File size in bytes.
    pub size: u64,
    /// SHA-256 of the file's bytes (its name in the content-addressed store).
    pub sha256: Digest,
    /// Where the Pixel Data value lies in the file, for images.
    pub pixel_data: Option<PixelLocation>,
}

/// Inspect a file with the default [`IngestLimits`].
pub fn inspect(path: impl AsRef<Path>) -> Result<InstanceInfo, IngestError> {
    inspect_with(path, &IngestLimits::default())
}

/// Inspect a file: accept it as a DICOM Part 10 instance Yilian can file and describe it, or
/// refuse it with the reason.
pub fn inspect_with(path: impl AsRef<Path>, limits: &IngestLimits) -> Result<InstanceInfo, IngestError> {
    inspect_with_header(path, limits).map(|(info, _)| info)
}

/// [`inspect_with`], also returning the attributes it parsed (file meta group and data set up to
/// the pixel data), so a caller that needs them does not parse the file a second time.
pub fn inspect_with_header(
    path: impl AsRef<Path>,
    limits: &IngestLimits,
) -> Result<(InstanceInfo, DefaultDicomObject), IngestError> {
    let path = path.as_ref();
    let io = |source| IngestError::Io { path: path.to_owned(), source };
    let file = File::open(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file")));
    }
    let size = metadata.len();
    if size == 0 {
        return Err(IngestError::Empty);
    }
    if size > limits.max_file_size {
        return Err(IngestError::TooLarge { size, limit: limits.max_file_size });
    }
    let report = scan::scan((&file).take(size), path, size, limits)?;
    meta_uid(report.meta_sop_class.as_deref(), "MediaStorageSOPClassUID", Tag(0x0002, 0x0002))?;
    meta_uid(report.meta_sop_instance.as_deref(), "MediaStorageSOPInstanceUID", Tag(0x0002, 0x0003))?;

    // The structure is sound and every length fits: let dicom-object read the attributes, from
    // the same open file, up to the pixel data.
    (&file).seek(SeekFrom::Start(128)).map_err(io)?;
    let reader = BufReader::new((&file).take(size - 128));
    let obj = catch_unwind(AssertUnwindSafe(|| {
        OpenFileOptions::new()
            .read_preamble(ReadPreamble::Never)
            .read_until(Tag(0x7FE0, 0x0000))
            .from_reader(reader)
    }))
    .map_err(|panic| IngestError::Parse { reason: format!("the parser failed ({})", panic_message(&panic)) })?
    .map_err(|e| IngestError::Parse { reason: error_chain(&e) })?;

    let sop_class_uid = required_uid(&obj, Tag(0x0008, 0x0016), "SOPClassUID")?;
    let class = sop::sop_class(&sop_class_uid).ok_or_else(|| IngestError::UnsupportedSopClass {
        uid: cut(&sop_class_uid),
        name: known_sop_class_name(&sop_class_uid),
    })?;
    let sop_instance_uid = required_uid(&obj, Tag(0x0008, 0x0018), "SOPInstanceUID")?;
    let study_instance_uid = required_uid(&obj, Tag(0x0020, 0x000D), "StudyInstanceUID")?;
    let series_instance_uid = required_uid(&obj, Tag(0x0020, 0x000E), "SeriesInstanceUID")?;
    consistent(
        report.meta_sop_class.as_deref(),
        &sop_class_uid,
        "MediaStorageSOPClassUID",
        Tag(0x0002, 0x0002),
    )?;
    consistent(
        report.meta_sop_instance.as_deref(),
        &sop_instance_uid,
        "MediaStorageSOPInstanceUID",
        Tag(0x0002, 0x0003),
    )?;
    let modality = text(&obj, Tag(0x0008, 0x0060), "Modality")?.filter(|m| !m.is_empty());
    let rows = int16(&obj, Tag(0x0028, 0x0010), "Rows")?;
    let columns = int16(&obj, Tag(0x0028, 0x0011), "Columns")?;

    let frames = match class.payload {
        Payload::Pixels => {
            if report.pixel_data.is_none() && !report.float_pixel_data {
                return Err(IngestError::MissingPayload {
                    sop_class: class.name,
                    payload: "Pixel Data (7FE0,0010)",
                });
            }
            let frames = match int(&obj, Tag(0x0028, 0x0008), "NumberOfFrames")? {
                Some(0) => {
                    return Err(IngestError::InvalidAttribute {
                        name: "NumberOfFrames",
                        tag: Tag(0x0028, 0x0008),
                        value: "0".to_owned(),
                        reason: "an image has at least one frame",
                    })
                }
                Some(n) => n,
                None => 1,
            };
            let rows = nonzero(rows, "Rows", Tag(0x0028, 0x0010))?;
            let columns = nonzero(columns, "Columns", Tag(0x0028, 0x0011))?;
            if let (Some(Some(declared)), false) = (report.pixel_data, report.ts.encapsulated) {
                let samples = int16(&obj, Tag(0x0028, 0x0002), "SamplesPerPixel")?.unwrap_or(1);
                let bits = int16(&obj, Tag(0x0028, 0x0100), "BitsAllocated")?.ok_or(
                    IngestError::MissingAttribute { name: "BitsAllocated", tag: Tag(0x0028, 0x0100) },
                )?;
                let total_bits = u64::from(rows)
                    * u64::from(columns)
                    * u64::from(frames)
                    * u64::from(samples.max(1))
                    * u64::from(bits);
                let expected = total_bits.div_ceil(8);
                if declared < expected {
                    return Err(IngestError::PixelDataTooShort { declared, expected });
                }
            }
            frames
        }
        Payload::Waveform => {
            if !report.waveform {
                return Err(IngestError::MissingPayload {
                    sop_class: class.name,
                    payload: "Waveform Sequence (5400,0100)",
                });
            }
            0
        }
        Payload::Document => {
            if !report.document {
                return Err(IngestError::MissingPayload {
                    sop_class: class.name,
                    payload: "Encapsulated Document (0042,0011)",
                });
            }
            0
        }
    };

    let info = InstanceInfo {
        sop_class_uid,
        sop_class_name: class.name,
        sop_instance_uid,
        study_instance_uid,
        series_instance_uid,
        modality,
        transfer_syntax_uid: report.ts.uid.to_owned(),
        payload: class.payload,
        frames,
        rows,
        columns,
        size,
        sha256: report.sha256,
        pixel_data: report.pixel_location,
    };
    Ok((info, obj))
}

/// Names of storage SOP classes that exist but are not accepted, for a clearer refusal.
fn known_sop_class_name(uid: &str) -> &'static str {
    match uid {
        "1.2.840.10008.5.1.4.1.1.88.11" => "Basic Text SR",
        "1.2.840.10008.5.1.4.1.1.88.22" => "Enhanced SR",
        "1.2.840.10008.5.1.4.1.1.88.33" => "Comprehensive SR",
        "1.2.840.10008.5.1.4.1.1.11.1" => "Grayscale Softcopy Presentation State",
        "1.2.840.10008.5.1.4.1.1.66" => "Raw Data",
        "1.2.840.10008.5.1.4.1.1.481.1" => "RT Image",
        "1.2.840.10008.5.1.4.1.1.481.2" => "RT Dose",
        "1.2.840.10008.5.1.4.1.1.481.3" => "RT Structure Set",
        "1.2.840.10008.5.1.4.1.1.66.4" => "Segmentation",
        "1.2.840.10008.5.1.4.1.1.77.1.4" => "VL Photographic Image",
        "1.2.840.10008.5.1.4.1.1.9.1.3" => "Ambulatory ECG Waveform",
        _ => "unknown",
    }
}

fn required_uid(obj: &DefaultDicomObject, tag: Tag, name: &'static str) -> Result<String, IngestError> {
    let value = text(obj, tag, name)?.unwrap_or_default();
    if value.is_empty() {
        return Err(IngestError::MissingAttribute { name, tag });
    }
    if !is_dicom_uid(&value) {
        return Err(IngestError::InvalidAttribute {
            name,
            tag,
            value: cut(&value),
            reason: "a UID is at most 64 characters of digits and dots, with no empty component",
        });
    }
    Ok(value)
}

/// A UID of the file meta group: present and well formed.
fn meta_uid(value: Option<&str>, name: &'static str, tag: Tag) -> Result<(), IngestError> {
    match value {
        None | Some("") => Err(IngestError::MissingAttribute { name, tag }),
        Some(v) if !is_dicom_uid(v) => Err(IngestError::InvalidAttribute {
            name,
            tag,
            value: cut(v),
            reason: "a UID is at most 64 characters of digits and dots, with no empty component",
        }),
        Some(_) => Ok(()),
    }
}

fn consistent(
    meta: Option<&str>,
    dataset: &str,
    attribute: &'static str,
    tag: Tag,
) -> Result<(), IngestError> {
    match meta {
        None | Some("") => Err(IngestError::MissingAttribute { name: attribute, tag }),
        Some(m) if m != dataset => {
            Err(IngestError::Inconsistent { attribute, meta: cut(m), dataset: cut(dataset) })
        }
        Some(_) => Ok(()),
    }
}

/// A string attribute, trimmed of padding; `None` when absent.
fn text(obj: &DefaultDicomObject, tag: Tag, name: &'static str) -> Result<Option<String>, IngestError> {
    let Some(elem) = obj.get(tag) else { return Ok(None) };
    match elem.to_str() {
        Ok(s) => Ok(Some(s.trim_matches(['\0', ' ']).to_owned())),
        Err(_) => Err(IngestError::InvalidAttribute {
            name,
            tag,
            value: String::new(),
            reason: "it is not a text value",
        }),
    }
}

/// An integer attribute; `None` when absent or empty.
fn int(obj: &DefaultDicomObject, tag: Tag, name: &'static str) -> Result<Option<u32>, IngestError> {
    let Some(elem) = obj.get(tag) else { return Ok(None) };
    let shown = elem.to_str().map(|s| cut(s.trim_matches(['\0', ' ']))).unwrap_or_default();
    if shown.is_empty() {
        return Ok(None);
    }
    elem.to_int::<u32>().map(Some).map_err(|_| IngestError::InvalidAttribute {
        name,
        tag,
        value: shown,
        reason: "it is not a non-negative integer",
    })
}

/// A 16-bit integer attribute (US); `None` when absent or empty.
fn int16(obj: &DefaultDicomObject, tag: Tag, name: &'static str) -> Result<Option<u16>, IngestError> {
    match int(obj, tag, name)? {
        None => Ok(None),
        Some(v) => u16::try_from(v).map(Some).map_err(|_| IngestError::InvalidAttribute {
            name,
            tag,
            value: v.to_string(),
            reason: "it does not fit in 16 bits",
        }),
    }
}

fn nonzero(v: Option<u16>, name: &'static str, tag: Tag) -> Result<u16, IngestError> {
    match v {
        None => Err(IngestError::MissingAttribute { name, tag }),
        Some(0) => Err(IngestError::InvalidAttribute {
            name,
            tag,
            value: "0".to_owned(),
            reason: "an image has at least one row and one column",
        }),
        Some(n) => Ok(n),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        source = s.source();
    }
    out
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_owned()
    }
}
