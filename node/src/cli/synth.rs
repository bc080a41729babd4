//! `yilian synth`: write synthetic DICOM studies (CT, DR, ultrasound, 12-lead ECG) for demos and
//! tests.

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use yilian_dicom::synth::{generate, SynthKind, SynthOptions};

/// Which synthetic study to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum KindArg {
    /// CT head series (CT Image Storage, 512×512 16-bit slices).
    Ct,
    /// Chest PA radiograph (Digital X-Ray For Presentation, 2048×2048, 12 bits).
    Dr,
    /// Abdominal ultrasound cine loop (US Multi-frame, 20 frames of 640×480, 8-bit).
    Us,
    /// Resting 12-lead ECG (12-lead ECG Waveform Storage, 500 Hz, 10 s).
    Ecg,
    /// All four, one study each for the same patient.
    All,
}

/// Arguments of `yilian synth`.
#[derive(Debug, Args)]
pub(crate) struct SynthArgs {
    /// Output directory; files go to <OUT>/<kind>/NNNN.dcm.
    #[arg(long)]
    out: PathBuf,
    /// Which study to write.
    #[arg(long, value_enum, default_value = "all")]
    kind: KindArg,
    /// Number of CT slices (1-2000).
    #[arg(long, default_value_t = 64)]
    slices: u32,
    /// Patient's Name in DICOM PN form, e.g. "WANG^WEI" (default: derived from the seed).
    #[arg(long)]
    patient_name: Option<String>,
    /// Patient ID (default: derived from the seed).
    #[arg(long)]
    patient_id: Option<String>,
    /// Accession Number for every study, e.g. the case id the studies belong to (C-STORE and
    /// STOW-RS attach instances to the case named here).
    #[arg(long)]
    accession: Option<String>,
    /// Seed; the same seed and options write byte-identical files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Write the studies and print what was written.
pub(crate) async fn run(args: SynthArgs) -> anyhow::Result<()> {
    let kinds = match args.kind {
        KindArg::Ct => vec![SynthKind::Ct],
        KindArg::Dr => vec![SynthKind::Dr],
        KindArg::Us => vec![SynthKind::Us],
        KindArg::Ecg => vec![SynthKind::Ecg],
        KindArg::All => SynthKind::ALL.to_vec(),
    };
    let opts = SynthOptions {
        seed: args.seed,
        patient_name: args.patient_name,
        patient_id: args.patient_id,
        ct_slices: args.slices,
        accession: args.accession,
        ..SynthOptions::default()
    };
    let out = args.out;
    // The error's message already names its cause; print it once, not again as a source chain.
    let summary = tokio::task::spawn_blocking(move || generate(&out, &kinds, &opts))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{summary}");
    Ok(())
}
