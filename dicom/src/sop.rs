//! The storage SOP classes and transfer syntaxes Yilian accepts at ingest.

use serde::Serialize;

/// What an instance of a SOP class carries besides its attributes; ingest checks it is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// Pixel Data (7FE0,0010), or Float/Double Float Pixel Data.
    Pixels,
    /// A Waveform Sequence (5400,0100).
    Waveform,
    /// An Encapsulated Document (0042,0011).
    Document,
}

/// A storage SOP class accepted at ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SopClass {
    /// The SOP Class UID.
    pub uid: &'static str,
    /// Its name in PS3.6.
    pub name: &'static str,
    /// What its instances must carry.
    pub payload: Payload,
}

const fn px(uid: &'static str, name: &'static str) -> SopClass {
    SopClass { uid, name, payload: Payload::Pixels }
}

/// Computed Radiography Image Storage.
pub const CR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1";
/// Digital X-Ray Image Storage - For Presentation.
pub const DX_PRESENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1.1";
/// CT Image Storage.
pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
/// Ultrasound Multi-frame Image Storage.
pub const US_MULTIFRAME_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.3.1";
/// 12-lead ECG Waveform Storage.
pub const ECG_12_LEAD_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.9.1.1";

/// Every storage SOP class accepted at ingest.
pub const ACCEPTED_SOP_CLASSES: &[SopClass] = &[
    px(CR_IMAGE_STORAGE, "Computed Radiography Image Storage"),
    px(DX_PRESENTATION_STORAGE, "Digital X-Ray Image Storage - For Presentation"),
    px("1.2.840.10008.5.1.4.1.1.1.1.1", "Digital X-Ray Image Storage - For Processing"),
    px("1.2.840.10008.5.1.4.1.1.1.2", "Digital Mammography X-Ray Image Storage - For Presentation"),
    px("1.2.840.10008.5.1.4.1.1.1.2.1", "Digital Mammography X-Ray Image Storage - For Processing"),
    px("1.2.840.10008.5.1.4.1.1.1.3", "Digital Intra-Oral X-Ray Image Storage - For Presentation"),
    px(CT_IMAGE_STORAGE, "CT Image Storage"),
    px("1.2.840.10008.5.1.4.1.1.2.1", "Enhanced CT Image Storage"),
    px(US_MULTIFRAME_STORAGE, "Ultrasound Multi-frame Image Storage"),
    px("1.2.840.10008.5.1.4.1.1.4", "MR Image Storage"),
    px("1.2.840.10008.5.1.4.1.1.4.1", "Enhanced MR Image Storage"),
    px("1.2.840.10008.5.1.4.1.1.6.1", "Ultrasound Image Storage"),
    px("1.2.840.10008.5.1.4.1.1.7", "Secondary Capture Image Storage"),
    px("1.2.840.10008.5.1.4.1.1.7.1", "Multi-frame Single Bit Secondary Capture Image Storage"),
    px("1.2.840.10008.5.1.4.1.1.7.2", "Multi-frame Grayscale Byte Secondary Capture Image Storage"),
    px("1.2.840.10008.5.1.4.1.1.7.3", "Multi-frame Grayscale Word Secondary Capture Image Storage"),
    px("1.2.840.10008.5.1.4.1.1.7.4", "Multi-frame True Color Secondary Capture Image Storage"),
    SopClass { uid: ECG_12_LEAD_STORAGE, name: "12-lead ECG Waveform Storage", payload: Payload::Waveform },
    SopClass {
        uid: "1.2.840.10008.5.1.4.1.1.9.1.2",
        name: "General ECG Waveform Storage",
        payload: Payload::Waveform,
    },
    px("1.2.840.10008.5.1.4.1.1.12.1", "X-Ray Angiographic Image Storage"),
    px("1.2.840.10008.5.1.4.1.1.12.1.1", "Enhanced XA Image Storage"),
    px("1.2.840.10008.5.1.4.1.1.12.2", "X-Ray Radiofluoroscopic Image Storage"),
    px("1.2.840.10008.5.1.4.1.1.12.2.1", "Enhanced XRF Image Storage"),
    px("1.2.840.10008.5.1.4.1.1.20", "Nuclear Medicine Image Storage"),
    px("1.2.840.10008.5.1.4.1.1.128", "Positron Emission Tomography Image Storage"),
    px("1.2.840.10008.5.1.4.1.1.130", "Enhanced PET Image Storage"),
    SopClass {
        uid: "1.2.840.10008.5.1.4.1.1.104.1",
        name: "Encapsulated PDF Storage",
        payload: Payload::Document,
    },
];

/// The accepted SOP class with this UID, if any.
pub fn sop_class(uid: &str) -> Option<&'static SopClass> {
    ACCEPTED_SOP_CLASSES.iter().find(|c| c.uid == uid)
}

/// How the data set after the file meta group is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetEncoding {
    /// Implicit VR, little endian.
    ImplicitLittle,
    /// Explicit VR, little endian.
    ExplicitLittle,
    /// Explicit VR, big endian (retired, still met in old archives).
    ExplicitBig,
}

/// A transfer syntax accepted at ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferSyntax {
    /// The Transfer Syntax UID.
    pub uid: &'static str,
    /// Its name in PS3.6.
    pub name: &'static str,
    /// How the data set is encoded.
    pub encoding: DatasetEncoding,
    /// Whether Pixel Data is encapsulated (compressed or fragmented) rather than native.
    pub encapsulated: bool,
}

/// Explicit VR Little Endian, the syntax synthetic studies are written in.
pub const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
/// Implicit VR Little Endian, the DICOM default syntax.
pub const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";

const fn native(uid: &'static str, name: &'static str, encoding: DatasetEncoding) -> TransferSyntax {
    TransferSyntax { uid, name, encoding, encapsulated: false }
}

const fn encap(uid: &'static str, name: &'static str) -> TransferSyntax {
    TransferSyntax { uid, name, encoding: DatasetEncoding::ExplicitLittle, encapsulated: true }
}

/// Every transfer syntax accepted at ingest. Files are stored as received; nothing is decoded here.
pub const ACCEPTED_TRANSFER_SYNTAXES: &[TransferSyntax] = &[
    native(IMPLICIT_VR_LITTLE_ENDIAN, "Implicit VR Little Endian", DatasetEncoding::ImplicitLittle),
    native(EXPLICIT_VR_LITTLE_ENDIAN, "Explicit VR Little Endian", DatasetEncoding::ExplicitLittle),
    native("1.2.840.10008.1.2.2", "Explicit VR Big Endian", DatasetEncoding::ExplicitBig),
    encap("1.2.840.10008.1.2.1.98", "Encapsulated Uncompressed Explicit VR Little Endian"),
    encap("1.2.840.10008.1.2.5", "RLE Lossless"),
    encap("1.2.840.10008.1.2.8.1", "Deflated Image Frame Compression"),
    encap("1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)"),
    encap("1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)"),
    encap("1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical (Process 14)"),
    encap("1.2.840.10008.1.2.4.70", "JPEG Lossless, Non-Hierarchical, First-Order Prediction"),
    encap("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless Image Compression"),
    encap("1.2.840.10008.1.2.4.81", "JPEG-LS Lossy (Near-Lossless) Image Compression"),
    encap("1.2.840.10008.1.2.4.90", "JPEG 2000 Image Compression (Lossless Only)"),
    encap("1.2.840.10008.1.2.4.91", "JPEG 2000 Image Compression"),
    encap("1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)"),
    encap("1.2.840.10008.1.2.4.93", "JPEG 2000 Part 2 Multi-component Image Compression"),
    encap("1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000 Image Compression (Lossless Only)"),
    encap("1.2.840.10008.1.2.4.202", "High-Throughput JPEG 2000 with RPCL Options (Lossless Only)"),
    encap("1.2.840.10008.1.2.4.203", "High-Throughput JPEG 2000 Image Compression"),
    encap("1.2.840.10008.1.2.4.110", "JPEG XL Lossless"),
    encap("1.2.840.10008.1.2.4.111", "JPEG XL JPEG Recompression"),
    encap("1.2.840.10008.1.2.4.112", "JPEG XL"),
    encap("1.2.840.10008.1.2.4.100", "MPEG2 Main Profile @ Main Level"),
    encap("1.2.840.10008.1.2.4.100.1", "Fragmentable MPEG2 Main Profile @ Main Level"),
    encap("1.2.840.10008.1.2.4.101", "MPEG2 Main Profile @ High Level"),
    encap("1.2.840.10008.1.2.4.101.1", "Fragmentable MPEG2 Main Profile @ High Level"),
    encap("1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 High Profile / Level 4.1"),
    encap("1.2.840.10008.1.2.4.102.1", "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.1"),
    encap("1.2.840.10008.1.2.4.103", "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1"),
    encap("1.2.840.10008.1.2.4.103.1", "Fragmentable MPEG-4 AVC/H.264 BD-compatible High Profile"),
    encap("1.2.840.10008.1.2.4.104", "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video"),
    encap("1.2.840.10008.1.2.4.104.1", "Fragmentable MPEG-4 AVC/H.264 High Profile For 2D Video"),
    encap("1.2.840.10008.1.2.4.105", "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video"),
    encap("1.2.840.10008.1.2.4.105.1", "Fragmentable MPEG-4 AVC/H.264 High Profile For 3D Video"),
    encap("1.2.840.10008.1.2.4.106", "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2"),
    encap("1.2.840.10008.1.2.4.106.1", "Fragmentable MPEG-4 AVC/H.264 Stereo High Profile"),
    encap("1.2.840.10008.1.2.4.107", "HEVC/H.265 Main Profile / Level 5.1"),
    encap("1.2.840.10008.1.2.4.108", "HEVC/H.265 Main 10 Profile / Level 5.1"),
];

/// The accepted transfer syntax with this UID, or why it is refused.
pub fn transfer_syntax(uid: &str) -> Result<&'static TransferSyntax, &'static str> {
    if let Some(ts) = ACCEPTED_TRANSFER_SYNTAXES.iter().find(|t| t.uid == uid) {
        return Ok(ts);
    }
    Err(match uid {
        "1.2.840.10008.1.2.1.99" => {
            "Deflated Explicit VR Little Endian: the whole data set is deflated, which is not accepted"
        }
        "1.2.840.10008.1.2.4.94"
        | "1.2.840.10008.1.2.4.95"
        | "1.2.840.10008.1.2.4.204"
        | "1.2.840.10008.1.2.4.205" => "JPIP referenced: the pixels are not in the file but on a JPIP server",
        _ if uid.starts_with("1.2.840.10008.1.2") => {
            "a DICOM transfer syntax that is retired or not supported here"
        }
        _ => "not a known DICOM transfer syntax",
    })
}
