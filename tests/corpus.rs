//! Real Emissary configurations (`testdata/emissary-corpus/<case>/input.yaml`, or
//! `$AMBASSADOR_XDS_CORPUS`): 272 written by other people, translated as a new user would. Every
//! case translates without a panic; every Ambassador document either becomes a resource or has a
//! diagnostic naming it; no Mapping that uses a refused field is served; and how many Mappings
//! are served, fail closed or are skipped is kept in `testdata/corpus-summary.txt`, so a change
//! in those counts shows in review (`UPDATE_CORPUS=1 cargo test --test corpus` rewrites it).

mod support;

use ambassador_xds::compile::Options;
use ambassador_xds::diagnostic::{Provenance, ResourceId};
use ambassador_xds::model::fields::Support;
use ambassador_xds::model::Model;
use ambassador_xds::pipeline::{translate, Translation};
use ambassador_xds::source::files::{self, LoadOptions};
use ambassador_xds::xds::XdsType;
use envoy_types::pb::envoy::config::route::v3::{route, RouteConfiguration};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    match std::env::var_os("AMBASSADOR_XDS_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => support::manifest_dir().join("testdata/emissary-corpus"),
    }
}

/// What became of one Mapping (or TCPMapping) document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fate {
    /// A route forwards or redirects for it (or, for a shadow, mirrors it).
    Served,
    /// Its routes answer 503: it asks for something that cannot be given safely.
    FailClosed,
    /// No route: an error, another `ambassador_id`, a duplicate, a refused canary member.
    Skipped,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    served: usize,
    fail_closed: usize,
    skipped: usize,
    tcp_served: usize,
    tcp_skipped: usize,
    documents: usize,
    not_configuration: usize,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.served += other.served;
        self.fail_closed += other.fail_closed;
        self.skipped += other.skipped;
        self.tcp_served += other.tcp_served;
        self.tcp_skipped += other.tcp_skipped;
        self.documents += other.documents;
        self.not_configuration += other.not_configuration;
    }

    fn line(&self) -> String {
        format!(
            "mappings {} served, {} fail closed, {} skipped; tcpmappings {} served, {} skipped; documents {} ({} not Ambassador configuration)",
            self.served, self.fail_closed, self.skipped, self.tcp_served, self.tcp_skipped, self.documents, self.not_configuration
        )
    }
}

/// Each route's provenance and whether it forwards (or redirects) rather than answering itself.
fn route_fates(translation: &Translation) -> Vec<(Vec<Provenance>, bool)> {
    let mut out = Vec::new();
    for resource in translation.resources.of(XdsType::Route) {
        let config: RouteConfiguration = resource.decode();
        for (host, virtual_host) in config.virtual_hosts.iter().enumerate() {
            for (index, route) in virtual_host.routes.iter().enumerate() {
                let forwards = !matches!(route.action, Some(route::Action::DirectResponse(_)));
                let behind = translation.provenance.route(&resource.name, host, index);
                out.push((behind.map(<[Provenance]>::to_vec).unwrap_or_default(), forwards));
            }
        }
    }
    out
}

/// The document a resource came from: its own, or the Service document whose annotation held it.
fn document_of(origin_file: &str, document: usize, input: &str) -> Option<usize> {
    if origin_file == input {
        return Some(document);
    }
    let rest = origin_file.strip_prefix(input)?.strip_prefix(" (document ")?;
    rest[..rest.find(')')?].parse().ok()
}

/// Whether a YAML document is something the translator reads (an Ambassador resource, a Secret,
/// a Service with an Ambassador annotation, a List), as opposed to a Deployment and the like.
fn is_configuration(document: &serde_yaml::Value) -> bool {
    let api = document.get("apiVersion").and_then(|v| v.as_str()).unwrap_or("");
    let kind = document.get("kind").and_then(|v| v.as_str()).unwrap_or("");
    if api.starts_with("getambassador.io/") || api.starts_with("ambassador/") || (api.is_empty() && !kind.is_empty()) {
        return true;
    }
    let annotated = document["metadata"]["annotations"].get("getambassador.io/config").is_some();
    api == "v1" && (kind == "Secret" || kind == "List" || (kind == "Service" && annotated))
}

struct CaseReport {
    counts: Counts,
    problems: Vec<String>,
}

fn check_case(case: &Path) -> CaseReport {
    let input = case.join("input.yaml");
    let input_name = input.display().to_string();
    let mut problems = Vec::new();
    let loaded = files::load(std::slice::from_ref(&input), &LoadOptions::default(), "default")
        .unwrap_or_else(|err| panic!("{}: {err}", case.display()));
    let model: Model = loaded.model.clone();
    let translation = match std::panic::catch_unwind(|| translate(loaded, &Options::default())) {
        Ok(translation) => translation,
        Err(_) => {
            let problems = vec![format!("{}: translating panicked", case.display())];
            return CaseReport { counts: Counts::default(), problems };
        }
    };

    // Which documents became resources, and which a diagnostic names.
    let mut accounted: BTreeSet<usize> = BTreeSet::new();
    for meta in model.metas() {
        accounted.extend(document_of(&meta.origin.file, meta.origin.document, &input_name));
    }
    for diagnostic in &translation.diagnostics {
        if let Some(origin) = &diagnostic.origin {
            accounted.extend(document_of(&origin.file, origin.document, &input_name));
        }
    }
    let text = std::fs::read_to_string(&input).unwrap();
    let mut counts = Counts::default();
    for (index, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let Ok(value) = serde_yaml::Value::deserialize(document) else { continue };
        if value.is_null() {
            continue;
        }
        counts.documents += 1;
        if !is_configuration(&value) {
            counts.not_configuration += 1;
        } else if !accounted.contains(&index) {
            problems.push(format!("{}: document {index} neither compiles nor has a diagnostic", case.display()));
        }
    }

    // What became of each Mapping.
    let mut fates: BTreeMap<ResourceId, Fate> = BTreeMap::new();
    for (provenance, forwards) in route_fates(&translation) {
        for (position, behind) in provenance.iter().enumerate() {
            // A route's first provenance is its Mapping; a shadow after it is mirrored to.
            let fate = if forwards || position > 0 { Fate::Served } else { Fate::FailClosed };
            let entry = fates.entry(behind.resource.clone()).or_insert(fate);
            *entry = (*entry).min(fate);
        }
    }
    let mut seen = BTreeSet::new();
    for mapping in &model.mappings {
        let fate = match seen.insert(mapping.meta.id.clone()) {
            true => fates.get(&mapping.meta.id).copied().unwrap_or(Fate::Skipped),
            false => Fate::Skipped,
        };
        match fate {
            Fate::Served => counts.served += 1,
            Fate::FailClosed => counts.fail_closed += 1,
            Fate::Skipped => counts.skipped += 1,
        }
        let refused = mapping.spec.unimplemented.iter().any(|f| f.support == Support::Refused);
        if refused && fate == Fate::Served {
            problems.push(format!(
                "{}: {} is served although it uses a refused field",
                case.display(),
                mapping.meta.id
            ));
        }
    }
    counts.skipped += model.rejected.iter().filter(|r| r.id.as_ref().is_some_and(|id| &*id.kind == "Mapping")).count();
    let listeners: BTreeSet<ResourceId> = translation
        .resources
        .of(XdsType::Listener)
        .iter()
        .flat_map(|l| translation.provenance.of(XdsType::Listener, &l.name))
        .map(|p| p.resource.clone())
        .collect();
    for mapping in &model.tcp_mappings {
        if listeners.contains(&mapping.meta.id) {
            counts.tcp_served += 1;
        } else {
            counts.tcp_skipped += 1;
        }
    }
    CaseReport { counts, problems }
}

use serde::Deserialize as _;

#[test]
fn real_emissary_configurations() {
    let dir = corpus_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|err| {
        panic!("the corpus is not at {} ({err}); set AMBASSADOR_XDS_CORPUS to its directory", dir.display())
    });
    let mut cases: Vec<PathBuf> =
        entries.map(|e| e.unwrap().path()).filter(|p| p.join("input.yaml").is_file()).collect();
    cases.sort();
    assert!(cases.len() >= 272, "expected the 272 corpus cases in {}, found {}", dir.display(), cases.len());

    let mut total = Counts::default();
    let mut summary = String::new();
    let mut problems = Vec::new();
    for case in &cases {
        let report = check_case(case);
        total.add(&report.counts);
        problems.extend(report.problems);
        let name = case.file_name().unwrap().to_string_lossy();
        summary.push_str(&format!("{name}: {}\n", report.counts.line()));
    }
    let summary = format!("total ({} cases): {}\n\n{summary}", cases.len(), total.line());
    println!("{}", summary.lines().next().unwrap_or_default());
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let path = support::manifest_dir().join("testdata/corpus-summary.txt");
    if std::env::var_os("UPDATE_CORPUS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &summary).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == summary,
        "the corpus counts changed (UPDATE_CORPUS=1 cargo test --test corpus rewrites {}):\n{}",
        path.display(),
        similar::TextDiff::from_lines(&committed, &summary).unified_diff().header("committed", "now")
    );
}
