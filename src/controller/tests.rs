//! Reloads in a row, synchronously: what stays in service when inputs break, and what goes when
//! they are removed.

use super::reload::Compiler;
use super::ControllerOptions;
use crate::diagnostic::{Diagnostic, Kind, Severity};
use crate::pipeline::Rebuilt;
use crate::render;
use crate::snapshot::Snapshot;
use crate::source::config_dir::ConfigDirSource;
use crate::source::files::{LoadOptions, TlsFilePolicy};
use base64::Engine as _;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

struct World {
    _dir: tempfile::TempDir,
    config: PathBuf,
    files: PathBuf,
    compiler: Compiler,
    snapshot: Snapshot,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let (config, files) = (dir.path().join("config"), dir.path().join("files"));
        std::fs::create_dir_all(&config).unwrap();
        std::fs::create_dir_all(&files).unwrap();
        let compiler = World::compiler_for(&config);
        World { _dir: dir, config, files, compiler, snapshot: Snapshot::empty() }
    }

    fn compiler_for(config: &Path) -> Compiler {
        let options = ControllerOptions {
            compile: Default::default(),
            load: LoadOptions::default(),
            tls_files: TlsFilePolicy::default(),
            debounce: Duration::ZERO,
            debounce_max: Duration::ZERO,
        };
        Compiler::new(vec![Box::new(ConfigDirSource::unwatched(config.to_path_buf()))], Vec::new(), options)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.config.join(name), text).unwrap();
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.config.join(name)).unwrap();
    }

    /// Reloads; the served resources (keys shown) and the diagnostics.
    fn reload(&mut self) -> (Value, Vec<Diagnostic>) {
        let outcome = self.compiler.reload(&self.snapshot);
        if let Some(snapshot) = outcome.snapshot {
            self.snapshot = snapshot;
        }
        (serde_json::from_str(&render::snapshot_json(&self.snapshot.resources)).unwrap(), outcome.report.diagnostics)
    }
}

/// Route name → what it does: the cluster it forwards to, or `503` when it fails closed; by name.
fn routes(served: &Value) -> Vec<(String, String)> {
    let routes = &served["routes"][0]["virtual_hosts"][0]["routes"];
    let mut routes: Vec<(String, String)> = routes
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let action = match (&r["route"]["cluster"], &r["direct_response"]["status"]) {
                (Value::String(cluster), _) => cluster.clone(),
                (_, Value::Number(status)) => status.to_string(),
                _ => "?".into(),
            };
            (r["name"].as_str().unwrap().to_string(), action)
        })
        // Emissary's probe routes are in every configuration.
        .filter(|(name, _)| !name.contains("/internal_"))
        .collect();
    routes.sort();
    routes
}

fn route(name: &str, action: &str) -> (String, String) {
    (name.to_string(), action.to_string())
}

fn stale(diagnostics: &[Diagnostic]) -> Vec<String> {
    diagnostics.iter().filter(|d| d.kind == Kind::Stale).map(|d| d.resource.as_ref().unwrap().to_string()).collect()
}

fn mapping(name: &str, prefix: &str, service: &str) -> String {
    format!("---\nkind: Mapping\nname: {name}\nprefix: {prefix}\nservice: {service}\n")
}

#[test]
fn a_value_of_the_wrong_type_keeps_the_previous_route_until_the_file_is_removed() {
    let mut world = World::new();
    world.write("a.yaml", &mapping("a", "/a/", "svc-a"));
    world.write("b.yaml", &mapping("b", "/b/", "svc-b"));
    let (served, _) = world.reload();
    assert_eq!(
        routes(&served),
        [route("default/a", "cluster_svc_a_default"), route("default/b", "cluster_svc_b_default")]
    );

    world.write("a.yaml", &mapping("a", "5", "svc-a"));
    let (served, diagnostics) = world.reload();
    assert_eq!(routes(&served)[0], route("default/a", "cluster_svc_a_default"), "the last good route stays");
    assert_eq!(stale(&diagnostics), ["Mapping default/a"]);
    assert!(diagnostics.iter().any(|d| d.is_error() && d.message.contains("invalid")), "{diagnostics:?}");

    world.remove("a.yaml");
    let (served, diagnostics) = world.reload();
    assert_eq!(routes(&served), [route("default/b", "cluster_svc_b_default")]);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
}

#[test]
fn a_mapping_that_stops_compiling_keeps_its_last_good_route() {
    let mut world = World::new();
    world.write("a.yaml", &mapping("a", "/a/", "svc-a"));
    world.reload();
    world.write("a.yaml", &mapping("a", "/a/", "svc-a:no-port"));
    let (served, diagnostics) = world.reload();
    assert_eq!(routes(&served), [route("default/a", "cluster_svc_a_default")]);
    assert_eq!(stale(&diagnostics), ["Mapping default/a"]);
    assert!(diagnostics.iter().any(|d| d.message.contains("is not a port number")), "{diagnostics:?}");

    // Fixed differently: the new version replaces the old.
    world.write("a.yaml", &mapping("a", "/a2/", "svc-a2"));
    let (served, diagnostics) = world.reload();
    assert_eq!(routes(&served), [route("default/a", "cluster_svc_a2_default")]);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
}

#[test]
fn a_broken_new_mapping_cannot_take_a_canary_group_down() {
    let mut world = World::new();
    let weighted =
        |name: &str, weight: u32| mapping(name, "/svc/", &format!("svc-{name}")) + &format!("weight: {weight}\n");
    world.write("group.yaml", &(weighted("main", 50) + &weighted("canary", 50)));
    let (served, _) = world.reload();
    assert_eq!(routes(&served).len(), 2);
    world.write("extra.yaml", &weighted("extra", 30));
    let (served, diagnostics) = world.reload();
    let names: Vec<String> = routes(&served).into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["default/canary", "default/main"], "{diagnostics:?}");
    assert!(
        diagnostics.iter().any(|d| d.is_error() && &*d.resource.as_ref().unwrap().name == "extra"),
        "{diagnostics:?}"
    );
}

#[test]
fn a_syntax_error_keeps_everything_its_file_held() {
    let mut world = World::new();
    world.write("both.yaml", &(mapping("a", "/a/", "svc-a") + &mapping("b", "/b/", "svc-b")));
    world.reload();
    world.write("both.yaml", &(mapping("a", "/a/", "svc-a") + "---\nkind: [\n"));
    let (served, diagnostics) = world.reload();
    assert_eq!(routes(&served).len(), 2, "{diagnostics:?}");
    assert_eq!(stale(&diagnostics), ["Mapping default/b"]);
}

#[test]
fn an_alias_bomb_beside_good_resources_costs_only_itself() {
    let mut world = World::new();
    world.write("good.yaml", &mapping("good", "/good/", "svc"));
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        bomb += &format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", "));
    }
    world.write("bomb.yaml", &bomb);
    let (served, diagnostics) = world.reload();
    assert_eq!(routes(&served), [route("default/good", "cluster_svc_default")]);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(diagnostics[0].kind, Kind::Limit);
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn cert(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/certs").join(name)).unwrap()
}

fn secret(cert_name: &str, key_name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: certs}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(&cert(cert_name)),
        b64(&cert(key_name))
    )
}

const CONTEXT_AND_MAPPING: &str = "---\nkind: TLSContext\nname: ctx\nsecret: certs\n---\nkind: Mapping\nname: m\nprefix: /m/\nservice: upstream\ntls: ctx\n";

fn served_chain(served: &Value) -> Option<String> {
    served["secrets"][0]["tls_certificate"]["certificate_chain"]["inline_string"].as_str().map(str::to_string)
}

#[test]
fn a_secret_rotated_in_two_steps_keeps_the_last_consistent_certificate() {
    let mut world = World::new();
    world.write("tls.yaml", CONTEXT_AND_MAPPING);
    world.write("secret.yaml", &secret("client.crt", "client.key"));
    let (served, _) = world.reload();
    let first = served_chain(&served).unwrap();
    assert_eq!(first.as_bytes(), cert("client.crt"));

    // The certificate first, the key a moment later.
    world.write("secret.yaml", &secret("client2.crt", "client.key"));
    let (served, diagnostics) = world.reload();
    assert_eq!(served_chain(&served).as_deref(), Some(first.as_str()), "the last good certificate stays");
    assert_eq!(routes(&served), [route("default/m", "cluster_upstream_otls_ctx_default")]);
    assert!(diagnostics.iter().any(|d| d.kind == Kind::Material), "{diagnostics:?}");
    assert_eq!(stale(&diagnostics), ["TLSContext default/ctx"]);

    world.write("secret.yaml", &secret("client2.crt", "client2.key"));
    let (served, diagnostics) = world.reload();
    assert_eq!(served_chain(&served).unwrap().as_bytes(), cert("client2.crt"));
    assert!(diagnostics.is_empty(), "{diagnostics:?}");

    // A deleted Secret is gone, not broken: the route fails closed.
    world.remove("secret.yaml");
    let (served, diagnostics) = world.reload();
    assert_eq!(routes(&served), [route("default/m", "503")]);
    assert!(served_chain(&served).is_none());
    assert!(
        diagnostics.iter().any(|d| d.kind == Kind::Reference && d.message.contains("not found")),
        "{diagnostics:?}"
    );
}

#[test]
fn material_that_never_was_good_fails_closed() {
    let mut world = World::new();
    world.write("tls.yaml", CONTEXT_AND_MAPPING);
    world.write("secret.yaml", &secret("client2.crt", "client.key"));
    let (served, diagnostics) = world.reload();
    assert_eq!(routes(&served), [route("default/m", "503")]);
    assert!(stale(&diagnostics).is_empty());
}

#[test]
fn certificate_files_rewritten_one_at_a_time_switch_once_both_are_written() {
    let mut world = World::new();
    let (chain, key) = (world.files.join("tls.crt"), world.files.join("tls.key"));
    std::fs::write(&chain, cert("client.crt")).unwrap();
    std::fs::write(&key, cert("client.key")).unwrap();
    world.write(
        "tls.yaml",
        &format!(
            "---\nkind: TLSContext\nname: ctx\ncert_chain_file: {}\nprivate_key_file: {}\n---\nkind: Mapping\nname: m\nprefix: /m/\nservice: upstream\ntls: ctx\n",
            chain.display(),
            key.display()
        ),
    );
    let (served, _) = world.reload();
    assert_eq!(served_chain(&served).unwrap().as_bytes(), cert("client.crt"));
    std::fs::write(&chain, cert("client2.crt")).unwrap();
    let (served, _) = world.reload();
    assert_eq!(served_chain(&served).unwrap().as_bytes(), cert("client.crt"));
    std::fs::remove_file(&key).unwrap(); // a rotation tool that deletes before it writes
    let (served, _) = world.reload();
    assert_eq!(served_chain(&served).unwrap().as_bytes(), cert("client.crt"));
    std::fs::write(&key, cert("client2.key")).unwrap();
    let (served, diagnostics) = world.reload();
    assert_eq!(served_chain(&served).unwrap().as_bytes(), cert("client2.crt"));
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
}

#[test]
fn an_unreadable_config_directory_keeps_everything() {
    let mut world = World::new();
    world.write("a.yaml", &mapping("a", "/a/", "svc-a"));
    world.reload();
    let moved = world.config.with_extension("moved");
    std::fs::rename(&world.config, &moved).unwrap();
    let (served, diagnostics) = world.reload();
    assert_eq!(routes(&served), [route("default/a", "cluster_svc_a_default")]);
    assert_eq!(diagnostics[0].kind, Kind::Unreadable, "{diagnostics:?}");
    std::fs::create_dir(&world.config).unwrap();
    world.write("b.yaml", &mapping("b", "/b/", "svc-b"));
    let (served, _) = world.reload();
    assert_eq!(routes(&served), [route("default/b", "cluster_svc_b_default")]);
}

// ---- incremental reloads agree with a fresh translation ----

/// Reusing is what makes a reload incremental, and serving the same bytes cannot show it (a memo
/// that never hits serves them too): count what each reload builds.
#[test]
fn a_reload_rebuilds_only_what_changed() {
    let mut world = World::new();
    let mut all = String::new();
    for i in 0..20 {
        all.push_str(&mapping(&format!("m{i}"), &format!("/m{i}/"), &format!("svc-{i}")));
    }
    world.write("all.yaml", &all);
    world.reload();
    let built = |mappings, groups, routes, clusters| Rebuilt { mappings, groups, routes, clusters, compared: 0 };
    let first = world.compiler.rebuilt();
    assert!(first.mappings >= 20 && first.groups >= 20 && first.routes >= 20 && first.clusters >= 20, "{first:?}");

    world.write("all.yaml", &all.replace("prefix: /m7/", "prefix: /m7-new/"));
    world.reload();
    // Its cluster claim is a new value (the Mapping compiled again), equal to the old one: the
    // cluster set is the one the last reload finished with, so admission sees the old cluster.
    assert_eq!(world.compiler.rebuilt(), built(1, 1, 1, 0), "a new prefix: one Mapping, its group and route");

    world.write("all.yaml", &all.replace("service: svc-7\n", "service: svc-7b\n"));
    world.reload();
    assert_eq!(world.compiler.rebuilt(), built(1, 1, 1, 1), "a new service: and its cluster");

    world.reload();
    assert_eq!(world.compiler.rebuilt(), built(0, 0, 0, 0), "nothing changed: nothing built");

    // Three Mappings originate TLS with a context; a change to it compiles those three again.
    let context = |alpn: &str| {
        let mut out = tls_secret_yaml("sec-a", "client");
        out.push_str(&format!("---\napiVersion: getambassador.io/v3alpha1\nkind: TLSContext\nmetadata: {{name: ctx-a, namespace: default}}\nspec: {{secret: sec-a, alpn_protocols: \"{alpn}\"}}\n"));
        for i in 0..3 {
            out.push_str(&format!(
                "---\nkind: Mapping\nname: tls{i}\nprefix: /tls{i}/\nservice: https://up-{i}\ntls: ctx-a\n"
            ));
        }
        out
    };
    world.write("tls.yaml", &context("h2"));
    world.reload();
    world.write("tls.yaml", &context("http/1.1"));
    world.reload();
    // Their routes are byte for byte the same (the cluster names hold the context's name, not its
    // ALPN): new values, recognised by content once.
    let context_change = Rebuilt { compared: 3, ..built(3, 3, 0, 3) };
    assert_eq!(world.compiler.rebuilt(), context_change, "a TLSContext: the Mappings that name it, their clusters");
    world.reload();
    assert_eq!(world.compiler.rebuilt(), built(0, 0, 0, 0), "then known by address: nothing compared again");

    // A cluster two Mappings share is made anew (its provenance names both), but only once.
    let shared = mapping("s1", "/s1/", "svc-shared") + &mapping("s2", "/s2/", "svc-shared");
    world.write("shared.yaml", &shared);
    world.reload();
    world.reload();
    assert_eq!(world.compiler.rebuilt(), built(0, 0, 0, 0), "a shared cluster is the same value next time");

    let module = "---\napiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata: {name: ambassador}\nspec: {config: {add_linkerd_headers: true}}\n";
    world.write("module.yaml", module);
    world.reload();
    let all = world.compiler.rebuilt();
    assert!(all.mappings >= 20 && all.groups >= 20 && all.routes >= 20, "the Module is read by every Mapping: {all:?}");
}

/// A small deterministic generator (xorshift64*): the edit sequences are reproducible from the
/// seed, which a failure prints.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn tls_secret_yaml(name: &str, cert: &str) -> String {
    let file = |ext: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("testdata/certs/{cert}.{ext}"));
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
    };
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        file("crt"),
        file("key")
    )
}

/// A random Mapping (most compile): prefixes shared across files (so routes interleave and
/// order matters), services with and without TLS and with colliding cluster names, precedence, headers, hosts, canary weights.
fn random_mapping(rng: &mut Rng, file: usize, doc: usize) -> String {
    // One in eight is a regex whose program is over Envoy's size limit: it reads and compiles
    // but Envoy would refuse it, so it is admitted as a fail-closed route.
    let prefix = match rng.below(8) {
        0 => "\"/x(a|b|c|d){40}/\"\n  prefix_regex: true",
        _ => rng.pick(&["/a/", "/b/", "/a/b/", "/c/", "/"]),
    };
    // `svc-a` and `svc.a` have the same cluster name: while both are in use, their clusters
    // are renamed apart, and routes that did not change must follow.
    let service = rng.pick(&["svc-a", "svc.a", "svc-b:8080", "https://svc-c", "svc-d.other:9000"]);
    let mut out = format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: m-{file}-{doc}, namespace: default}}\nspec:\n  prefix: {prefix}\n  service: {service}\n"
    );
    match rng.below(10) {
        0 => out.push_str("  tls: ctx-a\n"),
        1 => out.push_str("  tls: ctx-b\n"),
        2 => out.push_str(&format!("  precedence: {}\n", rng.below(3))),
        3 => out.push_str(&format!("  headers: {{x-canary: \"{}\"}}\n", rng.below(2))),
        4 => out.push_str(&format!("  host: {}\n", rng.pick(&["a.example", "b.example"]))),
        // Canary weights (a group can go over 100%), shadows, shared clusters with different
        // settings, and a Mapping that stops compiling (its last good version is served).
        5 => out.push_str(&format!("  weight: {}\n", 10 * rng.below(8))),
        6 => out.push_str("  shadow: true\n"),
        7 => out.push_str(&format!("  connect_timeout_ms: {}\n", 1000 * (1 + rng.below(2)))),
        8 => out.push_str("  priority: urgent\n"),
        _ => {}
    }
    out
}

/// An edit of a file of Mappings, as people make them: most change one Mapping and leave the
/// rest as they were; some reorder the file (the same Mappings in other documents), drop a
/// Mapping, or rewrite the whole file.
fn edit_mappings(rng: &mut Rng, file: usize, documents: &mut Vec<(usize, String)>) {
    match rng.below(6) {
        0 if documents.len() > 1 => documents.reverse(),
        1 if !documents.is_empty() => {
            documents.remove(rng.below(documents.len()));
        }
        2 | 3 if !documents.is_empty() => {
            let at = rng.below(documents.len());
            let doc = documents[at].0;
            documents[at].1 = random_mapping(rng, file, doc);
        }
        _ => {
            *documents = (0..rng.below(5)).map(|doc| (doc, random_mapping(rng, file, doc))).collect();
        }
    }
}

/// A random `ambassador` Module: its settings are inputs of every Mapping's compile.
fn random_module(rng: &mut Rng) -> String {
    let config = rng.pick(&[
        "{}",
        "{add_linkerd_headers: true}",
        "{cluster_idle_timeout_ms: 30000}",
        "{retry_policy: {retry_on: 5xx}}",
        "{defaults: {add_request_headers: {x-default: on}}}",
    ]);
    format!("---\napiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata: {{name: ambassador, namespace: default}}\nspec: {{config: {config}}}\n")
}

fn random_contexts(rng: &mut Rng) -> String {
    let mut out = String::new();
    for (context, secret, cert) in [("ctx-a", "sec-a", "client"), ("ctx-b", "sec-b", "client2")] {
        out.push_str(&tls_secret_yaml(secret, cert));
        let alpn = rng.pick(&["h2", "http/1.1", "h2,http/1.1"]);
        out.push_str(&format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: TLSContext\nmetadata: {{name: {context}, namespace: default}}\nspec: {{secret: {secret}, alpn_protocols: \"{alpn}\"}}\n"
        ));
    }
    out
}

/// Serving keeps state from reload to reload: each file's parse, every resource's last good
/// version, what each Mapping compiled to, each route's and cluster's admitted bytes, the
/// validation verdicts of unchanged messages. After any sequence of edits, what it serves (and
/// reports) is exactly what a controller that reuses nothing but last good versions serves, byte
/// for byte: route order and canary groups included; and while no last good version is in
/// service, exactly what a fresh translation of the same directory produces. `CONTROLLER_PROPERTY_SEED` and
/// `CONTROLLER_PROPERTY_CASES` widen the search.
#[test]
fn reloads_after_random_edits_serve_what_a_fresh_translation_serves() {
    let seed: u64 = std::env::var("CONTROLLER_PROPERTY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x16_2026);
    let cases: u64 = std::env::var("CONTROLLER_PROPERTY_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    let options = crate::compile::Options::default();
    for case in 0..cases {
        let mut rng = Rng(seed.wrapping_add(case).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut world = World::new();
        // The same directory, reloaded by a controller that reuses nothing from one reload to the
        // next but the last good versions: what edits that do not compile are compared with.
        let mut forgetful = World::new();
        forgetful.config = world.config.clone();
        forgetful.compiler = World::compiler_for(&world.config);
        world.write("contexts.yaml", &random_contexts(&mut rng));
        let mut files: [Vec<(usize, String)>; 4] = Default::default();
        for step in 0..15 {
            match rng.below(6) {
                0 => world.write("contexts.yaml", &random_contexts(&mut rng)),
                5 => world.write("module.yaml", &random_module(&mut rng)),
                1 => {
                    let file = rng.below(4);
                    let name = format!("m{file}.yaml");
                    if world.config.join(&name).exists() {
                        world.remove(&name);
                        files[file].clear();
                    }
                }
                _ => {
                    let file = rng.below(4);
                    edit_mappings(&mut rng, file, &mut files[file]);
                    let text: String = files[file].iter().map(|(_, text)| text.as_str()).collect();
                    world.write(&format!("m{file}.yaml"), &text);
                }
            }
            let (_, diagnostics) = world.reload();
            let context = format!("seed {seed:#x}, case {case}, step {step}");
            forgetful.compiler.forget_reuse();
            let (_, forgetful_diagnostics) = crate::xds::validate::memo::bypassed(|| forgetful.reload());
            assert_eq!(diagnostics, forgetful_diagnostics, "{context}: diagnostics, reusing and not");
            if world.snapshot.resources != forgetful.snapshot.resources {
                let served = render::snapshot_json(&world.snapshot.resources);
                let expected = render::snapshot_json(&forgetful.snapshot.resources);
                assert_eq!(served, expected, "{context}: served resources differ from a reload that reuses nothing");
                panic!("{context}: same JSON, different bytes (reusing and not)");
            }
            // Fresh: nothing remembered, not even validation verdicts.
            let fresh = crate::xds::validate::memo::bypassed(|| {
                crate::pipeline::translate_paths(std::slice::from_ref(&world.config), &LoadOptions::default(), &options)
            })
            .unwrap();
            // While something does not compile, a last good version may be in service (an
            // unchanged canary member stays when a new one breaks its group, without a warning):
            // a fresh translation has none to serve.
            let compile_errors =
                fresh.diagnostics.iter().any(|d| d.severity == Severity::Error && d.kind != Kind::Rejected);
            if compile_errors || diagnostics.iter().any(|d| d.kind == Kind::Stale) {
                continue;
            }
            assert_eq!(diagnostics, fresh.diagnostics, "{context}: diagnostics");
            if world.snapshot.resources != fresh.resources {
                let (served, expected) =
                    (render::snapshot_json(&world.snapshot.resources), render::snapshot_json(&fresh.resources));
                assert_eq!(served, expected, "{context}: served resources differ from a fresh translation");
                panic!("{context}: same JSON, different bytes");
            }
        }
    }
}

const EDGE: &str = "---\napiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {name: https}\nspec: {port: 8443, protocol: HTTPS, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}\n---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: m}\nspec: {prefix: /m/, service: upstream}\n";

fn edge_host(action: &str) -> String {
    format!("---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {{name: h}}\nspec: {{hostname: h.example.com, tlsSecret: {{name: certs}}, requestPolicy: {{insecure: {{action: {action}}}}}}}\n")
}

/// Filter chain name → what it does with TLS: the SDS secret it serves, `refused`, or `cleartext`.
fn chains(served: &Value) -> Vec<(String, String)> {
    let chains = &served["listeners"][0]["filter_chains"];
    chains
        .as_array()
        .into_iter()
        .flatten()
        .map(|chain| {
            let tls = &chain["transport_socket"]["typed_config"]["common_tls_context"];
            let what = match (&tls["tls_certificate_sds_secret_configs"][0]["name"], &chain["filters"][0]["name"]) {
                (Value::String(secret), _) => secret.clone(),
                (_, Value::String(filter)) if filter.ends_with("direct_response") => "refused".into(),
                _ => "cleartext".into(),
            };
            (chain["name"].as_str().unwrap_or_default().to_string(), what)
        })
        .collect()
}

#[test]
fn a_server_certificate_rotated_in_two_steps_keeps_the_last_consistent_one() {
    let mut world = World::new();
    world.write("edge.yaml", &(EDGE.to_string() + &edge_host("Route")));
    world.write("secret.yaml", &secret("a-example.crt", "a-example.key"));
    let (served, diagnostics) = world.reload();
    let serving = [("https/h.example.com", "host/default/h/server-cert"), ("http", "cleartext")];
    let serving: Vec<(String, String)> = serving.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(chains(&served), serving, "{diagnostics:?}");
    assert_eq!(served_chain(&served).unwrap().as_bytes(), cert("a-example.crt"));

    world.write("secret.yaml", &secret("a-example-rotated.crt", "a-example.key"));
    let (served, diagnostics) = world.reload();
    assert_eq!(chains(&served), serving);
    assert_eq!(served_chain(&served).unwrap().as_bytes(), cert("a-example.crt"), "the last good certificate stays");
    assert_eq!(stale(&diagnostics), ["Host default/h"]);

    world.write("secret.yaml", &secret("a-example-rotated.crt", "a-example-rotated.key"));
    let (served, diagnostics) = world.reload();
    assert_eq!(served_chain(&served).unwrap().as_bytes(), cert("a-example-rotated.crt"));
    assert!(diagnostics.is_empty(), "{diagnostics:?}");

    // Deleted is gone: TLS for the name is refused, its cleartext still routed.
    world.remove("secret.yaml");
    let (served, diagnostics) = world.reload();
    assert_eq!(chains(&served)[0], ("https/h.example.com".to_string(), "refused".to_string()));
    assert_eq!(chains(&served)[1].1, "cleartext");
    assert!(served["secrets"].as_array().is_none_or(|s| s.is_empty()), "{served}");
    assert!(
        diagnostics.iter().any(|d| d.kind == Kind::Reference && d.message.contains("not found")),
        "{diagnostics:?}"
    );
}

#[test]
fn a_host_that_stops_compiling_keeps_its_last_good_version() {
    let mut world = World::new();
    world.write("edge.yaml", &(EDGE.to_string() + &edge_host("Route")));
    world.write("secret.yaml", &secret("a-example.crt", "a-example.key"));
    let (before, _) = world.reload();
    world.write("edge.yaml", &(EDGE.to_string() + &edge_host("Drop")));
    let (served, diagnostics) = world.reload();
    assert_eq!(chains(&served), chains(&before));
    assert_eq!(served["routes"], before["routes"]);
    assert_eq!(stale(&diagnostics), ["Host default/h"]);
    assert!(diagnostics.iter().any(|d| d.is_error() && d.message.contains("Drop")), "{diagnostics:?}");
}
