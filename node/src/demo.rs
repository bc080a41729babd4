//! `yilian demo`: a local 3-node cluster on loopback with a seeded demo region.
//!
//! Everything lives under one directory (certificates, configs, data, logs). Running it again
//! reuses that directory and resumes from disk; seeding happens only on an empty region.

use crate::api::NodeView;
use crate::bootstrap;
use crate::client::ApiClient;
use crate::patient_key::with_check_character;
use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use yilian_consensus::pki;
use yilian_dicom::synth::{generate, SynthKind, SynthOptions};
use yilian_referral::Outcome;

/// Number of nodes the demo runs.
const NODES: u16 = 3;
/// How long to wait for nodes to come up and elect a leader.
const STARTUP_WAIT: Duration = Duration::from_secs(60);

/// Options of `yilian demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for certificates, node configs, data and logs (reused on the next run).
    #[arg(long, default_value = "demo-cluster")]
    dir: PathBuf,
    /// Node i listens for QUIC on UDP base+i and for HTTP on TCP base+100+i.
    #[arg(long, default_value_t = 7100)]
    base_port: u16,
}

struct DemoNode {
    id: u16,
    raft_addr: String,
    api_addr: String,
    config: PathBuf,
    log: PathBuf,
}

/// Run the demo until Ctrl-C.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize().context("resolving the demo directory")?;
    let nodes = prepare(&dir, args.base_port)?;
    let mut children = Vec::new();
    for n in &nodes {
        children.push(spawn(n)?);
    }
    let outcome = tokio::select! {
        r = bring_up(&dir, &nodes) => r,
        _ = crate::runtime::shutdown_signal() => Ok(()),
    };
    if let Err(e) = outcome {
        eprintln!("demo failed to start: {e:#}");
        stop(&mut children).await;
        return Err(e);
    }
    tokio::select! {
        _ = crate::runtime::shutdown_signal() => println!("\nstopping the demo cluster..."),
        exited = first_exit(&mut children) => println!("a node exited ({exited}); stopping the others..."),
    }
    stop(&mut children).await;
    println!("all nodes stopped; data kept in {} (run the same command to resume)", dir.display());
    Ok(())
}

/// Create certificates and node configs that do not exist yet.
fn prepare(dir: &Path, base_port: u16) -> anyhow::Result<Vec<DemoNode>> {
    let certs = dir.join("certs");
    if !certs.join(pki::CA_CERT).exists() {
        pki::init_ca(&certs, "demo region")?;
    }
    pki::init_patient_secret(&certs)?;
    pki::init_auth_secret(&certs)?;
    std::fs::create_dir_all(dir.join("logs"))?;
    let mut nodes = Vec::new();
    for id in 1..=NODES {
        let n = DemoNode {
            id,
            raft_addr: format!("127.0.0.1:{}", base_port + id),
            api_addr: format!("127.0.0.1:{}", base_port + 100 + id),
            config: dir.join(format!("node-{id}.toml")),
            log: dir.join("logs").join(format!("node-{id}.log")),
        };
        if !certs.join(format!("node-{id}.crt")).exists() {
            pki::issue_node_cert(&certs, u64::from(id), &n.raft_addr, &certs)?;
        }
        if !n.config.exists() {
            let toml = format!(
                "# Demo node {id}; every key is explained in deploy/node.example.toml\n\
                 node_id = {id}\ndata_dir = \"data/node-{id}\"\nraft_addr = \"{}\"\napi_addr = \"{}\"\n\n\
                 [tls]\nca_cert = \"certs/ca.crt\"\ncert = \"certs/node-{id}.crt\"\nkey = \"certs/node-{id}.key\"\n\n\
                 [imaging]\nserves = {}\n",
                n.raft_addr,
                n.api_addr,
                serves_of(id)
            );
            std::fs::write(&n.config, toml).with_context(|| format!("writing {}", n.config.display()))?;
        }
        nodes.push(n);
    }
    Ok(nodes)
}

/// The facilities whose readers demo node `id` serves: node 1 takes the township clinics'
/// images, node 2 prefetches for the county hospitals, node 3 for the provincial hospital.
fn serves_of(id: u16) -> &'static str {
    match id {
        1 => r#"["TS-LJ", "TS-HS", "TS-QS", "TS-DW"]"#,
        2 => r#"["CTY-AN", "CTY-PY"]"#,
        _ => r#"["PROV-SX"]"#,
    }
}

fn spawn(n: &DemoNode) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("locating the yilian binary")?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&n.log)?;
    Command::new(exe)
        .args(["node", "run", "--config"])
        .arg(&n.config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting node {}", n.id))
}

/// Wait for the nodes, form the cluster if new, seed if empty, and print where to look.
async fn bring_up(dir: &Path, nodes: &[DemoNode]) -> anyhow::Result<()> {
    let deadline = Instant::now() + STARTUP_WAIT;
    let secret = dir.join("certs").join(pki::AUTH_SECRET);
    let bootstrap = ApiClient::new(&nodes[0].api_addr).with_token(Some(bootstrap::bootstrap_token(&secret)?));
    let mut members = Vec::new();
    for n in nodes {
        let client = ApiClient::new(&n.api_addr);
        loop {
            match client.get_text("/livez").await {
                Ok(_) => break,
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => bail!("node {} did not start (see {}): {e:#}", n.id, n.log.display()),
            }
        }
        if let Ok(view) = bootstrap.at(&n.api_addr).get::<NodeView>("/v1/node").await {
            members.push(view);
        }
    }
    let password_file = bootstrap::admin_password_file(&secret);
    if members.len() == nodes.len() && members.iter().all(|v| v.status.voters.is_empty()) {
        let identities: Vec<_> = members.iter().map(|v| v.identity.clone()).collect();
        let _: Value = bootstrap.post("/v1/cluster/init", &json!({ "members": identities })).await?;
        bootstrap::create_first_admin(&bootstrap, &password_file).await?;
        println!("formed a new {NODES}-node cluster");
    } else {
        println!("resuming the cluster from {}", dir.display());
    }
    let admin_password = std::fs::read_to_string(&password_file)
        .with_context(|| format!("reading the admin password from {}", password_file.display()))?;
    let anonymous = ApiClient::new(&nodes[0].api_addr);
    let admin = loop {
        match bootstrap::login(&anonymous, bootstrap::ADMIN_USER, admin_password.trim()).await {
            Ok(s) => break anonymous.clone().with_token(Some(s.token)),
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => bail!("the cluster did not elect a leader or refused the admin login: {e:#}"),
        }
    };
    let demo_password = demo_password(dir)?;
    let facilities: Vec<Value> = loop {
        match admin.get("/v1/facilities").await {
            Ok(f) => break f,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => bail!("the cluster did not elect a leader: {e:#}"),
        }
    };
    if facilities.is_empty() {
        create_users(&admin, &demo_password).await.context("creating the demo users")?;
        seed(&Logins { api: anonymous, admin, password: demo_password }, dir)
            .await
            .context("seeding the demo region")?;
        println!(
            "seeded the demo region: 1 provincial hospital, 2 county hospitals, 4 township clinics, \
             7 specialists, 5 cases each with a synthetic study uploaded to node 1 (prefetched by the \
             readers' nodes), 2 patient transfers, and demo users"
        );
    }
    print_guide(dir, nodes);
    Ok(())
}

/// The shared password of the demo users, generated once and kept in `<dir>/demo-password`.
fn demo_password(dir: &Path) -> anyhow::Result<String> {
    let file = dir.join(DEMO_PASSWORD_FILE);
    if let Ok(p) = std::fs::read_to_string(&file) {
        return Ok(p.trim().to_owned());
    }
    let mut bytes = [0u8; 9];
    getrandom::getrandom(&mut bytes).context("reading random bytes")?;
    let password = format!("demo-{}", crate::auth::hex(&bytes));
    bootstrap::write_private(&file, &format!("{password}\n"))?;
    Ok(password)
}

/// File holding the demo users' password.
const DEMO_PASSWORD_FILE: &str = "demo-password";

/// Demo users: (login, role, facility). Specialists log in with their specialist id.
const DEMO_USERS: [(&str, &str, Option<&str>); 15] = [
    ("ops", "ops", None),
    ("auditor", "auditor", None),
    ("bureau", "bureau", None),
    ("nurse-TS-LJ", "clinic_staff", Some("TS-LJ")),
    ("nurse-TS-HS", "clinic_staff", Some("TS-HS")),
    ("nurse-TS-QS", "clinic_staff", Some("TS-QS")),
    ("nurse-TS-DW", "clinic_staff", Some("TS-DW")),
    ("ward-clerk", "clinic_staff", Some("CTY-AN")),
    ("DR-AN-CARD", "specialist", None),
    ("DR-AN-NEUR", "specialist", None),
    ("DR-AN-RAD", "specialist", None),
    ("DR-PY-RAD", "specialist", None),
    ("DR-PROV-CARD", "specialist", None),
    ("DR-PROV-NEUR", "specialist", None),
    ("DR-PROV-RAD", "specialist", None),
];

/// Users not tied to a facility; clinic staff are created once their facilities exist.
async fn create_users(admin: &ApiClient, password: &str) -> anyhow::Result<()> {
    for (id, role, facility) in DEMO_USERS.iter().filter(|(_, role, _)| *role != "clinic_staff") {
        let body = json!({ "id": id, "role": role, "facility": facility, "password": password });
        let _: Outcome = admin.post("/v1/users", &body).await?;
    }
    Ok(())
}

/// Logs demo users in.
struct Logins {
    api: ApiClient,
    admin: ApiClient,
    password: String,
}

impl Logins {
    /// A client acting as demo user `user`.
    async fn as_user(&self, user: &str) -> anyhow::Result<ApiClient> {
        let s = bootstrap::login(&self.api, user, &self.password).await?;
        Ok(self.api.clone().with_token(Some(s.token)))
    }
}

/// The demo region's name.
const REGION: &str = "示范县域医共体";

fn facility(
    id: &str,
    name: &str,
    level: &str,
    parent: Option<&str>,
    at: (i32, i32),
    devices: &[&str],
) -> Value {
    json!({
        "id": id, "name": name, "level": level, "region": REGION, "parent": parent,
        "location": { "lat_e6": at.0, "lon_e6": at.1 }, "devices": devices,
    })
}

/// A demo patient's resident ID (valid check character; not a real person's).
fn demo_patient_id(n: u32) -> anyhow::Result<String> {
    with_check_character(&format!("3301021960{n:07}")).context("building a demo patient id")
}

async fn seed(logins: &Logins, dir: &Path) -> anyhow::Result<()> {
    let ops = logins.as_user("ops").await?;
    let facilities = [
        facility(
            "PROV-SX",
            "省人民医院",
            "provincial",
            None,
            (30_250_000, 120_160_000),
            &["CT", "MR", "DR", "US", "ECG"],
        ),
        facility(
            "CTY-AN",
            "安宁县人民医院",
            "county",
            Some("PROV-SX"),
            (30_050_000, 119_950_000),
            &["CT", "DR", "US", "ECG"],
        ),
        facility(
            "CTY-PY",
            "平原县人民医院",
            "county",
            Some("PROV-SX"),
            (30_450_000, 120_400_000),
            &["CT", "DR", "US", "ECG"],
        ),
        facility(
            "TS-LJ",
            "李家镇卫生院",
            "township",
            Some("CTY-AN"),
            (30_000_000, 119_900_000),
            &["DR", "US", "ECG"],
        ),
        facility(
            "TS-HS",
            "河上镇卫生院",
            "township",
            Some("CTY-AN"),
            (30_080_000, 119_880_000),
            &["DR", "US", "ECG"],
        ),
        facility(
            "TS-QS",
            "青山乡卫生院",
            "township",
            Some("CTY-PY"),
            (30_500_000, 120_450_000),
            &["DR", "ECG"],
        ),
        facility(
            "TS-DW",
            "大王庄乡卫生院",
            "township",
            Some("CTY-PY"),
            (30_420_000, 120_350_000),
            &["DR", "US", "ECG"],
        ),
    ];
    for f in &facilities {
        let _: Outcome = ops.post("/v1/facilities", f).await?;
    }
    let specialists = [
        ("DR-AN-CARD", "王医生", "CTY-AN", "cardiology", &["ECG", "US"][..]),
        ("DR-AN-NEUR", "李医生", "CTY-AN", "neurology", &["CT"][..]),
        ("DR-AN-RAD", "赵医生", "CTY-AN", "radiology", &["DR", "CT", "US"][..]),
        ("DR-PY-RAD", "张医生", "CTY-PY", "radiology", &["DR", "CT", "US"][..]),
        ("DR-PROV-CARD", "陈主任", "PROV-SX", "cardiology", &["ECG", "US", "CT"][..]),
        ("DR-PROV-NEUR", "刘主任", "PROV-SX", "neurology", &["CT", "MR"][..]),
        ("DR-PROV-RAD", "孙主任", "PROV-SX", "radiology", &["DR", "CT", "MR", "US"][..]),
    ];
    for (id, name, facility, specialty, modalities) in specialists {
        let body = json!({
            "id": id, "name": name, "facility": facility, "specialty": specialty,
            "modalities": modalities, "cap": 6, "on_shift": true,
        });
        let _: Outcome = ops.post("/v1/specialists", &body).await?;
    }
    for (id, role, facility) in DEMO_USERS.iter().filter(|(_, role, _)| *role == "clinic_staff") {
        let body = json!({ "id": id, "role": role, "facility": facility, "password": logins.password });
        let _: Outcome = logins.admin.post("/v1/users", &body).await?;
    }
    for (facility, service, capacity) in [
        ("TS-LJ", "rehab-stroke", json!("yes")),
        ("TS-HS", "rehab-stroke", json!("no")),
        ("TS-DW", "rehab-stroke", json!({ "waitlist": { "days": 14 } })),
        ("TS-QS", "diabetes-follow-up", json!("yes")),
        ("CTY-AN", "cardiology-ward", json!("yes")),
    ] {
        let _: Outcome = ops
            .put(&format!("/v1/facilities/{facility}/capacity/{service}"), &json!({ "capacity": capacity }))
            .await?;
    }
    let cases = [
        ("TS-LJ", 1, "chest pain 40 min, sweating", "stat", Some("chest_pain"), "cardiology", "ECG", 3),
        ("TS-QS", 2, "left-side weakness, slurred speech", "stat", Some("stroke"), "neurology", "CT", 1),
        ("TS-HS", 3, "persistent cough, abnormal DR chest film", "urgent", None, "radiology", "DR", 0),
        ("TS-DW", 4, "abdominal ultrasound review", "routine", None, "radiology", "US", 4),
        ("TS-LJ", 5, "hypertension follow-up ECG", "routine", None, "cardiology", "ECG", 0),
    ];
    for (origin, patient, complaint, priority, green, specialty, modality, steps) in cases {
        let staff = logins.as_user(&format!("nurse-{origin}")).await?;
        let body = json!({
            "patient_id": demo_patient_id(patient)?, "complaint": complaint, "priority": priority,
            "green_channel": green, "specialty": specialty, "modality": modality,
            "vitals": { "heart_rate_bpm": 96, "systolic_mmhg": 150, "diastolic_mmhg": 92 },
        });
        let Outcome::Case { case_id, owner: Some(owner), .. } = staff.post("/v1/cases", &body).await? else {
            continue;
        };
        attach_study(dir, &staff, &case_id.0, modality, patient).await?;
        let reader = logins.as_user(&owner.0).await?;
        let steps_taken = [
            ("accept", json!({})),
            ("start", json!({})),
            (
                "report",
                json!({ "text": "demo findings: see attached images; advice to the requesting clinic" }),
            ),
            ("complete", json!({})),
        ];
        for (action, body) in steps_taken.into_iter().take(steps) {
            let _: Outcome = reader.post(&format!("/v1/cases/{}/{action}", case_id.0), &body).await?;
        }
    }
    let county = logins.as_user("ward-clerk").await?;
    let up = json!({ "case": "C00000001", "direction": "up", "to": "CTY-AN", "service": "cardiology-ward" });
    let _: Outcome = logins.as_user("nurse-TS-LJ").await?.post("/v1/transfers", &up).await?;
    let _: Outcome = county.post("/v1/transfers/T00000001/accept", &json!({})).await?;
    let _: Outcome = county.post("/v1/transfers/T00000001/complete", &json!({})).await?;
    let down = json!({
        "case": "C00000001", "direction": "down", "to": "TS-LJ", "service": "rehab-stroke",
        "follow_up": [{ "what": "blood pressure check", "due_after_days": 7 }],
    });
    let _: Outcome = county.post("/v1/transfers", &down).await?;
    Ok(())
}

/// Write a synthetic study of `modality` for case `case` (Accession Number = case id) and upload
/// it to node 1 as the requesting clinic's nurse with `yilian upload --commit`.
async fn attach_study(
    dir: &Path,
    staff: &ApiClient,
    case: &str,
    modality: &str,
    patient: u32,
) -> anyhow::Result<()> {
    let kind = match modality {
        "CT" => SynthKind::Ct,
        "DR" => SynthKind::Dr,
        "US" => SynthKind::Us,
        _ => SynthKind::Ecg,
    };
    let out = dir.join("studies").join(case);
    let opts = SynthOptions {
        seed: u64::from(patient),
        ct_slices: 32,
        accession: Some(case.to_owned()),
        ..SynthOptions::default()
    };
    let target = out.clone();
    tokio::task::spawn_blocking(move || generate(&target, &[kind], &opts))
        .await
        .context("writing a synthetic study")??;
    let certs = dir.join("certs");
    let uploader = pki::issue_client_cert(&certs, "demo-uploader", &certs)?;
    let exe = std::env::current_exe().context("locating the yilian binary")?;
    let status = Command::new(exe)
        .arg("upload")
        .arg(&out)
        .args(["--case", case, "--commit", "--api", staff.base()])
        .args(["--token", staff.token().unwrap_or_default()])
        .arg("--tls-ca")
        .arg(certs.join(pki::CA_CERT))
        .arg("--cert")
        .arg(&uploader.cert)
        .arg("--key")
        .arg(&uploader.key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .await
        .context("running yilian upload")?;
    if !status.success() {
        bail!("uploading the synthetic {modality} study of case {case} failed");
    }
    Ok(())
}

fn print_guide(dir: &Path, nodes: &[DemoNode]) {
    println!("\nYilian demo cluster is running ({NODES} nodes on loopback)");
    println!("  data, certificates, configs: {}", dir.display());
    println!("  logs:                        {}", dir.join("logs").display());
    for n in nodes {
        println!("  node {}: HTTP API http://{}   QUIC {}", n.id, n.api_addr, n.raft_addr);
    }
    let api = &nodes[0].api_addr;
    let pw = dir.join(DEMO_PASSWORD_FILE);
    let admin_pw = dir.join("certs").join(bootstrap::ADMIN_PASSWORD_FILE);
    println!("\nDemo users (password in {}):", pw.display());
    println!(
        "  ops, auditor, bureau, nurse-TS-LJ, nurse-TS-HS, nurse-TS-QS, nurse-TS-DW, ward-clerk (CTY-AN),"
    );
    println!("  and one per specialist: DR-AN-CARD, DR-AN-NEUR, DR-AN-RAD, DR-PY-RAD, DR-PROV-CARD, ...");
    println!("  the region admin is `admin` (password in {})", admin_pw.display());
    println!("\nTry, in another terminal:");
    println!("  yilian() {{ cargo run -q --release --bin yilian -- \"$@\"; }}");
    println!("  yilian login --api {api} --user nurse-TS-LJ --password-stdin < {}", pw.display());
    println!("  yilian case list --api {api}");
    println!("  yilian login --api {api} --user DR-AN-RAD --password-stdin < {}", pw.display());
    println!("  yilian worklist DR-AN-RAD --api {api}");
    println!("  yilian study list --case C00000003 --api {api}   # prefetched to node 2 for the reader");
    println!("  yilian study export <study-uid> --out teaching --deidentify --api {api}");
    println!("  yilian login --api {api} --user ops --password-stdin < {}", pw.display());
    println!("  yilian cluster status --api {api}");
    println!("  yilian facility search rehab-stroke --near TS-HS --api {api}");
    println!("  yilian login --api {api} --user bureau --password-stdin < {}", pw.display());
    println!("  yilian figures --api {api}");
    println!("  curl -s -H \"Authorization: Bearer $(cat ~/.yilian/token)\" http://{api}/v1/figures | python3 -m json.tool");
    println!("\nPress Ctrl-C to stop all nodes.");
}

async fn first_exit(children: &mut [Child]) -> String {
    loop {
        for (i, c) in children.iter_mut().enumerate() {
            if let Ok(Some(status)) = c.try_wait() {
                return format!("node {}: {status}", i + 1);
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Ask every node to stop (SIGTERM), then wait; kill any that hang.
async fn stop(children: &mut [Child]) {
    for c in children.iter() {
        if let Some(pid) = c.id() {
            terminate(pid);
        }
    }
    for c in children.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(15), c.wait()).await.is_err() {
            let _ = c.kill().await;
        }
    }
}

#[cfg(unix)]
fn terminate(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a pid we spawned and a valid signal number has no memory effects.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

#[cfg(not(unix))]
fn terminate(_pid: u32) {}
