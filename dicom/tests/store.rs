//! Content-addressed store: round trip, dedupe, verify, crash leftovers, failing sources.

use std::io::Read;
use std::path::Path;
use yilian_dicom::{Digest, Store, StoreError};

/// Every file under objects/ is complete: its name is the hash of its bytes.
fn assert_objects_are_complete(root: &Path) -> usize {
    let mut n = 0;
    for fan in std::fs::read_dir(root.join("objects")).unwrap() {
        let fan = fan.unwrap().path();
        for entry in std::fs::read_dir(&fan).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(
                Digest::of_bytes(&bytes).to_hex(),
                name,
                "{} is a partial or foreign file",
                path.display()
            );
            assert_eq!(fan.file_name().unwrap().to_string_lossy(), &name[..2]);
            n += 1;
        }
    }
    n
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8).collect()
}

fn tmp_entries(store: &Store) -> usize {
    std::fs::read_dir(store.tmp_dir()).unwrap().count()
}

#[test]
fn round_trip_of_a_multi_chunk_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let data = pattern(3 * 1024 * 1024 + 12_345, 1);
    let put = store.put_reader(&data[..]).unwrap();
    assert_eq!(put.digest, Digest::of_bytes(&data));
    assert_eq!(put.size, data.len() as u64);
    assert!(!put.deduplicated);
    assert!(store.contains(&put.digest));
    let path = store.locate(&put.digest).unwrap();
    let hex = put.digest.to_hex();
    assert!(path.ends_with(Path::new("objects").join(&hex[..2]).join(&hex)));
    let mut back = Vec::new();
    store.get(&put.digest).unwrap().read_to_end(&mut back).unwrap();
    assert_eq!(back, data);
    assert_eq!(store.verify(&put.digest).unwrap(), data.len() as u64);
    assert_eq!(store.list().unwrap(), vec![put.digest]);
    assert_eq!(tmp_entries(&store), 0);
    assert!(std::fs::metadata(&path).unwrap().permissions().readonly(), "objects are read-only");

    // An empty object is an object too.
    let empty = store.put_reader(&b""[..]).unwrap();
    assert_eq!(empty.digest.to_hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(assert_objects_are_complete(dir.path()), 2);
}

#[test]
fn storing_the_same_bytes_twice_keeps_one_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let src = dir.path().join("src.bin");
    std::fs::write(&src, pattern(100_000, 2)).unwrap();
    let first = store.put_file(&src).unwrap();
    let second = store.put_file(&src).unwrap();
    let third = store.put_reader(&pattern(100_000, 2)[..]).unwrap();
    assert!(!first.deduplicated);
    assert!(second.deduplicated && third.deduplicated);
    assert_eq!(first.digest, second.digest);
    assert_eq!(second.digest, third.digest);
    assert_eq!(assert_objects_are_complete(dir.path()), 1);
    assert_eq!(tmp_entries(&store), 0);
}

#[test]
fn concurrent_puts_of_the_same_and_different_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    std::thread::scope(|s| {
        for t in 0..6u8 {
            let store = &store;
            s.spawn(move || {
                store.put_reader(&pattern(300_000, 9)[..]).unwrap();
                store.put_reader(&pattern(50_000, 100 + t)[..]).unwrap();
            });
        }
    });
    assert_eq!(assert_objects_are_complete(dir.path()), 7);
    assert_eq!(tmp_entries(&store), 0);
}

#[test]
fn verify_detects_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let data = pattern(10_000, 3);
    let put = store.put_reader(&data[..]).unwrap();
    let path = store.locate(&put.digest).unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4321] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    match store.verify(&put.digest) {
        Err(e @ StoreError::Corrupt { .. }) => {
            let StoreError::Corrupt { digest, actual } = &e else { unreachable!() };
            assert_eq!(*digest, put.digest);
            assert_eq!(*actual, Digest::of_bytes(&bytes));
            assert!(e.to_string().contains("fetch it again"), "{e}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Put dedupes on name and size only (no re-hash): a copy whose size is wrong is replaced.
    std::fs::write(&path, &bytes[..5000]).unwrap();
    let again = store.put_reader(&data[..]).unwrap();
    assert!(!again.deduplicated, "a damaged (short) copy is replaced");
    assert_eq!(store.verify(&put.digest).unwrap(), data.len() as u64);
}

#[test]
fn unknown_digests_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let d = Digest::of_bytes(b"never stored");
    assert!(!store.contains(&d));
    assert!(matches!(store.get(&d), Err(StoreError::NotFound { .. })));
    assert!(matches!(store.verify(&d), Err(StoreError::NotFound { .. })));
    assert!(matches!(store.locate(&d), Err(StoreError::NotFound { .. })));
}

#[test]
fn leftovers_of_a_crash_are_removed_at_open_and_never_visible_as_objects() {
    let dir = tempfile::tempdir().unwrap();
    let kept = {
        let store = Store::open(dir.path()).unwrap();
        let kept = store.put_reader(&pattern(70_000, 4)[..]).unwrap();
        // Simulate a crash in the middle of a put: a partial temp file, and a stray temp directory.
        std::fs::write(store.tmp_dir().join("put-4242-0.part"), &pattern(70_000, 5)[..33_000]).unwrap();
        std::fs::create_dir(store.tmp_dir().join("stray")).unwrap();
        std::fs::write(store.tmp_dir().join("stray/x"), b"x").unwrap();
        kept.digest
    };
    assert_eq!(assert_objects_are_complete(dir.path()), 1);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(tmp_entries(&store), 0, "temp files are cleaned at open");
    assert_eq!(store.list().unwrap(), vec![kept]);
    store.verify(&kept).unwrap();
}

/// A source that fails after yielding some bytes.
struct Failing(usize);

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "link dropped"));
        }
        let n = buf.len().min(self.0);
        buf[..n].fill(7);
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn a_failing_source_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    match store.put_reader(Failing(2 * 1024 * 1024 + 5)) {
        Err(e @ StoreError::Source { .. }) => assert!(e.to_string().contains("nothing was stored"), "{e}"),
        other => panic!("expected Source, got {other:?}"),
    }
    assert_eq!(tmp_entries(&store), 0);
    assert_eq!(assert_objects_are_complete(dir.path()), 0);
    assert!(matches!(store.put_file(dir.path().join("absent")), Err(StoreError::Io { op: "open", .. })));
}

#[test]
fn ingested_files_are_stored_under_their_ingest_digest() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synth");
    let summary =
        yilian_dicom::generate(&out, &[yilian_dicom::SynthKind::Ct], &yilian_dicom::SynthOptions::small(1))
            .unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    for file in &summary.studies[0].files {
        let info = yilian_dicom::inspect(file).unwrap();
        let put = store.put_file(file).unwrap();
        assert_eq!(put.digest, info.sha256);
        assert_eq!(put.size, info.size);
        let stored = yilian_dicom::inspect(store.locate(&put.digest).unwrap()).unwrap();
        assert_eq!(stored, info);
    }
}

#[test]
fn adopting_a_file_moves_it_in_under_its_digest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let data = pattern(300_000, 7);
    let digest = Digest::of_bytes(&data);
    let src = dir.path().join("incoming.part");
    std::fs::write(&src, &data).unwrap();

    let put = store.adopt_file(&src, &digest, data.len() as u64).unwrap();
    assert_eq!(put, yilian_dicom::Put { digest, size: data.len() as u64, deduplicated: false });
    assert!(!src.exists(), "the file was moved, not copied");
    assert_eq!(std::fs::read(store.locate(&digest).unwrap()).unwrap(), data);
    assert!(std::fs::metadata(store.path_of(&digest)).unwrap().permissions().readonly());

    // The same bytes again: the stored object is kept and the new file left to its owner.
    std::fs::write(&src, &data).unwrap();
    let again = store.adopt_file(&src, &digest, data.len() as u64).unwrap();
    assert!(again.deduplicated);
    assert!(src.exists());
    assert_eq!(assert_objects_are_complete(&dir.path().join("store")), 1);
    assert_eq!(tmp_entries(&store), 0);
}

#[test]
fn adopting_a_file_whose_size_changed_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let data = pattern(50_000, 9);
    let digest = Digest::of_bytes(&data);
    let src = dir.path().join("incoming.part");
    std::fs::write(&src, &data[..40_000]).unwrap();

    let err = store.adopt_file(&src, &digest, data.len() as u64).unwrap_err();
    assert!(err.to_string().contains("changed while being stored"), "{err}");
    assert!(!store.contains(&digest));
    assert!(src.exists(), "a refused file stays with its owner");
}
