//! Ingest validation: malformed files are refused with the expected typed error and never panic;
//! other valid encodings (implicit VR, big endian, encapsulated pixel data) are accepted.

mod common;

use common::{item_header, long_header, malformed_corpus, small_ct, Part10};
use std::path::{Path, PathBuf};
use yilian_dicom::{generate, inspect, inspect_with, IngestError, IngestLimits, SynthKind, SynthOptions};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn every_generated_malformed_file_is_refused_with_its_expected_error() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = malformed_corpus();
    assert!(corpus.len() >= 30);
    let mut failures = Vec::new();
    for (name, code, bytes) in &corpus {
        let path = write(dir.path(), &format!("{name}.dcm"), bytes);
        match inspect(&path) {
            Ok(info) => failures.push(format!("{name}: accepted as {info:?}")),
            Err(e) if e.code() != *code => {
                failures.push(format!("{name}: expected {code}, got {}: {e}", e.code()))
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.len() > 30 && msg.contains(';'), "{name}: message says what to do: {msg}");
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_seed_corpus_is_refused_with_the_error_named_in_each_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut total = 0u64;
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".dcm") {
            continue;
        }
        total += std::fs::metadata(&path).unwrap().len();
        count += 1;
        let expected = name.split("--").next().unwrap();
        match inspect(&path) {
            Ok(info) => panic!("{name}: accepted as {info:?}"),
            Err(e) => assert_eq!(e.code(), expected, "{name}: {e}"),
        }
    }
    assert!(count >= 20, "seed corpus has {count} files");
    assert!(total < 200 * 1024, "seed corpus is {total} bytes");
}

/// Writes the seed corpus from the generator: `cargo test -p yilian-dicom --test ingest -- --ignored`.
#[test]
#[ignore]
fn write_seed_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, code, bytes) in malformed_corpus() {
        std::fs::write(dir.join(format!("{code}--{name}.dcm")), bytes).unwrap();
    }
}

#[test]
fn specific_refusals_carry_the_details() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = malformed_corpus();
    let get = |name: &str| {
        let (_, _, bytes) = corpus.iter().find(|(n, _, _)| *n == name).unwrap();
        inspect(write(dir.path(), name, bytes)).unwrap_err()
    };
    match get("huge-declared-length") {
        IngestError::DeclaredLengthTooLarge { tag, declared, .. } => {
            assert_eq!(tag, dicom_core::Tag(0x7FE0, 0x0010));
            assert_eq!(declared, 0xFFFF_FFF0);
        }
        e => panic!("{e:?}"),
    }
    match get("missing-sop-instance-uid") {
        IngestError::MissingAttribute { name, tag } => {
            assert_eq!(name, "SOPInstanceUID");
            assert_eq!(tag, dicom_core::Tag(0x0008, 0x0018));
        }
        e => panic!("{e:?}"),
    }
    match get("png-header") {
        IngestError::NotDicom { looks_like } => assert_eq!(looks_like, "a PNG image"),
        e => panic!("{e:?}"),
    }
    match get("text") {
        IngestError::NotDicom { looks_like } => assert_eq!(looks_like, "text"),
        e => panic!("{e:?}"),
    }
    match get("unknown-transfer-syntax") {
        IngestError::UnsupportedTransferSyntax { uid, .. } => assert_eq!(uid, "1.2.3.4.5.6"),
        e => panic!("{e:?}"),
    }
    match get("unsupported-sop-class") {
        IngestError::UnsupportedSopClass { name, .. } => assert_eq!(name, "RT Dose"),
        e => panic!("{e:?}"),
    }
    match get("truncated-in-pixel-data") {
        e @ IngestError::Truncated { .. } => assert!(e.to_string().contains("(7FE0,0010)"), "{e}"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn size_limit_missing_files_and_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ct.dcm", &small_ct());
    let limits = IngestLimits { max_file_size: 1000, ..IngestLimits::default() };
    assert!(matches!(inspect_with(&path, &limits), Err(IngestError::TooLarge { limit: 1000, .. })));
    assert!(matches!(inspect(dir.path().join("absent.dcm")), Err(IngestError::Io { .. })));
    assert!(matches!(inspect(dir.path()), Err(IngestError::Io { .. })));
    let tight = IngestLimits { max_elements: 10, ..IngestLimits::default() };
    assert_eq!(inspect_with(&path, &tight).unwrap_err().code(), "malformed");
}

#[test]
fn encapsulated_pixel_data_is_accepted_without_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Part10::parse(&small_ct());
    p.set_str((2, 0x10), b"UI", "1.2.840.10008.1.2.4.50");
    p.remove((0x7FE0, 0x0010));
    let mut raw = long_header((0x7FE0, 0x0010), b"OB", 0xFFFF_FFFF);
    raw.extend(item_header(0xE000, 0)); // empty basic offset table
    let fragment = [0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x02, 0xFF, 0xD9];
    raw.extend(item_header(0xE000, fragment.len() as u32));
    raw.extend_from_slice(&fragment);
    raw.extend(item_header(0xE0DD, 0));
    p.insert_raw((0x7FE0, 0x0010), raw);
    let info = inspect(write(dir.path(), "jpeg.dcm", &p.to_bytes())).unwrap();
    assert_eq!(info.transfer_syntax_uid, "1.2.840.10008.1.2.4.50");
    assert_eq!(info.frames, 1);

    // The same with a fragment that runs past the end of the file.
    let bytes = p.to_bytes();
    let truncated = &bytes[..bytes.len() - 10];
    assert_eq!(inspect(write(dir.path(), "jpeg-cut.dcm", truncated)).unwrap_err().code(), "truncated");
}

#[test]
fn implicit_vr_and_big_endian_re_encodings_are_accepted() {
    use dicom_transfer_syntax_registry::entries;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &[SynthKind::Ecg, SynthKind::Us], &SynthOptions::small(9)).unwrap();
    for (kind, ts_uid) in [
        ("ecg", entries::IMPLICIT_VR_LITTLE_ENDIAN.uid()),
        ("us", entries::IMPLICIT_VR_LITTLE_ENDIAN.uid()),
        ("ecg", entries::EXPLICIT_VR_BIG_ENDIAN.uid()),
        ("us", entries::EXPLICIT_VR_BIG_ENDIAN.uid()),
    ] {
        let src = dir.path().join(kind).join("0001.dcm");
        let original = inspect(&src).unwrap();
        let mut obj = dicom_object::open_file(&src).unwrap();
        if ts_uid == entries::IMPLICIT_VR_LITTLE_ENDIAN.uid() {
            obj.meta_mut().set_transfer_syntax(&entries::IMPLICIT_VR_LITTLE_ENDIAN);
        } else {
            obj.meta_mut().set_transfer_syntax(&entries::EXPLICIT_VR_BIG_ENDIAN);
        }
        let out = dir.path().join(format!("{kind}-{ts_uid}.dcm"));
        obj.write_to_file(&out).unwrap();
        let info = inspect(&out).unwrap_or_else(|e| panic!("{kind} in {ts_uid}: {e}"));
        assert_eq!(info.transfer_syntax_uid, ts_uid);
        assert_eq!(info.sop_instance_uid, original.sop_instance_uid);
        assert_eq!(info.frames, original.frames);
        assert_eq!(info.payload, original.payload);
    }
}

/// Deterministic xorshift for the mutation test.
struct Xs(u64);
impl Xs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn mutated_and_truncated_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        ct_slices: 1,
        ct_matrix: 16,
        ecg_seconds: 1,
        us_columns: 64,
        us_rows: 64,
        us_frames: 1,
        ..SynthOptions::small(2)
    };
    generate(dir.path(), &[SynthKind::Ct, SynthKind::Ecg, SynthKind::Us], &opts).unwrap();
    let seeds: Vec<Vec<u8>> = ["ct", "ecg", "us"]
        .iter()
        .map(|k| std::fs::read(dir.path().join(k).join("0001.dcm")).unwrap())
        .collect();
    let path = dir.path().join("mutant.dcm");
    let mut rng = Xs(0x9E37_79B9_7F4A_7C15);
    let mut refused = 0;
    for (s, seed) in seeds.iter().enumerate() {
        // Header region only: mutations in pixel bytes are harmless.
        let header_len = seed.len().min(if s == 1 { seed.len() } else { 2500 });
        for _ in 0..250 {
            let mut m = seed.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = 128 + (rng.next() as usize) % (header_len - 128);
                m[at] = match rng.next() % 4 {
                    0 => 0xFF,
                    1 => 0x00,
                    _ => rng.next() as u8,
                };
            }
            std::fs::write(&path, &m).unwrap();
            refused += usize::from(inspect(&path).is_err());
        }
        for cut in (0..seed.len().min(4000)).step_by(13) {
            std::fs::write(&path, &seed[..cut]).unwrap();
            let _ = inspect(&path);
        }
    }
    assert!(refused > 100, "most header mutations are refused ({refused})");
}
