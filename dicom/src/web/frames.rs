//! Frames read straight from a stored file, using the pixel data location the ingest scan
//! recorded: native frames are slices of one value; encapsulated frames are the fragments the
//! Basic Offset Table assigns to them, or one fragment per frame when the table is empty.

use crate::catalog::CatalogRecord;
use crate::error::WebError;
use crate::pixel_location::{Fragment, PixelLocation};
use dicom_core::Tag;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// A byte range of a stored file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub length: u64,
}

/// The file byte ranges that make up frame `frame` (1-based) of `record`; `offset_table` is
/// the decoded Basic Offset Table of encapsulated pixel data (empty when there is none).
pub fn frame_ranges(
    record: &CatalogRecord,
    offset_table: &[u32],
    frame: u32,
) -> Result<Vec<Range>, WebError> {
    let location = record.pixel_data.as_ref().ok_or(WebError::NoPixelData)?;
    let frames = record.frames.max(1);
    if frame == 0 || frame > frames {
        return Err(WebError::NoSuchFrame { frame, frames });
    }
    let index = u64::from(frame - 1);
    match location {
        PixelLocation::Native { offset, length } => {
            let size = native_frame_size(record)?;
            if size.is_none() && frames == 1 {
                return Ok(vec![Range { offset: *offset, length: *length }]);
            }
            let size = size.ok_or_else(|| WebError::Unsupported {
                reason: "its frames are not whole bytes (1-bit pixels)".into(),
            })?;
            let start = index * size;
            if start + size > *length {
                return Err(WebError::Unsupported {
                    reason: "the pixel data is shorter than its frames".into(),
                });
            }
            Ok(vec![Range { offset: offset + start, length: size }])
        }
        PixelLocation::Encapsulated { fragments, .. } => {
            let chosen = frame_fragments(fragments, offset_table, frames, index as usize)?;
            Ok(chosen.iter().map(|f| Range { offset: f.offset, length: u64::from(f.length) }).collect())
        }
    }
}

/// Bytes of one native frame, or `None` when a frame is not a whole number of bytes.
fn native_frame_size(record: &CatalogRecord) -> Result<Option<u64>, WebError> {
    let get = |tag: Tag, name: &str| {
        record
            .number(tag)
            .map(u64::from)
            .ok_or_else(|| WebError::Unsupported { reason: format!("{name} is missing") })
    };
    let rows = get(Tag(0x0028, 0x0010), "Rows")?;
    let columns = get(Tag(0x0028, 0x0011), "Columns")?;
    let bits = get(Tag(0x0028, 0x0100), "Bits Allocated")?;
    let samples = record.number(Tag(0x0028, 0x0002)).map_or(1, u64::from).max(1);
    let bits_per_frame = rows * columns * samples * bits;
    Ok(match bits_per_frame % 8 {
        0 => Some(bits_per_frame / 8),
        _ => None,
    })
}

fn frame_fragments<'a>(
    fragments: &'a [Fragment],
    offset_table: &[u32],
    frames: u32,
    index: usize,
) -> Result<&'a [Fragment], WebError> {
    if fragments.is_empty() {
        return Err(WebError::Unsupported { reason: "its encapsulated pixel data has no fragments".into() });
    }
    if offset_table.is_empty() {
        if frames == 1 {
            return Ok(fragments);
        }
        if fragments.len() == frames as usize {
            return Ok(&fragments[index..=index]);
        }
        return Err(WebError::Unsupported {
            reason: "it has no Basic Offset Table and not one fragment per frame".into(),
        });
    }
    if offset_table.len() != frames as usize {
        return Err(WebError::Unsupported {
            reason: "its Basic Offset Table does not list every frame".into(),
        });
    }
    // Offsets count from the first byte of the first fragment's item header. A frame is the
    // fragments starting in [its offset, the next frame's offset): this also reads tables whose
    // writer forgot the padding byte of odd-length fragments (dicom-rs 0.10 does).
    let base = fragments[0].offset - 8;
    let start = u64::from(offset_table[index]);
    let end = offset_table.get(index + 1).map_or(u64::MAX, |v| u64::from(*v));
    let relative = |f: &Fragment| f.offset - 8 - base;
    let first = fragments.iter().position(|f| relative(f) >= start).unwrap_or(fragments.len());
    let last = fragments.iter().position(|f| relative(f) >= end).unwrap_or(fragments.len());
    if last <= first {
        return Err(WebError::Unsupported {
            reason: "its Basic Offset Table gives frame offsets that hold no fragment".into(),
        });
    }
    Ok(&fragments[first..last])
}

/// Read frame `frame` (1-based) of the stored file at `path`, described by `record`: the
/// frame's pixel bytes (native) or its compressed bitstream (encapsulated).
pub fn read_frame(path: &Path, record: &CatalogRecord, frame: u32) -> Result<Vec<u8>, WebError> {
    Ok(read_frame_fragments(path, record, frame)?.concat())
}

/// Read the pieces of frame `frame` separately: its fragments (encapsulated) or its one slice
/// (native).
pub fn read_frame_fragments(
    path: &Path,
    record: &CatalogRecord,
    frame: u32,
) -> Result<Vec<Vec<u8>>, WebError> {
    let io = |source| WebError::Io { path: path.to_owned(), source };
    let mut file = File::open(path).map_err(io)?;
    let offset_table = match &record.pixel_data {
        Some(PixelLocation::Encapsulated { offset_table, .. }) if offset_table.length > 0 => {
            let bytes = read_range(
                &mut file,
                Range { offset: offset_table.offset, length: u64::from(offset_table.length) },
            )
            .map_err(io)?;
            bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        }
        _ => Vec::new(),
    };
    frame_ranges(record, &offset_table, frame)?
        .into_iter()
        .map(|r| read_range(&mut file, r).map_err(io))
        .collect()
}

fn read_range(file: &mut File, range: Range) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(range.offset))?;
    let mut buf = Vec::new();
    file.take(range.length).read_to_end(&mut buf)?;
    if buf.len() as u64 != range.length {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the stored file is shorter than its catalog record",
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tag_key;
    use std::collections::BTreeMap;

    fn record(frames: u32, pixel_data: PixelLocation) -> CatalogRecord {
        let attributes = BTreeMap::from([
            (tag_key(Tag(0x0028, 0x0010)), "2".to_owned()),
            (tag_key(Tag(0x0028, 0x0011)), "3".to_owned()),
            (tag_key(Tag(0x0028, 0x0100)), "16".to_owned()),
        ]);
        CatalogRecord {
            study_instance_uid: "1".into(),
            series_instance_uid: "1.1".into(),
            sop_instance_uid: "1.1.1".into(),
            sop_class_uid: "1.2".into(),
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            sha256: String::new(),
            size: 0,
            case_id: "C1".into(),
            frames,
            pixel_data: Some(pixel_data),
            attributes,
        }
    }

    fn frag(offset: u64, length: u32) -> Fragment {
        Fragment { offset, length }
    }

    #[test]
    fn native_frames_are_slices() {
        let r = record(3, PixelLocation::Native { offset: 1000, length: 36 });
        assert_eq!(frame_ranges(&r, &[], 2).unwrap(), [Range { offset: 1012, length: 12 }]);
        assert!(matches!(frame_ranges(&r, &[], 4), Err(WebError::NoSuchFrame { frame: 4, frames: 3 })));
        assert!(matches!(frame_ranges(&r, &[], 0), Err(WebError::NoSuchFrame { .. })));
    }

    #[test]
    fn encapsulated_frames_follow_the_offset_table() {
        // Items at 100 (offset table), then fragments whose headers start at 200, 218, 240.
        let table = frag(108, 8);
        let fragments = vec![frag(208, 10), frag(226, 14), frag(248, 4)];
        let r = record(2, PixelLocation::Encapsulated { offset_table: table, fragments: fragments.clone() });
        let ranges = |bot: &[u32], n| frame_ranges(&r, bot, n).unwrap();
        assert_eq!(
            ranges(&[0, 40], 1),
            [Range { offset: 208, length: 10 }, Range { offset: 226, length: 14 }]
        );
        assert_eq!(ranges(&[0, 40], 2), [Range { offset: 248, length: 4 }]);
        assert!(frame_ranges(&r, &[0, 50], 2).is_err(), "an offset past every fragment");
        // An offset one byte short (a writer that forgot an odd fragment's padding) still works.
        assert_eq!(ranges(&[0, 39], 2), [Range { offset: 248, length: 4 }]);
        assert!(frame_ranges(&r, &[], 1).is_err(), "3 fragments for 2 frames and no table");
        let one_each = record(3, PixelLocation::Encapsulated { offset_table: table, fragments });
        assert_eq!(frame_ranges(&one_each, &[], 3).unwrap(), [Range { offset: 248, length: 4 }]);
    }
}
