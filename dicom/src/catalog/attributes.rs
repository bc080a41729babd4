//! The attributes the catalog keeps for each instance (what QIDO-RS matches on and answers),
//! read from the file's header without touching its pixel data.

use crate::error::CatalogError;
use dicom_core::{Tag, VR};
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use std::collections::BTreeMap;
use std::path::Path;

/// The level of the DICOM information model an attribute belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Patient and study attributes.
    Study,
    /// Series attributes.
    Series,
    /// Instance attributes.
    Instance,
}

/// An attribute the catalog keeps: its tag, value representation and level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogTag {
    /// The tag.
    pub tag: Tag,
    /// Its value representation (for DICOM JSON output and matching rules).
    pub vr: VR,
    /// The level it describes.
    pub level: Level,
}

const fn t(group: u16, element: u16, vr: VR, level: Level) -> CatalogTag {
    CatalogTag { tag: Tag(group, element), vr, level }
}

/// Every attribute kept in the catalog, in tag order within each level.
pub const CATALOG_TAGS: &[CatalogTag] = &[
    t(0x0008, 0x0005, VR::CS, Level::Study),
    t(0x0008, 0x0020, VR::DA, Level::Study),
    t(0x0008, 0x0030, VR::TM, Level::Study),
    t(0x0008, 0x0050, VR::SH, Level::Study),
    t(0x0008, 0x0090, VR::PN, Level::Study),
    t(0x0008, 0x1030, VR::LO, Level::Study),
    t(0x0010, 0x0010, VR::PN, Level::Study),
    t(0x0010, 0x0020, VR::LO, Level::Study),
    t(0x0010, 0x0030, VR::DA, Level::Study),
    t(0x0010, 0x0040, VR::CS, Level::Study),
    t(0x0020, 0x000D, VR::UI, Level::Study),
    t(0x0020, 0x0010, VR::SH, Level::Study),
    t(0x0008, 0x0021, VR::DA, Level::Series),
    t(0x0008, 0x0031, VR::TM, Level::Series),
    t(0x0008, 0x0060, VR::CS, Level::Series),
    t(0x0008, 0x103E, VR::LO, Level::Series),
    t(0x0018, 0x0015, VR::CS, Level::Series),
    t(0x0020, 0x000E, VR::UI, Level::Series),
    t(0x0020, 0x0011, VR::IS, Level::Series),
    t(0x0008, 0x0016, VR::UI, Level::Instance),
    t(0x0008, 0x0018, VR::UI, Level::Instance),
    t(0x0008, 0x0023, VR::DA, Level::Instance),
    t(0x0008, 0x0033, VR::TM, Level::Instance),
    t(0x0020, 0x0013, VR::IS, Level::Instance),
    t(0x0028, 0x0002, VR::US, Level::Instance),
    t(0x0028, 0x0004, VR::CS, Level::Instance),
    t(0x0028, 0x0008, VR::IS, Level::Instance),
    t(0x0028, 0x0010, VR::US, Level::Instance),
    t(0x0028, 0x0011, VR::US, Level::Instance),
    t(0x0028, 0x0100, VR::US, Level::Instance),
    t(0x0028, 0x0101, VR::US, Level::Instance),
    t(0x0028, 0x0103, VR::US, Level::Instance),
];

/// The catalog entry of `tag`, if the catalog keeps it.
pub fn catalog_tag(tag: Tag) -> Option<&'static CatalogTag> {
    CATALOG_TAGS.iter().find(|c| c.tag == tag)
}

/// A tag as the `u32` key the catalog stores (`group << 16 | element`).
pub fn tag_key(tag: Tag) -> u32 {
    (u32::from(tag.group()) << 16) | u32::from(tag.element())
}

/// Open the header of a Part 10 file: every attribute before the Pixel Data.
pub fn read_header(path: &Path) -> Result<DefaultDicomObject, CatalogError> {
    OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .read_until(Tag(0x7FE0, 0x0000))
        .open_file(path)
        .map_err(|e| CatalogError::Header { path: path.to_owned(), reason: e.to_string() })
}

/// The catalog attributes of an opened header: tag key → value as text (multiple values
/// separated by `\`, padding trimmed). Absent and empty attributes are left out.
pub fn catalog_attributes(obj: &DefaultDicomObject) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    for c in CATALOG_TAGS {
        let Some(elem) = obj.get(c.tag) else { continue };
        let Ok(text) = elem.to_str() else { continue };
        let text = text.trim_matches(['\0', ' ']);
        if !text.is_empty() {
            out.insert(tag_key(c.tag), text.to_owned());
        }
    }
    out
}
