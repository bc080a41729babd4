//! QIDO-RS search (PS3.18 10.6) over catalog records: which studies, series or instances match
//! a query, and their DICOM JSON.
//!
//! Matching follows PS3.4 C.2.2.2: universal (empty key), single value (Person Names compared
//! without regard to case), wildcards `*` and `?`, UID lists (`\` or `,` separated), and ranges
//! (`a-b`, `-b`, `a-`) for dates and times. `limit`, `offset`, `includefield` and
//! `fuzzymatching` are accepted; keys the catalog does not keep are ignored and reported in
//! [`QidoQuery::ignored`].

use super::json;
use crate::catalog::{catalog_tag, tag_key, CatalogRecord, Level, CATALOG_TAGS};
use crate::error::WebError;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use serde_json::Value;
use std::collections::BTreeMap;

const MODALITIES_IN_STUDY: Tag = Tag(0x0008, 0x0061);
const STUDY_SERIES: Tag = Tag(0x0020, 0x1206);
const STUDY_INSTANCES: Tag = Tag(0x0020, 0x1208);
const SERIES_INSTANCES: Tag = Tag(0x0020, 0x1209);
const MODALITY: Tag = Tag(0x0008, 0x0060);
const SERIES_NUMBER: Tag = Tag(0x0020, 0x0011);
const INSTANCE_NUMBER: Tag = Tag(0x0020, 0x0013);

/// What a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryLevel {
    /// Studies.
    Study,
    /// Series.
    Series,
    /// Instances.
    Instance,
}

impl QueryLevel {
    fn catalog_level(self) -> Level {
        match self {
            QueryLevel::Study => Level::Study,
            QueryLevel::Series => Level::Series,
            QueryLevel::Instance => Level::Instance,
        }
    }
}

/// One matching key of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MatchKey {
    tag: Tag,
    vr: VR,
    pattern: String,
}

/// A parsed QIDO-RS query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QidoQuery {
    level: QueryLevel,
    keys: Vec<MatchKey>,
    /// Most results to return (`limit`).
    pub limit: Option<usize>,
    /// Results to skip first (`offset`).
    pub offset: usize,
    /// Query parameters that were ignored because the catalog does not keep that attribute.
    pub ignored: Vec<String>,
}

impl QidoQuery {
    /// Parse the query parameters of a search at `level`.
    pub fn parse(level: QueryLevel, params: &[(String, String)]) -> Result<QidoQuery, WebError> {
        let mut query = QidoQuery { level, keys: Vec::new(), limit: None, offset: 0, ignored: Vec::new() };
        for (name, value) in params {
            match name.as_str() {
                "limit" => query.limit = Some(number(name, value)?),
                "offset" => query.offset = number(name, value)?,
                "fuzzymatching" => {}
                "includefield" => {
                    for field in value.split(',').map(str::trim).filter(|f| !f.is_empty() && *f != "all") {
                        if parse_tag(field).is_none() {
                            return Err(unknown_attribute(field));
                        }
                    }
                }
                _ => {
                    let tag = parse_tag(name).ok_or_else(|| unknown_attribute(name))?;
                    let vr = match catalog_tag(tag) {
                        Some(c) => c.vr,
                        None if tag == MODALITIES_IN_STUDY => VR::CS,
                        None => {
                            query.ignored.push(name.clone());
                            continue;
                        }
                    };
                    query.keys.push(MatchKey { tag, vr, pattern: value.trim().to_owned() });
                }
            }
        }
        Ok(query)
    }

    /// Run the query over `records` (all instances in scope: the whole catalog, a study or a
    /// series) and return one DICOM JSON object per matching entity, in a stable order.
    pub fn run(&self, records: &[CatalogRecord]) -> Vec<Value> {
        let entities = entities(self.level, records);
        entities
            .into_iter()
            .filter(|e| self.keys.iter().all(|k| e.matches(k)))
            .skip(self.offset)
            .take(self.limit.unwrap_or(usize::MAX))
            .map(|e| e.to_json())
            .collect()
    }
}

fn number(name: &str, value: &str) -> Result<usize, WebError> {
    value.trim().parse().map_err(|_| WebError::BadRequest {
        reason: format!("`{name}` must be a non-negative integer, not {value:?}"),
    })
}

fn unknown_attribute(name: &str) -> WebError {
    WebError::BadRequest {
        reason: format!(
            "`{name}` is neither a DICOM attribute keyword nor a tag; use a keyword such as PatientID or \
             8 hex digits such as 00100020"
        ),
    }
}

/// A keyword (`PatientID`) or tag (`00100020`, `0010,0020`) as a tag.
fn parse_tag(text: &str) -> Option<Tag> {
    let hex: String = text.chars().filter(|c| *c != ',').collect();
    if hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        let group = u16::from_str_radix(&hex[..4], 16).ok()?;
        let element = u16::from_str_radix(&hex[4..], 16).ok()?;
        return Some(Tag(group, element));
    }
    StandardDataDictionary.by_name(text).map(|e| e.tag_range().inner())
}

/// A study, series or instance, with the attributes it is matched on and answered with.
struct Entity {
    attributes: BTreeMap<Tag, (VR, String)>,
}

impl Entity {
    fn from_records(level: Level, group: &[&CatalogRecord]) -> Entity {
        let mut attributes = BTreeMap::new();
        if let Some(first) = group.first() {
            for c in CATALOG_TAGS.iter().filter(|c| c.level <= level) {
                if let Some(v) = first.attributes.get(&tag_key(c.tag)) {
                    attributes.insert(c.tag, (c.vr, v.clone()));
                }
            }
        }
        Entity { attributes }
    }

    fn set(&mut self, tag: Tag, vr: VR, value: String) {
        self.attributes.insert(tag, (vr, value));
    }

    fn matches(&self, key: &MatchKey) -> bool {
        if key.pattern.is_empty() {
            return true;
        }
        match self.attributes.get(&key.tag) {
            Some((_, value)) => value.split('\\').any(|v| matches(key.vr, &key.pattern, v.trim())),
            None => false,
        }
    }

    fn to_json(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .attributes
            .iter()
            .map(|(tag, (vr, v))| (json::tag_name(*tag), json::attribute(*vr, v)))
            .collect();
        Value::Object(map)
    }
}

/// Group records into the entities of `level`, with computed attributes, in a stable order.
fn entities(level: QueryLevel, records: &[CatalogRecord]) -> Vec<Entity> {
    let mut studies: BTreeMap<&str, Vec<&CatalogRecord>> = BTreeMap::new();
    for r in records {
        studies.entry(r.study_instance_uid.as_str()).or_default().push(r);
    }
    let mut out = Vec::new();
    for study in studies.values() {
        let mut series: BTreeMap<&str, Vec<&CatalogRecord>> = BTreeMap::new();
        for r in study {
            series.entry(r.series_instance_uid.as_str()).or_default().push(r);
        }
        if level == QueryLevel::Study {
            let mut e = Entity::from_records(Level::Study, study);
            let mut modalities: Vec<&str> = study.iter().filter_map(|r| r.attribute(MODALITY)).collect();
            modalities.sort_unstable();
            modalities.dedup();
            e.set(MODALITIES_IN_STUDY, VR::CS, modalities.join("\\"));
            e.set(STUDY_SERIES, VR::IS, series.len().to_string());
            e.set(STUDY_INSTANCES, VR::IS, study.len().to_string());
            out.push(e);
            continue;
        }
        let mut series: Vec<Vec<&CatalogRecord>> = series.into_values().collect();
        series.sort_by_key(|s| s.first().and_then(|r| r.number(SERIES_NUMBER)));
        for mut instances in series {
            if level == QueryLevel::Series {
                let mut e = Entity::from_records(level.catalog_level(), &instances);
                e.set(SERIES_INSTANCES, VR::IS, instances.len().to_string());
                out.push(e);
                continue;
            }
            instances.sort_by_key(|r| r.number(INSTANCE_NUMBER));
            out.extend(instances.iter().map(|r| Entity::from_records(Level::Instance, &[r])));
        }
    }
    out
}

/// Whether one attribute value matches one key (PS3.4 C.2.2.2).
fn matches(vr: VR, pattern: &str, value: &str) -> bool {
    match vr {
        VR::UI => pattern.split(['\\', ',']).any(|p| p.trim() == value),
        VR::DA | VR::TM | VR::DT if pattern.contains('-') => {
            let (lo, hi) = pattern.split_once('-').unwrap_or((pattern, pattern));
            let v = normalize(vr, value);
            (lo.is_empty() || v >= normalize(vr, lo)) && (hi.is_empty() || v <= normalize_upper(vr, hi))
        }
        VR::DA | VR::TM | VR::DT => normalize(vr, pattern) == normalize(vr, value),
        VR::PN => wildcard(&pattern.to_uppercase(), &value.to_uppercase()),
        _ => wildcard(pattern, value),
    }
}

/// Dates and times without separators, times padded to HHMMSS so they compare as text.
fn normalize(vr: VR, v: &str) -> String {
    let v: String = v.trim().chars().filter(|c| *c != ':' && !(vr == VR::DA && *c == '.')).collect();
    if vr == VR::TM {
        let (whole, frac) = v.split_once('.').map_or((v.as_str(), ""), |(w, f)| (w, f));
        return format!("{whole:0<6}.{frac:0<6}");
    }
    v
}

/// The upper bound of a time range covers the whole of its last given unit (`-10` is up to
/// 10:59:59.999999).
fn normalize_upper(vr: VR, v: &str) -> String {
    if vr != VR::TM {
        return normalize(vr, v);
    }
    let v: String = v.trim().chars().filter(|c| *c != ':').collect();
    let (whole, frac) = v.split_once('.').map_or((v.as_str(), ""), |(w, f)| (w, f));
    let whole = match whole.len() {
        2 => format!("{whole}5959"),
        4 => format!("{whole}59"),
        _ => whole.to_owned(),
    };
    format!("{whole:0<6}.{frac:9<6}")
}

/// Glob matching with `*` (any run) and `?` (one character); exact when neither is present.
fn wildcard(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tag_key;

    fn rec(study: &str, series: &str, sop: &str, attrs: &[(Tag, &str)]) -> CatalogRecord {
        let mut attributes: BTreeMap<u32, String> =
            attrs.iter().map(|(t, v)| (tag_key(*t), (*v).to_owned())).collect();
        attributes.insert(tag_key(Tag(0x0020, 0x000D)), study.into());
        attributes.insert(tag_key(Tag(0x0020, 0x000E)), series.into());
        attributes.insert(tag_key(Tag(0x0008, 0x0018)), sop.into());
        CatalogRecord {
            study_instance_uid: study.into(),
            series_instance_uid: series.into(),
            sop_instance_uid: sop.into(),
            sop_class_uid: "1.2".into(),
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            sha256: String::new(),
            size: 0,
            case_id: "C1".into(),
            frames: 1,
            pixel_data: None,
            attributes,
        }
    }

    fn catalog() -> Vec<CatalogRecord> {
        let name = Tag(0x0010, 0x0010);
        let date = Tag(0x0008, 0x0020);
        let time = Tag(0x0008, 0x0030);
        vec![
            rec(
                "1.1",
                "1.1.1",
                "1.1.1.1",
                &[
                    (name, "WANG^WEI"),
                    (date, "20240105"),
                    (time, "101500"),
                    (MODALITY, "CT"),
                    (INSTANCE_NUMBER, "2"),
                ],
            ),
            rec(
                "1.1",
                "1.1.1",
                "1.1.1.2",
                &[
                    (name, "WANG^WEI"),
                    (date, "20240105"),
                    (time, "101500"),
                    (MODALITY, "CT"),
                    (INSTANCE_NUMBER, "1"),
                ],
            ),
            rec(
                "1.1",
                "1.1.2",
                "1.1.2.1",
                &[(name, "WANG^WEI"), (date, "20240105"), (time, "101500"), (MODALITY, "SR")],
            ),
            rec(
                "2.2",
                "2.2.1",
                "2.2.1.1",
                &[(name, "LI^NA"), (date, "20231231"), (time, "2300"), (MODALITY, "US")],
            ),
        ]
    }

    fn query(level: QueryLevel, params: &[(&str, &str)]) -> Vec<Value> {
        let params: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        QidoQuery::parse(level, &params).unwrap().run(&catalog())
    }

    fn uids(results: &[Value], tag: &str) -> Vec<String> {
        results.iter().map(|r| r[tag]["Value"][0].as_str().unwrap().to_owned()).collect()
    }

    #[test]
    fn study_matching_covers_names_dates_times_modalities_and_uid_lists() {
        let study = |p: &[(&str, &str)]| uids(&query(QueryLevel::Study, p), "0020000D");
        assert_eq!(study(&[]), ["1.1", "2.2"]);
        assert_eq!(study(&[("PatientName", "wang*")]), ["1.1"]);
        assert_eq!(study(&[("00100010", "?I^NA")]), ["2.2"]);
        assert_eq!(study(&[("PatientName", "WANG")]), Vec::<String>::new());
        assert_eq!(study(&[("StudyDate", "20240101-")]), ["1.1"]);
        assert_eq!(study(&[("StudyDate", "-20231231")]), ["2.2"]);
        assert_eq!(study(&[("StudyDate", "20230101-20241231")]), ["1.1", "2.2"]);
        assert_eq!(study(&[("StudyDate", "20231231")]), ["2.2"]);
        assert_eq!(study(&[("StudyTime", "10-11")]), ["1.1"]);
        assert_eq!(study(&[("StudyTime", "2300-")]), ["2.2"]);
        assert_eq!(study(&[("ModalitiesInStudy", "SR")]), ["1.1"]);
        assert_eq!(study(&[("StudyInstanceUID", "2.2,9.9")]), ["2.2"]);
        assert_eq!(study(&[("StudyInstanceUID", "1.1\\2.2"), ("limit", "1"), ("offset", "1")]), ["2.2"]);
        assert_eq!(study(&[("PatientName", "")]), ["1.1", "2.2"]);
        let first = &query(QueryLevel::Study, &[("PatientName", "WANG^WEI")])[0];
        assert_eq!(first["00080061"]["Value"], serde_json::json!(["CT", "SR"]));
        assert_eq!(first["00201206"]["Value"], serde_json::json!([2]));
        assert_eq!(first["00201208"]["Value"], serde_json::json!([3]));
        assert_eq!(first["00100010"]["Value"][0]["Alphabetic"], "WANG^WEI");
        assert!(first.get("00080018").is_none(), "no instance attributes at study level");
    }

    #[test]
    fn series_and_instance_levels_group_and_order() {
        let series = query(QueryLevel::Series, &[("Modality", "CT")]);
        assert_eq!(uids(&series, "0020000E"), ["1.1.1"]);
        assert_eq!(series[0]["00201209"]["Value"], serde_json::json!([2]));
        let instances = query(QueryLevel::Instance, &[("StudyInstanceUID", "1.1"), ("Modality", "CT")]);
        assert_eq!(uids(&instances, "00080018"), ["1.1.1.2", "1.1.1.1"], "by instance number");
        let all = query(QueryLevel::Instance, &[("includefield", "all"), ("fuzzymatching", "false")]);
        assert_eq!(all.len(), 4);
    }

    #[test]
    fn bad_parameters_are_explained_and_unkept_attributes_ignored() {
        let p = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert!(QidoQuery::parse(QueryLevel::Study, &p("limit", "many")).is_err());
        assert!(QidoQuery::parse(QueryLevel::Study, &p("NoSuchKeyword", "x")).is_err());
        assert!(QidoQuery::parse(QueryLevel::Study, &p("includefield", "Nonsense")).is_err());
        let q = QidoQuery::parse(QueryLevel::Study, &p("InstitutionName", "X")).unwrap();
        assert_eq!(q.ignored, ["InstitutionName"]);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("W*I", "WANG^WEI"));
        assert!(wildcard("*", ""));
        assert!(wildcard("A?C", "ABC"));
        assert!(!wildcard("A?C", "AC"));
        assert!(!wildcard("ABC", "ABCD"));
        assert!(wildcard("*B*", "ABC"));
    }
}
