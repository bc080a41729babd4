//! Imaging and signal modalities a case can need and a reader can be privileged for.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A modality, spelled as in DICOM where one exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Modality {
    /// Digital radiography (DICOM DX/CR).
    Dr,
    /// Computed tomography.
    Ct,
    /// Magnetic resonance.
    Mr,
    /// Ultrasound.
    Us,
    /// Electrocardiogram.
    Ecg,
}

impl Modality {
    /// Reading workload units, used to balance routine work per shift (CT and MR weigh most).
    pub fn workload_units(self) -> u32 {
        match self {
            Modality::Ct | Modality::Mr => 3,
            Modality::Us => 2,
            Modality::Dr | Modality::Ecg => 1,
        }
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Modality::Dr => "DR",
            Modality::Ct => "CT",
            Modality::Mr => "MR",
            Modality::Us => "US",
            Modality::Ecg => "ECG",
        })
    }
}
