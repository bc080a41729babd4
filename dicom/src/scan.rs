//! Structural pre-scan of a Part 10 file, before any DICOM parser allocates for it.
//!
//! The scan walks every element header of the file in one sequential pass (values are skipped,
//! never held in memory), checks each declared length against the file size and against the
//! item or sequence that encloses it, and hashes every byte on the way. Only a file that passes
//! is handed to dicom-object, so no declared length can make the parser allocate more than the
//! file holds. Memory use is a 64 KiB buffer, whatever the file size.

use crate::digest::Digest;
use crate::error::IngestError;
use crate::ingest::IngestLimits;
use crate::pixel_location::{Fragment, PixelLocation};
use crate::sop::{self, DatasetEncoding, TransferSyntax};
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::path::Path;

const BUF: usize = 64 * 1024;
const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_DELIMITER: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_DELIMITER: Tag = Tag(0xFFFE, 0xE0DD);
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
/// The file meta group may not exceed this (dicom-object's own per-element limit is 64 MiB).
const MAX_META_GROUP: u32 = 1 << 20;
/// Longest UID value read from the meta group.
const MAX_META_UID: u32 = 256;

/// What the scan learned about a file that passed it.
#[derive(Debug)]
pub(crate) struct ScanReport {
    /// The transfer syntax named in the meta group (accepted).
    pub ts: &'static TransferSyntax,
    /// Media Storage SOP Class UID (0002,0002), trimmed.
    pub meta_sop_class: Option<String>,
    /// Media Storage SOP Instance UID (0002,0003), trimmed.
    pub meta_sop_instance: Option<String>,
    /// SHA-256 of every byte of the file.
    pub sha256: Digest,
    /// Root Pixel Data (7FE0,0010): `Some(Some(len))` native, `Some(None)` encapsulated.
    pub pixel_data: Option<Option<u64>>,
    /// Root Float or Double Float Pixel Data is present.
    pub float_pixel_data: bool,
    /// Root Waveform Sequence (5400,0100) is present.
    pub waveform: bool,
    /// Root Encapsulated Document (0042,0011) is present.
    pub document: bool,
    /// Where the root Pixel Data value lies in the file.
    pub pixel_location: Option<PixelLocation>,
}

/// Scan `size` bytes of `reader` (positioned at the start of the file).
pub(crate) fn scan<R: Read>(
    reader: R,
    path: &Path,
    size: u64,
    limits: &IngestLimits,
) -> Result<ScanReport, IngestError> {
    let mut src = Src {
        inner: reader,
        path,
        buf: vec![0u8; BUF],
        start: 0,
        end: 0,
        pos: 0,
        size,
        hasher: Sha256::new(),
        elements: 0,
        limits,
    };
    src.preamble()?;
    let meta = src.meta()?;
    let ts_uid = match meta.ts {
        Some(uid) if !uid.is_empty() => uid,
        _ => {
            return Err(IngestError::MissingAttribute { name: "TransferSyntaxUID", tag: Tag(0x0002, 0x0010) })
        }
    };
    let ts = sop::transfer_syntax(&ts_uid)
        .map_err(|reason| IngestError::UnsupportedTransferSyntax { uid: cut(&ts_uid), reason })?;
    let enc = match ts.encoding {
        DatasetEncoding::ImplicitLittle => Enc::ImplicitLe,
        DatasetEncoding::ExplicitLittle => Enc::ExplicitLe,
        DatasetEncoding::ExplicitBig => Enc::ExplicitBe,
    };
    let mut root = Root::default();
    src.dataset(enc, End::Eof, None, 0, Some(&mut root))?;
    Ok(ScanReport {
        ts,
        meta_sop_class: meta.sop_class,
        meta_sop_instance: meta.sop_instance,
        sha256: Digest::from_bytes(src.hasher.finalize().into()),
        pixel_data: root.pixel_data,
        float_pixel_data: root.float_pixel_data,
        waveform: root.waveform,
        document: root.document,
        pixel_location: root.pixel_location,
    })
}

/// A string cut to 80 characters for an error message.
pub(crate) fn cut(s: &str) -> String {
    s.chars().take(80).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enc {
    ImplicitLe,
    ExplicitLe,
    ExplicitBe,
}

impl Enc {
    fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            Enc::ExplicitBe => u16::from_be_bytes(b),
            _ => u16::from_le_bytes(b),
        }
    }
    fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            Enc::ExplicitBe => u32::from_be_bytes(b),
            _ => u32::from_le_bytes(b),
        }
    }
}

/// Where a data set ends.
#[derive(Debug, Clone, Copy)]
enum End {
    /// At the end of the file (the root data set).
    Eof,
    /// At this offset (an item of defined length).
    At(u64),
    /// At an Item Delimitation Item (an item of undefined length).
    ItemDelimiter,
}

#[derive(Debug, Default)]
struct Root {
    pixel_data: Option<Option<u64>>,
    float_pixel_data: bool,
    waveform: bool,
    document: bool,
    pixel_location: Option<PixelLocation>,
}

#[derive(Debug, Default)]
struct Meta {
    ts: Option<String>,
    sop_class: Option<String>,
    sop_instance: Option<String>,
}

struct Header {
    tag: Tag,
    vr: Option<VR>,
    len: u32,
    offset: u64,
}

struct Src<'a, R> {
    inner: R,
    path: &'a Path,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Offset in the file of `buf[start]`.
    pos: u64,
    size: u64,
    hasher: Sha256,
    elements: u64,
    limits: &'a IngestLimits,
}

impl<R: Read> Src<'_, R> {
    fn truncated(&self, needed: u64, context: impl Into<String>) -> IngestError {
        IngestError::Truncated { size: self.size, needed, context: context.into() }
    }

    fn malformed(&self, offset: u64, reason: impl Into<String>) -> IngestError {
        IngestError::Malformed { offset, reason: reason.into() }
    }

    /// Make at least `n` (≤ BUF) unconsumed bytes available. The caller has checked that the
    /// file holds them.
    fn fill(&mut self, n: usize) -> Result<(), IngestError> {
        if self.end - self.start >= n {
            return Ok(());
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        while self.end < n {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    return Err(IngestError::Io {
                        path: self.path.to_owned(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the file shrank while it was being read",
                        ),
                    })
                }
                Ok(k) => self.end += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(IngestError::Io { path: self.path.to_owned(), source }),
            }
        }
        Ok(())
    }

    fn consume(&mut self, k: usize) {
        self.hasher.update(&self.buf[self.start..self.start + k]);
        self.start += k;
        self.pos += k as u64;
    }

    fn take<const N: usize>(&mut self, what: &str) -> Result<[u8; N], IngestError> {
        if self.size - self.pos < N as u64 {
            return Err(self.truncated(self.pos + N as u64, what));
        }
        self.fill(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.start..self.start + N]);
        self.consume(N);
        Ok(out)
    }

    /// Skip (and hash) `n` bytes the caller has checked the file holds.
    fn skip(&mut self, mut n: u64) -> Result<(), IngestError> {
        while n > 0 {
            if self.start == self.end {
                self.fill(1)?;
            }
            let k = ((self.end - self.start) as u64).min(n) as usize;
            self.consume(k);
            n -= k as u64;
        }
        Ok(())
    }

    /// Read a short value (≤ BUF bytes) the caller has checked the file holds.
    fn small_value(&mut self, n: u32) -> Result<String, IngestError> {
        let n = n as usize;
        self.fill(n)?;
        let s = String::from_utf8_lossy(&self.buf[self.start..self.start + n])
            .trim_end_matches(['\0', ' '])
            .trim_start()
            .to_owned();
        self.consume(n);
        Ok(s)
    }

    fn count_element(&mut self, offset: u64) -> Result<(), IngestError> {
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(self.malformed(
                offset,
                format!(
                    "more than {} data elements; this is not a plausible instance",
                    self.limits.max_elements
                ),
            ));
        }
        Ok(())
    }

    /// The 128-byte preamble and the `DICM` marker.
    fn preamble(&mut self) -> Result<(), IngestError> {
        let head_len = self.size.min(512) as usize;
        self.fill(head_len)?;
        let head = &self.buf[..head_len];
        if head_len >= 132 && &head[128..132] == b"DICM" {
            self.consume(132);
            return Ok(());
        }
        if head_len > 128 && head_len < 132 && b"DICM".starts_with(&head[128..]) {
            return Err(self.truncated(132, "the 'DICM' marker"));
        }
        Err(IngestError::NotDicom { looks_like: looks_like(head).to_owned() })
    }

    /// The File Meta Information group: explicit VR little endian, led by its group length.
    fn meta(&mut self) -> Result<Meta, IngestError> {
        let bad = |reason: String| IngestError::BadMeta { reason };
        let tag = self.tag(Enc::ExplicitLe)?;
        if tag != Tag(0x0002, 0x0000) {
            return Err(bad(format!(
                "the first element after 'DICM' is {tag}, not File Meta Information Group Length (0002,0000)"
            )));
        }
        let vr = self.take::<2>("the meta group length's VR")?;
        let len = u16::from_le_bytes(self.take::<2>("the meta group length's length")?);
        if &vr != b"UL" || len != 4 {
            return Err(bad("File Meta Information Group Length (0002,0000) is not a 4-byte UL".to_owned()));
        }
        let group_len = u32::from_le_bytes(self.take::<4>("the meta group length")?);
        if group_len > MAX_META_GROUP {
            return Err(bad(format!(
                "File Meta Information Group Length says {group_len} bytes, over the {MAX_META_GROUP}-byte limit"
            )));
        }
        let meta_end = self.pos + u64::from(group_len);
        if meta_end > self.size {
            return Err(self.truncated(meta_end, "the file meta information group"));
        }
        let mut meta = Meta::default();
        while self.pos < meta_end {
            let h = self.header(Enc::ExplicitLe)?;
            if h.tag.group() != 0x0002 {
                return Err(bad(format!(
                    "element {} lies inside the length the group length declares; the group length is wrong",
                    h.tag
                )));
            }
            if h.len == UNDEFINED {
                return Err(bad(format!("element {} has an undefined length", h.tag)));
            }
            if self.pos + u64::from(h.len) > meta_end {
                return Err(bad(format!(
                    "element {} ({} bytes) runs past the end of the group ({} bytes)",
                    h.tag, h.len, group_len
                )));
            }
            let slot = match h.tag {
                Tag(0x0002, 0x0002) => Some(&mut meta.sop_class),
                Tag(0x0002, 0x0003) => Some(&mut meta.sop_instance),
                Tag(0x0002, 0x0010) => Some(&mut meta.ts),
                _ => None,
            };
            match slot {
                Some(_) if h.len > MAX_META_UID => {
                    return Err(bad(format!(
                        "UID element {} is {} bytes long; a UID is at most 64",
                        h.tag, h.len
                    )))
                }
                Some(slot) => {
                    let v = self.small_value(h.len)?;
                    *slot = Some(v);
                }
                None => self.skip(u64::from(h.len))?,
            }
        }
        Ok(meta)
    }

    fn tag(&mut self, enc: Enc) -> Result<Tag, IngestError> {
        let b = self.take::<4>("an element tag")?;
        Ok(Tag(enc.u16([b[0], b[1]]), enc.u16([b[2], b[3]])))
    }

    /// An element or item header.
    fn header(&mut self, enc: Enc) -> Result<Header, IngestError> {
        let offset = self.pos;
        let tag = self.tag(enc)?;
        self.count_element(offset)?;
        if tag.group() == 0xFFFE || enc == Enc::ImplicitLe {
            let len = enc.u32(self.take::<4>("an element length")?);
            return Ok(Header { tag, vr: None, len, offset });
        }
        let raw = self.take::<2>("a value representation")?;
        let Some(vr) = VR::from_binary(raw) else {
            return Err(self.malformed(
                offset,
                format!(
                    "element {tag} has no valid value representation (found {:?}); the length of the \
                     element before it is probably wrong",
                    String::from_utf8_lossy(&raw)
                ),
            ));
        };
        let len = if long_length(vr) {
            self.take::<2>("reserved bytes")?;
            enc.u32(self.take::<4>("an element length")?)
        } else {
            u32::from(enc.u16(self.take::<2>("an element length")?))
        };
        Ok(Header { tag, vr: Some(vr), len, offset })
    }

    /// Check that a value of `len` bytes starting here fits in the file and in `limit`.
    fn check_len(&self, h: &Header, len: u64, limit: Option<u64>) -> Result<(), IngestError> {
        let end = self.pos + len;
        if end > self.size {
            if end > self.limits.max_file_size {
                return Err(IngestError::DeclaredLengthTooLarge {
                    tag: h.tag,
                    offset: h.offset,
                    declared: len,
                    limit: self.limits.max_file_size,
                });
            }
            return Err(self.truncated(
                end,
                format!("the value of element {} ({} bytes, declared at byte {})", h.tag, len, h.offset),
            ));
        }
        if let Some(limit) = limit {
            if end > limit {
                return Err(self.malformed(
                    h.offset,
                    format!(
                        "element {} declares {} bytes, which runs past the end of its enclosing item at byte \
                         {}; its length is wrong",
                        h.tag, len, limit
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_inside(&self, offset: u64, limit: Option<u64>) -> Result<(), IngestError> {
        match limit {
            Some(limit) if self.pos > limit => Err(self.malformed(
                offset,
                format!("an element runs past the end of its enclosing item at byte {limit}"),
            )),
            _ => Ok(()),
        }
    }

    /// A data set: the root one, or the content of an item.
    fn dataset(
        &mut self,
        enc: Enc,
        end: End,
        limit: Option<u64>,
        depth: u32,
        mut root: Option<&mut Root>,
    ) -> Result<(), IngestError> {
        loop {
            match end {
                End::Eof if self.pos == self.size => return Ok(()),
                End::At(at) if self.pos >= at => return Ok(()),
                End::ItemDelimiter if self.pos == self.size => {
                    return Err(self.truncated(self.pos + 8, "the item delimiter closing an item"))
                }
                _ => {}
            }
            let h = self.header(enc)?;
            self.check_inside(h.offset, limit)?;
            if h.tag.group() == 0xFFFE {
                if h.tag == ITEM_DELIMITER && matches!(end, End::ItemDelimiter) {
                    if h.len != 0 {
                        return Err(self.malformed(h.offset, "an item delimiter with a non-zero length"));
                    }
                    return Ok(());
                }
                return Err(self.malformed(
                    h.offset,
                    format!("found {} where a data element was expected", describe(h.tag)),
                ));
            }
            if let Some(root) = root.as_deref_mut() {
                match h.tag {
                    PIXEL_DATA => root.pixel_data = Some((h.len != UNDEFINED).then_some(u64::from(h.len))),
                    Tag(0x7FE0, 0x0008) | Tag(0x7FE0, 0x0009) => root.float_pixel_data = true,
                    Tag(0x5400, 0x0100) => root.waveform = true,
                    Tag(0x0042, 0x0011) => root.document = true,
                    _ => {}
                }
                if h.tag == PIXEL_DATA && matches!(h.vr, None | Some(VR::OB) | Some(VR::OW)) {
                    root.pixel_location = Some(if h.len == UNDEFINED {
                        let mut fragments = Vec::new();
                        self.fragments(enc, limit, Some(&mut fragments))?;
                        PixelLocation::encapsulated(fragments)
                    } else {
                        self.check_len(&h, u64::from(h.len), limit)?;
                        let location = PixelLocation::Native { offset: self.pos, length: u64::from(h.len) };
                        self.skip(u64::from(h.len))?;
                        location
                    });
                    continue;
                }
            }
            self.value(enc, &h, limit, depth)?;
        }
    }

    /// The value of the element whose header was just read.
    fn value(&mut self, enc: Enc, h: &Header, limit: Option<u64>, depth: u32) -> Result<(), IngestError> {
        let is_sq = match h.vr {
            Some(vr) => vr == VR::SQ,
            None => dictionary_says_sequence(h.tag),
        };
        if h.len == UNDEFINED {
            return if h.tag == PIXEL_DATA && matches!(h.vr, None | Some(VR::OB) | Some(VR::OW)) {
                self.fragments(enc, limit, None)
            } else if is_sq || h.vr.is_none() {
                self.items(enc, None, limit, depth + 1)
            } else if h.vr == Some(VR::UN) {
                // A sequence of unknown VR, encoded as implicit VR little endian (PS3.5 6.2.2).
                self.items(Enc::ImplicitLe, None, limit, depth + 1)
            } else {
                Err(self.malformed(
                    h.offset,
                    format!(
                        "element {} ({}) has an undefined length; only sequences and encapsulated pixel data \
                         may",
                        h.tag,
                        h.vr.map(VR::to_string).unwrap_or("?")
                    ),
                ))
            };
        }
        let len = u64::from(h.len);
        self.check_len(h, len, limit)?;
        if is_sq {
            let end = self.pos + len;
            self.items(enc, Some(end), Some(end), depth + 1)
        } else {
            self.skip(len)
        }
    }

    /// The items of a sequence, up to `end` (defined length) or a sequence delimiter.
    fn items(
        &mut self,
        enc: Enc,
        end: Option<u64>,
        limit: Option<u64>,
        depth: u32,
    ) -> Result<(), IngestError> {
        if depth > self.limits.max_depth {
            return Err(self.malformed(
                self.pos,
                format!("sequences are nested more than {} deep", self.limits.max_depth),
            ));
        }
        loop {
            match end {
                Some(at) if self.pos >= at => return Ok(()),
                None if self.pos == self.size => {
                    return Err(self.truncated(self.pos + 8, "the sequence delimiter closing a sequence"))
                }
                _ => {}
            }
            let offset = self.pos;
            let tag = self.tag(enc)?;
            let len = enc.u32(self.take::<4>("an item length")?);
            self.count_element(offset)?;
            self.check_inside(offset, limit)?;
            let h = Header { tag, vr: None, len, offset };
            match tag {
                ITEM if len == UNDEFINED => {
                    self.dataset(enc, End::ItemDelimiter, limit, depth, None)?;
                    self.check_inside(offset, limit)?;
                }
                ITEM => {
                    self.check_len(&h, u64::from(len), limit)?;
                    let item_end = self.pos + u64::from(len);
                    self.dataset(enc, End::At(item_end), Some(item_end), depth, None)?;
                }
                SEQUENCE_DELIMITER if end.is_none() => {
                    if len != 0 {
                        return Err(self.malformed(offset, "a sequence delimiter with a non-zero length"));
                    }
                    return Ok(());
                }
                _ => {
                    return Err(self.malformed(
                        offset,
                        format!("found {} where a sequence item (FFFE,E000) was expected", describe(tag)),
                    ))
                }
            }
        }
    }

    /// Encapsulated pixel data: the basic offset table and fragments, up to the sequence delimiter.
    /// Each item's value offset and length goes into `record` when given.
    fn fragments(
        &mut self,
        enc: Enc,
        limit: Option<u64>,
        mut record: Option<&mut Vec<Fragment>>,
    ) -> Result<(), IngestError> {
        loop {
            if self.pos == self.size {
                return Err(
                    self.truncated(self.pos + 8, "the sequence delimiter closing encapsulated pixel data")
                );
            }
            let offset = self.pos;
            let tag = self.tag(enc)?;
            let len = enc.u32(self.take::<4>("a fragment length")?);
            self.count_element(offset)?;
            self.check_inside(offset, limit)?;
            match tag {
                ITEM if len == UNDEFINED => {
                    return Err(self.malformed(offset, "a pixel data fragment with an undefined length"))
                }
                ITEM => {
                    let h = Header { tag, vr: None, len, offset };
                    self.check_len(&h, u64::from(len), limit)?;
                    if let Some(record) = record.as_deref_mut() {
                        record.push(Fragment { offset: self.pos, length: len });
                    }
                    self.skip(u64::from(len))?;
                }
                SEQUENCE_DELIMITER => return Ok(()),
                _ => {
                    return Err(self.malformed(
                        offset,
                        format!("found {} where a pixel data fragment was expected", describe(tag)),
                    ))
                }
            }
        }
    }
}

/// Whether this VR has the 2 reserved bytes and a 4-byte length in explicit VR encoding.
fn long_length(vr: VR) -> bool {
    matches!(
        vr,
        VR::OB
            | VR::OD
            | VR::OF
            | VR::OL
            | VR::OV
            | VR::OW
            | VR::SQ
            | VR::SV
            | VR::UC
            | VR::UN
            | VR::UR
            | VR::UT
            | VR::UV
    )
}

/// In implicit VR, whether the standard dictionary makes this tag a sequence.
fn dictionary_says_sequence(tag: Tag) -> bool {
    StandardDataDictionary.by_tag(tag).is_some_and(|e| matches!(e.vr(), VirtualVr::Exact(VR::SQ)))
}

fn describe(tag: Tag) -> String {
    match tag {
        ITEM => "an item (FFFE,E000)".to_owned(),
        ITEM_DELIMITER => "an item delimiter (FFFE,E00D)".to_owned(),
        SEQUENCE_DELIMITER => "a sequence delimiter (FFFE,E0DD)".to_owned(),
        t => format!("element {t}"),
    }
}

/// A guess at what a file without the `DICM` marker is, for the error message.
fn looks_like(head: &[u8]) -> &'static str {
    let starts = |p: &[u8]| head.starts_with(p);
    if starts(b"\x89PNG\r\n\x1a\n") {
        "a PNG image"
    } else if starts(&[0xFF, 0xD8, 0xFF]) {
        "a JPEG image"
    } else if starts(b"%PDF-") {
        "a PDF document (wrap it in an Encapsulated PDF instance first)"
    } else if starts(b"PK\x03\x04") {
        "a ZIP archive (unpack it and send the .dcm files inside)"
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        "a GIF image"
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        "a TIFF image"
    } else if starts(&[0x1F, 0x8B]) {
        "a gzip archive (unpack it and send the .dcm files inside)"
    } else if head.len() >= 4
        && matches!(u16::from_le_bytes([head[0], head[1]]), 0x0002 | 0x0008)
        && head[3] == 0
    {
        "a bare DICOM data set without the Part 10 header (ACR-NEMA or raw); re-export it as a Part 10 file"
    } else if is_text(head) {
        "text"
    } else {
        "unknown binary data"
    }
}

/// Whether these leading bytes are UTF-8 text (a multi-byte character cut at the end is allowed).
fn is_text(head: &[u8]) -> bool {
    let text = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => match std::str::from_utf8(&head[..e.valid_up_to()]) {
            Ok(s) => s,
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    !text.is_empty() && text.chars().all(|c| !c.is_control() || c.is_whitespace())
}
