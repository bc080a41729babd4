//! The STOW-RS response data set (PS3.18 10.5.3): Retrieve URL of the study, Referenced SOP
//! Sequence for what was stored, Failed SOP Sequence with a Failure Reason for what was not.

use super::json::attribute;
use dicom_core::VR;
use serde_json::{json, Map, Value};

/// Failure Reason (0008,1197) codes used in STOW-RS answers (PS3.4 Annex B, PS3.18 I.2).
pub mod reason {
    /// Processing failure (including "the case does not exist").
    pub const PROCESSING_FAILURE: u16 = 0x0110;
    /// SOP class not supported.
    pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
    /// Out of resources (too large).
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Data set does not match SOP class (required attribute missing or invalid).
    pub const DATA_SET_MISMATCH: u16 = 0xA900;
    /// Cannot understand (not DICOM, truncated, malformed).
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
    /// Transfer syntax not supported.
    pub const TRANSFER_SYNTAX_NOT_SUPPORTED: u16 = 0xC122;
    /// Study Instance UID differs from the one in the request's path.
    pub const STUDY_MISMATCH: u16 = 0xC409;
}

/// An instance stored by the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// Where to retrieve it (WADO-RS URL).
    pub retrieve_url: String,
}

/// A part of the request that was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// SOP Class UID, when the part could be read that far.
    pub sop_class_uid: Option<String>,
    /// SOP Instance UID, when the part could be read that far.
    pub sop_instance_uid: Option<String>,
    /// Failure Reason (0008,1197), one of [`reason`].
    pub reason: u16,
    /// What went wrong and what to do, for people (sent as Error Comment (0000,0902)).
    pub comment: String,
}

/// The response data set as DICOM JSON.
pub fn response(study_url: Option<&str>, stored: &[Stored], failed: &[Failed]) -> Value {
    let mut out = Map::new();
    if let Some(url) = study_url {
        out.insert("00081190".into(), attribute(VR::UR, url));
    }
    if !stored.is_empty() {
        let items: Vec<Value> = stored
            .iter()
            .map(|s| {
                json!({
                    "00081150": attribute(VR::UI, &s.sop_class_uid),
                    "00081155": attribute(VR::UI, &s.sop_instance_uid),
                    "00081190": attribute(VR::UR, &s.retrieve_url),
                })
            })
            .collect();
        out.insert("00081199".into(), json!({ "vr": "SQ", "Value": items }));
    }
    if !failed.is_empty() {
        let items: Vec<Value> = failed
            .iter()
            .map(|f| {
                let mut item = Map::new();
                if let Some(c) = &f.sop_class_uid {
                    item.insert("00081150".into(), attribute(VR::UI, c));
                }
                if let Some(i) = &f.sop_instance_uid {
                    item.insert("00081155".into(), attribute(VR::UI, i));
                }
                item.insert("00081197".into(), attribute(VR::US, &f.reason.to_string()));
                item.insert("00000902".into(), attribute(VR::LO, &f.comment.replace('\\', "/")));
                Value::Object(item)
            })
            .collect();
        out.insert("00081198".into(), json!({ "vr": "SQ", "Value": items }));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_lists_stored_and_failed_instances() {
        let stored = [Stored {
            sop_class_uid: "1.2".into(),
            sop_instance_uid: "1.2.3".into(),
            retrieve_url: "http://x/i".into(),
        }];
        let failed = [Failed {
            sop_class_uid: None,
            sop_instance_uid: None,
            reason: reason::CANNOT_UNDERSTAND,
            comment: "not DICOM".into(),
        }];
        let r = response(Some("http://x/s"), &stored, &failed);
        assert_eq!(r["00081190"]["Value"][0], "http://x/s");
        assert_eq!(r["00081199"]["Value"][0]["00081155"]["Value"][0], "1.2.3");
        assert_eq!(r["00081198"]["Value"][0]["00081197"]["Value"][0], 0xC000);
        assert_eq!(r["00081198"]["Value"][0]["00000902"]["Value"][0], "not DICOM");
        assert!(response(None, &[], &[]).as_object().unwrap().is_empty());
    }
}
