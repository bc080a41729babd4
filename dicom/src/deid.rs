//! De-identification: DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile.
//!
//! [`Deidentifier`] applies the per-attribute actions of PS3.15 Table E.1-1 (kept as data in
//! [`basic_profile`]) to a data set, recursively through every sequence item:
//!
//! | action | meaning | here |
//! | --- | --- | --- |
//! | D | replace with a non-zero-length dummy value of the same VR | [`DUMMY_TEXT`], [`DUMMY_PERSON_NAME`], `19000101`, 0...; a sequence keeps its items, processed, except a code sequence, whose items give way to one dummy code |
//! | Z | replace with a zero-length value (or a dummy) | empty value, same VR; a sequence loses its items |
//! | X | remove | element removed |
//! | K | keep | unchanged (sequence items still processed) |
//! | C | clean | free text cannot be cleaned reliably, so treated as D |
//! | U | replace UID, consistently | `2.25.` + decimal of the first 128 bits of HMAC-SHA-256(secret, UID) |
//!
//! For the composite actions of the table (X/Z, X/D, X/Z/D, Z/D, X/Z/U\*), whose choice depends on
//! the attribute's type in the IOD, [`Deidentifier`] by default keeps the element present with the
//! strongest replacement that is always valid (D over Z over X; X/Z/U\* keeps the sequence and
//! replaces the UIDs inside), so that a de-identified instance still satisfies Type 1 and Type 2
//! requirements; [`Deidentifier::prefer_removal`] picks the first alternative instead.
//!
//! Beyond the attribute table, the profile's pattern rows are applied: every private attribute
//! (odd group) is removed, as are curve groups `(50xx,xxxx)`, overlay data `(60xx,3000)`, overlay
//! comments `(60xx,4000)`, and (retired) group length elements `(gggg,0000)`, whose values would be
//! stale after the changes. Two free-text attributes that the table only covers through the
//! enclosing sequence (Text Value `(0040,A160)` in SR content, Unformatted Text Value
//! `(0070,0006)` in graphic annotations) are cleaned (replaced with a dummy) wherever they occur.
//!
//! Afterwards the data set is marked: Patient Identity Removed `(0012,0062)` = `YES`,
//! De-identification Method `(0012,0063)`, De-identification Method Code Sequence `(0012,0064)`
//! (CID 7050: 113100 and, with a temporal option, 113106 or 113107) and Longitudinal Temporal
//! Information Modified `(0028,0303)`.
//!
//! Attributes that the table does not list (pixel data, image geometry, acquisition parameters,
//! SOP Class UID, ...) are kept. Patient's Name (Z) is emptied and Patient ID (Z/D) becomes
//! [`DUMMY_TEXT`], unless the caller supplies a pseudonym ([`Deidentifier::deidentify_as`]).
//!
//! Burned-in text in the pixel data (ultrasound, secondary capture) is *not* removed (that is the
//! Clean Pixel Data option); [`Report::pixel_data_may_contain_identity`] flags such instances.

mod table;

use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{dicom_value, DataElement, Length, Tag, VR};
use dicom_object::{FileDicomObject, InMemDicomObject};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Value of De-identification Method `(0012,0063)` written by this module.
pub const DEIDENTIFICATION_METHOD: &str = "Yilian PS3.15 Basic Application Level Confidentiality Profile";

/// Minimum length of the secret keying UID replacement.
pub const MIN_SECRET_LEN: usize = 16;

/// Maximum sequence nesting accepted before giving up (guards against hostile input).
pub const MAX_DEPTH: usize = 64;

/// Dummy text written for D actions on textual VRs.
pub const DUMMY_TEXT: &str = "ANONYMIZED";

/// Coding scheme (private, `99` prefix) of the dummy code that replaces identifying code
/// sequences under D.
pub const DUMMY_CODING_SCHEME: &str = "99YILIAN";

/// Dummy person name written for D actions on PN.
pub const DUMMY_PERSON_NAME: &str = "ANONYMOUS";

const PATIENT_NAME: Tag = Tag(0x0010, 0x0010);
const PATIENT_ID: Tag = Tag(0x0010, 0x0020);
const SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x0018);
const MODALITY: Tag = Tag(0x0008, 0x0060);
const BURNED_IN_ANNOTATION: Tag = Tag(0x0028, 0x0301);
const PATIENT_IDENTITY_REMOVED: Tag = Tag(0x0012, 0x0062);
const DEIDENTIFICATION_METHOD_TAG: Tag = Tag(0x0012, 0x0063);
const DEIDENTIFICATION_METHOD_CODE_SEQUENCE: Tag = Tag(0x0012, 0x0064);
const LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED: Tag = Tag(0x0028, 0x0303);
const CODE_VALUE: Tag = Tag(0x0008, 0x0100);
const CODING_SCHEME_DESIGNATOR: Tag = Tag(0x0008, 0x0102);
const CODE_MEANING: Tag = Tag(0x0008, 0x0104);
const LONG_CODE_VALUE: Tag = Tag(0x0008, 0x0119);
const URN_CODE_VALUE: Tag = Tag(0x0008, 0x0120);

/// Domain separation label mixed into the HMAC for UID replacement.
const UID_HMAC_LABEL: &[u8] = b"yilian-deid-uid-v1\0";

/// Errors of de-identification.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeidError {
    /// The UID-replacement secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("de-identification secret too short: {len} bytes, need at least {min}")]
    SecretTooShort {
        /// Length given.
        len: usize,
        /// Minimum length.
        min: usize,
    },
    /// The pseudonym cannot be written as Patient's Name / Patient ID.
    #[error("invalid pseudonym: {0}")]
    InvalidPseudonym(&'static str),
    /// Sequences nest deeper than [`MAX_DEPTH`]; the object is left partly processed and must be
    /// discarded.
    #[error("sequence nesting deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A Part-10 file could not be read or written.
    #[error("cannot de-identify {path}: {reason}; check that it is a readable DICOM file and that the destination is writable")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Basic-profile action for one attribute, as PS3.15 Table E.1-1 writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileAction {
    /// D: replace with a non-zero-length dummy value consistent with the VR.
    Dummy,
    /// Z: replace with a zero-length value, or a dummy value consistent with the VR.
    Zero,
    /// X: remove.
    Remove,
    /// K: keep (sequences still processed).
    Keep,
    /// C: clean (replace identifying content with values of similar meaning). Free text cannot
    /// be cleaned reliably here, so it is treated as D.
    Clean,
    /// U: replace with a non-zero-length UID, consistent within the set of instances.
    Uid,
    /// X/Z: X unless Z is required to keep the IOD valid.
    RemoveOrZero,
    /// X/D: X unless D is required to keep the IOD valid.
    RemoveOrDummy,
    /// X/Z/D: X unless Z or D is required to keep the IOD valid.
    RemoveZeroOrDummy,
    /// Z/D: Z unless D is required to keep the IOD valid.
    ZeroOrDummy,
    /// X/Z/U\*: X unless Z or replacement of the contained UIDs is required.
    RemoveZeroOrUid,
}

impl ProfileAction {
    /// The table's notation (`"D"`, `"X/Z"`, ...).
    pub fn code(self) -> &'static str {
        match self {
            ProfileAction::Dummy => "D",
            ProfileAction::Zero => "Z",
            ProfileAction::Remove => "X",
            ProfileAction::Keep => "K",
            ProfileAction::Clean => "C",
            ProfileAction::Uid => "U",
            ProfileAction::RemoveOrZero => "X/Z",
            ProfileAction::RemoveOrDummy => "X/D",
            ProfileAction::RemoveZeroOrDummy => "X/Z/D",
            ProfileAction::ZeroOrDummy => "Z/D",
            ProfileAction::RemoveZeroOrUid => "X/Z/U*",
        }
    }
}

/// The option columns of PS3.15 Table E.1-1 in which an attribute has an entry (bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ProfileOptions(pub u16);

impl ProfileOptions {
    /// Retain Safe Private Option.
    pub const RETAIN_SAFE_PRIVATE: ProfileOptions = ProfileOptions(1 << 0);
    /// Retain UIDs Option.
    pub const RETAIN_UIDS: ProfileOptions = ProfileOptions(1 << 1);
    /// Retain Device Identity Option.
    pub const RETAIN_DEVICE_IDENTITY: ProfileOptions = ProfileOptions(1 << 2);
    /// Retain Institution Identity Option.
    pub const RETAIN_INSTITUTION_IDENTITY: ProfileOptions = ProfileOptions(1 << 3);
    /// Retain Patient Characteristics Option.
    pub const RETAIN_PATIENT_CHARACTERISTICS: ProfileOptions = ProfileOptions(1 << 4);
    /// Retain Longitudinal Temporal Information with Full Dates Option (K).
    pub const RETAIN_LONGITUDINAL_FULL_DATES: ProfileOptions = ProfileOptions(1 << 5);
    /// Retain Longitudinal Temporal Information with Modified Dates Option (C).
    pub const RETAIN_LONGITUDINAL_MODIFIED_DATES: ProfileOptions = ProfileOptions(1 << 6);
    /// Clean Descriptors Option.
    pub const CLEAN_DESCRIPTORS: ProfileOptions = ProfileOptions(1 << 7);
    /// Clean Structured Content Option.
    pub const CLEAN_STRUCTURED_CONTENT: ProfileOptions = ProfileOptions(1 << 8);
    /// Clean Graphics Option.
    pub const CLEAN_GRAPHICS: ProfileOptions = ProfileOptions(1 << 9);

    /// Whether every bit of `other` is set here.
    pub fn contains(self, other: ProfileOptions) -> bool {
        self.0 & other.0 == other.0
    }
}

/// One row of PS3.15 Table E.1-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileEntry {
    /// Attribute tag.
    pub tag: Tag,
    /// Attribute name as the standard writes it.
    pub name: &'static str,
    /// Basic Profile action.
    pub action: ProfileAction,
    /// Option columns with an entry for this attribute.
    pub options: ProfileOptions,
}

/// The concrete attributes of PS3.15 Table E.1-1 (2024e), sorted by tag.
///
/// The pattern rows (private attributes, curves, overlay data and comments) are not in this
/// slice; see [`pattern_action`].
pub fn basic_profile() -> &'static [ProfileEntry] {
    table::TABLE
}

/// The Table E.1-1 row for `tag`, if the tag is listed as a concrete attribute.
pub fn profile_entry(tag: Tag) -> Option<&'static ProfileEntry> {
    table::TABLE.binary_search_by_key(&tag, |e| e.tag).ok().map(|i| &table::TABLE[i])
}

/// Action of the profile's pattern rows (and of the extra rules of this module) for `tag`:
/// private attributes, curve data, overlay data and comments, group lengths are removed; the free
/// text attributes Text Value and Unformatted Text Value are cleaned. `None` for other tags.
pub fn pattern_action(tag: Tag) -> Option<ProfileAction> {
    let (group, element) = (tag.group(), tag.element());
    if group % 2 == 1 {
        // Private attributes, including private creators.
        return Some(ProfileAction::Remove);
    }
    if element == 0x0000 && group > 0x0002 {
        // Group length (retired outside the command and file meta groups); would be stale.
        return Some(ProfileAction::Remove);
    }
    if (0x5000..=0x50FF).contains(&group) {
        // Curve Data (50xx,xxxx).
        return Some(ProfileAction::Remove);
    }
    if (0x6000..=0x60FF).contains(&group) && (element == 0x3000 || element == 0x4000) {
        // Overlay Data (60xx,3000), Overlay Comments (60xx,4000).
        return Some(ProfileAction::Remove);
    }
    match (group, element) {
        // Text Value: free text inside SR Content Sequence (itself D/C).
        (0x0040, 0xA160) => Some(ProfileAction::Clean),
        // Unformatted Text Value: free text inside Graphic Annotation Sequence (itself D/C).
        (0x0070, 0x0006) => Some(ProfileAction::Clean),
        _ => None,
    }
}

/// Treatment of dates and times (the longitudinal temporal information options).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TemporalMode {
    /// Basic Profile: dates and times are removed, emptied or replaced with dummies.
    #[default]
    Remove,
    /// Retain Longitudinal Temporal Information with Full Dates Option: keep them unchanged.
    KeepFull,
    /// Retain Longitudinal Temporal Information with Modified Dates Option: shift every full date
    /// (DA, and the date part of DT) by this many days, keep times of day. Values that are not
    /// full dates (partial dates, ranges, malformed) are replaced with a dummy where the Basic
    /// Profile allows D, and emptied otherwise. Use the
    /// same offset for all instances of a patient to keep intervals.
    ShiftDays(i32),
}

/// Counts of what [`Deidentifier::deidentify`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Table attributes removed (X).
    pub removed: usize,
    /// Attributes emptied (Z).
    pub zeroed: usize,
    /// Attributes replaced with dummy values (D, C).
    pub dummied: usize,
    /// UID values replaced (U), counting each value of a multi-valued element.
    pub uids_replaced: usize,
    /// Dates shifted under [`TemporalMode::ShiftDays`].
    pub dates_shifted: usize,
    /// Attributes kept because of a temporal option.
    pub kept_by_option: usize,
    /// Private attributes removed.
    pub private_removed: usize,
    /// Curve, overlay data/comment and group length elements removed.
    pub pattern_removed: usize,
    /// Sequence items processed.
    pub items_visited: usize,
    /// Patient's Name and Patient ID were set to the caller's pseudonym.
    pub pseudonymised: bool,
    /// The pixel data may show identifying burned-in text (Burned In Annotation is YES, or it is
    /// absent and the modality is one that often burns in text: US, SC, XC, ES, OT). The Clean
    /// Pixel Data option is not applied here.
    pub pixel_data_may_contain_identity: bool,
}

/// What to do with one element after resolving options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Keep,
    Remove,
    Zero,
    Dummy,
    Uid,
    Shift(i32),
}

/// Which counter a removal goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Table,
    Private,
    Pattern,
    None,
}

/// Applies the Basic Application Level Confidentiality Profile.
///
/// ```
/// use yilian_dicom::deid::Deidentifier;
/// let deid = Deidentifier::new(b"region secret, at least 16 bytes").unwrap();
/// let a = deid.replacement_uid("1.2.840.113619.2.55.3.1");
/// assert_eq!(a, deid.replacement_uid("1.2.840.113619.2.55.3.1"));
/// assert!(a.starts_with("2.25."));
/// ```
#[derive(Clone)]
pub struct Deidentifier {
    mac: Hmac<Sha256>,
    temporal: TemporalMode,
    prefer_removal: bool,
}

impl std::fmt::Debug for Deidentifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deidentifier")
            .field("secret", &"<redacted>")
            .field("temporal", &self.temporal)
            .field("prefer_removal", &self.prefer_removal)
            .finish()
    }
}

impl Deidentifier {
    /// A de-identifier keyed by `secret` (at least [`MIN_SECRET_LEN`] bytes), which determines the
    /// replacement UIDs: the same secret maps the same original UID to the same new UID, in every
    /// instance and on every node that shares it.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, DeidError> {
        let secret = secret.as_ref();
        if secret.len() < MIN_SECRET_LEN {
            return Err(DeidError::SecretTooShort { len: secret.len(), min: MIN_SECRET_LEN });
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .map_err(|_| DeidError::SecretTooShort { len: secret.len(), min: MIN_SECRET_LEN })?;
        Ok(Deidentifier { mac, temporal: TemporalMode::Remove, prefer_removal: false })
    }

    /// Set the treatment of dates and times (default [`TemporalMode::Remove`]).
    pub fn with_temporal(mut self, temporal: TemporalMode) -> Self {
        self.temporal = temporal;
        self
    }

    /// For the composite actions (X/Z, X/D, X/Z/D, Z/D, X/Z/U\*), choose the first alternative
    /// (remove, or empty for Z/D) instead of keeping the element with a dummy or empty value.
    /// Smaller output, but Type 1/2 attributes of the IOD may go missing. Default `false`.
    pub fn prefer_removal(mut self, prefer: bool) -> Self {
        self.prefer_removal = prefer;
        self
    }

    /// The temporal mode in force.
    pub fn temporal(&self) -> TemporalMode {
        self.temporal
    }

    /// The UID that replaces `original`: `2.25.` followed by the decimal value of the first 128
    /// bits of HMAC-SHA-256(secret, label ‖ UID). Trailing padding (space, NUL) is ignored.
    /// At most 44 characters, digits and dots, no leading zeros.
    pub fn replacement_uid(&self, original: &str) -> String {
        let original = original.trim_matches(|c| c == ' ' || c == '\0');
        let mut mac = self.mac.clone();
        mac.update(UID_HMAC_LABEL);
        mac.update(original.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        format!("2.25.{}", u128::from_be_bytes(first))
    }

    /// De-identify `obj` in place. On error the object is partly processed and must be discarded.
    pub fn deidentify(&self, obj: &mut InMemDicomObject) -> Result<Report, DeidError> {
        self.run(obj, None)
    }

    /// De-identify `obj` in place, then set Patient's Name and Patient ID to `pseudonym` (for
    /// instance a prefix of the region's patient key), so the instance stays linked to the
    /// patient's record without the identity. The pseudonym must be 1 to 64 printable ASCII
    /// characters without `\`, `^` or `=`.
    pub fn deidentify_as(&self, obj: &mut InMemDicomObject, pseudonym: &str) -> Result<Report, DeidError> {
        validate_pseudonym(pseudonym)?;
        self.run(obj, Some(pseudonym))
    }

    /// De-identify a file object: its data set as [`deidentify`](Self::deidentify) (or
    /// [`deidentify_as`](Self::deidentify_as) when `pseudonym` is given), and its File Meta
    /// Information: Media Storage SOP Instance UID replaced consistently with SOP Instance UID,
    /// source/sending/receiving AE titles and private information removed.
    pub fn deidentify_file(
        &self,
        file: &mut FileDicomObject<InMemDicomObject>,
        pseudonym: Option<&str>,
    ) -> Result<Report, DeidError> {
        if let Some(p) = pseudonym {
            validate_pseudonym(p)?;
        }
        let report = self.run(file, pseudonym)?;
        let meta_uid = file.meta().media_storage_sop_instance_uid.clone();
        let new_uid = match file.get(SOP_INSTANCE_UID).and_then(|e| e.value().to_str().ok()) {
            Some(uid) if !uid.is_empty() => uid.into_owned(),
            _ => self.replacement_uid(&meta_uid),
        };
        file.update_meta(|meta| {
            meta.media_storage_sop_instance_uid = new_uid;
            meta.source_application_entity_title = None;
            meta.sending_application_entity_title = None;
            meta.receiving_application_entity_title = None;
            meta.private_information_creator_uid = None;
            meta.private_information = None;
        });
        Ok(report)
    }

    /// De-identify the Part-10 file at `src` ([`deidentify_file`](Self::deidentify_file)) and
    /// write the result as a Part-10 file at `dst`. The same input and secret always give the
    /// same output bytes.
    pub fn deidentify_path(
        &self,
        src: &std::path::Path,
        dst: &std::path::Path,
        pseudonym: Option<&str>,
    ) -> Result<Report, DeidError> {
        let fail = |path: &std::path::Path, e: &dyn std::fmt::Display| DeidError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let mut file = dicom_object::OpenFileOptions::new()
            .read_preamble(dicom_object::file::ReadPreamble::Auto)
            .open_file(src)
            .map_err(|e| fail(src, &e))?;
        let report = self.deidentify_file(&mut file, pseudonym)?;
        file.write_to_file(dst).map_err(|e| fail(dst, &e))?;
        Ok(report)
    }

    fn run(&self, obj: &mut InMemDicomObject, pseudonym: Option<&str>) -> Result<Report, DeidError> {
        let mut report = Report { pixel_data_may_contain_identity: burned_in_risk(obj), ..Report::default() };
        self.walk(obj, 0, &mut report)?;
        if let Some(p) = pseudonym {
            obj.put(DataElement::new(PATIENT_NAME, VR::PN, PrimitiveValue::from(p)));
            obj.put(DataElement::new(PATIENT_ID, VR::LO, PrimitiveValue::from(p)));
            report.pseudonymised = true;
        }
        self.mark(obj);
        Ok(report)
    }

    /// Set Patient Identity Removed, De-identification Method (+ Code Sequence) and Longitudinal
    /// Temporal Information Modified.
    fn mark(&self, obj: &mut InMemDicomObject) {
        obj.put(DataElement::new(PATIENT_IDENTITY_REMOVED, VR::CS, PrimitiveValue::from("YES")));
        obj.put(DataElement::new(
            DEIDENTIFICATION_METHOD_TAG,
            VR::LO,
            PrimitiveValue::from(DEIDENTIFICATION_METHOD),
        ));
        let mut codes = vec![code_item("113100", "Basic Application Confidentiality Profile")];
        let (ltim, extra) = match self.temporal {
            TemporalMode::Remove => ("REMOVED", None),
            TemporalMode::KeepFull => {
                ("UNMODIFIED", Some(("113106", "Retain Longitudinal Temporal Information Full Dates Option")))
            }
            TemporalMode::ShiftDays(_) => (
                "MODIFIED",
                Some(("113107", "Retain Longitudinal Temporal Information Modified Dates Option")),
            ),
        };
        if let Some((value, meaning)) = extra {
            codes.push(code_item(value, meaning));
        }
        obj.put(DataElement::new(
            DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
            VR::SQ,
            DataSetSequence::new(codes, Length::UNDEFINED),
        ));
        obj.put(DataElement::new(
            LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED,
            VR::CS,
            PrimitiveValue::from(ltim),
        ));
    }

    /// Decide what to do with `tag` (never `Op::Keep` for a tag the profile changes, unless a
    /// temporal option keeps it).
    fn resolve(&self, tag: Tag, report: &mut Report) -> (Op, Origin) {
        if let Some(action) = pattern_action(tag) {
            let origin = if tag.group() % 2 == 1 { Origin::Private } else { Origin::Pattern };
            let origin = if action == ProfileAction::Remove { origin } else { Origin::Table };
            return (self.basic_op(action), origin);
        }
        let Some(entry) = profile_entry(tag) else {
            return (Op::Keep, Origin::None);
        };
        if entry.options.contains(ProfileOptions::RETAIN_LONGITUDINAL_FULL_DATES) {
            match self.temporal {
                TemporalMode::Remove => {}
                TemporalMode::KeepFull => {
                    report.kept_by_option += 1;
                    return (Op::Keep, Origin::Table);
                }
                TemporalMode::ShiftDays(days) => return (Op::Shift(days), Origin::Table),
            }
        }
        (self.basic_op(entry.action), Origin::Table)
    }

    fn basic_op(&self, action: ProfileAction) -> Op {
        use ProfileAction::*;
        match (action, self.prefer_removal) {
            (Keep, _) => Op::Keep,
            (Remove, _) => Op::Remove,
            (Zero, _) => Op::Zero,
            (Dummy | Clean, _) => Op::Dummy,
            (Uid, _) => Op::Uid,
            (RemoveOrZero, false) => Op::Zero,
            (RemoveOrDummy | RemoveZeroOrDummy | ZeroOrDummy, false) => Op::Dummy,
            // Keep the sequence; the UIDs inside are replaced when its items are walked.
            (RemoveZeroOrUid, false) => Op::Keep,
            (RemoveOrZero | RemoveOrDummy | RemoveZeroOrDummy | RemoveZeroOrUid, true) => Op::Remove,
            (ZeroOrDummy, true) => Op::Zero,
        }
    }

    fn walk(&self, obj: &mut InMemDicomObject, depth: usize, report: &mut Report) -> Result<(), DeidError> {
        if depth > MAX_DEPTH {
            return Err(DeidError::TooDeep { max: MAX_DEPTH });
        }
        let tags: Vec<Tag> = obj.tags().collect();
        for tag in tags {
            let (op, origin) = self.resolve(tag, report);
            if op == Op::Remove {
                obj.remove_element(tag);
                match origin {
                    Origin::Private => report.private_removed += 1,
                    Origin::Pattern => report.pattern_removed += 1,
                    Origin::Table | Origin::None => report.removed += 1,
                }
                continue;
            }
            if op == Op::Keep && !matches!(obj.get(tag).map(|e| e.value()), Some(Value::Sequence(_))) {
                continue;
            }
            let Some(elem) = obj.take(tag) else { continue };
            let replacement = self.apply(elem, op, depth, report)?;
            obj.put(replacement);
        }
        Ok(())
    }

    /// Apply `op` (other than remove) to one element, recursing into sequence items.
    fn apply(
        &self,
        elem: DataElement<InMemDicomObject>,
        op: Op,
        depth: usize,
        report: &mut Report,
    ) -> Result<DataElement<InMemDicomObject>, DeidError> {
        let tag = elem.tag();
        let vr = elem.vr();
        if op == Op::Zero {
            report.zeroed += 1;
            return Ok(DataElement::empty(tag, vr));
        }
        let (_, value) = elem.into_parts();
        match value {
            Value::Sequence(seq) => {
                let mut items = seq.into_items();
                if op == Op::Dummy {
                    report.dummied += 1;
                    if items.iter().any(is_code_item) {
                        // A code sequence identifying a person or organisation (Person
                        // Identification Code Sequence, Institution Code Sequence): its codes are
                        // the identity, so the items give way to one dummy code.
                        return Ok(DataElement::new(
                            tag,
                            VR::SQ,
                            DataSetSequence::new(vec![dummy_code_item()], Length::UNDEFINED),
                        ));
                    }
                }
                // K, D, C, U and shifts on a sequence: keep it and apply the profile to its items.
                for item in items.iter_mut() {
                    report.items_visited += 1;
                    self.walk(item, depth + 1, report)?;
                }
                Ok(DataElement::new(tag, VR::SQ, DataSetSequence::new(items, Length::UNDEFINED)))
            }
            Value::PixelSequence(_) if op != Op::Keep => {
                // Encapsulated data under a D/U action: nothing sensible to substitute.
                report.zeroed += 1;
                Ok(DataElement::empty(tag, vr))
            }
            value @ Value::PixelSequence(_) => Ok(DataElement::new(tag, vr, value)),
            Value::Primitive(prim) => Ok(match op {
                Op::Keep => DataElement::new(tag, vr, prim),
                Op::Uid => self.replace_uids(tag, vr, &prim, report),
                Op::Dummy => match dummy_value(vr) {
                    Some(v) => {
                        report.dummied += 1;
                        DataElement::new(tag, vr, v)
                    }
                    None if vr == VR::UI => self.replace_uids(tag, vr, &prim, report),
                    None => {
                        report.zeroed += 1;
                        DataElement::empty(tag, vr)
                    }
                },
                Op::Shift(days) => self.shift(tag, vr, prim, days, report),
                Op::Remove | Op::Zero => DataElement::empty(tag, vr),
            }),
        }
    }

    fn replace_uids(
        &self,
        tag: Tag,
        vr: VR,
        prim: &PrimitiveValue,
        report: &mut Report,
    ) -> DataElement<InMemDicomObject> {
        let text = match prim {
            PrimitiveValue::U8(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            other => other.to_str().into_owned(),
        };
        let originals: Vec<&str> =
            text.split('\\').map(|s| s.trim_matches(|c| c == ' ' || c == '\0')).collect();
        if originals.iter().all(|s| s.is_empty()) {
            report.zeroed += 1;
            return DataElement::empty(tag, if vr == VR::UN { VR::UI } else { vr });
        }
        let replaced: Vec<String> = originals
            .iter()
            .map(|s| if s.is_empty() { String::new() } else { self.replacement_uid(s) })
            .collect();
        report.uids_replaced += replaced.iter().filter(|s| !s.is_empty()).count();
        DataElement::new(tag, VR::UI, PrimitiveValue::Strs(replaced.into_iter().collect()))
    }

    fn shift(
        &self,
        tag: Tag,
        vr: VR,
        prim: PrimitiveValue,
        days: i32,
        report: &mut Report,
    ) -> DataElement<InMemDicomObject> {
        let fallback = |me: &Self, report: &mut Report| {
            let entry_action = profile_entry(tag).map(|e| e.action).unwrap_or(ProfileAction::Remove);
            match me.basic_op(entry_action) {
                Op::Dummy => match dummy_value(vr) {
                    Some(v) => {
                        report.dummied += 1;
                        DataElement::new(tag, vr, v)
                    }
                    None => {
                        report.zeroed += 1;
                        DataElement::empty(tag, vr)
                    }
                },
                // Removal is not possible from here: leave an empty value.
                _ => {
                    report.zeroed += 1;
                    DataElement::empty(tag, vr)
                }
            }
        };
        match vr {
            VR::DA | VR::DT => {
                let values = prim.to_multi_str();
                if values.is_empty() {
                    return DataElement::new(tag, vr, prim);
                }
                let shifted: Option<Vec<String>> =
                    values.iter().map(|v| shift_date_value(v.trim_end_matches(['\0', ' ']), days)).collect();
                match shifted {
                    Some(s) => {
                        report.dates_shifted += s.len();
                        DataElement::new(tag, vr, PrimitiveValue::Strs(s.into_iter().collect()))
                    }
                    None => fallback(self, report),
                }
            }
            // Times of day, time zone offsets and anything else: unchanged.
            _ => {
                report.kept_by_option += 1;
                DataElement::new(tag, vr, prim)
            }
        }
    }
}

/// A code sequence item (Code Value, Coding Scheme Designator DCM, Code Meaning).
fn code_item(value: &str, meaning: &str) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        DataElement::new(CODE_VALUE, VR::SH, PrimitiveValue::from(value)),
        DataElement::new(CODING_SCHEME_DESIGNATOR, VR::SH, PrimitiveValue::from("DCM")),
        DataElement::new(CODE_MEANING, VR::LO, PrimitiveValue::from(meaning)),
    ])
}

/// Whether a sequence item is a code (has a Code Value, Long Code Value or URN Code Value).
fn is_code_item(item: &InMemDicomObject) -> bool {
    [CODE_VALUE, LONG_CODE_VALUE, URN_CODE_VALUE].into_iter().any(|t| item.get(t).is_some())
}

/// The code that replaces the items of an identifying code sequence under D.
fn dummy_code_item() -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        DataElement::new(CODE_VALUE, VR::SH, PrimitiveValue::from(DUMMY_TEXT)),
        DataElement::new(CODING_SCHEME_DESIGNATOR, VR::SH, PrimitiveValue::from(DUMMY_CODING_SCHEME)),
        DataElement::new(CODE_MEANING, VR::LO, PrimitiveValue::from(DUMMY_TEXT)),
    ])
}

fn validate_pseudonym(p: &str) -> Result<(), DeidError> {
    if p.trim().is_empty() {
        return Err(DeidError::InvalidPseudonym("empty"));
    }
    if p.len() > 64 {
        return Err(DeidError::InvalidPseudonym("longer than 64 characters"));
    }
    if !p.bytes().all(|b| (0x20..0x7F).contains(&b) && !matches!(b, b'\\' | b'^' | b'=')) {
        return Err(DeidError::InvalidPseudonym("only printable ASCII without '\\', '^' or '=' is allowed"));
    }
    Ok(())
}

/// Whether the pixel data may carry burned-in identifying text.
fn burned_in_risk(obj: &InMemDicomObject) -> bool {
    let text =
        |tag| obj.get(tag).and_then(|e| e.value().to_str().ok()).map(|s| s.trim().to_ascii_uppercase());
    match text(BURNED_IN_ANNOTATION).as_deref() {
        Some("YES") => true,
        Some("NO") => false,
        _ => matches!(text(MODALITY).as_deref(), Some("US" | "SC" | "XC" | "ES" | "OT")),
    }
}

/// A non-zero-length dummy value for `vr`, or `None` where none fits (UI: replace the UID
/// instead; UN and SQ: handled by the caller).
fn dummy_value(vr: VR) -> Option<PrimitiveValue> {
    Some(match vr {
        VR::PN => PrimitiveValue::from(DUMMY_PERSON_NAME),
        VR::AE | VR::CS | VR::LO | VR::SH | VR::LT | VR::ST | VR::UT | VR::UC => {
            PrimitiveValue::from(DUMMY_TEXT)
        }
        VR::UR => PrimitiveValue::from("urn:x-yilian:anonymized"),
        VR::DA => PrimitiveValue::from("19000101"),
        VR::TM => PrimitiveValue::from("000000"),
        VR::DT => PrimitiveValue::from("19000101000000"),
        VR::AS => PrimitiveValue::from("000D"),
        VR::IS | VR::DS => PrimitiveValue::from("0"),
        VR::AT => dicom_value!(Tags, [Tag(0, 0)]),
        VR::US => dicom_value!(U16, [0]),
        VR::SS => dicom_value!(I16, [0]),
        VR::UL => dicom_value!(U32, [0]),
        VR::SL => dicom_value!(I32, [0]),
        VR::UV => dicom_value!(U64, [0]),
        VR::SV => dicom_value!(I64, [0]),
        VR::FL => dicom_value!(F32, [0.0]),
        VR::FD => dicom_value!(F64, [0.0]),
        VR::OB => dicom_value!(U8, [0, 0]),
        VR::OW => dicom_value!(U16, [0]),
        VR::OL => dicom_value!(U32, [0]),
        VR::OV => dicom_value!(U64, [0]),
        VR::OF => dicom_value!(F32, [0.0]),
        VR::OD => dicom_value!(F64, [0.0]),
        VR::UI | VR::UN | VR::SQ => return None,
    })
}

/// Shift a DA value (`YYYYMMDD`) or the date part of a DT value (`YYYYMMDD[hhmmss...]`) by `days`.
/// `None` for anything that is not a full, valid date (partial dates, ranges, garbage) or whose
/// shifted year leaves 0001..=9999.
fn shift_date_value(value: &str, days: i32) -> Option<String> {
    if value.len() < 8 || !value.is_char_boundary(8) {
        return None;
    }
    let (date, rest) = value.split_at(8);
    if !date.bytes().all(|b| b.is_ascii_digit()) || rest.contains('-') {
        return None;
    }
    let year: i64 = date[0..4].parse().ok()?;
    let month: u32 = date[4..6].parse().ok()?;
    let day: u32 = date[6..8].parse().ok()?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let shifted = days_from_civil(year, month, day) + i64::from(days);
    let (y, m, d) = civil_from_days(shifted);
    if !(1..=9999).contains(&y) {
        return None;
    }
    Some(format!("{y:04}{m:02}{d:02}{rest}"))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        assert!(basic_profile().windows(2).all(|w| w[0].tag < w[1].tag));
        assert!(basic_profile().len() > 600);
    }

    #[test]
    fn date_shift() {
        assert_eq!(shift_date_value("20240229", 1).as_deref(), Some("20240301"));
        assert_eq!(shift_date_value("20240101", -1).as_deref(), Some("20231231"));
        assert_eq!(shift_date_value("20240101120000.5+0800", 366).as_deref(), Some("20250101120000.5+0800"));
        assert_eq!(shift_date_value("2024", 1), None);
        assert_eq!(shift_date_value("20240230", 1), None);
        assert_eq!(shift_date_value("20240101-20240201", 1), None);
        for z in [-800_000i64, -1, 0, 1, 19_000, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }
}
