//! DIMSE command sets (PS3.7 E), always Implicit VR Little Endian: parsing requests and
//! building responses.

use super::negotiate::{trim_uid, VERIFICATION};
use dicom_core::{dicom_value, DataElement, Tag, VR};
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
use std::panic::catch_unwind;

/// C-STORE-RQ.
pub(crate) const C_STORE_RQ: u16 = 0x0001;
/// C-ECHO-RQ.
pub(crate) const C_ECHO_RQ: u16 = 0x0030;
/// C-CANCEL-RQ.
pub(crate) const C_CANCEL_RQ: u16 = 0x0FFF;
/// Command Data Set Type value meaning "no data set follows".
const NO_DATA_SET: u16 = 0x0101;
/// Success.
pub(crate) const SUCCESS: u16 = 0x0000;
/// Failure: Unrecognized Operation.
pub(crate) const UNRECOGNIZED_OPERATION: u16 = 0x0211;

const AFFECTED_SOP_CLASS_UID: Tag = Tag(0x0000, 0x0002);
const COMMAND_FIELD: Tag = Tag(0x0000, 0x0100);
const MESSAGE_ID: Tag = Tag(0x0000, 0x0110);
const MESSAGE_ID_BEING_RESPONDED_TO: Tag = Tag(0x0000, 0x0120);
const COMMAND_DATA_SET_TYPE: Tag = Tag(0x0000, 0x0800);
const STATUS: Tag = Tag(0x0000, 0x0900);
const ERROR_COMMENT: Tag = Tag(0x0000, 0x0902);
const AFFECTED_SOP_INSTANCE_UID: Tag = Tag(0x0000, 0x1000);

/// The parts of a request command set the SCP uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// Command Field (0000,0100).
    pub field: u16,
    /// Message ID (0000,0110); 0 for C-CANCEL-RQ, which carries none.
    pub message_id: u16,
    /// Whether a data set follows (Command Data Set Type other than 0101H).
    pub has_data_set: bool,
    /// Affected SOP Class UID (0000,0002), empty when absent.
    pub sop_class_uid: String,
    /// Affected SOP Instance UID (0000,1000), empty when absent.
    pub sop_instance_uid: String,
}

/// Parse a request command set; the error says what is wrong.
pub(crate) fn parse(bytes: &[u8]) -> Result<Request, String> {
    let read =
        catch_unwind(|| InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased()));
    let obj = read
        .map_err(|_| "the command set made the parser fail".to_owned())?
        .map_err(|e| format!("the command set cannot be parsed: {e}"))?;
    let uint = |tag: Tag, name: &str| -> Result<Option<u16>, String> {
        obj.get(tag)
            .map(|e| e.to_int::<u16>().map_err(|_| format!("{name} {tag} is not a 16-bit integer")))
            .transpose()
    };
    let text = |tag: Tag| -> String {
        obj.get(tag).and_then(|e| e.to_str().ok()).map(|s| trim_uid(&s).to_owned()).unwrap_or_default()
    };
    let field = uint(COMMAND_FIELD, "Command Field")?.ok_or("the command set has no Command Field")?;
    let message_id = match (uint(MESSAGE_ID, "Message ID")?, field) {
        (Some(id), _) => id,
        (None, C_CANCEL_RQ) => 0,
        (None, _) => return Err("the command set has no Message ID".to_owned()),
    };
    let data_set_type = uint(COMMAND_DATA_SET_TYPE, "Command Data Set Type")?
        .ok_or("the command set has no Command Data Set Type")?;
    Ok(Request {
        field,
        message_id,
        has_data_set: data_set_type != NO_DATA_SET,
        sop_class_uid: text(AFFECTED_SOP_CLASS_UID),
        sop_instance_uid: text(AFFECTED_SOP_INSTANCE_UID),
    })
}

/// The response to a request: C-ECHO-RSP, C-STORE-RSP, or any other with the response bit set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response<'a> {
    /// The request answered.
    pub request: &'a Request,
    /// The status.
    pub status: u16,
    /// Error Comment, for failures.
    pub comment: Option<&'a str>,
}

impl Response<'_> {
    /// Encode the response command set (with its Command Group Length).
    pub(crate) fn encode(&self) -> Result<Vec<u8>, String> {
        let rq = self.request;
        let mut elements = Vec::with_capacity(7);
        let sop_class = if rq.field == C_ECHO_RQ && rq.sop_class_uid.is_empty() {
            VERIFICATION
        } else {
            rq.sop_class_uid.as_str()
        };
        if !sop_class.is_empty() {
            elements.push(DataElement::new(AFFECTED_SOP_CLASS_UID, VR::UI, dicom_value!(Str, sop_class)));
        }
        elements.push(DataElement::new(COMMAND_FIELD, VR::US, dicom_value!(U16, [rq.field | 0x8000])));
        elements.push(DataElement::new(
            MESSAGE_ID_BEING_RESPONDED_TO,
            VR::US,
            dicom_value!(U16, [rq.message_id]),
        ));
        elements.push(DataElement::new(COMMAND_DATA_SET_TYPE, VR::US, dicom_value!(U16, [NO_DATA_SET])));
        elements.push(DataElement::new(STATUS, VR::US, dicom_value!(U16, [self.status])));
        if let Some(comment) = self.comment {
            elements.push(DataElement::new(ERROR_COMMENT, VR::LO, dicom_value!(Str, error_comment(comment))));
        }
        if !rq.sop_instance_uid.is_empty() {
            elements.push(DataElement::new(
                AFFECTED_SOP_INSTANCE_UID,
                VR::UI,
                dicom_value!(Str, rq.sop_instance_uid.as_str()),
            ));
        }
        let obj = InMemDicomObject::command_from_element_iter(elements);
        let mut out = Vec::with_capacity(256);
        obj.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .map_err(|e| format!("cannot encode the response command set: {e}"))?;
        Ok(out)
    }
}

/// An Error Comment as LO allows it: at most 64 characters of the default repertoire.
fn error_comment(comment: &str) -> String {
    comment
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '\\' || c == ' ' { c } else { '?' })
        .take(64)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_parses_back_with_its_fields() {
        let rq = Request {
            field: C_STORE_RQ,
            message_id: 7,
            has_data_set: true,
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".to_owned(),
            sop_instance_uid: "1.2.3.4".to_owned(),
        };
        let bytes =
            Response { request: &rq, status: 0xA700, comment: Some("too big\\ünicode") }.encode().unwrap();
        let obj =
            InMemDicomObject::read_dataset_with_ts(&bytes[..], &IMPLICIT_VR_LITTLE_ENDIAN.erased()).unwrap();
        let group_length = obj.get(Tag(0x0000, 0x0000)).unwrap().to_int::<u32>().unwrap();
        assert_eq!(group_length as usize, bytes.len() - 12);
        assert_eq!(obj.get(COMMAND_FIELD).unwrap().to_int::<u16>().unwrap(), 0x8001);
        assert_eq!(obj.get(STATUS).unwrap().to_int::<u16>().unwrap(), 0xA700);
        assert_eq!(obj.get(ERROR_COMMENT).unwrap().to_str().unwrap().trim(), "too big??nicode");
        assert_eq!(
            obj.get(AFFECTED_SOP_INSTANCE_UID).unwrap().to_str().unwrap().trim_end_matches('\0'),
            "1.2.3.4"
        );
        assert_eq!(parse(&bytes).unwrap_err(), "the command set has no Message ID");
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        assert!(parse(b"\x00\x00\x00\x00\xff\xff\xff\xff").is_err());
        assert!(parse(b"").is_err());
    }
}
