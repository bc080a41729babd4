//! `yilian study`: the studies a case carries, their manifests, and the explicit commit.

use super::referral::{print_outcome, Conn};
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;
use yilian_referral::{Outcome, StudyManifest};

/// Study subcommands.
#[derive(Debug, Subcommand)]
pub enum StudyCmd {
    /// The studies attached to a case: instances, bytes, committed or not, complete copies.
    List {
        /// The case id.
        #[arg(long)]
        case: String,
    },
    /// One study's manifest as JSON (UIDs, sizes, SHA-256, holders per instance).
    Show {
        /// Study Instance UID.
        uid: String,
    },
    /// Declare a study complete; no instance can be added afterwards.
    Commit {
        /// Study Instance UID.
        uid: String,
    },
    /// Write a study's instances as Part-10 files into a directory (e.g. for teaching).
    Export {
        /// Study Instance UID.
        uid: String,
        /// Directory to write `instance-NNNN.dcm` files into (created if needed).
        #[arg(long)]
        out: PathBuf,
        /// De-identify (DICOM PS3.15 Basic Profile, UIDs replaced with the region key).
        #[arg(long)]
        deidentify: bool,
    },
}

/// Run a study subcommand.
pub async fn run(conn: &Conn, cmd: StudyCmd) -> anyhow::Result<()> {
    let api = conn.client()?;
    match cmd {
        StudyCmd::List { case } => {
            let studies: Vec<StudyManifest> =
                api.get(&conn.read(&format!("/v1/cases/{case}/studies"))).await?;
            if studies.is_empty() {
                println!("case {case} has no studies yet");
            }
            for s in studies {
                let holders: Vec<String> = s.complete_holders().iter().map(u64::to_string).collect();
                println!(
                    "{}  {} instance(s)  {} bytes  {}  complete at node(s) [{}]{}",
                    s.study_uid,
                    s.instances.len(),
                    s.total_bytes(),
                    if s.is_committed() { "committed" } else { "open" },
                    holders.join(", "),
                    s.derived_from.map(|d| format!("  de-identified copy of {d}")).unwrap_or_default()
                );
            }
        }
        StudyCmd::Show { uid } => {
            let s: StudyManifest = api.get(&conn.read(&format!("/v1/studies/{uid}"))).await?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        StudyCmd::Commit { uid } => {
            let out: Outcome = api.post(&format!("/v1/studies/{uid}/commit"), &serde_json::json!({})).await?;
            print_outcome(out)?;
        }
        StudyCmd::Export { uid, out, deidentify } => {
            let s: StudyManifest = api.get(&conn.read(&format!("/v1/studies/{uid}"))).await?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let query = if deidentify { "?deidentify=true" } else { "" };
            for (n, sop) in s.instances.keys().enumerate() {
                let bytes = api.get_bytes(&format!("/v1/studies/{uid}/instances/{sop}/file{query}")).await?;
                let file = out.join(format!("instance-{:04}.dcm", n + 1));
                std::fs::write(&file, bytes).with_context(|| format!("writing {}", file.display()))?;
            }
            println!(
                "exported {} instance(s){} to {}",
                s.instances.len(),
                if deidentify { " de-identified" } else { "" },
                out.display()
            );
        }
    }
    Ok(())
}
