//! Synthetic DICOM studies for demos and tests: a CT head series, a chest DR image, a multi-frame
//! abdominal ultrasound and a resting 12-lead ECG, written as valid Part 10 files in Explicit VR
//! Little Endian.
//!
//! Everything is derived from a seed: the same seed and options give byte-identical files. The
//! images are computed with `+ - * /` and `sqrt` only (no platform-dependent `sin`/`exp`), so the
//! bytes do not depend on the machine either.
//!
//! UIDs are `2.25.<decimal of a 128-bit value>` (PS3.5 B.2, ISO/IEC 9834-8), which needs no
//! registered root: the 128 bits are the first 16 bytes of SHA-256("yilian-synth/v1", seed,
//! label) with the UUID version 8 and variant bits set. Every file says in Image Comments that it
//! is synthetic test data and not a real patient.

use crate::error::SynthError;
use crate::sop::{CT_IMAGE_STORAGE, DX_PRESENTATION_STORAGE, ECG_12_LEAD_STORAGE, US_MULTIFRAME_STORAGE};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// The UID root synthetic UIDs live under (UUID-derived UIDs, no registration needed).
pub const UID_ROOT: &str = "2.25";

/// Image Comments written into every synthetic instance.
pub const SYNTHETIC_MARK: &str = "SYNTHETIC TEST DATA - NOT A REAL PATIENT";

/// Implementation Version Name in the file meta group of synthetic files.
const IMPLEMENTATION_VERSION_NAME: &str = concat!("YILIAN_", env!("CARGO_PKG_VERSION"));

/// A kind of synthetic study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SynthKind {
    /// CT head series, CT Image Storage, 16-bit slices.
    Ct,
    /// Chest PA radiograph, Digital X-Ray Image Storage - For Presentation, 12 bits in 16.
    Dr,
    /// Abdominal ultrasound cine loop, Ultrasound Multi-frame Image Storage, 8-bit MONOCHROME2.
    Us,
    /// Resting 12-lead ECG, 12-lead ECG Waveform Storage, 500 Hz, 16-bit signed samples.
    Ecg,
}

impl SynthKind {
    /// Every kind, in the order `all` writes them.
    pub const ALL: [SynthKind; 4] = [SynthKind::Ct, SynthKind::Dr, SynthKind::Us, SynthKind::Ecg];

    /// Lowercase name, also the subdirectory the kind is written to.
    pub fn name(self) -> &'static str {
        match self {
            SynthKind::Ct => "ct",
            SynthKind::Dr => "dr",
            SynthKind::Us => "us",
            SynthKind::Ecg => "ecg",
        }
    }

    /// The SOP Class UID of this kind's instances.
    pub fn sop_class_uid(self) -> &'static str {
        match self {
            SynthKind::Ct => CT_IMAGE_STORAGE,
            SynthKind::Dr => DX_PRESENTATION_STORAGE,
            SynthKind::Us => US_MULTIFRAME_STORAGE,
            SynthKind::Ecg => ECG_12_LEAD_STORAGE,
        }
    }

    /// The Modality (0008,0060) of this kind's series.
    pub fn modality(self) -> &'static str {
        match self {
            SynthKind::Ct => "CT",
            SynthKind::Dr => "DX",
            SynthKind::Us => "US",
            SynthKind::Ecg => "ECG",
        }
    }
}

impl fmt::Display for SynthKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SynthKind {
    type Err = SynthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SynthKind::ALL.into_iter().find(|k| k.name() == s.to_ascii_lowercase()).ok_or_else(|| {
            SynthError::InvalidOptions { reason: format!("unknown kind {s:?}; use ct, dr, us or ecg") }
        })
    }
}

/// Options of [`generate`]. `Default` gives full-size studies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthOptions {
    /// Seed every byte is derived from.
    pub seed: u64,
    /// Patient's Name (PN, e.g. `WANG^WEI`); derived from the seed when `None`.
    pub patient_name: Option<String>,
    /// Patient ID; derived from the seed when `None`.
    pub patient_id: Option<String>,
    /// Number of CT slices (1..=2000; default 64).
    pub ct_slices: u32,
    /// CT matrix size, rows = columns (16..=1024; default 512).
    pub ct_matrix: u16,
    /// DR matrix size, rows = columns (16..=4096; default 2048).
    pub dr_matrix: u16,
    /// Ultrasound frames (1..=1000; default 20).
    pub us_frames: u32,
    /// Ultrasound columns (64..=2048; default 640).
    pub us_columns: u16,
    /// Ultrasound rows (64..=2048; default 480).
    pub us_rows: u16,
    /// ECG duration in seconds (1..=60; default 10).
    pub ecg_seconds: u32,
    /// Accession Number of every study written, e.g. the Yilian case id the studies belong to;
    /// derived from the seed and kind when `None`.
    pub accession: Option<String>,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            seed: 1,
            patient_name: None,
            patient_id: None,
            ct_slices: 64,
            ct_matrix: 512,
            dr_matrix: 2048,
            us_frames: 20,
            us_columns: 640,
            us_rows: 480,
            ecg_seconds: 10,
            accession: None,
        }
    }
}

impl SynthOptions {
    /// Small studies for tests: 4 CT slices of 64², a 128² DR, 3 US frames of 96×64, 2 s of ECG.
    pub fn small(seed: u64) -> Self {
        SynthOptions {
            seed,
            ct_slices: 4,
            ct_matrix: 64,
            dr_matrix: 128,
            us_frames: 3,
            us_columns: 96,
            us_rows: 64,
            ecg_seconds: 2,
            ..SynthOptions::default()
        }
    }

    fn validate(&self) -> Result<(), SynthError> {
        fn range<T: PartialOrd + fmt::Display>(name: &str, v: T, lo: T, hi: T) -> Result<(), SynthError> {
            if v < lo || v > hi {
                return Err(SynthError::InvalidOptions {
                    reason: format!("{name} is {v}; use {lo} to {hi}"),
                });
            }
            Ok(())
        }
        range("CT slices", self.ct_slices, 1, 2000)?;
        range("CT matrix", self.ct_matrix, 16, 1024)?;
        range("DR matrix", self.dr_matrix, 16, 4096)?;
        range("ultrasound frames", self.us_frames, 1, 1000)?;
        range("ultrasound columns", self.us_columns, 64, 2048)?;
        range("ultrasound rows", self.us_rows, 64, 2048)?;
        range("ECG seconds", self.ecg_seconds, 1, 60)?;
        if let Some(a) = &self.accession {
            if a.is_empty() || a.len() > 16 || !a.chars().all(|c| c.is_ascii_graphic()) {
                return Err(SynthError::InvalidOptions {
                    reason: format!("accession {a:?} is not usable: give 1 to 16 printable ASCII characters"),
                });
            }
        }
        for (what, v) in [("patient name", &self.patient_name), ("patient id", &self.patient_id)] {
            if let Some(v) = v {
                if v.trim().is_empty()
                    || v.chars().count() > 64
                    || v.contains('\\')
                    || v.chars().any(char::is_control)
                {
                    return Err(SynthError::InvalidOptions {
                        reason: format!(
                            "{what} {v:?} is not usable: give 1 to 64 characters, without backslashes or \
                             control characters"
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// One synthetic study written by [`generate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SynthStudy {
    /// Which kind.
    pub kind: SynthKind,
    /// Study Instance UID.
    pub study_instance_uid: String,
    /// Series Instance UID (one series per study).
    pub series_instance_uid: String,
    /// Accession Number.
    pub accession_number: String,
    /// SOP Class UID of its instances.
    pub sop_class_uid: &'static str,
    /// The files, in instance order.
    pub files: Vec<PathBuf>,
    /// Total size of the files in bytes.
    pub bytes: u64,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SynthSummary {
    /// The seed used.
    pub seed: u64,
    /// Patient's Name written.
    pub patient_name: String,
    /// Patient ID written.
    pub patient_id: String,
    /// One study per kind asked for.
    pub studies: Vec<SynthStudy>,
}

impl SynthSummary {
    /// Number of files written.
    pub fn files(&self) -> usize {
        self.studies.iter().map(|s| s.files.len()).sum()
    }

    /// Total bytes written.
    pub fn bytes(&self) -> u64 {
        self.studies.iter().map(|s| s.bytes).sum()
    }
}

impl fmt::Display for SynthSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "synthetic studies for {} (patient id {}), seed {}: {}",
            self.patient_name, self.patient_id, self.seed, SYNTHETIC_MARK
        )?;
        for s in &self.studies {
            let dir =
                s.files.first().and_then(|p| p.parent()).map(|p| p.display().to_string()).unwrap_or_default();
            writeln!(
                f,
                "  {:<3}  {:>4} file(s) {:>12} bytes  accession {}  study {}  in {}",
                s.kind,
                s.files.len(),
                s.bytes,
                s.accession_number,
                s.study_instance_uid,
                dir
            )?;
        }
        write!(f, "total: {} file(s), {} bytes", self.files(), self.bytes())
    }
}

/// Write one synthetic study per kind into `out/<kind>/NNNN.dcm`.
///
/// Files of an earlier run in those subdirectories that follow the same naming (`NNNN.dcm`) but
/// are not part of this run are removed, so a directory always holds one consistent series.
pub fn generate(out: &Path, kinds: &[SynthKind], opts: &SynthOptions) -> Result<SynthSummary, SynthError> {
    opts.validate()?;
    let ctx = Context::new(opts);
    let mut kinds_seen = Vec::new();
    let mut studies = Vec::new();
    for &kind in kinds {
        if kinds_seen.contains(&kind) {
            continue;
        }
        kinds_seen.push(kind);
        let dir = out.join(kind.name());
        fs::create_dir_all(&dir).map_err(|source| SynthError::Io { path: dir.clone(), source })?;
        let study = StudyIds::new(&ctx, kind);
        let objects: Box<dyn Iterator<Item = InMemDicomObject> + '_> = match kind {
            SynthKind::Ct => Box::new(ct_series(&ctx, &study, opts)),
            SynthKind::Dr => Box::new(std::iter::once(dr_image(&ctx, &study, opts))),
            SynthKind::Us => Box::new(std::iter::once(us_cine(&ctx, &study, opts))),
            SynthKind::Ecg => Box::new(std::iter::once(ecg(&ctx, &study, opts))),
        };
        let mut files = Vec::new();
        let mut bytes = 0;
        for (i, obj) in objects.enumerate() {
            let path = dir.join(format!("{:04}.dcm", i + 1));
            bytes += write_file(&path, obj)?;
            files.push(path);
        }
        remove_stale(&dir, &files)?;
        studies.push(SynthStudy {
            kind,
            study_instance_uid: study.study_uid,
            series_instance_uid: study.series_uid,
            accession_number: study.accession,
            sop_class_uid: kind.sop_class_uid(),
            files,
            bytes,
        });
    }
    Ok(SynthSummary { seed: opts.seed, patient_name: ctx.patient_name, patient_id: ctx.patient_id, studies })
}

/// A deterministic UID under [`UID_ROOT`] for this seed and label.
pub fn synthetic_uid(seed: u64, label: &str) -> String {
    let h = hash(seed, label);
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0F) | 0x80; // UUID version 8 (custom)
    b[8] = (b[8] & 0x3F) | 0x80; // RFC 4122 variant
    format!("{UID_ROOT}.{}", u128::from_be_bytes(b))
}

fn hash(seed: u64, label: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"yilian-synth/v1\0");
    h.update(seed.to_le_bytes());
    h.update(label.as_bytes());
    h.finalize().into()
}

// ---------------------------------------------------------------------------------------------
// Writing

fn write_file(path: &Path, obj: InMemDicomObject) -> Result<u64, SynthError> {
    let encode =
        |e: &dyn std::error::Error| SynthError::Encode { path: path.to_owned(), reason: e.to_string() };
    let io = |source| SynthError::Io { path: path.to_owned(), source };
    let file_obj = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(crate::sop::EXPLICIT_VR_LITTLE_ENDIAN)
                .implementation_class_uid(synthetic_uid(0, "implementation-class"))
                .implementation_version_name(IMPLEMENTATION_VERSION_NAME),
        )
        .map_err(|e| encode(&e))?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".part");
    let tmp = PathBuf::from(tmp_name);
    let file = File::create(&tmp).map_err(io)?;
    if let Err(e) = file_obj.write_all(&file) {
        let _ = fs::remove_file(&tmp);
        return Err(encode(&e));
    }
    drop(file);
    fs::rename(&tmp, path).map_err(io)?;
    Ok(fs::metadata(path).map_err(io)?.len())
}

fn remove_stale(dir: &Path, keep: &[PathBuf]) -> Result<(), SynthError> {
    let io = |source| SynthError::Io { path: dir.to_owned(), source };
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let ours = name.len() == 8 && name.ends_with(".dcm") && name[..4].bytes().all(|b| b.is_ascii_digit());
        let partial = name.ends_with(".dcm.part");
        if (ours && !keep.contains(&path)) || partial {
            fs::remove_file(&path).map_err(|source| SynthError::Io { path: path.clone(), source })?;
        }
    }
    Ok(())
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) {
    obj.put(DataElement::new(tag, vr, value.into()));
}

fn put_str(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    put(obj, tag, vr, PrimitiveValue::from(value));
}

fn put_seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

fn code_item(value: &str, scheme: &str, version: &str, meaning: &str) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put_str(&mut item, tags::CODE_VALUE, VR::SH, value);
    put_str(&mut item, tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme);
    if !version.is_empty() {
        put_str(&mut item, tags::CODING_SCHEME_VERSION, VR::SH, version);
    }
    put_str(&mut item, tags::CODE_MEANING, VR::LO, meaning);
    item
}

// ---------------------------------------------------------------------------------------------
// Patient, study and the attributes every instance shares

struct Context {
    seed: u64,
    accession: Option<String>,
    patient_name: String,
    patient_id: String,
    birth_date: String,
    sex: &'static str,
    age: String,
    study_date: String,
    base_seconds: u32,
}

impl Context {
    fn new(opts: &SynthOptions) -> Self {
        let mut rng = Rng::new(opts.seed, "patient");
        const FAMILY: [&str; 10] =
            ["WANG", "LI", "ZHANG", "LIU", "CHEN", "YANG", "HUANG", "ZHAO", "WU", "ZHOU"];
        const GIVEN: [&str; 10] =
            ["WEI", "FANG", "MIN", "JING", "LEI", "YAN", "QIANG", "XIUYING", "JUN", "LINA"];
        let family = FAMILY[rng.below(10) as usize];
        let given = GIVEN[rng.below(10) as usize];
        let sex = if rng.below(2) == 0 { "M" } else { "F" };
        let id_number = rng.below(100_000_000);
        // Study day in 2024–2025; birth between 1940 and 1999.
        let study_day = 19_723 + rng.below(731) as i64; // 2024-01-01 + n
        let birth_day = -10_958 + rng.below(60 * 365) as i64; // 1940-01-01 + n
        let (sy, sm, sd) = civil_from_days(study_day);
        let (by, bm, bd) = civil_from_days(birth_day);
        let age = sy - by - i64::from((sm, sd) < (bm, bd));
        Context {
            seed: opts.seed,
            accession: opts.accession.clone(),
            patient_name: opts.patient_name.clone().unwrap_or_else(|| format!("{family}^{given}")),
            patient_id: opts.patient_id.clone().unwrap_or_else(|| format!("SYN{id_number:08}")),
            birth_date: format!("{by:04}{bm:02}{bd:02}"),
            sex,
            age: format!("{age:03}Y"),
            study_date: format!("{sy:04}{sm:02}{sd:02}"),
            base_seconds: 8 * 3600 + rng.below(4 * 3600) as u32,
        }
    }
}

struct StudyIds {
    kind: SynthKind,
    study_uid: String,
    series_uid: String,
    accession: String,
    time: String,
}

impl StudyIds {
    fn new(ctx: &Context, kind: SynthKind) -> Self {
        let offset = match kind {
            SynthKind::Ecg => 0,
            SynthKind::Dr => 1_200,
            SynthKind::Ct => 2_700,
            SynthKind::Us => 5_400,
        };
        let t = ctx.base_seconds + offset;
        let mut rng = Rng::new(ctx.seed, &format!("accession/{kind}"));
        StudyIds {
            kind,
            study_uid: synthetic_uid(ctx.seed, &format!("study/{kind}")),
            series_uid: synthetic_uid(ctx.seed, &format!("series/{kind}")),
            accession: ctx
                .accession
                .clone()
                .unwrap_or_else(|| format!("A{:08}{}", rng.below(100_000_000), kind.modality())),
            time: format!("{:02}{:02}{:02}", t / 3600, t / 60 % 60, t % 60),
        }
    }

    fn instance_uid(&self, ctx: &Context, n: u32) -> String {
        synthetic_uid(ctx.seed, &format!("instance/{}/{n}", self.kind))
    }
}

/// Patient, study, series, equipment and SOP common attributes.
fn common(ctx: &Context, st: &StudyIds, instance: u32) -> InMemDicomObject {
    let kind = st.kind;
    let mut o = InMemDicomObject::new_empty();
    let (study_desc, series_desc, body_part) = match kind {
        SynthKind::Ct => ("CT HEAD WITHOUT CONTRAST", "AXIAL HEAD", "HEAD"),
        SynthKind::Dr => ("XR CHEST PA", "CHEST PA", "CHEST"),
        SynthKind::Us => ("US ABDOMEN", "RUQ CINE", "ABDOMEN"),
        SynthKind::Ecg => ("ECG 12-LEAD RESTING", "RESTING 12-LEAD", ""),
    };
    put_str(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put_str(&mut o, tags::SOP_CLASS_UID, VR::UI, kind.sop_class_uid());
    put_str(&mut o, tags::SOP_INSTANCE_UID, VR::UI, &st.instance_uid(ctx, instance));
    for tag in [tags::STUDY_DATE, tags::SERIES_DATE, tags::CONTENT_DATE] {
        put_str(&mut o, tag, VR::DA, &ctx.study_date);
    }
    for tag in [tags::STUDY_TIME, tags::SERIES_TIME, tags::CONTENT_TIME] {
        put_str(&mut o, tag, VR::TM, &st.time);
    }
    put_str(&mut o, tags::ACCESSION_NUMBER, VR::SH, &st.accession);
    put_str(&mut o, tags::MODALITY, VR::CS, kind.modality());
    put_str(&mut o, tags::MANUFACTURER, VR::LO, "Yilian");
    put_str(&mut o, tags::INSTITUTION_NAME, VR::LO, "Anning County People's Hospital (synthetic)");
    put_str(&mut o, tags::REFERRING_PHYSICIAN_NAME, VR::PN, "LI^MING");
    put_str(&mut o, tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0800");
    put_str(&mut o, tags::STATION_NAME, VR::SH, "YILIAN-SYNTH");
    put_str(&mut o, tags::STUDY_DESCRIPTION, VR::LO, study_desc);
    put_str(&mut o, tags::SERIES_DESCRIPTION, VR::LO, series_desc);
    put_str(&mut o, tags::MANUFACTURER_MODEL_NAME, VR::LO, "yilian synth");
    put_str(&mut o, tags::PATIENT_NAME, VR::PN, &ctx.patient_name);
    put_str(&mut o, tags::PATIENT_ID, VR::LO, &ctx.patient_id);
    put_str(&mut o, tags::PATIENT_BIRTH_DATE, VR::DA, &ctx.birth_date);
    put_str(&mut o, tags::PATIENT_SEX, VR::CS, ctx.sex);
    put_str(&mut o, tags::PATIENT_AGE, VR::AS, &ctx.age);
    if !body_part.is_empty() {
        put_str(&mut o, tags::BODY_PART_EXAMINED, VR::CS, body_part);
    }
    put_str(&mut o, tags::DEVICE_SERIAL_NUMBER, VR::LO, "SYN-0001");
    put_str(&mut o, tags::SOFTWARE_VERSIONS, VR::LO, IMPLEMENTATION_VERSION_NAME);
    put_str(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, &st.study_uid);
    put_str(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, &st.series_uid);
    put_str(&mut o, tags::STUDY_ID, VR::SH, "1");
    put_str(&mut o, tags::SERIES_NUMBER, VR::IS, "1");
    put_str(&mut o, tags::INSTANCE_NUMBER, VR::IS, &instance.to_string());
    put_str(&mut o, tags::PATIENT_COMMENTS, VR::LT, SYNTHETIC_MARK);
    if kind != SynthKind::Ecg {
        put_str(&mut o, tags::IMAGE_COMMENTS, VR::LT, SYNTHETIC_MARK);
    }
    o
}

fn grayscale_pixels(
    o: &mut InMemDicomObject,
    rows: u16,
    columns: u16,
    bits_allocated: u16,
    bits_stored: u16,
) {
    put(o, tags::SAMPLES_PER_PIXEL, VR::US, 1u16);
    put_str(o, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    put(o, tags::ROWS, VR::US, rows);
    put(o, tags::COLUMNS, VR::US, columns);
    put(o, tags::BITS_ALLOCATED, VR::US, bits_allocated);
    put(o, tags::BITS_STORED, VR::US, bits_stored);
    put(o, tags::HIGH_BIT, VR::US, bits_stored - 1);
    put(o, tags::PIXEL_REPRESENTATION, VR::US, 0u16);
}

fn u16_le(values: impl Iterator<Item = u16>) -> Vec<u8> {
    values.flat_map(u16::to_le_bytes).collect()
}

fn ds(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// CT: a head phantom of ellipsoids in Hounsfield units, with an acute haemorrhage.

/// (centre x, y, z; semi-axes a, b, c) in mm, patient coordinates (+x left, +y posterior,
/// +z head), and HU. Later entries paint over earlier ones.
const HEAD: [([f64; 6], f64); 12] = [
    ([0.0, 0.0, 0.0, 72.0, 92.0, 85.0], 30.0),    // scalp and soft tissue
    ([0.0, 0.0, 0.0, 68.0, 88.0, 81.0], 1100.0),  // skull
    ([0.0, 2.0, 2.0, 63.0, 82.0, 75.0], 38.0),    // grey matter
    ([0.0, 4.0, 8.0, 48.0, 64.0, 52.0], 28.0),    // white matter
    ([-11.0, -4.0, 18.0, 5.0, 26.0, 12.0], 6.0),  // right lateral ventricle
    ([11.0, -4.0, 18.0, 5.0, 26.0, 12.0], 6.0),   // left lateral ventricle
    ([0.0, 8.0, 2.0, 2.0, 10.0, 8.0], 6.0),       // third ventricle
    ([0.0, 34.0, -52.0, 34.0, 30.0, 22.0], 36.0), // cerebellum
    ([26.0, -28.0, 26.0, 10.0, 13.0, 10.0], 68.0), // acute haemorrhage, left frontal
    ([-30.0, -66.0, -38.0, 12.0, 12.0, 11.0], 15.0), // right globe
    ([30.0, -66.0, -38.0, 12.0, 12.0, 11.0], 15.0), // left globe
    ([0.0, -70.0, -55.0, 11.0, 16.0, 12.0], -850.0), // nasal cavity
];

const CT_FOV_MM: f64 = 250.0;

fn ct_series<'a>(
    ctx: &'a Context,
    st: &'a StudyIds,
    opts: &SynthOptions,
) -> impl Iterator<Item = InMemDicomObject> + 'a {
    let n = opts.ct_slices;
    let m = opts.ct_matrix;
    // About 160 mm of coverage, in steps of 1/8 mm, between 0.5 and 5 mm.
    let thickness = ((160.0 / f64::from(n)) * 8.0).round().clamp(4.0, 40.0) / 8.0;
    let spacing = CT_FOV_MM / f64::from(m);
    let frame_of_reference = synthetic_uid(ctx.seed, "frame-of-reference/ct");
    (0..n).map(move |i| {
        let z = (f64::from(i) - f64::from(n - 1) / 2.0) * thickness;
        let mut o = common(ctx, st, i + 1);
        put_str(&mut o, tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\AXIAL");
        put_str(&mut o, tags::ACQUISITION_DATE, VR::DA, &ctx.study_date);
        put_str(&mut o, tags::ACQUISITION_TIME, VR::TM, &st.time);
        put_str(&mut o, tags::SLICE_THICKNESS, VR::DS, &ds(thickness));
        put_str(&mut o, tags::SPACING_BETWEEN_SLICES, VR::DS, &ds(thickness));
        put_str(&mut o, tags::KVP, VR::DS, "120");
        put_str(&mut o, tags::DATA_COLLECTION_DIAMETER, VR::DS, "500");
        put_str(&mut o, tags::RECONSTRUCTION_DIAMETER, VR::DS, &ds(CT_FOV_MM));
        put_str(&mut o, tags::X_RAY_TUBE_CURRENT, VR::IS, "220");
        put_str(&mut o, tags::CONVOLUTION_KERNEL, VR::SH, "STANDARD");
        put_str(&mut o, tags::PATIENT_POSITION, VR::CS, "HFS");
        put_str(&mut o, tags::ACQUISITION_NUMBER, VR::IS, "1");
        let origin = -CT_FOV_MM / 2.0 + spacing / 2.0;
        put_str(
            &mut o,
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            &format!("{}\\{}\\{}", ds(origin), ds(origin), ds(z)),
        );
        put_str(&mut o, tags::IMAGE_ORIENTATION_PATIENT, VR::DS, "1\\0\\0\\0\\1\\0");
        put_str(&mut o, tags::FRAME_OF_REFERENCE_UID, VR::UI, &frame_of_reference);
        put_str(&mut o, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
        put_str(&mut o, tags::SLICE_LOCATION, VR::DS, &ds(z));
        grayscale_pixels(&mut o, m, m, 16, 12);
        put_str(&mut o, tags::PIXEL_SPACING, VR::DS, &format!("{}\\{}", ds(spacing), ds(spacing)));
        put_str(&mut o, tags::WINDOW_CENTER, VR::DS, "40\\40");
        put_str(&mut o, tags::WINDOW_WIDTH, VR::DS, "80\\400");
        put_str(&mut o, tags::WINDOW_CENTER_WIDTH_EXPLANATION, VR::LO, "BRAIN\\SOFT TISSUE");
        put_str(&mut o, tags::RESCALE_INTERCEPT, VR::DS, "-1024");
        put_str(&mut o, tags::RESCALE_SLOPE, VR::DS, "1");
        put_str(&mut o, tags::RESCALE_TYPE, VR::LO, "HU");
        put_str(&mut o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
        let pixels = ct_slice(ctx.seed, i, m, spacing, z);
        put(&mut o, tags::PIXEL_DATA, VR::OW, PrimitiveValue::U8(pixels.into()));
        o
    })
}

fn ct_slice(seed: u64, index: u32, m: u16, spacing: f64, z: f64) -> Vec<u8> {
    // The ellipses this slice cuts through the ellipsoids: (cx, cy, rx, ry, hu).
    let cuts: Vec<(f64, f64, f64, f64, f64)> = HEAD
        .iter()
        .filter_map(|&([cx, cy, cz, a, b, c], hu)| {
            let t = (z - cz) / c;
            let k = 1.0 - t * t;
            (k > 0.0).then(|| (cx, cy, a * k.sqrt(), b * k.sqrt(), hu))
        })
        .collect();
    let mut rng = Rng::new(seed, &format!("ct-noise/{index}"));
    let half = f64::from(m) / 2.0;
    let mut out = Vec::with_capacity(usize::from(m) * usize::from(m) * 2);
    for row in 0..m {
        let y = (f64::from(row) + 0.5 - half) * spacing;
        for col in 0..m {
            let x = (f64::from(col) + 0.5 - half) * spacing;
            let mut hu = -1000.0;
            for &(cx, cy, rx, ry, v) in &cuts {
                let dx = (x - cx) / rx;
                let dy = (y - cy) / ry;
                if dx * dx + dy * dy <= 1.0 {
                    hu = v;
                }
            }
            if hu > -1000.0 {
                hu += 4.0 * rng.normal();
            }
            let stored = (hu + 1024.0).round().clamp(0.0, 4095.0) as u16;
            out.extend_from_slice(&stored.to_le_bytes());
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// DR: a PA chest radiograph.

fn dr_image(ctx: &Context, st: &StudyIds, opts: &SynthOptions) -> InMemDicomObject {
    let m = opts.dr_matrix;
    let spacing = 410.0 / f64::from(m);
    let mut o = common(ctx, st, 1);
    put_str(&mut o, tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY");
    put_str(&mut o, tags::ACQUISITION_DATE, VR::DA, &ctx.study_date);
    put_str(&mut o, tags::ACQUISITION_TIME, VR::TM, &st.time);
    put_str(&mut o, tags::PRESENTATION_INTENT_TYPE, VR::CS, "FOR PRESENTATION");
    put_str(&mut o, tags::VIEW_POSITION, VR::CS, "PA");
    put_str(&mut o, tags::IMAGE_LATERALITY, VR::CS, "U");
    put_str(&mut o, tags::PATIENT_ORIENTATION, VR::CS, "L\\F");
    put_str(&mut o, tags::KVP, VR::DS, "120");
    put_str(&mut o, tags::DISTANCE_SOURCE_TO_DETECTOR, VR::DS, "1800");
    put_str(&mut o, tags::DETECTOR_TYPE, VR::CS, "SCINTILLATOR");
    put_str(&mut o, tags::IMAGER_PIXEL_SPACING, VR::DS, &format!("{}\\{}", ds(spacing), ds(spacing)));
    put_str(&mut o, tags::PIXEL_SPACING, VR::DS, &format!("{}\\{}", ds(spacing), ds(spacing)));
    grayscale_pixels(&mut o, m, m, 16, 12);
    put_str(&mut o, tags::PIXEL_INTENSITY_RELATIONSHIP, VR::CS, "LOG");
    put(&mut o, tags::PIXEL_INTENSITY_RELATIONSHIP_SIGN, VR::SS, 1i16);
    put_str(&mut o, tags::WINDOW_CENTER, VR::DS, "1700");
    put_str(&mut o, tags::WINDOW_WIDTH, VR::DS, "3200");
    put_str(&mut o, tags::RESCALE_INTERCEPT, VR::DS, "0");
    put_str(&mut o, tags::RESCALE_SLOPE, VR::DS, "1");
    put_str(&mut o, tags::RESCALE_TYPE, VR::LO, "US");
    put_str(&mut o, tags::PRESENTATION_LUT_SHAPE, VR::CS, "IDENTITY");
    put_str(&mut o, tags::POSITIONER_TYPE, VR::CS, "NONE");
    put_seq(&mut o, tags::ANATOMIC_REGION_SEQUENCE, vec![code_item("51185008", "SCT", "", "Chest")]);
    put_seq(&mut o, tags::VIEW_CODE_SEQUENCE, vec![code_item("399348003", "SCT", "", "postero-anterior")]);
    put_seq(&mut o, tags::ACQUISITION_CONTEXT_SEQUENCE, Vec::new());
    put_str(&mut o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    put_str(&mut o, tags::BURNED_IN_ANNOTATION, VR::CS, "NO");
    let mut rng = Rng::new(ctx.seed, "dr-noise");
    let mf = f64::from(m);
    let pixels = u16_le((0..u32::from(m) * u32::from(m)).map(|k| {
        let u = (f64::from(k % u32::from(m)) + 0.5) / mf * 2.0 - 1.0;
        let v = (f64::from(k / u32::from(m)) + 0.5) / mf * 2.0 - 1.0;
        (chest(u, v) + 15.0 * rng.normal()).round().clamp(0.0, 4095.0) as u16
    }));
    put(&mut o, tags::PIXEL_DATA, VR::OW, PrimitiveValue::U8(pixels.into()));
    o
}

/// Chest radiograph intensity (12 bits, bright = dense) at normalised (u right, v down) in [-1, 1].
fn chest(u: f64, v: f64) -> f64 {
    let inside = |cx: f64, cy: f64, a: f64, b: f64| {
        let (dx, dy) = ((u - cx) / a, (v - cy) / b);
        dx * dx + dy * dy <= 1.0
    };
    let au = u.abs();
    if !inside(0.0, 0.05, 0.86, 1.1) {
        return 180.0;
    }
    let mut val = 1750.0;
    let mut in_lung = false;
    for side in [-1.0, 1.0] {
        let lx = (u - 0.36 * side) / 0.27;
        let diaphragm = 0.38 - 0.12 * lx * lx;
        if inside(0.36 * side, -0.12, 0.27, 0.52) && v < diaphragm {
            val = 700.0;
            in_lung = true;
        }
    }
    if inside(0.10, 0.22, 0.26, 0.21) {
        val = 1900.0;
        in_lung = false;
    }
    if au < 0.09 && v < 0.25 {
        val = 1950.0;
    }
    if au < 0.055 {
        val += 450.0;
    }
    // Posterior ribs, sloping down laterally; brighter over the lungs.
    if v < 0.4 && (0.06..0.66).contains(&au) {
        for k in 0..9 {
            let centre = -0.62 + 0.105 * f64::from(k) + 0.22 * (au - 0.05);
            if (v - centre).abs() < 0.018 {
                val += if in_lung { 420.0 } else { 250.0 };
            }
        }
    }
    if (0.08..0.5).contains(&au) && (v - (-0.68 - 0.14 * (au - 0.08))).abs() < 0.02 {
        val += 450.0;
    }
    val
}

// ---------------------------------------------------------------------------------------------
// US: an abdominal sector scan with speckle, a moving cyst and a bright diaphragm line.

fn us_cine(ctx: &Context, st: &StudyIds, opts: &SynthOptions) -> InMemDicomObject {
    let (rows, cols, frames) = (opts.us_rows, opts.us_columns, opts.us_frames);
    let mut o = common(ctx, st, 1);
    put_str(&mut o, tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\ABDOMINAL\\0001");
    put_str(&mut o, tags::ACQUISITION_DATE, VR::DA, &ctx.study_date);
    put_str(&mut o, tags::ACQUISITION_TIME, VR::TM, &st.time);
    put_str(&mut o, tags::TRANSDUCER_DATA, VR::LO, "C5-1");
    put_str(&mut o, tags::NUMBER_OF_FRAMES, VR::IS, &frames.to_string());
    put(&mut o, tags::FRAME_INCREMENT_POINTER, VR::AT, PrimitiveValue::Tags(vec![tags::FRAME_TIME].into()));
    put_str(&mut o, tags::FRAME_TIME, VR::DS, "33.3333");
    put_str(&mut o, tags::CINE_RATE, VR::IS, "30");
    put_str(&mut o, tags::RECOMMENDED_DISPLAY_FRAME_RATE, VR::IS, "30");
    grayscale_pixels(&mut o, rows, cols, 8, 8);
    put_str(&mut o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    put_str(&mut o, tags::PATIENT_ORIENTATION, VR::CS, "");
    put_str(&mut o, tags::BURNED_IN_ANNOTATION, VR::CS, "NO");

    let (w, h) = (f64::from(cols), f64::from(rows));
    let (apex_x, apex_y) = (w / 2.0, h * 0.04);
    let (r0, r1) = (h * 0.08, h * 0.94);
    // 16 cm of depth over the sector's radius.
    let cm_per_px = 16.0 / (r1 - r0);
    let mut region = InMemDicomObject::new_empty();
    put(&mut region, tags::REGION_SPATIAL_FORMAT, VR::US, 1u16);
    put(&mut region, tags::REGION_DATA_TYPE, VR::US, 1u16);
    put(&mut region, tags::REGION_FLAGS, VR::UL, 0u32);
    put(&mut region, tags::REGION_LOCATION_MIN_X0, VR::UL, 0u32);
    put(&mut region, tags::REGION_LOCATION_MIN_Y0, VR::UL, 0u32);
    put(&mut region, tags::REGION_LOCATION_MAX_X1, VR::UL, u32::from(cols) - 1);
    put(&mut region, tags::REGION_LOCATION_MAX_Y1, VR::UL, u32::from(rows) - 1);
    put(&mut region, tags::PHYSICAL_UNITS_X_DIRECTION, VR::US, 3u16);
    put(&mut region, tags::PHYSICAL_UNITS_Y_DIRECTION, VR::US, 3u16);
    put(&mut region, tags::PHYSICAL_DELTA_X, VR::FD, cm_per_px);
    put(&mut region, tags::PHYSICAL_DELTA_Y, VR::FD, cm_per_px);
    put_seq(&mut o, tags::SEQUENCE_OF_ULTRASOUND_REGIONS, vec![region]);

    let mut rng = Rng::new(ctx.seed, "us-speckle");
    let mut pixels = Vec::with_capacity(usize::from(rows) * usize::from(cols) * frames as usize);
    for f in 0..frames {
        // Breathing: a triangle wave with a 10-frame period, in [-1, 1].
        let phase = f64::from(f % 10) / 10.0;
        let breath = if phase < 0.5 { 4.0 * phase - 1.0 } else { 3.0 - 4.0 * phase };
        let (cyst_x, cyst_y) = (apex_x + 0.08 * w, apex_y + 0.45 * (r1 - r0) + r0 + 0.02 * h * breath);
        let diaphragm = r0 + 0.8 * (r1 - r0) + 0.015 * h * breath;
        for row in 0..rows {
            let y = f64::from(row) + 0.5;
            for col in 0..cols {
                let x = f64::from(col) + 0.5;
                let (dx, dy) = (x - apex_x, y - apex_y);
                let r = (dx * dx + dy * dy).sqrt();
                let mut value = 0.0;
                if dy > 0.0 && dx.abs() <= 0.7 * dy && r >= r0 && r <= r1 {
                    let depth = (r - r0) / (r1 - r0);
                    let mut echo = 95.0 * (1.0 - 0.45 * depth);
                    let (cx, cy) = ((x - cyst_x) / (0.09 * w), (y - cyst_y) / (0.07 * h));
                    if cx * cx + cy * cy <= 1.0 {
                        echo = 6.0;
                    } else if (r - diaphragm).abs() < 0.012 * h {
                        echo = 210.0;
                    }
                    let (g1, g2) = (rng.normal(), rng.normal());
                    let rayleigh = (g1 * g1 + g2 * g2).sqrt() / std::f64::consts::SQRT_2;
                    value = echo * rayleigh;
                } else if x >= w - 0.04 * w && x < w - 0.02 * w && y >= 0.2 * h && y < 0.8 * h {
                    value = 255.0 * (1.0 - (y - 0.2 * h) / (0.6 * h)); // grey bar
                }
                pixels.push(value.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    put(&mut o, tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(pixels.into()));
    o
}

// ---------------------------------------------------------------------------------------------
// ECG: a resting 12-lead ECG in sinus rhythm.

/// (label, SCPECG code, code meaning) of the 12 leads, in channel order (CID 3001).
const LEADS: [(&str, &str, &str); 12] = [
    ("I", "5.6.3-9-1", "Lead I"),
    ("II", "5.6.3-9-2", "Lead II"),
    ("III", "5.6.3-9-61", "Lead III"),
    ("aVR", "5.6.3-9-62", "Lead aVR"),
    ("aVL", "5.6.3-9-63", "Lead aVL"),
    ("aVF", "5.6.3-9-64", "Lead aVF"),
    ("V1", "5.6.3-9-3", "Lead V1"),
    ("V2", "5.6.3-9-4", "Lead V2"),
    ("V3", "5.6.3-9-5", "Lead V3"),
    ("V4", "5.6.3-9-6", "Lead V4"),
    ("V5", "5.6.3-9-7", "Lead V5"),
    ("V6", "5.6.3-9-8", "Lead V6"),
];

/// P, Q, R, S, T waves: centre relative to the R peak and half-width, in ms.
const WAVES: [(f64, f64); 5] = [(-170.0, 45.0), (-28.0, 12.0), (0.0, 14.0), (26.0, 14.0), (260.0, 80.0)];

/// Wave amplitudes in mV for leads I, II and V1..V6 (III, aVR, aVL and aVF follow from I and II).
const AMPLITUDES: [[f64; 5]; 8] = [
    [0.08, -0.05, 0.70, -0.10, 0.20], // I
    [0.15, -0.08, 1.20, -0.25, 0.30], // II
    [0.06, 0.0, 0.25, -0.90, 0.10],   // V1
    [0.08, 0.0, 0.45, -1.30, 0.35],   // V2
    [0.08, 0.0, 0.75, -0.80, 0.45],   // V3
    [0.10, -0.05, 1.20, -0.45, 0.45], // V4
    [0.10, -0.08, 1.35, -0.25, 0.35], // V5
    [0.10, -0.08, 1.10, -0.10, 0.25], // V6
];

const ECG_RATE_HZ: u32 = 500;
/// Microvolts per count.
const ECG_SENSITIVITY_UV: f64 = 2.5;

fn ecg(ctx: &Context, st: &StudyIds, opts: &SynthOptions) -> InMemDicomObject {
    let samples = opts.ecg_seconds * ECG_RATE_HZ;
    let mut o = common(ctx, st, 1);
    put_str(&mut o, tags::ACQUISITION_DATE_TIME, VR::DT, &format!("{}{}", ctx.study_date, st.time));
    put_str(
        &mut o,
        tags::SYNCHRONIZATION_FRAME_OF_REFERENCE_UID,
        VR::UI,
        &synthetic_uid(ctx.seed, "synchronization/ecg"),
    );
    put_str(&mut o, tags::SYNCHRONIZATION_TRIGGER, VR::CS, "NO TRIGGER");
    put_str(&mut o, tags::ACQUISITION_TIME_SYNCHRONIZED, VR::CS, "N");
    put_seq(&mut o, tags::ACQUISITION_CONTEXT_SEQUENCE, Vec::new());

    let channels = LEADS
        .iter()
        .map(|&(label, code, meaning)| {
            let mut ch = InMemDicomObject::new_empty();
            put_str(&mut ch, tags::CHANNEL_LABEL, VR::SH, label);
            put_seq(&mut ch, tags::CHANNEL_SOURCE_SEQUENCE, vec![code_item(code, "SCPECG", "1.3", meaning)]);
            put_str(&mut ch, tags::CHANNEL_SENSITIVITY, VR::DS, &ds(ECG_SENSITIVITY_UV));
            put_seq(
                &mut ch,
                tags::CHANNEL_SENSITIVITY_UNITS_SEQUENCE,
                vec![code_item("uV", "UCUM", "1.4", "microvolt")],
            );
            put_str(&mut ch, tags::CHANNEL_SENSITIVITY_CORRECTION_FACTOR, VR::DS, "1");
            put_str(&mut ch, tags::CHANNEL_BASELINE, VR::DS, "0");
            put_str(&mut ch, tags::CHANNEL_SAMPLE_SKEW, VR::DS, "0");
            put(&mut ch, tags::WAVEFORM_BITS_STORED, VR::US, 16u16);
            put_str(&mut ch, tags::FILTER_LOW_FREQUENCY, VR::DS, "0.05");
            put_str(&mut ch, tags::FILTER_HIGH_FREQUENCY, VR::DS, "150");
            put_str(&mut ch, tags::NOTCH_FILTER_FREQUENCY, VR::DS, "50");
            ch
        })
        .collect();

    let mut group = InMemDicomObject::new_empty();
    put_str(&mut group, tags::WAVEFORM_ORIGINALITY, VR::CS, "ORIGINAL");
    put(&mut group, tags::NUMBER_OF_WAVEFORM_CHANNELS, VR::US, LEADS.len() as u16);
    put(&mut group, tags::NUMBER_OF_WAVEFORM_SAMPLES, VR::UL, samples);
    put_str(&mut group, tags::SAMPLING_FREQUENCY, VR::DS, &ECG_RATE_HZ.to_string());
    put_str(&mut group, tags::MULTIPLEX_GROUP_LABEL, VR::SH, "RHYTHM");
    put_seq(&mut group, tags::CHANNEL_DEFINITION_SEQUENCE, channels);
    put(&mut group, tags::WAVEFORM_BITS_ALLOCATED, VR::US, 16u16);
    put_str(&mut group, tags::WAVEFORM_SAMPLE_INTERPRETATION, VR::CS, "SS");
    let data = ecg_samples(ctx.seed, samples);
    put(&mut group, tags::WAVEFORM_DATA, VR::OW, PrimitiveValue::U8(data.into()));
    put_seq(&mut o, tags::WAVEFORM_SEQUENCE, vec![group]);
    o
}

/// Multiplexed samples (sample-major, 12 channels, i16 little endian).
fn ecg_samples(seed: u64, samples: u32) -> Vec<u8> {
    let mut rng = Rng::new(seed, "ecg");
    let rate_bpm = 60.0 + rng.below(30) as f64;
    let rr = 60_000.0 / rate_bpm;
    let duration_ms = f64::from(samples) * 1000.0 / f64::from(ECG_RATE_HZ);
    let mut beats = Vec::new();
    let mut t = 250.0 + 200.0 * rng.unit();
    while t < duration_ms + 600.0 {
        beats.push(t);
        t += rr * (1.0 + 0.04 * (rng.unit() - 0.5));
    }
    let bump = |t: f64, w: f64| {
        let x = t / w;
        if x.abs() < 1.0 {
            let k = 1.0 - x * x;
            k * k
        } else {
            0.0
        }
    };
    let mut out = Vec::with_capacity(samples as usize * LEADS.len() * 2);
    for s in 0..samples {
        let t = f64::from(s) * 1000.0 / f64::from(ECG_RATE_HZ);
        // Basic leads: I, II, V1..V6.
        let mut basic = [0.0f64; 8];
        for &b in beats.iter().filter(|&&b| (t - b).abs() < 400.0) {
            let shape: Vec<f64> = WAVES.iter().map(|&(c, w)| bump(t - b - c, w)).collect();
            for (lead, amps) in basic.iter_mut().zip(AMPLITUDES.iter()) {
                *lead += amps.iter().zip(&shape).map(|(a, s)| a * s).sum::<f64>();
            }
        }
        let (i, ii) = (basic[0], basic[1]);
        let leads = [
            i,
            ii,
            ii - i,
            -(i + ii) / 2.0,
            i - ii / 2.0,
            ii - i / 2.0,
            basic[2],
            basic[3],
            basic[4],
            basic[5],
            basic[6],
            basic[7],
        ];
        // Baseline wander: a 4 s triangle wave of 0.04 mV, shifted per lead; plus 10 µV noise.
        for (n, mv) in leads.iter().enumerate() {
            let phase = ((t + 330.0 * n as f64) % 4000.0) / 4000.0;
            let wander = 0.04 * if phase < 0.5 { 4.0 * phase - 1.0 } else { 3.0 - 4.0 * phase };
            let noise = 0.01 * (2.0 * rng.unit() - 1.0);
            let counts = ((mv + wander + noise) * 1000.0 / ECG_SENSITIVITY_UV).round();
            out.extend_from_slice(&(counts.clamp(-32768.0, 32767.0) as i16).to_le_bytes());
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// SplitMix64, seeded from SHA-256(seed, label).
struct Rng(u64);

impl Rng {
    fn new(seed: u64, label: &str) -> Self {
        let h = hash(seed, label);
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[..8]);
        Rng(u64::from_le_bytes(b))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Approximately standard normal (Irwin–Hall of 4 uniforms, scaled).
    fn normal(&mut self) -> f64 {
        let s = self.unit() + self.unit() + self.unit() + self.unit();
        (s - 2.0) * 3.0f64.sqrt()
    }
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(-10_958), (1940, 1, 1));
        assert_eq!(civil_from_days(19_723 + 59), (2024, 2, 29));
    }

    #[test]
    fn uids_are_valid_and_stable() {
        let a = synthetic_uid(7, "study/ct");
        assert_eq!(a, synthetic_uid(7, "study/ct"));
        assert_ne!(a, synthetic_uid(8, "study/ct"));
        assert!(a.starts_with("2.25.") && a.len() <= 64);
        assert!(a[5..].bytes().all(|b| b.is_ascii_digit()) && !a[5..].starts_with('0'));
    }

    #[test]
    fn ds_formatting() {
        assert_eq!(ds(2.5), "2.5");
        assert_eq!(ds(-0.00001), "0");
        assert_eq!(ds(0.48828125), "0.4883");
        assert_eq!(ds(120.0), "120");
    }
}
