//! DICOMweb building blocks on real files: frames of native and encapsulated (JPEG baseline)
//! pixel data read from where the ingest scan found them, rendered PNGs decoded back, and
//! metadata whose bulk data URIs resolve to the original values.

use dicom_dictionary_std::tags;
use dicom_object::open_file;
use dicom_pixeldata::Transcode;
use dicom_transfer_syntax_registry::entries::JPEG_BASELINE;
use std::path::{Path, PathBuf};
use yilian_dicom::catalog::{catalog_attributes, read_header};
use yilian_dicom::pixel_location::PixelLocation;
use yilian_dicom::web::frames::read_frame;
use yilian_dicom::web::metadata::{bulk_value, instance_metadata};
use yilian_dicom::web::render::{render_png, Window};
use yilian_dicom::{generate, inspect, CatalogRecord, SynthKind, SynthOptions};

/// Ingest `path` as the node does, into a catalog record.
fn record(path: &Path) -> CatalogRecord {
    let info = inspect(path).expect("accepted");
    CatalogRecord {
        study_instance_uid: info.study_instance_uid,
        series_instance_uid: info.series_instance_uid,
        sop_instance_uid: info.sop_instance_uid,
        sop_class_uid: info.sop_class_uid,
        transfer_syntax_uid: info.transfer_syntax_uid,
        sha256: info.sha256.to_hex(),
        size: info.size,
        case_id: "C00000001".into(),
        frames: info.frames,
        pixel_data: info.pixel_data,
        attributes: catalog_attributes(&read_header(path).expect("header")),
    }
}

fn synth(dir: &Path, kind: SynthKind) -> PathBuf {
    let summary = generate(dir, &[kind], &SynthOptions::small(5)).expect("synth");
    summary.studies[0].files[0].clone()
}

/// Width, height and pixels of a PNG.
fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(bytes).read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG data");
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn native_frames_are_the_pixel_data_slices_and_render_with_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = synth(dir.path(), SynthKind::Us);
    let rec = record(&path);
    assert!(matches!(rec.pixel_data, Some(PixelLocation::Native { .. })));
    let obj = open_file(&path).unwrap();
    let pixels = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap().into_owned();
    let size = pixels.len() / rec.frames as usize;
    for n in 1..=rec.frames {
        let frame = read_frame(&path, &rec, n).unwrap();
        assert_eq!(frame, pixels[(n as usize - 1) * size..n as usize * size], "frame {n}");
    }
    assert!(read_frame(&path, &rec, rec.frames + 1).is_err());

    let ct = synth(dir.path(), SynthKind::Ct);
    let ct_rec = record(&ct);
    let (w, h, gray) = decode_png(&render_png(&ct, &ct_rec, 1, None).unwrap());
    assert_eq!((w, h), (64, 64));
    assert!(gray.iter().any(|v| *v != gray[0]), "a rendered CT slice is not flat");
    let bone = render_png(&ct, &ct_rec, 1, Some("bone".parse::<Window>().unwrap())).unwrap();
    assert_ne!(decode_png(&bone).2, gray, "another window gives another image");
}

#[test]
fn encapsulated_frames_are_their_fragments_and_decode_for_rendering() {
    let dir = tempfile::tempdir().unwrap();
    let native = synth(dir.path(), SynthKind::Us);
    let mut obj = open_file(&native).unwrap();
    obj.transcode(&JPEG_BASELINE.erased()).expect("JPEG baseline encoding");
    let path = dir.path().join("us-jpeg.dcm");
    obj.write_to_file(&path).unwrap();

    let rec = record(&path);
    assert_eq!(rec.transfer_syntax_uid, "1.2.840.10008.1.2.4.50");
    let Some(PixelLocation::Encapsulated { fragments, .. }) = &rec.pixel_data else {
        panic!("encapsulated pixel data expected, got {:?}", rec.pixel_data)
    };
    assert!(fragments.len() >= rec.frames as usize);
    for n in 1..=rec.frames {
        let frame = read_frame(&path, &rec, n).unwrap();
        assert_eq!(frame[..2], [0xFF, 0xD8], "frame {n} starts with a JPEG SOI marker");
        let end = frame.iter().rposition(|b| *b != 0).unwrap();
        assert_eq!(frame[end - 1..=end], [0xFF, 0xD9], "frame {n} ends with a JPEG EOI marker");
    }
    let (w, h, _) = decode_png(&render_png(&path, &rec, rec.frames, None).unwrap());
    assert_eq!((w, h), (96, 64));
}

#[test]
fn metadata_has_bulk_data_uris_that_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let ecg = synth(dir.path(), SynthKind::Ecg);
    let rec = record(&ecg);
    let meta = instance_metadata(&ecg, &rec, "http://node/i").unwrap();
    assert_eq!(meta["00080018"]["Value"][0], rec.sop_instance_uid.as_str());
    assert!(meta.get("7FE00010").is_none(), "a waveform has no pixel data");
    let waveform = &meta["54000100"]["Value"][0]["54001010"];
    assert_eq!(waveform["BulkDataURI"], "http://node/i/bulkdata/54000100/0/54001010", "{waveform}");
    let bytes = bulk_value(&ecg, "54000100/0/54001010").unwrap();
    let obj = open_file(&ecg).unwrap();
    let item = &obj.element(tags::WAVEFORM_SEQUENCE).unwrap().items().unwrap()[0];
    let original = item.element(tags::WAVEFORM_DATA).unwrap().to_bytes().unwrap();
    assert_eq!(bytes, original.as_ref());
    assert!(bulk_value(&ecg, "00100010").is_ok(), "a text value can be fetched too");
    assert!(bulk_value(&ecg, "7FE00010").is_err());

    let ct = synth(dir.path(), SynthKind::Ct);
    let meta = instance_metadata(&ct, &record(&ct), "http://node/c").unwrap();
    assert_eq!(
        meta["7FE00010"],
        serde_json::json!({"vr": "OW", "BulkDataURI": "http://node/c/bulkdata/7FE00010"})
    );
}
