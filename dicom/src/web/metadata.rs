//! WADO-RS metadata (PS3.18 10.4.1.1.2): an instance's attributes as DICOM JSON, with large
//! binary values replaced by `BulkDataURI`s that [`bulk_value`] (and the frames route, for
//! Pixel Data) answer. Only the file's header is read; pixel data is never loaded.

use super::json::tag_name;
use crate::catalog::{read_header, CatalogRecord};
use crate::error::WebError;
use crate::pixel_location::PixelLocation;
use dicom_core::value::Value as DicomValue;
use dicom_core::Tag;
use serde_json::{json, Map, Value};
use std::path::Path;

/// Binary values longer than this (in base64 characters, about 1 KiB of data) become bulk data.
const INLINE_LIMIT: usize = 1400;

/// The path segment naming Pixel Data in a bulk data URI.
pub const PIXEL_DATA_PATH: &str = "7FE00010";

/// The metadata of the stored file at `path`; bulk data URIs are `<instance_url>/bulkdata/<path>`.
pub fn instance_metadata(path: &Path, record: &CatalogRecord, instance_url: &str) -> Result<Value, WebError> {
    let obj = read_header(path)?;
    let mut value = dicom_json::to_value(&*obj).map_err(|e| WebError::Render {
        reason: format!("its attributes cannot be written as DICOM JSON ({e})"),
    })?;
    let bulk_base = format!("{instance_url}/bulkdata/");
    if let Value::Object(map) = &mut value {
        replace_bulk(map, &bulk_base, "");
        if let Some(location) = &record.pixel_data {
            let bits = record.number(Tag(0x0028, 0x0100)).unwrap_or(8);
            let vr = match location {
                PixelLocation::Native { .. } if bits > 8 => "OW",
                _ => "OB",
            };
            map.insert(
                PIXEL_DATA_PATH.into(),
                json!({ "vr": vr, "BulkDataURI": format!("{bulk_base}{PIXEL_DATA_PATH}") }),
            );
        }
    }
    Ok(value)
}

/// Replace long `InlineBinary` values by `BulkDataURI`s, inside sequences too. `path` is the
/// bulk data path of the data set: empty at the root, `<tag>/<item index>/` inside items.
fn replace_bulk(map: &mut Map<String, Value>, base: &str, path: &str) {
    for (tag, attribute) in map.iter_mut() {
        let Value::Object(attr) = attribute else { continue };
        let long = attr.get("InlineBinary").and_then(Value::as_str).is_some_and(|b| b.len() > INLINE_LIMIT);
        if long {
            attr.remove("InlineBinary");
            attr.insert("BulkDataURI".into(), Value::String(format!("{base}{path}{tag}")));
            continue;
        }
        if attr.get("vr").and_then(Value::as_str) == Some("SQ") {
            if let Some(Value::Array(items)) = attr.get_mut("Value") {
                for (i, item) in items.iter_mut().enumerate() {
                    if let Value::Object(item) = item {
                        replace_bulk(item, base, &format!("{path}{tag}/{i}/"));
                    }
                }
            }
        }
    }
}

/// The bytes of the non-pixel bulk data value at `bulk_path` (`<tag>` or
/// `<tag>/<item>/<tag>...`, tags as 8 hex digits) in the stored file at `path`.
pub fn bulk_value(path: &Path, bulk_path: &str) -> Result<Vec<u8>, WebError> {
    let not_found = || WebError::BadRequest {
        reason: format!("bulk data path {bulk_path:?} names no binary value of this instance"),
    };
    let obj = read_header(path)?;
    let mut segments = bulk_path.split('/');
    let mut dataset: &dicom_object::InMemDicomObject = &obj;
    loop {
        let tag = segments.next().and_then(parse_tag).ok_or_else(not_found)?;
        let element = dataset.get(tag).ok_or_else(not_found)?;
        match (element.value(), segments.next()) {
            (DicomValue::Primitive(v), None) => return Ok(v.to_bytes().into_owned()),
            (DicomValue::Sequence(seq), Some(index)) => {
                let index: usize = index.parse().map_err(|_| not_found())?;
                dataset = seq.items().get(index).ok_or_else(not_found)?;
            }
            _ => return Err(not_found()),
        }
    }
}

fn parse_tag(text: &str) -> Option<Tag> {
    if text.len() != 8 {
        return None;
    }
    let group = u16::from_str_radix(&text[..4], 16).ok()?;
    let element = u16::from_str_radix(&text[4..], 16).ok()?;
    let tag = Tag(group, element);
    (tag_name(tag) == text.to_ascii_uppercase()).then_some(tag)
}
