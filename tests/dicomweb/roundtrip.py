#!/usr/bin/env python3
"""A DICOMweb round trip against a Yilian node with the `dicomweb-client` package.

Usage:
    roundtrip.py --url URL --token TOKEN FILE...
        STOW the files, then search (QIDO-RS), retrieve (WADO-RS) and check what comes back;
        prints one line per check and exits 0 when all pass, 1 when one fails.
    roundtrip.py --self-check
        check that the pinned packages are installed

An RLE Lossless copy of the multi-frame instance (made with pydicom's encoder, in a new series of
the same study) is stored along with the files, so compressed pixel data is exercised too.

Checks:
  * STOW-RS of every file (pydicom datasets through DICOMwebClient.store_instances): each
    SOP instance is listed in the ReferencedSOPSequence, none in the FailedSOPSequence;
  * QIDO-RS: studies by PatientID, by a StudyDate range (and none for a range that excludes
    them), by a lower-case wildcard PatientName; series by Modality; instances of each series;
  * WADO-RS: each instance parses (retrieve_instance) and its Part-10 bytes have the SHA-256
    of the original file; series metadata carries a BulkDataURI for Pixel Data; frames (by
    default and with transfer-syntax=*) equal the frames pydicom reads, as stored; frames of the
    RLE copy asked for uncompressed equal the original's; Pixel Data bulk data equals pydicom's
    too; a rendered instance and frame are PNGs of the image's size.
Install with tests/dicomweb/setup.sh.
"""

import argparse
import copy
import hashlib
import io
import sys

try:
    import pydicom
    from pydicom.encaps import generate_frames
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid
    from dicomweb_client.api import DICOMwebClient
    from PIL import Image
except ImportError as e:  # pragma: no cover - reported to the user
    print(f"cannot import the DICOMweb client ({e}); install it with tests/dicomweb/setup.sh", file=sys.stderr)
    sys.exit(2)

FAILURES = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        FAILURES.append(what)


def value(item, tag):
    attribute = item.get(tag, {})
    values = attribute.get("Value") or [None]
    return values[0]


def frame_size(ds):
    return ds.Rows * ds.Columns * getattr(ds, "SamplesPerPixel", 1) * ds.BitsAllocated // 8


def frame_count(ds):
    return int(getattr(ds, "NumberOfFrames", 1) or 1)


def rle_copy(ds):
    """An RLE Lossless copy of `ds` in a new series of the same study (pydicom's encoder)."""
    c = copy.deepcopy(ds)
    c.compress(RLELossless)
    c.SeriesInstanceUID = generate_uid()
    c.SOPInstanceUID = generate_uid()
    c.file_meta.MediaStorageSOPInstanceUID = c.SOPInstanceUID
    c.SeriesNumber = 99
    b = io.BytesIO()
    pydicom.dcmwrite(b, c)
    return b.getvalue()


def is_compressed(ds):
    return ds.file_meta.TransferSyntaxUID.is_compressed


def stored_frames(ds):
    """The frames as stored: slices of native Pixel Data, or the encapsulated frames."""
    n = frame_count(ds)
    if is_compressed(ds):
        return [f for f in generate_frames(ds.PixelData, number_of_frames=n)]
    size = frame_size(ds)
    return [ds.PixelData[i * size:(i + 1) * size] for i in range(n)]


def run(url, token, files):
    client = DICOMwebClient(url=url, headers={"Authorization": f"Bearer {token}"})
    originals = {}
    datasets = []
    raws = [open(path, "rb").read() for path in files]
    multi_frame = next(pydicom.dcmread(io.BytesIO(r)) for r in raws if b"1.2.840.10008.5.1.4.1.1.3.1" in r[:400])
    uncompressed = {}
    compressed = rle_copy(multi_frame)
    raws.append(compressed)
    for raw in raws:
        ds = pydicom.dcmread(io.BytesIO(raw))
        originals[ds.SOPInstanceUID] = (hashlib.sha256(raw).hexdigest(), ds)
        datasets.append(ds)
    uncompressed[datasets[-1].SOPInstanceUID] = multi_frame

    # STOW-RS
    response = client.store_instances(datasets)
    referenced = {item.ReferencedSOPInstanceUID for item in getattr(response, "ReferencedSOPSequence", [])}
    failed = list(getattr(response, "FailedSOPSequence", []))
    check(referenced == set(originals), f"STOW stored all {len(originals)} instances ({len(referenced)} listed)")
    check(not failed, f"STOW refused nothing ({len(failed)} refused)")

    first = datasets[0]
    studies = {ds.StudyInstanceUID for ds in datasets}

    # QIDO-RS
    found = client.search_for_studies(search_filters={"PatientID": first.PatientID})
    check({value(s, "0020000D") for s in found} == studies, f"QIDO studies by PatientID: {len(found)}")
    dates = sorted({ds.StudyDate for ds in datasets})
    found = client.search_for_studies(search_filters={"StudyDate": f"{dates[0]}-{dates[-1]}"})
    check({value(s, "0020000D") for s in found} == studies, "QIDO studies by StudyDate range")
    found = client.search_for_studies(search_filters={"StudyDate": "19000101-19000102"})
    check(found == [], "QIDO studies by an excluding StudyDate range: none")
    name = str(first.PatientName)
    found = client.search_for_studies(search_filters={"PatientName": name[:3].lower() + "*"})
    check({value(s, "0020000D") for s in found} == studies, f"QIDO studies by wildcard name {name[:3].lower()}*")
    check(all(value(s, "00100010") == {"Alphabetic": name} for s in found), "QIDO answers Patient's Name as PN JSON")
    for modality in sorted({ds.Modality for ds in datasets}):
        expected = {ds.SeriesInstanceUID for ds in datasets if ds.Modality == modality}
        found = client.search_for_series(search_filters={"Modality": modality})
        check({value(s, "0020000E") for s in found} == expected, f"QIDO series by Modality {modality}")

    series = {}
    for ds in datasets:
        series.setdefault((ds.StudyInstanceUID, ds.SeriesInstanceUID), []).append(ds)
    for (study_uid, series_uid), members in sorted(series.items()):
        found = client.search_for_instances(study_instance_uid=study_uid, series_instance_uid=series_uid)
        check({value(i, "00080018") for i in found} == {ds.SOPInstanceUID for ds in members},
              f"QIDO instances of series {series_uid[-12:]}: {len(found)}")

        # WADO-RS metadata
        metadata = client.retrieve_series_metadata(study_uid, series_uid)
        check(len(metadata) == len(members), f"series metadata has {len(metadata)} instance(s)")
        for item in metadata:
            sop = value(item, "00080018")
            ds = originals[sop][1]
            if "PixelData" in ds:
                check("BulkDataURI" in item.get("7FE00010", {}), f"metadata of {sop[-12:]} has a Pixel Data BulkDataURI")
                pixels = b"".join(client.retrieve_bulkdata(item["7FE00010"]["BulkDataURI"]))
                check(pixels == b"".join(stored_frames(ds)), f"Pixel Data bulk data of {sop[-12:]} equals pydicom's")
            check(value(item, "00100020") == ds.PatientID, f"metadata of {sop[-12:]} has the Patient ID")

        for ds in members:
            sop = ds.SOPInstanceUID
            digest, _ = originals[sop]
            # WADO-RS instance: parsed by the client, and bytes identical.
            got = client.retrieve_instance(study_uid, series_uid, sop)
            check(got.SOPInstanceUID == sop, f"retrieve_instance {sop[-12:]} parses")
            instance_url = f"{url}/studies/{study_uid}/series/{series_uid}/instances/{sop}"
            parts = list(client.retrieve_bulkdata(instance_url))
            check(len(parts) == 1 and hashlib.sha256(parts[0]).hexdigest() == digest,
                  f"instance {sop[-12:]} retrieved byte-identical (SHA-256 {digest[:12]})")
            if "PixelData" not in ds:
                continue
            frames = frame_count(ds)
            numbers = list(range(1, frames + 1))
            got_frames = client.retrieve_instance_frames(study_uid, series_uid, sop, frame_numbers=numbers)
            check(got_frames == stored_frames(ds), f"frames {numbers} of {sop[-12:]} equal pydicom's, as stored")
            got_frames = client.retrieve_instance_frames(study_uid, series_uid, sop, frame_numbers=numbers,
                                                         media_types=(("application/octet-stream", "*"),))
            check(got_frames == stored_frames(ds), f"frames of {sop[-12:]} with transfer-syntax=* are as stored")
            if sop in uncompressed:
                native = stored_frames(uncompressed[sop])
                got_frames = client.retrieve_instance_frames(
                    study_uid, series_uid, sop, frame_numbers=numbers,
                    media_types=(("application/octet-stream", ExplicitVRLittleEndian),))
                check(got_frames == native, f"RLE frames of {sop[-12:]} decompressed on request equal the originals")
            png = client.retrieve_instance_rendered(study_uid, series_uid, sop, media_types=("image/png",),
                                                     params={"window": "40,400"})
            image = Image.open(io.BytesIO(png))
            check(image.format == "PNG" and image.size == (ds.Columns, ds.Rows),
                  f"rendered {sop[-12:]} is a {image.size} PNG")
            png = client.retrieve_instance_frames_rendered(study_uid, series_uid, sop, frame_numbers=[frames],
                                                           media_types=("image/png",))
            check(Image.open(io.BytesIO(png)).size == (ds.Columns, ds.Rows), f"rendered frame {frames} of {sop[-12:]}")

    print(f"{len(FAILURES)} failure(s)")
    return 1 if FAILURES else 0


def main(argv):
    if argv == ["--self-check"]:
        print(f"self-check ok: pydicom {pydicom.__version__}")
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="DICOMweb root, e.g. http://127.0.0.1:7201/dicomweb")
    parser.add_argument("--token", required=True, help="bearer token of a user who may store and read the case")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    return run(args.url, args.token, args.files)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
