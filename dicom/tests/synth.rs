//! Synthetic studies: determinism, validity (every file passes ingest) and content.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use std::collections::BTreeSet;
use std::path::Path;
use yilian_dicom::sop::Payload;
use yilian_dicom::{generate, inspect, Digest, SynthError, SynthKind, SynthOptions};

fn read_all(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in SynthKind::ALL {
        let sub = dir.join(kind.name());
        let mut names: Vec<_> =
            std::fs::read_dir(&sub).expect("kind dir").map(|e| e.expect("entry").path()).collect();
        names.sort();
        for p in names {
            out.push((
                format!("{}/{}", kind, p.file_name().unwrap().to_string_lossy()),
                std::fs::read(&p).unwrap(),
            ));
        }
    }
    out
}

#[test]
fn same_seed_gives_byte_identical_files_and_another_seed_does_not() {
    let (a, b, c) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sa = generate(a.path(), &SynthKind::ALL, &SynthOptions::small(42)).unwrap();
    let sb = generate(b.path(), &SynthKind::ALL, &SynthOptions::small(42)).unwrap();
    generate(c.path(), &SynthKind::ALL, &SynthOptions::small(43)).unwrap();
    let (fa, fb, fc) = (read_all(a.path()), read_all(b.path()), read_all(c.path()));
    assert_eq!(fa.len(), 4 + 1 + 1 + 1);
    assert_eq!(fa, fb, "same seed must give identical bytes");
    for ((name, x), (_, y)) in fa.iter().zip(&fc) {
        assert_ne!(x, y, "{name}: another seed must give other bytes");
    }
    assert_eq!(sa.files(), 7);
    assert_eq!(sa.bytes(), fa.iter().map(|(_, b)| b.len() as u64).sum::<u64>());
    assert_eq!(
        sa.studies.iter().map(|s| &s.study_instance_uid).collect::<Vec<_>>(),
        sb.studies.iter().map(|s| &s.study_instance_uid).collect::<Vec<_>>()
    );
    // A single kind gives the same files as that kind within `all`.
    let d = tempfile::tempdir().unwrap();
    generate(d.path(), &[SynthKind::Ecg], &SynthOptions::small(42)).unwrap();
    assert_eq!(
        std::fs::read(d.path().join("ecg/0001.dcm")).unwrap(),
        std::fs::read(a.path().join("ecg/0001.dcm")).unwrap()
    );
}

#[test]
fn every_synthetic_file_passes_ingest_with_the_right_identity() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(dir.path(), &SynthKind::ALL, &SynthOptions::small(7)).unwrap();
    let text = summary.to_string();
    assert!(text.contains("total: 7 file(s)"), "{text}");
    let mut studies = BTreeSet::new();
    let mut instances = BTreeSet::new();
    for study in &summary.studies {
        assert!(studies.insert(study.study_instance_uid.clone()), "one study per kind");
        let (class, modality, frames, dims, payload) = match study.kind {
            SynthKind::Ct => ("1.2.840.10008.5.1.4.1.1.2", "CT", 1, Some((64, 64)), Payload::Pixels),
            SynthKind::Dr => ("1.2.840.10008.5.1.4.1.1.1.1", "DX", 1, Some((128, 128)), Payload::Pixels),
            SynthKind::Us => ("1.2.840.10008.5.1.4.1.1.3.1", "US", 3, Some((64, 96)), Payload::Pixels),
            SynthKind::Ecg => ("1.2.840.10008.5.1.4.1.1.9.1.1", "ECG", 0, None, Payload::Waveform),
        };
        assert_eq!(study.sop_class_uid, class);
        assert_eq!(study.files.len(), if study.kind == SynthKind::Ct { 4 } else { 1 });
        for file in &study.files {
            let info = inspect(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert_eq!(info.sop_class_uid, class);
            assert_eq!(info.modality.as_deref(), Some(modality));
            assert_eq!(info.frames, frames);
            assert_eq!(info.rows.zip(info.columns), dims);
            assert_eq!(info.payload, payload);
            assert_eq!(info.transfer_syntax_uid, "1.2.840.10008.1.2.1");
            assert_eq!(info.study_instance_uid, study.study_instance_uid);
            assert_eq!(info.series_instance_uid, study.series_instance_uid);
            let bytes = std::fs::read(file).unwrap();
            assert_eq!(info.size, bytes.len() as u64);
            assert_eq!(info.sha256, Digest::of_bytes(&bytes));
            assert!(info.sop_instance_uid.starts_with("2.25.") && info.sop_instance_uid.len() <= 64);
            assert!(instances.insert(info.sop_instance_uid.clone()), "instance UIDs are unique");
        }
    }
}

fn attr(obj: &dicom_object::DefaultDicomObject, tag: Tag) -> String {
    obj.element(tag).unwrap().to_str().unwrap().trim_end_matches(['\0', ' ']).to_owned()
}

#[test]
fn ct_phantom_has_air_outside_and_brain_inside_in_hounsfield_units() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions { ct_slices: 3, ct_matrix: 128, ..SynthOptions::small(1) };
    generate(dir.path(), &[SynthKind::Ct], &opts).unwrap();
    let obj = dicom_object::open_file(dir.path().join("ct/0002.dcm")).unwrap();
    assert_eq!(attr(&obj, tags::RESCALE_INTERCEPT), "-1024");
    assert_eq!(attr(&obj, tags::IMAGE_ORIENTATION_PATIENT), "1\\0\\0\\0\\1\\0");
    assert_eq!(attr(&obj, tags::SLICE_LOCATION), "0");
    assert_eq!(attr(&obj, tags::SLICE_THICKNESS), "5");
    let px = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap().into_owned();
    assert_eq!(px.len(), 128 * 128 * 2);
    let hu = |row: usize, col: usize| {
        i32::from(u16::from_le_bytes([px[(row * 128 + col) * 2], px[(row * 128 + col) * 2 + 1]])) - 1024
    };
    assert_eq!(hu(0, 0), -1000, "corner is air");
    let centre = hu(64, 40);
    assert!((10..60).contains(&centre), "brain parenchyma, got {centre} HU");
    assert!(
        hu(64, 64 - 36) > 500 || hu(64, 64 + 36) > 500 || (0..128).any(|c| hu(64, c) > 700),
        "a skull ring"
    );
}

#[test]
fn ecg_has_twelve_coded_channels_at_500_hz() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &[SynthKind::Ecg], &SynthOptions { ecg_seconds: 10, ..SynthOptions::small(3) })
        .unwrap();
    let obj = dicom_object::open_file(dir.path().join("ecg/0001.dcm")).unwrap();
    let seq = obj.element(tags::WAVEFORM_SEQUENCE).unwrap().items().unwrap();
    assert_eq!(seq.len(), 1);
    let group = &seq[0];
    let get =
        |tag: Tag| group.element(tag).unwrap().to_str().unwrap().trim_end_matches(['\0', ' ']).to_owned();
    assert_eq!(get(tags::NUMBER_OF_WAVEFORM_CHANNELS), "12");
    assert_eq!(get(tags::NUMBER_OF_WAVEFORM_SAMPLES), "5000");
    assert_eq!(get(tags::SAMPLING_FREQUENCY), "500");
    assert_eq!(get(tags::WAVEFORM_SAMPLE_INTERPRETATION), "SS");
    let channels = group.element(tags::CHANNEL_DEFINITION_SEQUENCE).unwrap().items().unwrap();
    let codes: Vec<String> = channels
        .iter()
        .map(|c| {
            let src = &c.element(tags::CHANNEL_SOURCE_SEQUENCE).unwrap().items().unwrap()[0];
            src.element(tags::CODE_VALUE).unwrap().to_str().unwrap().trim().to_owned()
        })
        .collect();
    assert_eq!(codes.len(), 12);
    assert_eq!(codes[0], "5.6.3-9-1");
    assert_eq!(codes[1], "5.6.3-9-2");
    assert_eq!(codes[11], "5.6.3-9-8");
    let data = group.element(tags::WAVEFORM_DATA).unwrap().to_bytes().unwrap().into_owned();
    assert_eq!(data.len(), 5000 * 12 * 2);
    let lead_ii_max = data.chunks_exact(24).map(|s| i16::from_le_bytes([s[2], s[3]])).max().unwrap();
    // An R wave of about 1.2 mV at 2.5 µV per count.
    assert!((380..600).contains(&lead_ii_max), "lead II R peak {lead_ii_max} counts");
}

#[test]
fn utf8_patient_name_and_id_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        patient_name: Some("张^伟".to_owned()),
        patient_id: Some("330102196000000042".to_owned()),
        ..SynthOptions::small(5)
    };
    let summary = generate(dir.path(), &[SynthKind::Dr], &opts).unwrap();
    assert_eq!(summary.patient_name, "张^伟");
    let file = &summary.studies[0].files[0];
    inspect(file).unwrap();
    let obj = dicom_object::open_file(file).unwrap();
    assert_eq!(attr(&obj, tags::PATIENT_NAME), "张^伟");
    assert_eq!(attr(&obj, tags::PATIENT_ID), "330102196000000042");
    assert_eq!(attr(&obj, tags::SPECIFIC_CHARACTER_SET), "ISO_IR 192");
    assert_eq!(attr(&obj, tags::IMAGE_COMMENTS), yilian_dicom::synth::SYNTHETIC_MARK);
}

#[test]
fn a_rerun_with_fewer_slices_leaves_one_consistent_series() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &[SynthKind::Ct], &SynthOptions { ct_slices: 5, ..SynthOptions::small(1) }).unwrap();
    std::fs::write(dir.path().join("ct/notes.txt"), "kept").unwrap();
    generate(dir.path(), &[SynthKind::Ct], &SynthOptions { ct_slices: 2, ..SynthOptions::small(1) }).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("ct"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["0001.dcm", "0002.dcm", "notes.txt"]);
}

#[test]
fn out_of_range_options_are_refused_with_the_allowed_range() {
    let dir = tempfile::tempdir().unwrap();
    for (opts, needle) in [
        (SynthOptions { ct_slices: 0, ..SynthOptions::small(1) }, "CT slices is 0; use 1 to 2000"),
        (SynthOptions { dr_matrix: 8, ..SynthOptions::small(1) }, "DR matrix is 8"),
        (SynthOptions { patient_name: Some("A\\B".into()), ..SynthOptions::small(1) }, "without backslashes"),
        (SynthOptions { patient_id: Some(String::new()), ..SynthOptions::small(1) }, "patient id"),
    ] {
        match generate(dir.path(), &SynthKind::ALL, &opts) {
            Err(e @ SynthError::InvalidOptions { .. }) => assert!(e.to_string().contains(needle), "{e}"),
            other => panic!("expected InvalidOptions, got {other:?}"),
        }
    }
    assert!("mri".parse::<SynthKind>().is_err());
    assert_eq!("CT".parse::<SynthKind>().unwrap(), SynthKind::Ct);
}
