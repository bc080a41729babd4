//! De-identification (PS3.15 Annex E Basic Profile) over realistic in-memory CT and ultrasound
//! instances: nothing the profile changes keeps its value anywhere, UIDs are replaced
//! consistently, clinically needed attributes and pixel data survive, and the result is valid
//! DICOM that writes and reads back.

use std::collections::{BTreeMap, BTreeSet};

use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{dicom_value, DataElement, Length, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use yilian_dicom::deid::{
    basic_profile, pattern_action, profile_entry, DeidError, Deidentifier, ProfileAction, ProfileOptions,
    TemporalMode, DEIDENTIFICATION_METHOD,
};
use yilian_dicom::synth::{generate, SynthKind, SynthOptions};

const SECRET: &[u8] = b"guangdong-region-deid-secret-0001";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const US_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.6.1";

const STUDY_UID: &str = "1.2.840.113619.2.55.3.2831164355.512.1714550000.100";
const CT_SERIES_UID: &str = "1.2.840.113619.2.55.3.2831164355.512.1714550000.101";
const FOR_UID: &str = "1.2.840.113619.2.55.3.2831164355.512.1714550000.102";
const CT_SOP_1: &str = "1.2.840.113619.2.55.3.2831164355.512.1714550000.103.1";
const CT_SOP_2: &str = "1.2.840.113619.2.55.3.2831164355.512.1714550000.103.2";
const US_STUDY_UID: &str = "1.2.156.112605.14.1.20240502.90001";
const US_SERIES_UID: &str = "1.2.156.112605.14.1.20240502.90001.1";
const US_SOP: &str = "1.2.156.112605.14.1.20240502.90001.1.1";
const MPPS_UID: &str = "1.2.156.112605.14.1.20240502.777";

/// Identifying strings planted in the fixtures; none may survive anywhere in the output bytes.
const NEEDLES: &[&str] = &[
    "ZHANG",
    "440106196203140011",
    "OLD-99812",
    "PANYU",
    "ACC240501009",
    "Guangzhou First",
    "Panfu Road",
    "CHEN^JIANGUO",
    "GZ1CTROOM3",
    "WANG^FANG",
    "LIU^YANG",
    "HUANG^LEI",
    "ZHAO^MIN",
    "Dongfeng Road",
    "13800138000",
    "Sun Yat-sen",
    "SN-CT-998877",
    "DR ZHOU",
    "ST7781",
    "8888-1234",
    "RP-5531",
    "SPS-5531",
    "SUN^QIANG",
    "PPS-1",
    "GEMS_IDEN",
    "LI^NA",
    "EMP-1234",
    "Tianhe Clinic",
    "US-ROOM-2",
    "Panyu Maternal",
    "SN-US-4455",
    "WU^XIA",
    "Lin Mei",
    "20240501",
    "20240502",
    "19620314",
    "19890723",
];

fn s(tag: Tag, vr: VR, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::new(items, Length::UNDEFINED))
}

fn item(elems: Vec<DataElement<InMemDicomObject>>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elems)
}

fn ct_pixels(n: u16) -> Vec<u16> {
    (0..16u16).map(|i| 1000 + i * 7 + n).collect()
}

/// A CT image with patient, staff, institution, dates, UIDs, private tags, overlay and curve.
fn ct_instance(sop_uid: &str, n: u16, references: Option<&str>) -> InMemDicomObject {
    let mut obj = InMemDicomObject::from_element_iter([
        s(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
        DataElement::new(tags::IMAGE_TYPE, VR::CS, dicom_value!(Strs, ["ORIGINAL", "PRIMARY", "AXIAL"])),
        s(tags::INSTANCE_CREATION_DATE, VR::DA, "20240501"),
        s(tags::INSTANCE_CREATION_TIME, VR::TM, "083201"),
        s(tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE),
        s(tags::SOP_INSTANCE_UID, VR::UI, sop_uid),
        s(tags::STUDY_DATE, VR::DA, "20240501"),
        s(tags::SERIES_DATE, VR::DA, "20240501"),
        s(tags::ACQUISITION_DATE, VR::DA, "20240501"),
        s(tags::CONTENT_DATE, VR::DA, "20240501"),
        s(tags::ACQUISITION_DATE_TIME, VR::DT, "20240501083120.123456+0800"),
        s(tags::STUDY_TIME, VR::TM, "083015"),
        s(tags::SERIES_TIME, VR::TM, "083044"),
        s(tags::ACQUISITION_TIME, VR::TM, "083120.123456"),
        s(tags::CONTENT_TIME, VR::TM, "083121"),
        s(tags::ACCESSION_NUMBER, VR::SH, "ACC240501009"),
        s(tags::MODALITY, VR::CS, "CT"),
        s(tags::MANUFACTURER, VR::LO, "GE MEDICAL SYSTEMS"),
        s(tags::INSTITUTION_NAME, VR::LO, "Guangzhou First People's Hospital"),
        s(tags::INSTITUTION_ADDRESS, VR::ST, "1 Panfu Road, Yuexiu District, Guangzhou"),
        s(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "CHEN^JIANGUO"),
        s(tags::STATION_NAME, VR::SH, "GZ1CTROOM3"),
        s(tags::STUDY_DESCRIPTION, VR::LO, "CT CHEST ZHANG WEI FOLLOW-UP"),
        s(tags::SERIES_DESCRIPTION, VR::LO, "AXIAL 1.25mm per DR ZHOU"),
        s(tags::INSTITUTIONAL_DEPARTMENT_NAME, VR::LO, "Radiology Dept 3, Guangzhou First"),
        s(tags::PHYSICIANS_OF_RECORD, VR::PN, "WANG^FANG"),
        s(tags::PERFORMING_PHYSICIAN_NAME, VR::PN, "LIU^YANG"),
        s(tags::NAME_OF_PHYSICIANS_READING_STUDY, VR::PN, "HUANG^LEI"),
        s(tags::OPERATORS_NAME, VR::PN, "ZHAO^MIN"),
        s(tags::MANUFACTURER_MODEL_NAME, VR::LO, "Revolution CT"),
        seq(
            tags::REFERENCED_STUDY_SEQUENCE,
            vec![item(vec![
                s(tags::REFERENCED_SOP_CLASS_UID, VR::UI, "1.2.840.10008.3.1.2.3.1"),
                s(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, STUDY_UID),
            ])],
        ),
        s(tags::PATIENT_NAME, VR::PN, "ZHANG^WEI=张伟"),
        s(tags::PATIENT_ID, VR::LO, "440106196203140011"),
        s(tags::ISSUER_OF_PATIENT_ID, VR::LO, "GZ-HIS"),
        s(tags::PATIENT_BIRTH_DATE, VR::DA, "19620314"),
        s(tags::PATIENT_SEX, VR::CS, "M"),
        seq(
            tags::OTHER_PATIENT_I_DS_SEQUENCE,
            vec![item(vec![
                s(tags::PATIENT_ID, VR::LO, "OLD-99812"),
                s(tags::ISSUER_OF_PATIENT_ID, VR::LO, "PANYU-HOSP"),
            ])],
        ),
        s(tags::PATIENT_AGE, VR::AS, "062Y"),
        s(tags::PATIENT_WEIGHT, VR::DS, "71.5"),
        s(tags::PATIENT_ADDRESS, VR::LO, "Room 502, 18 Dongfeng Road, Guangzhou"),
        s(tags::PATIENT_TELEPHONE_NUMBERS, VR::SH, "13800138000"),
        s(tags::ADDITIONAL_PATIENT_HISTORY, VR::LT, "smoker, lobectomy at Sun Yat-sen 2019"),
        s(tags::CONTRAST_BOLUS_AGENT, VR::LO, "Omnipaque 350"),
        s(tags::SLICE_THICKNESS, VR::DS, "1.25"),
        s(tags::KVP, VR::DS, "120"),
        s(tags::DEVICE_SERIAL_NUMBER, VR::LO, "SN-CT-998877"),
        s(tags::SOFTWARE_VERSIONS, VR::LO, "gmp_vct.47"),
        s(tags::PROTOCOL_NAME, VR::LO, "CHEST ROUTINE DR ZHOU"),
        s(tags::STUDY_INSTANCE_UID, VR::UI, STUDY_UID),
        s(tags::SERIES_INSTANCE_UID, VR::UI, CT_SERIES_UID),
        s(tags::STUDY_ID, VR::SH, "ST7781"),
        s(tags::SERIES_NUMBER, VR::IS, "3"),
        s(tags::INSTANCE_NUMBER, VR::IS, &n.to_string()),
        DataElement::new(
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            dicom_value!(Strs, ["-250", "-250", "-100.5"]),
        ),
        DataElement::new(
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            dicom_value!(Strs, ["1", "0", "0", "0", "1", "0"]),
        ),
        s(tags::FRAME_OF_REFERENCE_UID, VR::UI, FOR_UID),
        s(tags::POSITION_REFERENCE_INDICATOR, VR::LO, "SN"),
        s(tags::IMAGE_COMMENTS, VR::LT, "Call Dr Zhou at 020-8888-1234"),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, dicom_value!(U16, [1])),
        s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        DataElement::new(tags::ROWS, VR::US, dicom_value!(U16, [4])),
        DataElement::new(tags::COLUMNS, VR::US, dicom_value!(U16, [4])),
        DataElement::new(tags::PIXEL_SPACING, VR::DS, dicom_value!(Strs, ["0.488", "0.488"])),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [16])),
        DataElement::new(tags::BITS_STORED, VR::US, dicom_value!(U16, [12])),
        DataElement::new(tags::HIGH_BIT, VR::US, dicom_value!(U16, [11])),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, dicom_value!(U16, [0])),
        s(tags::WINDOW_CENTER, VR::DS, "40"),
        s(tags::WINDOW_WIDTH, VR::DS, "400"),
        s(tags::RESCALE_INTERCEPT, VR::DS, "-1024"),
        s(tags::RESCALE_SLOPE, VR::DS, "1"),
        seq(
            tags::REQUEST_ATTRIBUTES_SEQUENCE,
            vec![item(vec![
                s(tags::REQUESTED_PROCEDURE_ID, VR::SH, "RP-5531"),
                s(tags::SCHEDULED_PROCEDURE_STEP_ID, VR::SH, "SPS-5531"),
                s(tags::REQUESTING_PHYSICIAN, VR::PN, "SUN^QIANG"),
            ])],
        ),
        s(tags::PERFORMED_PROCEDURE_STEP_START_DATE, VR::DA, "20240501"),
        s(tags::PERFORMED_PROCEDURE_STEP_ID, VR::SH, "PPS-1"),
        // Private groups.
        s(Tag(0x0009, 0x0010), VR::LO, "GEMS_IDEN_01"),
        s(Tag(0x0009, 0x1001), VR::LO, "ZHANG WEI 440106196203140011"),
        s(Tag(0x0019, 0x0010), VR::LO, "GEMS_ACQU_01"),
        DataElement::new(Tag(0x0019, 0x1002), VR::SL, dicom_value!(I32, [42])),
        // Curve (retired) and overlay groups.
        DataElement::new(Tag(0x5000, 0x0005), VR::US, dicom_value!(U16, [1])),
        DataElement::new(Tag(0x5000, 0x3000), VR::OW, dicom_value!(U16, [7, 7, 7, 7])),
        DataElement::new(Tag(0x6000, 0x0010), VR::US, dicom_value!(U16, [4])),
        DataElement::new(Tag(0x6000, 0x0011), VR::US, dicom_value!(U16, [4])),
        s(Tag(0x6000, 0x0040), VR::CS, "G"),
        DataElement::new(Tag(0x6000, 0x0050), VR::SS, dicom_value!(I16, [1, 1])),
        DataElement::new(Tag(0x6000, 0x0100), VR::US, dicom_value!(U16, [1])),
        DataElement::new(Tag(0x6000, 0x0102), VR::US, dicom_value!(U16, [0])),
        DataElement::new(Tag(0x6000, 0x3000), VR::OW, dicom_value!(U16, [0xFFFF])),
        s(Tag(0x6000, 0x4000), VR::LT, "ZHANG WEI annotated by LIU^YANG"),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(ct_pixels(n).into())),
    ]);
    if let Some(referenced) = references {
        obj.put(seq(
            tags::REFERENCED_IMAGE_SEQUENCE,
            vec![item(vec![
                s(tags::REFERENCED_SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE),
                s(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, referenced),
            ])],
        ));
        obj.put(seq(
            tags::SOURCE_IMAGE_SEQUENCE,
            vec![item(vec![
                s(tags::REFERENCED_SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE),
                s(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, referenced),
            ])],
        ));
    }
    obj
}

/// An ultrasound image (burned-in annotation) with identifying data nested in sequences.
fn us_instance() -> InMemDicomObject {
    let region = item(vec![
        DataElement::new(tags::REGION_SPATIAL_FORMAT, VR::US, dicom_value!(U16, [1])),
        DataElement::new(tags::REGION_DATA_TYPE, VR::US, dicom_value!(U16, [1])),
        DataElement::new(tags::REGION_LOCATION_MIN_X0, VR::UL, dicom_value!(U32, [0])),
        DataElement::new(tags::REGION_LOCATION_MIN_Y0, VR::UL, dicom_value!(U32, [0])),
        DataElement::new(tags::REGION_LOCATION_MAX_X1, VR::UL, dicom_value!(U32, [3])),
        DataElement::new(tags::REGION_LOCATION_MAX_Y1, VR::UL, dicom_value!(U32, [1])),
        DataElement::new(tags::PHYSICAL_DELTA_X, VR::FD, dicom_value!(F64, [0.0125])),
        DataElement::new(tags::PHYSICAL_DELTA_Y, VR::FD, dicom_value!(F64, [0.0125])),
    ]);
    let operator = item(vec![
        seq(
            tags::PERSON_IDENTIFICATION_CODE_SEQUENCE,
            vec![item(vec![
                s(tags::CODE_VALUE, VR::SH, "EMP-1234"),
                s(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "L"),
                s(tags::CODE_MEANING, VR::LO, "LI^NA sonographer"),
            ])],
        ),
        s(tags::PERSON_ADDRESS, VR::ST, "Tianhe Clinic, 3 Tiyu Road"),
        s(tags::PERSON_TELEPHONE_NUMBERS, VR::LO, "020-8888-1234"),
        s(tags::INSTITUTION_NAME, VR::LO, "Panyu Maternal and Child Hospital"),
        s(tags::INSTITUTION_ADDRESS, VR::ST, "Tianhe Clinic annex"),
    ]);
    InMemDicomObject::from_element_iter([
        s(tags::SOP_CLASS_UID, VR::UI, US_IMAGE_STORAGE),
        s(tags::SOP_INSTANCE_UID, VR::UI, US_SOP),
        s(tags::STUDY_DATE, VR::DA, "20240502"),
        s(tags::CONTENT_DATE, VR::DA, "20240502"),
        s(tags::STUDY_TIME, VR::TM, "101500"),
        s(tags::CONTENT_TIME, VR::TM, "101733"),
        s(tags::ACCESSION_NUMBER, VR::SH, "ACC240501009"),
        s(tags::MODALITY, VR::CS, "US"),
        s(tags::INSTITUTION_NAME, VR::LO, "Panyu Maternal and Child Hospital"),
        seq(
            tags::INSTITUTION_CODE_SEQUENCE,
            vec![item(vec![
                s(tags::CODE_VALUE, VR::SH, "PANYU-MCH"),
                s(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "99GDHC"),
                s(tags::CODE_MEANING, VR::LO, "Panyu Maternal and Child Hospital"),
            ])],
        ),
        s(tags::STATION_NAME, VR::SH, "US-ROOM-2"),
        s(tags::OPERATORS_NAME, VR::PN, "LI^NA"),
        seq(tags::OPERATOR_IDENTIFICATION_SEQUENCE, vec![operator]),
        seq(
            tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
            vec![item(vec![
                s(tags::REFERENCED_SOP_CLASS_UID, VR::UI, "1.2.840.10008.3.1.2.3.3"),
                s(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, MPPS_UID),
            ])],
        ),
        s(tags::PATIENT_NAME, VR::PN, "WU^XIA"),
        s(tags::PATIENT_ID, VR::LO, "440113198907230025"),
        s(tags::PATIENT_BIRTH_DATE, VR::DA, "19890723"),
        s(tags::PATIENT_SEX, VR::CS, "F"),
        s(tags::PATIENT_COMMENTS, VR::LT, "G2P1, contact husband Lin Mei"),
        s(tags::DEVICE_SERIAL_NUMBER, VR::LO, "SN-US-4455"),
        s(tags::STUDY_INSTANCE_UID, VR::UI, US_STUDY_UID),
        s(tags::SERIES_INSTANCE_UID, VR::UI, US_SERIES_UID),
        s(tags::STUDY_ID, VR::SH, "ST7781"),
        s(tags::INSTANCE_NUMBER, VR::IS, "1"),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, dicom_value!(U16, [3])),
        s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB"),
        DataElement::new(tags::PLANAR_CONFIGURATION, VR::US, dicom_value!(U16, [0])),
        DataElement::new(tags::ROWS, VR::US, dicom_value!(U16, [2])),
        DataElement::new(tags::COLUMNS, VR::US, dicom_value!(U16, [4])),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [8])),
        DataElement::new(tags::BITS_STORED, VR::US, dicom_value!(U16, [8])),
        DataElement::new(tags::HIGH_BIT, VR::US, dicom_value!(U16, [7])),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, dicom_value!(U16, [0])),
        s(tags::BURNED_IN_ANNOTATION, VR::CS, "YES"),
        seq(tags::SEQUENCE_OF_ULTRASOUND_REGIONS, vec![region]),
        s(Tag(0x0029, 0x0010), VR::LO, "PHILIPS US"),
        s(Tag(0x0029, 0x1010), VR::LT, "WU^XIA 440113198907230025"),
        DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8((0..24u8).collect())),
    ])
}

fn into_file(obj: InMemDicomObject) -> FileDicomObject<InMemDicomObject> {
    let class = obj.get(tags::SOP_CLASS_UID).unwrap().value().to_str().unwrap().into_owned();
    let instance = obj.get(tags::SOP_INSTANCE_UID).unwrap().value().to_str().unwrap().into_owned();
    obj.with_meta(
        FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(class)
            .media_storage_sop_instance_uid(instance)
            .transfer_syntax(EXPLICIT_VR_LE)
            .source_application_entity_title("GZ1CTROOM3"),
    )
    .unwrap()
}

/// Every primitive element anywhere in the data set, as (tag, VR, textual value).
fn leaves(obj: &InMemDicomObject, out: &mut Vec<(Tag, VR, String)>) {
    for e in obj.iter() {
        match e.value() {
            Value::Sequence(seq) => {
                for i in seq.items() {
                    leaves(i, out);
                }
            }
            Value::Primitive(p) => out.push((e.tag(), e.vr(), p.to_str().into_owned())),
            Value::PixelSequence(_) => {}
        }
    }
}

/// Every tag present anywhere in the data set.
fn all_tags(obj: &InMemDicomObject, out: &mut Vec<Tag>) {
    for e in obj.iter() {
        out.push(e.tag());
        if let Some(items) = e.value().items() {
            for i in items {
                all_tags(i, out);
            }
        }
    }
}

fn uid_of(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.get(tag).unwrap().value().to_str().unwrap().into_owned()
}

fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid.split('.').all(|c| {
            !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) && (c == "0" || !c.starts_with('0'))
        })
}

/// Whether the profile (under `temporal`) changes the attribute `tag` with value representation
/// `vr`. Under the temporal options, longitudinal attributes are kept (full dates), or shifted
/// if they are dates (modified dates; times of day are kept).
fn changed_by_profile(tag: Tag, vr: VR, temporal: TemporalMode) -> bool {
    if pattern_action(tag).is_some() {
        return true;
    }
    match profile_entry(tag) {
        None => false,
        Some(e) if e.action == ProfileAction::Keep => false,
        Some(e) if e.options.contains(ProfileOptions::RETAIN_LONGITUDINAL_FULL_DATES) => match temporal {
            TemporalMode::Remove => true,
            TemporalMode::KeepFull => false,
            TemporalMode::ShiftDays(_) => matches!(vr, VR::DA | VR::DT),
        },
        Some(_) => true,
    }
}

/// Core assertion: no D/Z/X/U/C attribute of the profile keeps any of its original values,
/// anywhere in the tree; no private, curve or overlay data/comment elements remain.
fn assert_profile_applied(original: &InMemDicomObject, deid: &InMemDicomObject, temporal: TemporalMode) {
    let mut before = Vec::new();
    leaves(original, &mut before);
    let mut originals: BTreeMap<Tag, BTreeSet<String>> = BTreeMap::new();
    for (tag, _, v) in before {
        if !v.is_empty() {
            originals.entry(tag).or_default().insert(v);
        }
    }
    let mut after = Vec::new();
    leaves(deid, &mut after);
    let mut checked = 0;
    for (tag, vr, v) in &after {
        if !changed_by_profile(*tag, *vr, temporal) || v.is_empty() {
            continue;
        }
        if let Some(old) = originals.get(tag) {
            checked += 1;
            assert!(!old.contains(v), "{tag} kept its original value {v:?}");
        }
    }
    assert!(checked > 0, "nothing was checked");
    let mut present = Vec::new();
    all_tags(deid, &mut present);
    for tag in present {
        assert!(tag.group() % 2 == 0, "private tag {tag} remains");
        assert!(!(0x5000..=0x50FF).contains(&tag.group()), "curve {tag} remains");
        let overlay = (0x6000..=0x60FF).contains(&tag.group());
        assert!(!(overlay && (tag.element() == 0x3000 || tag.element() == 0x4000)), "overlay {tag} remains");
    }
    assert_eq!(uid_of(deid, tags::PATIENT_IDENTITY_REMOVED), "YES");
    assert!(uid_of(deid, tags::DEIDENTIFICATION_METHOD).contains("Basic Application Level Confidentiality"));
    let codes = deid.get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE).unwrap().value().items().unwrap();
    assert_eq!(codes[0].get(tags::CODE_VALUE).unwrap().value().to_str().unwrap(), "113100");
    assert_eq!(codes[0].get(tags::CODING_SCHEME_DESIGNATOR).unwrap().value().to_str().unwrap(), "DCM");
}

/// Every original attribute that the profile keeps is unchanged at top level (sequences aside,
/// whose items may hold replaced UIDs).
fn assert_kept(original: &InMemDicomObject, deid: &InMemDicomObject, temporal: TemporalMode) {
    let added = [
        tags::PATIENT_IDENTITY_REMOVED,
        tags::DEIDENTIFICATION_METHOD,
        tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
        tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED,
    ];
    let mut kept = 0;
    for e in original.iter() {
        let tag = e.tag();
        if changed_by_profile(tag, e.vr(), temporal) || added.contains(&tag) || e.vr() == VR::SQ {
            continue;
        }
        let after = deid.get(tag).unwrap_or_else(|| panic!("kept attribute {tag} is missing"));
        assert_eq!(after.vr(), e.vr(), "{tag} VR changed");
        assert_eq!(after.value(), e.value(), "{tag} value changed");
        kept += 1;
    }
    assert!(kept >= 10, "only {kept} attributes kept");
}

fn assert_all_uids_valid(obj: &InMemDicomObject) {
    let mut all = Vec::new();
    leaves(obj, &mut all);
    for (tag, vr, v) in all {
        if vr == VR::UI && !v.is_empty() {
            for uid in v.split('\\') {
                assert!(valid_uid(uid), "{tag}: invalid UID {uid:?}");
            }
        }
    }
}

fn write_read(file: &FileDicomObject<InMemDicomObject>) -> (Vec<u8>, FileDicomObject<InMemDicomObject>) {
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).expect("write");
    let back = OpenFileOptions::new().from_reader(&bytes[128..]).expect("re-read");
    (bytes, back)
}

fn assert_no_needles(bytes: &[u8]) {
    for needle in NEEDLES {
        let n = needle.as_bytes();
        assert!(!bytes.windows(n.len()).any(|w| w == n), "output still contains {needle:?}");
    }
}

#[test]
fn planted_identifiers_are_in_the_original_bytes() {
    // Guards the needle checks below: each identifier really is in some original file.
    let mut originals = Vec::new();
    for obj in [ct_instance(CT_SOP_2, 2, Some(CT_SOP_1)), us_instance()] {
        let (bytes, _) = write_read(&into_file(obj));
        originals.extend_from_slice(&bytes);
    }
    for needle in NEEDLES {
        let n = needle.as_bytes();
        assert!(originals.windows(n.len()).any(|w| w == n), "{needle:?} not planted");
    }
}

#[test]
fn table_covers_the_basic_profile() {
    let table = basic_profile();
    assert!(table.len() >= 600, "{} rows", table.len());
    assert!(table.windows(2).all(|w| w[0].tag < w[1].tag), "sorted, unique");
    let action = |t| profile_entry(t).map(|e| e.action);
    assert_eq!(action(tags::PATIENT_NAME), Some(ProfileAction::Zero));
    assert_eq!(action(tags::PATIENT_ID), Some(ProfileAction::ZeroOrDummy));
    assert_eq!(action(tags::STUDY_INSTANCE_UID), Some(ProfileAction::Uid));
    assert_eq!(action(tags::REFERENCED_SOP_INSTANCE_UID), Some(ProfileAction::Uid));
    assert_eq!(action(tags::INSTITUTION_NAME), Some(ProfileAction::RemoveZeroOrDummy));
    assert_eq!(action(tags::OTHER_PATIENT_I_DS_SEQUENCE), Some(ProfileAction::Remove));
    assert_eq!(action(tags::REFERENCED_IMAGE_SEQUENCE), Some(ProfileAction::RemoveZeroOrUid));
    assert_eq!(action(tags::ROWS), None);
    assert_eq!(action(tags::MODALITY), None);
    assert_eq!(pattern_action(Tag(0x0009, 0x1001)), Some(ProfileAction::Remove));
    assert_eq!(pattern_action(Tag(0x6002, 0x3000)), Some(ProfileAction::Remove));
    assert_eq!(pattern_action(Tag(0x6000, 0x0010)), None);
    assert_eq!(pattern_action(Tag(0x501E, 0x0005)), Some(ProfileAction::Remove));
    let uids = table.iter().filter(|e| e.action == ProfileAction::Uid).count();
    assert!(uids >= 50, "{uids} U rows");
}

#[test]
fn ct_instance_is_deidentified_and_stays_valid_dicom() {
    let deid = Deidentifier::new(SECRET).unwrap();
    let original = ct_instance(CT_SOP_2, 2, Some(CT_SOP_1));
    let mut file = into_file(original.clone());
    let report = deid.deidentify_file(&mut file, None).unwrap();

    assert_profile_applied(&original, &file, TemporalMode::Remove);
    assert_kept(&original, &file, TemporalMode::Remove);
    assert_all_uids_valid(&file);
    assert!(report.private_removed >= 4, "{report:?}");
    assert_eq!(report.pattern_removed, 4, "{report:?}");
    assert!(report.uids_replaced >= 6, "{report:?}");
    assert!(!report.pixel_data_may_contain_identity);

    // Specific actions: Z empties, X removes, D dummies, overlay geometry stays.
    assert_eq!(uid_of(&file, tags::PATIENT_NAME), "");
    assert_eq!(uid_of(&file, tags::ACCESSION_NUMBER), "");
    assert_eq!(uid_of(&file, tags::STUDY_DATE), "");
    assert!(file.get(tags::OTHER_PATIENT_I_DS_SEQUENCE).is_none());
    assert!(file.get(tags::REQUEST_ATTRIBUTES_SEQUENCE).is_none());
    assert!(file.get(tags::PATIENT_ADDRESS).is_none());
    assert!(file.get(tags::IMAGE_COMMENTS).is_none());
    assert_eq!(uid_of(&file, tags::INSTITUTION_NAME), "ANONYMIZED");
    assert_eq!(uid_of(&file, tags::OPERATORS_NAME), "ANONYMOUS");
    assert!(file.get(Tag(0x6000, 0x0010)).is_some());
    assert_eq!(uid_of(&file, tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED), "REMOVED");

    // File meta follows the new SOP Instance UID; the AE title is gone.
    assert_eq!(file.meta().media_storage_sop_instance_uid(), deid.replacement_uid(CT_SOP_2));
    assert_eq!(uid_of(&file, tags::SOP_INSTANCE_UID), deid.replacement_uid(CT_SOP_2));
    assert!(file.meta().source_application_entity_title.is_none());

    // Writes and reads back as DICOM, identical in content; no planted identifier in the bytes.
    let (bytes, back) = write_read(&file);
    assert_no_needles(&bytes);
    assert_eq!(back.meta().media_storage_sop_instance_uid(), deid.replacement_uid(CT_SOP_2));
    for tag in [
        tags::ROWS,
        tags::COLUMNS,
        tags::BITS_ALLOCATED,
        tags::BITS_STORED,
        tags::MODALITY,
        tags::PIXEL_SPACING,
        tags::IMAGE_ORIENTATION_PATIENT,
        tags::IMAGE_POSITION_PATIENT,
        tags::RESCALE_INTERCEPT,
        tags::SOP_CLASS_UID,
    ] {
        assert_eq!(
            back.get(tag).unwrap().value().to_str().unwrap(),
            original.get(tag).unwrap().value().to_str().unwrap(),
            "{tag}"
        );
    }
    let pixels = back.get(tags::PIXEL_DATA).unwrap().value().to_bytes().unwrap().into_owned();
    let expected: Vec<u8> = ct_pixels(2).iter().flat_map(|p| p.to_le_bytes()).collect();
    assert_eq!(pixels, expected);
    assert_eq!(uid_of(&back, tags::PATIENT_IDENTITY_REMOVED), "YES");
    assert_eq!(uid_of(&back, tags::DEIDENTIFICATION_METHOD), DEIDENTIFICATION_METHOD);
}

#[test]
fn ultrasound_nested_identity_is_removed_and_burned_in_text_flagged() {
    let deid = Deidentifier::new(SECRET).unwrap();
    let original = us_instance();
    let mut file = into_file(original.clone());
    let report = deid.deidentify_file(&mut file, None).unwrap();

    assert_profile_applied(&original, &file, TemporalMode::Remove);
    assert_kept(&original, &file, TemporalMode::Remove);
    assert_all_uids_valid(&file);
    assert!(report.pixel_data_may_contain_identity);

    // Operator Identification Sequence (X/D) kept as a dummy: its person code sequence (D) is a
    // single dummy code, the address and telephone (X) gone, the institution name (X/Z/D) dummy.
    let op = &file.get(tags::OPERATOR_IDENTIFICATION_SEQUENCE).unwrap().value().items().unwrap()[0];
    let codes = op.get(tags::PERSON_IDENTIFICATION_CODE_SEQUENCE).unwrap().value().items().unwrap();
    assert_eq!(codes.len(), 1);
    assert_eq!(codes[0].get(tags::CODE_VALUE).unwrap().value().to_str().unwrap(), "ANONYMIZED");
    assert!(op.get(tags::PERSON_ADDRESS).is_none());
    assert!(op.get(tags::PERSON_TELEPHONE_NUMBERS).is_none());
    assert_eq!(op.get(tags::INSTITUTION_NAME).unwrap().value().to_str().unwrap(), "ANONYMIZED");
    // Referenced Performed Procedure Step Sequence (X/Z/D): the MPPS UID inside is replaced.
    let mpps =
        &file.get(tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE).unwrap().value().items().unwrap()[0];
    assert_eq!(uid_of(mpps, tags::REFERENCED_SOP_INSTANCE_UID), deid.replacement_uid(MPPS_UID));
    assert_eq!(uid_of(mpps, tags::REFERENCED_SOP_CLASS_UID), "1.2.840.10008.3.1.2.3.3");
    // Ultrasound regions (K) intact.
    assert_eq!(
        file.get(tags::SEQUENCE_OF_ULTRASOUND_REGIONS).unwrap().value(),
        original.get(tags::SEQUENCE_OF_ULTRASOUND_REGIONS).unwrap().value()
    );

    let (bytes, back) = write_read(&file);
    assert_no_needles(&bytes);
    assert_eq!(
        back.get(tags::PIXEL_DATA).unwrap().value().to_bytes().unwrap().as_ref(),
        (0..24u8).collect::<Vec<_>>().as_slice()
    );
}

#[test]
fn uids_are_replaced_consistently_across_instances_of_a_study() {
    let deid = Deidentifier::new(SECRET).unwrap();
    let mut first = ct_instance(CT_SOP_1, 1, None);
    let mut second = ct_instance(CT_SOP_2, 2, Some(CT_SOP_1));
    deid.deidentify(&mut first).unwrap();
    // A second de-identifier with the same secret (another node) gives the same mapping.
    Deidentifier::new(SECRET).unwrap().deidentify(&mut second).unwrap();

    for tag in [tags::STUDY_INSTANCE_UID, tags::SERIES_INSTANCE_UID, tags::FRAME_OF_REFERENCE_UID] {
        assert_eq!(uid_of(&first, tag), uid_of(&second, tag), "{tag}");
        assert_ne!(uid_of(&first, tag), uid_of(&ct_instance(CT_SOP_1, 1, None), tag));
    }
    let (sop1, sop2) = (uid_of(&first, tags::SOP_INSTANCE_UID), uid_of(&second, tags::SOP_INSTANCE_UID));
    assert_ne!(sop1, sop2);
    let distinct: BTreeSet<String> = [
        uid_of(&first, tags::STUDY_INSTANCE_UID),
        uid_of(&first, tags::SERIES_INSTANCE_UID),
        uid_of(&first, tags::FRAME_OF_REFERENCE_UID),
        sop1.clone(),
        sop2.clone(),
    ]
    .into();
    assert_eq!(distinct.len(), 5, "different originals map to different UIDs");
    // References inside sequences follow the referenced instance's new UID.
    for sq in [tags::REFERENCED_IMAGE_SEQUENCE, tags::SOURCE_IMAGE_SEQUENCE] {
        let items = second.get(sq).unwrap().value().items().unwrap();
        assert_eq!(uid_of(&items[0], tags::REFERENCED_SOP_INSTANCE_UID), sop1);
        assert_eq!(uid_of(&items[0], tags::REFERENCED_SOP_CLASS_UID), CT_IMAGE_STORAGE);
    }
    // Referenced Study Sequence is X/Z: kept empty by default.
    assert_eq!(second.get(tags::REFERENCED_STUDY_SEQUENCE).unwrap().value().items().unwrap().len(), 0);
    assert_all_uids_valid(&first);
    assert_all_uids_valid(&second);

    // Another secret, another mapping.
    let other = Deidentifier::new(b"another region's secret value!!").unwrap();
    assert_ne!(other.replacement_uid(STUDY_UID), deid.replacement_uid(STUDY_UID));
    // Padding does not change the mapping.
    assert_eq!(deid.replacement_uid(&format!("{STUDY_UID}\0")), deid.replacement_uid(STUDY_UID));
    for i in 0..2000 {
        assert!(valid_uid(&deid.replacement_uid(&format!("1.2.3.{i}"))));
    }
}

#[test]
fn pseudonym_replaces_patient_name_and_id() {
    let deid = Deidentifier::new(SECRET).unwrap();
    let original = ct_instance(CT_SOP_1, 1, None);
    let mut obj = original.clone();
    let report = deid.deidentify_as(&mut obj, "GD-7f3a9c1e02b4").unwrap();
    assert!(report.pseudonymised);
    assert_eq!(uid_of(&obj, tags::PATIENT_NAME), "GD-7f3a9c1e02b4");
    assert_eq!(uid_of(&obj, tags::PATIENT_ID), "GD-7f3a9c1e02b4");
    assert_profile_applied(&original, &obj, TemporalMode::Remove);

    for bad in ["", "   ", "A\\B", "DOE^JOHN", &"x".repeat(65), "名字"] {
        let mut obj = original.clone();
        assert!(matches!(deid.deidentify_as(&mut obj, bad), Err(DeidError::InvalidPseudonym(_))), "{bad:?}");
    }
}

#[test]
fn composite_actions_can_prefer_removal() {
    let deid = Deidentifier::new(SECRET).unwrap().prefer_removal(true);
    let original = ct_instance(CT_SOP_2, 2, Some(CT_SOP_1));
    let mut obj = original.clone();
    deid.deidentify(&mut obj).unwrap();
    assert_profile_applied(&original, &obj, TemporalMode::Remove);
    for tag in [
        tags::INSTITUTION_NAME,
        tags::OPERATORS_NAME,
        tags::STATION_NAME,
        tags::DEVICE_SERIAL_NUMBER,
        tags::REFERENCED_IMAGE_SEQUENCE,
        tags::REFERENCED_STUDY_SEQUENCE,
        tags::ACQUISITION_DATE,
        tags::PROTOCOL_NAME,
    ] {
        assert!(obj.get(tag).is_none(), "{tag} should be removed");
    }
    // Z/D falls back to Z; plain Z stays.
    assert_eq!(uid_of(&obj, tags::PATIENT_ID), "");
    assert_eq!(uid_of(&obj, tags::CONTENT_DATE), "");
    assert_eq!(uid_of(&obj, tags::STUDY_DATE), "");
}

#[test]
fn temporal_options_keep_or_shift_dates() {
    let original = ct_instance(CT_SOP_1, 1, None);

    let keep = Deidentifier::new(SECRET).unwrap().with_temporal(TemporalMode::KeepFull);
    let mut kept = original.clone();
    let report = keep.deidentify(&mut kept).unwrap();
    assert!(report.kept_by_option >= 10, "{report:?}");
    assert_eq!(uid_of(&kept, tags::STUDY_DATE), "20240501");
    assert_eq!(uid_of(&kept, tags::ACQUISITION_DATE_TIME), "20240501083120.123456+0800");
    assert_eq!(uid_of(&kept, tags::PATIENT_BIRTH_DATE), "", "birth date is not longitudinal");
    assert_eq!(uid_of(&kept, tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED), "UNMODIFIED");
    assert_profile_applied(&original, &kept, TemporalMode::KeepFull);
    assert_kept(&original, &kept, TemporalMode::KeepFull);
    let codes = kept.get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE).unwrap().value().items().unwrap();
    assert_eq!(codes[1].get(tags::CODE_VALUE).unwrap().value().to_str().unwrap(), "113106");

    let shift = Deidentifier::new(SECRET).unwrap().with_temporal(TemporalMode::ShiftDays(-45));
    let mut shifted = original.clone();
    // Partial dates cannot be shifted: they fall back to the Basic Profile (X/D -> dummy, Z -> empty).
    shifted.put(s(tags::SERIES_DATE, VR::DA, "202405"));
    shifted.put(s(tags::CONTENT_DATE, VR::DA, "2024"));
    shifted.put(s(tags::STUDY_DATE, VR::DA, "20240501"));
    shifted.put(s(tags::ACQUISITION_DATE, VR::DA, "20240501-20240502"));
    let report = shift.deidentify(&mut shifted).unwrap();
    assert_eq!(uid_of(&shifted, tags::SERIES_DATE), "19000101");
    assert_eq!(uid_of(&shifted, tags::CONTENT_DATE), "19000101");
    assert_eq!(uid_of(&shifted, tags::ACQUISITION_DATE), "");
    assert!(report.dates_shifted >= 4, "{report:?}");
    assert_eq!(uid_of(&shifted, tags::STUDY_DATE), "20240317");
    assert_eq!(uid_of(&shifted, tags::ACQUISITION_DATE_TIME), "20240317083120.123456+0800");
    assert_eq!(uid_of(&shifted, tags::STUDY_TIME), "083015", "times of day are kept");
    assert_eq!(uid_of(&shifted, tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED), "MODIFIED");
    // Under shifting, no date keeps its original value; the rest of the profile applies.
    assert_profile_applied(&original, &shifted, TemporalMode::ShiftDays(-45));
    assert_kept(&original, &shifted, TemporalMode::ShiftDays(-45));
    let codes = shifted.get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE).unwrap().value().items().unwrap();
    assert_eq!(codes[1].get(tags::CODE_VALUE).unwrap().value().to_str().unwrap(), "113107");
}

#[test]
fn structured_content_and_graphics_free_text_are_cleaned() {
    let deid = Deidentifier::new(SECRET).unwrap();
    let content_item = item(vec![
        s(tags::RELATIONSHIP_TYPE, VR::CS, "CONTAINS"),
        s(tags::VALUE_TYPE, VR::CS, "TEXT"),
        s(tags::TEXT_VALUE, VR::UT, "Findings discussed with ZHANG WEI's daughter"),
        s(tags::PERSON_NAME, VR::PN, "HUANG^LEI"),
        s(tags::DATE, VR::DA, "20240501"),
        s(tags::UID, VR::UI, "1.2.3.4.5.6.7"),
    ]);
    let mut obj = InMemDicomObject::from_element_iter([
        s(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.88.11"),
        s(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5.6.8"),
        seq(tags::CONTENT_SEQUENCE, vec![content_item]),
        seq(
            tags::GRAPHIC_ANNOTATION_SEQUENCE,
            vec![item(vec![seq(
                tags::TEXT_OBJECT_SEQUENCE,
                vec![item(vec![s(tags::UNFORMATTED_TEXT_VALUE, VR::ST, "ZHANG WEI 62M")])],
            )])],
        ),
    ]);
    let original = obj.clone();
    deid.deidentify(&mut obj).unwrap();
    assert_profile_applied(&original, &obj, TemporalMode::Remove);
    let c = &obj.get(tags::CONTENT_SEQUENCE).unwrap().value().items().unwrap()[0];
    assert_eq!(uid_of(c, tags::VALUE_TYPE), "TEXT");
    assert_eq!(uid_of(c, tags::TEXT_VALUE), "ANONYMIZED");
    assert_eq!(uid_of(c, tags::PERSON_NAME), "ANONYMOUS");
    assert_eq!(uid_of(c, tags::DATE), "19000101");
    assert_eq!(uid_of(c, tags::UID), deid.replacement_uid("1.2.3.4.5.6.7"));
}

#[test]
fn rejects_weak_secret_and_hostile_nesting() {
    assert!(matches!(Deidentifier::new(b"short"), Err(DeidError::SecretTooShort { len: 5, .. })));
    let deid = Deidentifier::new(SECRET).unwrap();
    let debug = format!("{deid:?}");
    assert!(!debug.contains("guangdong"), "secret must not leak through Debug");

    let mut nested = item(vec![s(tags::PATIENT_NAME, VR::PN, "DEEP^NAME")]);
    for _ in 0..100 {
        nested = item(vec![seq(tags::REFERENCED_SERIES_SEQUENCE, vec![nested])]);
    }
    assert!(matches!(deid.deidentify(&mut nested), Err(DeidError::TooDeep { .. })));
}

#[test]
fn synthesized_studies_are_deidentified_and_still_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        patient_name: Some("HUANG^XIAOMING".into()),
        patient_id: Some("GZ-MRN-771234".into()),
        ..SynthOptions::small(7)
    };
    let summary = generate(&dir.path().join("in"), &SynthKind::ALL, &opts).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let deid = Deidentifier::new(SECRET).unwrap();
    let mut new_sops = BTreeSet::new();
    let mut files = 0;
    for study in &summary.studies {
        let new_study = deid.replacement_uid(&study.study_instance_uid);
        let mut forbidden = vec![
            "HUANG^XIAOMING".to_owned(),
            "GZ-MRN-771234".to_owned(),
            study.study_instance_uid.clone(),
            study.series_instance_uid.clone(),
        ];
        if !study.accession_number.is_empty() {
            forbidden.push(study.accession_number.clone());
        }
        for path in &study.files {
            let mut file = dicom_object::open_file(path).unwrap();
            let original = InMemDicomObject::clone(&file);
            let old_sop = file.meta().media_storage_sop_instance_uid().to_owned();
            deid.deidentify_file(&mut file, Some("GD-7f3a9c1e")).unwrap();
            assert_profile_applied(&original, &file, TemporalMode::Remove);
            assert_kept(&original, &file, TemporalMode::Remove);
            assert_all_uids_valid(&file);

            let target = out.join(format!("{files}.dcm"));
            file.write_to_file(&target).unwrap();
            let bytes = std::fs::read(&target).unwrap();
            for needle in forbidden.iter().chain([&old_sop]) {
                let n = needle.as_bytes();
                assert!(
                    !bytes.windows(n.len()).any(|w| w == n),
                    "{}: {needle:?} survived",
                    study.kind.name()
                );
            }
            // Still an instance the ingest path accepts, filed under the replaced UIDs.
            let info = yilian_dicom::inspect(&target).unwrap();
            assert_eq!(info.study_instance_uid, new_study);
            assert_eq!(info.series_instance_uid, deid.replacement_uid(&study.series_instance_uid));
            assert_eq!(info.sop_instance_uid, deid.replacement_uid(&old_sop));
            assert!(new_sops.insert(info.sop_instance_uid), "SOP Instance UIDs stay distinct");
            files += 1;
        }
    }
    assert_eq!(files, summary.files());
    assert!(files >= 4);
}
