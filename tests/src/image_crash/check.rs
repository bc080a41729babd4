//! What must hold of the images after every kill and once transfers settle: objects on disk
//! hash to their names, the manifest names a node as a holder only when its store has the
//! object, and what a node lists it serves byte for byte.

use crate::harness::{acting, token, TestCluster, NURSE};
use crate::imaging_client::retrieve_instance;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use yilian_dicom::Digest;
use yilian_referral::StudyManifest;

/// The reader every test case is routed to (the county cardiologist of `seed_region`).
pub const READER: &str = "specialist:DR";

/// Objects under a store's `objects/` directory: hex name → problem, if any. A file that is
/// not named like an object, sits in the wrong fan-out directory or does not hash to its name
/// is a problem: it would be visible as an object while partial or corrupt.
pub fn objects_on_disk(
    store: &Path,
    verified: &mut BTreeSet<String>,
) -> Result<BTreeMap<String, Option<String>>, String> {
    let objects = store.join("objects");
    let fans = std::fs::read_dir(&objects).map_err(|e| format!("cannot list {}: {e}", objects.display()))?;
    let mut found = BTreeMap::new();
    for fan in fans {
        let fan = fan.map_err(|e| e.to_string())?.path();
        let entries = std::fs::read_dir(&fan).map_err(|e| format!("cannot list {}: {e}", fan.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let fan_name = fan.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let problem = if name.parse::<Digest>().map(|d| d.to_hex()) != Ok(name.clone())
                || !name.starts_with(&fan_name)
            {
                Some(format!("{} is not an object's name and place", path.display()))
            } else if verified.contains(&name) {
                None
            } else {
                match std::fs::File::open(&path).map(Digest::of_reader) {
                    Ok(Ok((digest, _))) if digest.to_hex() == name => {
                        verified.insert(name.clone());
                        None
                    }
                    Ok(Ok((digest, size))) => Some(format!(
                        "object {name} holds {size} bytes hashing to {digest}: partial or corrupt"
                    )),
                    Ok(Err(e)) | Err(e) => Some(format!("object {name} cannot be read: {e}")),
                }
            };
            found.insert(name, problem);
        }
    }
    Ok(found)
}

/// The manifests of `studies`, read linearizably through the first running node that answers
/// (retrying while the cluster elects a leader); a study nothing was recorded of yet is left
/// out.
pub async fn manifests(
    cluster: &TestCluster,
    studies: &BTreeSet<String>,
) -> Result<BTreeMap<String, StudyManifest>, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        for id in cluster.running() {
            let nurse = acting(&cluster.api(id), NURSE).await;
            let mut out = BTreeMap::new();
            let mut answered = 0;
            for uid in studies {
                let path = format!("/v1/studies/{uid}");
                let read = nurse.get::<StudyManifest>(&path);
                match tokio::time::timeout(READ_TIMEOUT, read).await.unwrap_or_else(|_| Err(timed_out())) {
                    Ok(m) => {
                        out.insert(uid.clone(), m);
                    }
                    Err(e) if e.to_string().starts_with("404") => {}
                    Err(e) => {
                        last = format!("node {id}: {e:#}");
                        break;
                    }
                }
                answered += 1;
            }
            if answered == studies.len() {
                return Ok(out);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("no node answered the manifests within 30 s: {last}"))
}

/// How long one manifest read may take before another node is asked: a follower still
/// forwarding to a leader that was just killed answers only when its forward times out.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

fn timed_out() -> anyhow::Error {
    anyhow::anyhow!("no answer within {READ_TIMEOUT:?}")
}

/// Digests the manifests record node `id` as holding.
pub fn held_by(manifests: &BTreeMap<String, StudyManifest>, id: u64) -> BTreeSet<String> {
    manifests
        .values()
        .flat_map(|m| m.instances.values())
        .filter(|i| i.holders.contains(&id))
        .map(|i| i.record.sha256.clone())
        .collect()
}

/// Problems with what node `id` serves of `study`: every instance QIDO-RS lists there must be
/// in the manifest and WADO-RS must return exactly its bytes; once `settled`, it must list every
/// instance of the manifest.
pub async fn served(cluster: &TestCluster, id: u64, study: &StudyManifest, settled: bool) -> Vec<String> {
    let uid = &study.study_uid;
    let api = cluster.api(id);
    let reader = token(&api, READER).await;
    let base = api.base().to_owned();
    let listed = match list_instances(&base, &reader, uid).await {
        Ok(listed) => listed,
        Err(e) => return vec![format!("node {id} cannot list study {uid}: {e}")],
    };
    let mut problems = Vec::new();
    for (series, sop) in &listed {
        let Some(instance) = study.instances.get(sop) else {
            problems.push(format!("node {id} lists instance {sop} of {uid}, which the manifest lacks"));
            continue;
        };
        match retrieve_instance(&base, &reader, uid, series, sop).await {
            Ok(bytes) if Digest::of_bytes(&bytes).to_hex() == instance.record.sha256 => {}
            Ok(bytes) => problems.push(format!(
                "node {id} serves {sop} of {uid} as {} bytes hashing to {}; the manifest says {} bytes {}",
                bytes.len(),
                Digest::of_bytes(&bytes),
                instance.record.size,
                instance.record.sha256
            )),
            Err(e) => problems.push(format!("node {id} lists {sop} of {uid} but does not serve it: {e:#}")),
        }
    }
    let listed: BTreeSet<&String> = listed.iter().map(|(_, sop)| sop).collect();
    if settled && listed.len() != study.instances.len() {
        problems.push(format!(
            "node {id} lists {} of the {} instances of {uid} after transfers settled",
            listed.len(),
            study.instances.len()
        ));
    }
    problems
}

/// (Series, SOP Instance UID) of the instances of `study` QIDO-RS lists at `base`; none when the
/// node has catalogued none (404).
async fn list_instances(base: &str, token: &str, study: &str) -> anyhow::Result<Vec<(String, String)>> {
    let url = format!("{base}/dicomweb/studies/{study}/instances");
    let resp = reqwest::Client::new().get(url).bearer_auth(token).send().await?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::NO_CONTENT {
        return Ok(Vec::new());
    }
    let text = resp.text().await?;
    anyhow::ensure!(status.is_success(), "QIDO-RS answered {status}: {text}");
    let found: Value = serde_json::from_str(&text)?;
    let text_of = |item: &Value, tag: &str| item[tag]["Value"][0].as_str().unwrap_or_default().to_owned();
    Ok(found
        .as_array()
        .map(|items| items.iter().map(|i| (text_of(i, "0020000E"), text_of(i, "00080018"))).collect())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store check flags what a broken store would show: an object cut short under its
    /// final name, and a stray file; a whole object passes.
    #[test]
    fn a_partial_object_or_stray_file_under_objects_is_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let store = yilian_dicom::Store::open(dir.path()).unwrap();
        let whole = store.put_reader(&b"a whole object"[..]).unwrap().digest.to_hex();
        let cut = Digest::of_bytes(b"an object cut short by a crash").to_hex();
        let fan = dir.path().join("objects").join(&cut[..2]);
        std::fs::create_dir_all(&fan).unwrap();
        std::fs::write(fan.join(&cut), b"an object cut").unwrap();
        std::fs::write(fan.join("put-1-0.part"), b"stray").unwrap();

        let found = objects_on_disk(dir.path(), &mut BTreeSet::new()).unwrap();
        assert_eq!(found[&whole], None);
        assert!(found[&cut].as_deref().is_some_and(|p| p.contains("partial or corrupt")), "{found:?}");
        assert!(found["put-1-0.part"].as_deref().is_some_and(|p| p.contains("not an object")), "{found:?}");
    }
}
