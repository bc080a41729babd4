//! Referral subcommands: cases, worklists, facilities, specialists, transfers, policies, audit
//! and figures. Each talks to one node's HTTP API as the logged-in user.

use super::Target;
use crate::client::ApiClient;
use crate::patient_key::with_check_character;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use yilian_referral::{Case, Outcome, Transfer};

/// Which node to talk to, as whom (the logged-in user or `--token`).
#[derive(Debug, Args)]
pub struct Conn {
    #[command(flatten)]
    target: Target,
    /// Read this node's state without asking the leader (may lag).
    #[arg(long, global = true)]
    stale: bool,
}

impl Conn {
    pub(crate) fn client(&self) -> anyhow::Result<ApiClient> {
        self.target.client()
    }

    pub(crate) fn read(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        if self.stale {
            format!("{path}{sep}consistency=stale")
        } else {
            path.to_owned()
        }
    }
}

/// The referral subcommand groups.
#[derive(Debug, Subcommand)]
pub enum ReferralCmd {
    /// Submit, list, show and act on cases.
    Case {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        command: CaseCmd,
    },
    /// A specialist's worklist, most urgent first.
    Worklist {
        #[command(flatten)]
        conn: Conn,
        /// The specialist's id.
        specialist: String,
    },
    /// Facilities: list, show, declare capacity, mark devices in or out of service.
    Facility {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        command: FacilityCmd,
    },
    /// Specialists: list, show, go on or off shift.
    Specialist {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        command: SpecialistCmd,
    },
    /// Imaging studies attached to cases: list, show manifests, commit.
    Study {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        command: super::study::StudyCmd,
    },
    /// Patient transfers up and down the tiers.
    Transfer {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        command: TransferCmd,
    },
    /// A region's SLA clocks and routing policy.
    Policy {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        command: PolicyCmd,
    },
    /// The audit trail: list, verify the hash chain, export as FHIR AuditEvent.
    Audit {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        command: AuditCmd,
    },
    /// Figures for health bureaus (JSON), or the Prometheus metrics with --prometheus.
    Figures {
        #[command(flatten)]
        conn: Conn,
        /// Print the Prometheus exposition instead.
        #[arg(long)]
        prometheus: bool,
    },
}

/// `yilian case ...`
#[derive(Debug, Subcommand)]
pub enum CaseCmd {
    /// Submit a case (as clinic staff of the origin facility).
    Submit {
        /// The patient's 18-character resident identity number (hashed on the node, never stored).
        #[arg(long)]
        patient_id: String,
        /// Chief complaint.
        #[arg(long)]
        complaint: String,
        /// Specialty needed, e.g. cardiology, neurology, radiology.
        #[arg(long)]
        specialty: String,
        /// routine, urgent, asap or stat.
        #[arg(long, default_value = "routine")]
        priority: String,
        /// Green channel: stroke or chest_pain (requires --priority stat).
        #[arg(long)]
        green_channel: Option<String>,
        /// Modality to read: DR, CT, MR, US or ECG.
        #[arg(long)]
        modality: Option<String>,
        /// Submitting facility (default: the actor's facility).
        #[arg(long)]
        origin: Option<String>,
        /// Preferred receiving facility.
        #[arg(long)]
        target: Option<String>,
        /// Keep it as a draft.
        #[arg(long)]
        draft: bool,
    },
    /// List cases, most urgent first.
    List {
        /// FHIR status code, e.g. requested, in-progress.
        #[arg(long)]
        status: Option<String>,
        /// Owner (offered or owning specialist).
        #[arg(long)]
        owner: Option<String>,
        /// routine, urgent, asap or stat.
        #[arg(long)]
        priority: Option<String>,
        /// Requesting facility.
        #[arg(long)]
        origin: Option<String>,
        /// Only cases nobody eligible could be found for.
        #[arg(long)]
        unrouted: bool,
    },
    /// Show one case as JSON.
    Show {
        /// Case id, e.g. C00000001.
        id: String,
    },
    /// Act on a case: submit, receive, accept, decline, reject, start, hold, resume, report,
    /// complete, fail, cancel, enter-in-error, reopen, hand-off, assign.
    Act {
        /// Case id.
        id: String,
        /// The action.
        action: String,
        /// Why (required by reject, hold, fail, cancel, enter-in-error, reopen, hand-off).
        #[arg(long)]
        reason: Option<String>,
        /// Report text (for report).
        #[arg(long)]
        text: Option<String>,
        /// Specialist to hand off or assign to.
        #[arg(long)]
        to: Option<String>,
    },
    /// Open a case outside the access rules for a limited time (read-only; audited; needs a reason).
    BreakGlass {
        /// Case id.
        id: String,
        /// Why the patient needs you now (required).
        #[arg(long)]
        reason: String,
        /// For how long, in minutes (default 60, at most 1440).
        #[arg(long, default_value_t = 60)]
        minutes: u32,
    },
    /// Print a valid example resident ID from a 17-digit prefix (for training and demos).
    ExampleId {
        /// 17 digits.
        prefix: String,
    },
}

/// `yilian facility ...`
#[derive(Debug, Subcommand)]
pub enum FacilityCmd {
    /// List facilities.
    List,
    /// Show one facility with its devices and declared capacity.
    Show {
        /// Facility id.
        id: String,
    },
    /// Declare capacity for a service: yes, no or waitlist:<days>.
    Capacity {
        /// Facility id.
        id: String,
        /// Service, e.g. rehab-stroke.
        service: String,
        /// yes, no or waitlist:<days>.
        capacity: String,
    },
    /// Mark a device out of service (open examinations move to the nearest neighbour) or back.
    Device {
        /// Facility id.
        id: String,
        /// DR, CT, MR, US or ECG.
        modality: String,
        /// `down` or `up`.
        state: String,
        /// Why it is down.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Which facilities can take a patient for a service, nearest to --near first.
    Search {
        /// Service, e.g. rehab-stroke.
        service: String,
        /// Reference facility.
        #[arg(long)]
        near: String,
    },
}

/// `yilian specialist ...`
#[derive(Debug, Subcommand)]
pub enum SpecialistCmd {
    /// List specialists.
    List,
    /// Show one specialist.
    Show {
        /// Specialist id.
        id: String,
    },
    /// Go on shift (starts a new shift) or off.
    Shift {
        /// Specialist id.
        id: String,
        /// `on` or `off`.
        state: String,
    },
}

/// `yilian transfer ...`
#[derive(Debug, Subcommand)]
pub enum TransferCmd {
    /// Request a transfer of the case's patient.
    Request {
        /// Case id.
        #[arg(long)]
        case: String,
        /// `up` or `down`.
        #[arg(long)]
        direction: String,
        /// Receiving facility.
        #[arg(long)]
        to: String,
        /// Service needed, e.g. cardiology-ward, rehab-stroke.
        #[arg(long)]
        service: String,
        /// Sending facility (default: where the patient is).
        #[arg(long)]
        from: Option<String>,
        /// Follow-up task as `what:days`, repeatable (down-referrals).
        #[arg(long = "follow-up")]
        follow_up: Vec<String>,
        /// Requested admission slot (up-referrals), RFC 3339, e.g. 2026-11-25T09:00:00+08:00.
        #[arg(long)]
        slot: Option<String>,
    },
    /// List transfers.
    List {
        /// Only this case's.
        #[arg(long)]
        case: Option<String>,
        /// Only those from or to this facility.
        #[arg(long)]
        facility: Option<String>,
    },
    /// Show one transfer.
    Show {
        /// Transfer id.
        id: String,
    },
    /// accept, reject, cancel or complete a transfer.
    Act {
        /// Transfer id.
        id: String,
        /// The action.
        action: String,
        /// Reject because the facility is at capacity.
        #[arg(long)]
        at_capacity: bool,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// `yilian audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Print events, oldest first (one JSON object per line).
    List {
        /// Only events of this case.
        #[arg(long)]
        case: Option<String>,
        /// Only events after this sequence number.
        #[arg(long)]
        after: Option<u64>,
    },
    /// Verify the hash chain: on a running node (--api), or offline in a stopped node's data
    /// directory (--data-dir), which also catches edits made directly to the database.
    Verify {
        /// A stopped node's data_dir (holding raft.redb).
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
    },
    /// List break-glass openings for review (auditor or admin), one JSON object per line.
    BreakGlass,
    /// Write the trail as a FHIR R4 Bundle of AuditEvent resources.
    Export {
        /// Output file.
        #[arg(long)]
        out: std::path::PathBuf,
        /// Only events of this case.
        #[arg(long)]
        case: Option<String>,
    },
}

/// `yilian policy ...`
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Show the policy in force for a region.
    Show {
        /// Region.
        region: String,
    },
    /// Set a region's policy from a JSON file (see README for the shape).
    Set {
        /// Region.
        region: String,
        /// JSON file.
        #[arg(long)]
        file: std::path::PathBuf,
    },
}

/// Run a referral subcommand.
pub async fn run(cmd: ReferralCmd) -> anyhow::Result<()> {
    match cmd {
        ReferralCmd::Case { conn, command } => case(&conn, command).await,
        ReferralCmd::Worklist { conn, specialist } => {
            let cases: Vec<Case> =
                conn.client()?.get(&conn.read(&format!("/v1/specialists/{specialist}/worklist"))).await?;
            print_cases(&cases);
            Ok(())
        }
        ReferralCmd::Facility { conn, command } => facility(&conn, command).await,
        ReferralCmd::Specialist { conn, command } => specialist(&conn, command).await,
        ReferralCmd::Transfer { conn, command } => transfer(&conn, command).await,
        ReferralCmd::Study { conn, command } => super::study::run(&conn, command).await,
        ReferralCmd::Policy { conn, command } => match command {
            PolicyCmd::Show { region } => {
                print_json(&conn.client()?.get::<Value>(&conn.read(&format!("/v1/policies/{region}"))).await?)
            }
            PolicyCmd::Set { region, file } => {
                let text =
                    std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
                let body: Value =
                    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
                print_outcome(conn.client()?.put(&format!("/v1/policies/{region}"), &body).await?)
            }
        },
        ReferralCmd::Audit { conn, command } => audit(&conn, command).await,
        ReferralCmd::Figures { conn, prometheus } => {
            if prometheus {
                print!("{}", conn.client()?.get_text(&conn.read("/metrics")).await?);
                Ok(())
            } else {
                print_json(&conn.client()?.get::<Value>(&conn.read("/v1/figures")).await?)
            }
        }
    }
}

async fn audit(conn: &Conn, cmd: AuditCmd) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::List { case, after } => {
            let path = with_query("/v1/audit", &[("case", case), ("after", after.map(|a| a.to_string()))])?;
            let events: Vec<Value> = conn.client()?.get(&conn.read(&path)).await?;
            for e in events {
                println!("{e}");
            }
            Ok(())
        }
        AuditCmd::BreakGlass => {
            let grants: Vec<Value> = conn.client()?.get(&conn.read("/v1/break-glass")).await?;
            for g in grants {
                println!("{g}");
            }
            Ok(())
        }
        AuditCmd::Verify { data_dir: Some(dir) } => {
            let state = yilian_consensus::store::load_state(&dir)?;
            let n = yilian_referral::verify_chain(state.region.audit_events())
                .with_context(|| format!("the audit trail in {} does not verify", dir.display()))?;
            println!("audit chain intact: {n} events verified in {}", dir.display());
            Ok(())
        }
        AuditCmd::Verify { data_dir: None } => {
            let v: Value = conn.client()?.get(&conn.read("/v1/audit/verify")).await?;
            println!("audit chain intact: {} events verified, head {}", v["verified"], v["head"]);
            Ok(())
        }
        AuditCmd::Export { out, case } => {
            let path = with_query("/fhir/AuditEvent", &[("entity", case.map(|c| format!("Task/{c}")))])?;
            let bundle: Value = conn.client()?.get(&conn.read(&path)).await?;
            let text = serde_json::to_string_pretty(&bundle)?;
            std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {} audit events to {}", bundle["total"], out.display());
            Ok(())
        }
    }
}

async fn case(conn: &Conn, cmd: CaseCmd) -> anyhow::Result<()> {
    if let CaseCmd::ExampleId { prefix } = &cmd {
        return match with_check_character(prefix) {
            Some(id) => {
                println!("{id}");
                Ok(())
            }
            None => bail!("give exactly 17 digits"),
        };
    }
    let api = conn.client()?;
    match cmd {
        CaseCmd::Submit {
            patient_id,
            complaint,
            specialty,
            priority,
            green_channel,
            modality,
            origin,
            target,
            draft,
        } => {
            let body = json!({
                "patient_id": patient_id, "complaint": complaint, "specialty": specialty,
                "priority": priority, "green_channel": green_channel, "modality": modality,
                "origin": origin, "target": target, "draft": draft,
            });
            print_outcome(api.post("/v1/cases", &body).await?)
        }
        CaseCmd::List { status, owner, priority, origin, unrouted } => {
            let unrouted = unrouted.then(|| "true".to_owned());
            let params = [
                ("status", status),
                ("owner", owner),
                ("priority", priority),
                ("origin", origin),
                ("unrouted", unrouted),
            ];
            let cases: Vec<Case> = api.get(&conn.read(&with_query("/v1/cases", &params)?)).await?;
            print_cases(&cases);
            Ok(())
        }
        CaseCmd::Show { id } => print_json(&api.get::<Value>(&conn.read(&format!("/v1/cases/{id}"))).await?),
        CaseCmd::Act { id, action, reason, text, to } => {
            let body = json!({ "reason": reason, "text": text, "to": to });
            print_outcome(api.post(&format!("/v1/cases/{id}/{action}"), &body).await?)
        }
        CaseCmd::BreakGlass { id, reason, minutes } => {
            let body = json!({ "reason": reason, "minutes": minutes });
            print_outcome(api.post(&format!("/v1/cases/{id}/break-glass"), &body).await?)
        }
        CaseCmd::ExampleId { .. } => Ok(()),
    }
}

async fn facility(conn: &Conn, cmd: FacilityCmd) -> anyhow::Result<()> {
    let api = conn.client()?;
    match cmd {
        FacilityCmd::List => print_json(&api.get::<Value>(&conn.read("/v1/facilities")).await?),
        FacilityCmd::Show { id } => {
            print_json(&api.get::<Value>(&conn.read(&format!("/v1/facilities/{id}"))).await?)
        }
        FacilityCmd::Capacity { id, service, capacity } => {
            let capacity = match capacity.as_str() {
                "yes" => json!("yes"),
                "no" => json!("no"),
                other => match other.strip_prefix("waitlist:").and_then(|d| d.parse::<u16>().ok()) {
                    Some(days) => json!({ "waitlist": { "days": days } }),
                    None => bail!("capacity must be yes, no or waitlist:<days>"),
                },
            };
            print_outcome(
                api.put(&format!("/v1/facilities/{id}/capacity/{service}"), &json!({ "capacity": capacity }))
                    .await?,
            )
        }
        FacilityCmd::Device { id, modality, state, reason } => {
            let in_service = match state.as_str() {
                "up" => true,
                "down" => false,
                _ => bail!("state must be `up` or `down`"),
            };
            let body = json!({ "in_service": in_service, "reason": reason });
            print_outcome(api.put(&format!("/v1/facilities/{id}/devices/{modality}"), &body).await?)
        }
        FacilityCmd::Search { service, near } => {
            let path = with_query("/v1/capacity", &[("service", Some(service)), ("near", Some(near))])?;
            print_json(&api.get::<Value>(&conn.read(&path)).await?)
        }
    }
}

async fn specialist(conn: &Conn, cmd: SpecialistCmd) -> anyhow::Result<()> {
    let api = conn.client()?;
    match cmd {
        SpecialistCmd::List => print_json(&api.get::<Value>(&conn.read("/v1/specialists")).await?),
        SpecialistCmd::Show { id } => {
            print_json(&api.get::<Value>(&conn.read(&format!("/v1/specialists/{id}"))).await?)
        }
        SpecialistCmd::Shift { id, state } => {
            let on_shift = match state.as_str() {
                "on" => true,
                "off" => false,
                _ => bail!("state must be `on` or `off`"),
            };
            print_outcome(
                api.put(&format!("/v1/specialists/{id}/shift"), &json!({ "on_shift": on_shift })).await?,
            )
        }
    }
}

async fn transfer(conn: &Conn, cmd: TransferCmd) -> anyhow::Result<()> {
    let api = conn.client()?;
    match cmd {
        TransferCmd::Request { case, direction, to, service, from, follow_up, slot } => {
            let slot_ms = slot.as_deref().map(parse_slot).transpose()?;
            let mut tasks = Vec::new();
            for f in follow_up {
                let Some((what, days)) = f.rsplit_once(':') else {
                    bail!("--follow-up must be what:days, got `{f}`")
                };
                let days: u16 = days.parse().with_context(|| format!("`{days}` is not a number of days"))?;
                tasks.push(json!({ "what": what, "due_after_days": days }));
            }
            let body = json!({
                "case": case, "direction": direction, "to": to, "service": service,
                "from": from, "follow_up": tasks, "slot_ms": slot_ms,
            });
            print_outcome(api.post("/v1/transfers", &body).await?)
        }
        TransferCmd::List { case, facility } => {
            let path = with_query("/v1/transfers", &[("case", case), ("facility", facility)])?;
            let transfers: Vec<Transfer> = api.get(&conn.read(&path)).await?;
            println!(
                "{:<10} {:<10} {:<5} {:<10} {:<10} {:<18} STATUS",
                "TRANSFER", "CASE", "DIR", "FROM", "TO", "SERVICE"
            );
            for t in transfers {
                println!(
                    "{:<10} {:<10} {:<5} {:<10} {:<10} {:<18} {}",
                    t.id.0,
                    t.case.0,
                    format!("{:?}", t.direction).to_lowercase(),
                    t.from.0,
                    t.to.0,
                    t.service,
                    t.status
                );
            }
            Ok(())
        }
        TransferCmd::Show { id } => {
            print_json(&api.get::<Value>(&conn.read(&format!("/v1/transfers/{id}"))).await?)
        }
        TransferCmd::Act { id, action, at_capacity, reason } => {
            let body = json!({ "at_capacity": at_capacity, "reason": reason });
            print_outcome(api.post(&format!("/v1/transfers/{id}/{action}"), &body).await?)
        }
    }
}

fn print_cases(cases: &[Case]) {
    println!(
        "{:<10} {:<8} {:<17} {:<10} {:<14} {:<12} COMPLAINT",
        "CASE", "PRIORITY", "STATUS", "ORIGIN", "OWNER", "SPECIALTY"
    );
    for c in cases {
        let owner = match (&c.owner, c.is_unrouted()) {
            (Some(o), _) => o.0.clone(),
            (None, true) => "UNROUTED".to_owned(),
            (None, false) => "-".to_owned(),
        };
        println!(
            "{:<10} {:<8} {:<17} {:<10} {:<14} {:<12} {}",
            c.id.0,
            c.priority.code(),
            c.status.code(),
            c.origin.0,
            owner,
            c.specialty,
            c.complaint
        );
    }
}

pub(crate) fn print_outcome(outcome: Outcome) -> anyhow::Result<()> {
    match outcome {
        Outcome::Case { case_id, status, owner, unrouted } => {
            let owner = owner.map_or_else(|| if unrouted { "UNROUTED".into() } else { "-".into() }, |o| o.0);
            println!("{case_id} {status} owner={owner}");
        }
        Outcome::Transfer { transfer_id, status, suggestion } => match suggestion {
            Some(s) => println!("{transfer_id} {status} (nearest facility that can take the patient: {s})"),
            None => println!("{transfer_id} {status}"),
        },
        Outcome::Registered { id } => println!("registered {id}"),
        Outcome::Updated { what, cases_moved } if cases_moved.is_empty() => println!("{what}"),
        Outcome::Updated { what, cases_moved } => {
            let moved: Vec<_> = cases_moved.iter().map(|c| c.0.as_str()).collect();
            println!("{what}; cases moved: {}", moved.join(", "));
        }
        Outcome::Study { study_uid, case_id, instances, committed, holders } => {
            let state = if committed { "committed" } else { "open" };
            let holders: Vec<_> = holders.iter().map(u64::to_string).collect();
            println!(
                "study {study_uid} of {case_id}: {instances} instance(s), {state}, complete at node(s) [{}]",
                holders.join(", ")
            );
        }
        Outcome::Tick { consequences } => println!("{consequences} deadline consequences committed"),
        Outcome::BreakGlass { grant, until_ms } => {
            println!(
                "break-glass grant {grant} open until {until_ms} ms since the epoch (read-only, audited)"
            )
        }
        Outcome::Recorded { last_seq } => println!("recorded up to audit event {last_seq}"),
    }
    Ok(())
}

/// Milliseconds since the Unix epoch of an RFC 3339 date-time.
fn parse_slot(text: &str) -> anyhow::Result<u64> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).with_context(
        || format!("--slot `{text}` is not an RFC 3339 date-time such as 2026-11-25T09:00:00+08:00"),
    )?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).context("--slot must be after 1970")
}

/// `path` with the set parameters as an encoded query string.
fn with_query(path: &str, params: &[(&str, Option<String>)]) -> anyhow::Result<String> {
    let set: Vec<(&str, &str)> = params.iter().filter_map(|(k, v)| v.as_deref().map(|v| (*k, v))).collect();
    Ok(format!("{path}?{}", serde_urlencoded::to_string(set).context("encoding the query")?))
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
