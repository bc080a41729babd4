//! Test helpers: a tiny Part 10 editor for explicit VR little endian files without sequences,
//! and the deterministic malformed corpus built with it.

#![allow(dead_code)]

use yilian_dicom::{generate, SynthKind, SynthOptions};

/// One top-level element, or raw bytes inserted as they are.
#[derive(Debug, Clone)]
pub enum Elem {
    /// A well-formed element.
    Element { tag: (u16, u16), vr: [u8; 2], value: Vec<u8> },
    /// Raw bytes (for structures the editor does not model).
    Raw { sort_tag: (u16, u16), bytes: Vec<u8> },
}

impl Elem {
    fn tag(&self) -> (u16, u16) {
        match self {
            Elem::Element { tag, .. } => *tag,
            Elem::Raw { sort_tag, .. } => *sort_tag,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Elem::Raw { bytes, .. } => out.extend_from_slice(bytes),
            Elem::Element { tag, vr, value } => {
                out.extend_from_slice(&tag.0.to_le_bytes());
                out.extend_from_slice(&tag.1.to_le_bytes());
                out.extend_from_slice(vr);
                if long_vr(vr) {
                    out.extend_from_slice(&[0, 0]);
                    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
                } else {
                    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
                }
                out.extend_from_slice(value);
            }
        }
    }
}

fn long_vr(vr: &[u8; 2]) -> bool {
    matches!(
        vr,
        b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"SV" | b"UC" | b"UN" | b"UR" | b"UT" | b"UV"
    )
}

/// A Part 10 file as a list of top-level meta and data set elements.
#[derive(Debug, Clone)]
pub struct Part10 {
    pub meta: Vec<Elem>,
    pub dataset: Vec<Elem>,
}

impl Part10 {
    /// Parse a known-good explicit VR little endian file without sequences.
    pub fn parse(bytes: &[u8]) -> Self {
        assert_eq!(&bytes[128..132], b"DICM");
        let mut pos = 132;
        let mut meta = Vec::new();
        let mut dataset = Vec::new();
        while pos < bytes.len() {
            let tag = (
                u16::from_le_bytes([bytes[pos], bytes[pos + 1]]),
                u16::from_le_bytes([bytes[pos + 2], bytes[pos + 3]]),
            );
            let vr = [bytes[pos + 4], bytes[pos + 5]];
            let (len, header) = if long_vr(&vr) {
                (u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize, 12)
            } else {
                (u16::from_le_bytes([bytes[pos + 6], bytes[pos + 7]]) as usize, 8)
            };
            assert_ne!(len, 0xFFFF_FFFF, "the editor handles defined lengths only");
            assert_ne!(&vr, b"SQ", "the editor handles files without sequences only");
            let value = bytes[pos + header..pos + header + len].to_vec();
            let e = Elem::Element { tag, vr, value };
            if tag.0 == 2 {
                meta.push(e)
            } else {
                dataset.push(e)
            }
            pos += header + len;
        }
        Part10 { meta, dataset }
    }

    /// Encode, recomputing the meta group length if the file has one.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut meta_rest = Vec::new();
        for e in self.meta.iter().filter(|e| e.tag() != (2, 0)) {
            e.encode(&mut meta_rest);
        }
        let mut out = vec![0u8; 128];
        out.extend_from_slice(b"DICM");
        if self.meta.iter().any(|e| e.tag() == (2, 0)) {
            Elem::Element { tag: (2, 0), vr: *b"UL", value: (meta_rest.len() as u32).to_le_bytes().to_vec() }
                .encode(&mut out);
        }
        out.extend_from_slice(&meta_rest);
        for e in &self.dataset {
            e.encode(&mut out);
        }
        out
    }

    /// Offset of an element's header in `to_bytes()`.
    pub fn offset_of(&self, tag: (u16, u16)) -> usize {
        let bytes = self.to_bytes();
        let mut probe = self.clone();
        let list = if tag.0 == 2 { &mut probe.meta } else { &mut probe.dataset };
        let i = list.iter().position(|e| e.tag() == tag).expect("element present");
        let tail: usize = list[i..]
            .iter()
            .map(|e| {
                let mut v = Vec::new();
                e.encode(&mut v);
                v.len()
            })
            .sum();
        let after: usize = if tag.0 == 2 {
            self.dataset
                .iter()
                .map(|e| {
                    let mut v = Vec::new();
                    e.encode(&mut v);
                    v.len()
                })
                .sum()
        } else {
            0
        };
        bytes.len() - after - tail
    }

    fn list(&mut self, tag: (u16, u16)) -> &mut Vec<Elem> {
        if tag.0 == 2 {
            &mut self.meta
        } else {
            &mut self.dataset
        }
    }

    /// Set (or insert, in tag order) an element's value; the value is padded to even length.
    pub fn set(&mut self, tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> &mut Self {
        let mut value = value.to_vec();
        if value.len() % 2 == 1 {
            value.push(if vr == b"UI" || vr == b"OB" { 0 } else { b' ' });
        }
        let e = Elem::Element { tag, vr: *vr, value };
        let list = self.list(tag);
        match list.iter().position(|x| x.tag() >= tag) {
            Some(i) if list[i].tag() == tag => list[i] = e,
            Some(i) => list.insert(i, e),
            None => list.push(e),
        }
        self
    }

    /// Set a text element.
    pub fn set_str(&mut self, tag: (u16, u16), vr: &[u8; 2], value: &str) -> &mut Self {
        self.set(tag, vr, value.as_bytes())
    }

    /// Insert raw bytes before the first element whose tag is not below `sort_tag`.
    pub fn insert_raw(&mut self, sort_tag: (u16, u16), bytes: Vec<u8>) -> &mut Self {
        let list = self.list(sort_tag);
        let i = list.iter().position(|x| x.tag() >= sort_tag).unwrap_or(list.len());
        list.insert(i, Elem::Raw { sort_tag, bytes });
        self
    }

    /// Remove an element.
    pub fn remove(&mut self, tag: (u16, u16)) -> &mut Self {
        self.list(tag).retain(|e| e.tag() != tag);
        self
    }
}

/// A small valid CT slice (16×16) in explicit VR little endian, without sequences.
pub fn small_ct() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions { ct_slices: 1, ct_matrix: 16, ..SynthOptions::small(11) };
    generate(dir.path(), &[SynthKind::Ct], &opts).unwrap();
    std::fs::read(dir.path().join("ct/0001.dcm")).unwrap()
}

/// Bytes of one element with a 4-byte length (explicit VR little endian).
pub fn long_header(tag: (u16, u16), vr: &[u8; 2], len: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&tag.0.to_le_bytes());
    v.extend_from_slice(&tag.1.to_le_bytes());
    v.extend_from_slice(vr);
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&len.to_le_bytes());
    v
}

/// Bytes of an item or delimiter header.
pub fn item_header(elem: u16, len: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0xFFFEu16.to_le_bytes());
    v.extend_from_slice(&elem.to_le_bytes());
    v.extend_from_slice(&len.to_le_bytes());
    v
}

fn patch_u16(bytes: &mut [u8], at: usize, v: u16) {
    bytes[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn patch_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The malformed corpus: (name, expected error code, bytes). Deterministic.
pub fn malformed_corpus() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let good = small_ct();
    let base = Part10::parse(&good);
    let edit = |f: &dyn Fn(&mut Part10)| {
        let mut p = base.clone();
        f(&mut p);
        p.to_bytes()
    };
    let mut out: Vec<(&'static str, &'static str, Vec<u8>)> = Vec::new();

    out.push(("empty", "empty", Vec::new()));
    out.push((
        "text",
        "not_dicom",
        b"Patient: WANG WEI\nExam: CT head\nThis is a typed report, not an image.\n".to_vec(),
    ));
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x02\0\0\0\x02\0\x08\0\0\0\0".to_vec();
    png.resize(300, 0);
    out.push(("png-header", "not_dicom", png));
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0];
    jpeg.resize(300, 0x55);
    out.push(("jpeg", "not_dicom", jpeg));
    out.push(("zeros", "not_dicom", vec![0u8; 1000]));
    let mut no_marker = good.clone();
    no_marker[128..132].copy_from_slice(b"DICX");
    out.push(("no-dicm-marker", "not_dicom", no_marker));
    let meta_len: usize = 12 + u32::from_le_bytes(good[140..144].try_into().unwrap()) as usize;
    out.push(("bare-dataset", "not_dicom", good[132 + meta_len..].to_vec()));
    out.push(("cut-in-marker", "truncated", good[..130].to_vec()));
    out.push(("truncated-in-meta", "truncated", good[..200].to_vec()));
    let name_at = base.offset_of((0x0010, 0x0010));
    out.push(("truncated-in-header", "truncated", good[..name_at + 3].to_vec()));
    out.push(("truncated-in-pixel-data", "truncated", good[..good.len() - 100].to_vec()));

    let mut wrong_len = good.clone();
    let old = u16::from_le_bytes([wrong_len[name_at + 6], wrong_len[name_at + 7]]);
    patch_u16(&mut wrong_len, name_at + 6, old + 2);
    out.push(("wrong-element-length", "malformed", wrong_len));

    let mut bad_vr = good.clone();
    bad_vr[name_at + 4..name_at + 6].copy_from_slice(b"ZZ");
    out.push(("bad-vr", "malformed", bad_vr));

    let px_at = base.offset_of((0x7FE0, 0x0010));
    let mut huge = good.clone();
    patch_u32(&mut huge, px_at + 8, 0xFFFF_FFF0);
    out.push(("huge-declared-length", "declared_length_too_large", huge));

    let mut undefined_px = good.clone();
    patch_u32(&mut undefined_px, px_at + 8, 0xFFFF_FFFF);
    out.push(("pixel-data-undefined-length-without-fragments", "malformed", undefined_px));

    out.push((
        "undefined-length-text",
        "malformed",
        edit(&|p| {
            let mut raw = long_header((0x0040, 0xA160), b"UT", 0xFFFF_FFFF);
            raw.extend_from_slice(b"TEXT");
            p.insert_raw((0x0040, 0xA160), raw);
        }),
    ));

    let mut group_len = good.clone();
    let declared = u32::from_le_bytes(group_len[140..144].try_into().unwrap());
    patch_u32(&mut group_len, 140, declared + 20);
    out.push(("meta-group-length-wrong", "bad_meta", group_len));
    out.push((
        "no-meta-group-length",
        "bad_meta",
        edit(&|p| {
            p.remove((2, 0));
        }),
    ));

    out.push((
        "unknown-transfer-syntax",
        "unsupported_transfer_syntax",
        edit(&|p| {
            p.set_str((2, 0x10), b"UI", "1.2.3.4.5.6");
        }),
    ));
    out.push((
        "deflated-transfer-syntax",
        "unsupported_transfer_syntax",
        edit(&|p| {
            p.set_str((2, 0x10), b"UI", "1.2.840.10008.1.2.1.99");
        }),
    ));
    out.push((
        "missing-transfer-syntax",
        "missing_attribute",
        edit(&|p| {
            p.remove((2, 0x10));
        }),
    ));
    out.push((
        "missing-sop-instance-uid",
        "missing_attribute",
        edit(&|p| {
            p.remove((0x0008, 0x0018));
        }),
    ));
    out.push((
        "missing-study-instance-uid",
        "missing_attribute",
        edit(&|p| {
            p.remove((0x0020, 0x000D));
        }),
    ));
    out.push((
        "empty-series-instance-uid",
        "missing_attribute",
        edit(&|p| {
            p.set_str((0x0020, 0x000E), b"UI", "");
        }),
    ));
    out.push((
        "invalid-uid",
        "invalid_attribute",
        edit(&|p| {
            p.set_str((2, 3), b"UI", "1.2.abc");
            p.set_str((0x0008, 0x0018), b"UI", "1.2.abc");
        }),
    ));
    out.push((
        "unsupported-sop-class",
        "unsupported_sop_class",
        edit(&|p| {
            p.set_str((2, 2), b"UI", "1.2.840.10008.5.1.4.1.1.481.2");
            p.set_str((0x0008, 0x0016), b"UI", "1.2.840.10008.5.1.4.1.1.481.2");
        }),
    ));
    out.push((
        "meta-and-dataset-disagree",
        "inconsistent",
        edit(&|p| {
            p.set_str((2, 3), b"UI", "1.2.3.4");
        }),
    ));
    out.push((
        "missing-pixel-data",
        "missing_payload",
        edit(&|p| {
            p.remove((0x7FE0, 0x0010));
        }),
    ));
    out.push((
        "pixel-data-too-short",
        "pixel_data_too_short",
        edit(&|p| {
            p.set((0x0028, 0x0010), b"US", &64u16.to_le_bytes());
        }),
    ));
    out.push((
        "zero-rows",
        "invalid_attribute",
        edit(&|p| {
            p.set((0x0028, 0x0010), b"US", &0u16.to_le_bytes());
        }),
    ));
    out.push((
        "missing-rows",
        "missing_attribute",
        edit(&|p| {
            p.remove((0x0028, 0x0010));
        }),
    ));

    // Sequences nested 200 deep (the limit is 32).
    out.push((
        "nested-sequence-bomb",
        "malformed",
        edit(&|p| {
            let mut raw = Vec::new();
            for _ in 0..200 {
                raw.extend(long_header((0x0008, 0x1140), b"SQ", 0xFFFF_FFFF));
                raw.extend(item_header(0xE000, 0xFFFF_FFFF));
            }
            for _ in 0..200 {
                raw.extend(item_header(0xE00D, 0));
                raw.extend(item_header(0xE0DD, 0));
            }
            p.insert_raw((0x0008, 0x1140), raw);
        }),
    ));
    // An item that declares more bytes than its sequence.
    out.push((
        "item-overruns-sequence",
        "malformed",
        edit(&|p| {
            let mut raw = long_header((0x0008, 0x1140), b"SQ", 16);
            raw.extend(item_header(0xE000, 100));
            raw.extend(vec![0u8; 8]);
            p.insert_raw((0x0008, 0x1140), raw);
        }),
    ));
    // A sequence of undefined length that the file ends inside.
    out.push(("unterminated-sequence", "truncated", {
        let mut raw = long_header((0x7FE1, 0x0010), b"SQ", 0xFFFF_FFFF);
        raw.extend(item_header(0xE000, 0xFFFF_FFFF));
        let mut b = good.clone();
        b.extend(raw);
        b
    }));
    // An item where a data element belongs.
    out.push((
        "item-outside-sequence",
        "malformed",
        edit(&|p| {
            let mut raw = item_header(0xE000, 4);
            raw.extend_from_slice(b"ABCD");
            p.insert_raw((0x0010, 0x0000), raw);
        }),
    ));
    out
}
