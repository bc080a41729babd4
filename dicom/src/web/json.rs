//! DICOM JSON (PS3.18 F.2) values of attributes kept as text in the catalog.

use dicom_core::VR;
use serde_json::{json, Map, Value};

/// The DICOM JSON object of one attribute: `{"vr": .., "Value": [..]}`; an empty text gives an
/// attribute without `Value`. Multiple values are separated by `\`. Person names become
/// `{"Alphabetic": ..}`; numeric VRs become JSON numbers (a value that is not a number is null).
pub fn attribute(vr: VR, text: &str) -> Value {
    let mut out = Map::new();
    out.insert("vr".into(), Value::String(vr.to_string().to_owned()));
    if !text.is_empty() {
        let values: Vec<Value> = text.split('\\').map(|v| value(vr, v.trim_matches(['\0', ' ']))).collect();
        out.insert("Value".into(), Value::Array(values));
    }
    Value::Object(out)
}

fn value(vr: VR, v: &str) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    match vr {
        VR::PN => json!({ "Alphabetic": v }),
        VR::IS | VR::US | VR::UL | VR::SS | VR::SL | VR::SV | VR::UV => {
            v.parse::<i64>().map(Value::from).unwrap_or(Value::Null)
        }
        VR::DS | VR::FL | VR::FD => v.parse::<f64>().ok().map(Value::from).unwrap_or(Value::Null),
        _ => Value::String(v.to_owned()),
    }
}

/// A tag as DICOM JSON names it: 8 uppercase hex digits.
pub fn tag_name(tag: dicom_core::Tag) -> String {
    format!("{:04X}{:04X}", tag.group(), tag.element())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_follow_the_json_model() {
        assert_eq!(attribute(VR::PN, "WANG^WEI"), json!({"vr": "PN", "Value": [{"Alphabetic": "WANG^WEI"}]}));
        assert_eq!(attribute(VR::IS, "3\\4"), json!({"vr": "IS", "Value": [3, 4]}));
        assert_eq!(attribute(VR::DS, "1.5"), json!({"vr": "DS", "Value": [1.5]}));
        assert_eq!(attribute(VR::CS, "CT\\US"), json!({"vr": "CS", "Value": ["CT", "US"]}));
        assert_eq!(attribute(VR::LO, ""), json!({"vr": "LO"}));
        assert_eq!(tag_name(dicom_core::Tag(0x0020, 0x000D)), "0020000D");
    }
}
