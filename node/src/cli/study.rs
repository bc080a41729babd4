//! `yilian study`: the studies a case carries, their manifests, and the explicit commit.

use super::referral::{print_outcome, Conn};
use clap::Subcommand;
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
    }
    Ok(())
}
