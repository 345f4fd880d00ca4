//! Differential test, Envoy as the oracle: every certificate/key/CA variant in
//! `testdata/material/variants/` (made by `testdata/material/make.sh`) goes through `translate`
//! (as a Kubernetes Secret behind a TLSContext and a Mapping) and through every supported real
//! Envoy (`--mode validate`, the material as a static secret of a TLS cluster). The translator
//! must accept exactly what every Envoy loads, and refuse, with a diagnostic on the Secret's
//! TLSContext, what any of them refuses.
//!
//! The oracle is checked first: validate mode must refuse a key that does not match its
//! certificate and load the plain RSA 2048 certificate, or the comparison would prove nothing.

mod support;

use ambassador_xds::compile::Options;
use ambassador_xds::diagnostic::Kind;
use ambassador_xds::pipeline::translate_paths;
use ambassador_xds::source::files::LoadOptions;
use base64::Engine as _;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const VARIANTS: &str = "testdata/material/variants";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `tls.crt` + `tls.key`: a client certificate.
    Certificate,
    /// `ca.crt`: a CA bundle.
    CaBundle,
}

struct Variant {
    name: String,
    dir: PathBuf,
    shape: Shape,
}

fn variants() -> Vec<Variant> {
    let root = support::manifest_dir().join(VARIANTS);
    let mut variants: Vec<Variant> = std::fs::read_dir(&root)
        .unwrap()
        .map(|entry| {
            let dir = entry.unwrap().path();
            let shape = if dir.join("ca.crt").exists() { Shape::CaBundle } else { Shape::Certificate };
            Variant { name: dir.file_name().unwrap().to_string_lossy().into_owned(), dir, shape }
        })
        .collect();
    variants.sort_by(|a, b| a.name.cmp(&b.name));
    variants
}

fn base64(path: &Path) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
}

/// The translator's verdict: `Ok` when the material is served, `Err(diagnostic)` when refused.
fn translate(variant: &Variant, scratch: &Path) -> Result<(), String> {
    let input = scratch.join(&variant.name);
    std::fs::create_dir_all(&input).unwrap();
    let (data, context) = match variant.shape {
        Shape::Certificate => (
            format!(
                "  tls.crt: \"{}\"\n  tls.key: \"{}\"\n",
                base64(&variant.dir.join("tls.crt")),
                base64(&variant.dir.join("tls.key"))
            ),
            "  secret: material",
        ),
        // Quoted: an empty file's base64 is empty, which unquoted YAML reads as null.
        Shape::CaBundle => {
            (format!("  ca.crt: \"{}\"\n", base64(&variant.dir.join("ca.crt"))), "  ca_secret: material")
        }
    };
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: material, namespace: default}}\ndata:\n{data}---\n\
         apiVersion: getambassador.io/v3alpha1\nkind: TLSContext\nmetadata: {{name: ctx, namespace: default}}\nspec:\n  hosts: []\n{context}\n---\n\
         apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: m, namespace: default}}\nspec:\n  prefix: /m/\n  service: upstream.example\n  tls: ctx\n"
    );
    std::fs::write(input.join("config.yaml"), yaml).unwrap();
    let translation = translate_paths(&[input], &LoadOptions::default(), &Options::default()).unwrap();
    let refusals: Vec<String> = translation
        .diagnostics
        .iter()
        .filter(|d| d.is_error() && d.kind == Kind::Material)
        .map(|d| d.to_string())
        .collect();
    let served = translation.resources.of(ambassador_xds::xds::XdsType::Secret).len();
    match (served, refusals.first()) {
        (1, None) => Ok(()),
        (0, Some(reason)) => Err(reason.clone()),
        (served, reason) => panic!("{}: {served} secrets served and refusal {reason:?}", variant.name),
    }
}

/// A bootstrap whose one static cluster originates TLS with the variant as a static secret.
fn envoy_bootstrap(variant: &Variant) -> Value {
    let inline = |file: &str| json!({"inline_bytes": base64(&variant.dir.join(file))});
    let (secret, context) = match variant.shape {
        Shape::Certificate => (
            json!({"name": "material", "tls_certificate": {"certificate_chain": inline("tls.crt"), "private_key": inline("tls.key")}}),
            json!({"tls_certificate_sds_secret_configs": [{"name": "material"}]}),
        ),
        Shape::CaBundle => (
            json!({"name": "material", "validation_context": {"trusted_ca": inline("ca.crt")}}),
            json!({"validation_context_sds_secret_config": {"name": "material"}}),
        ),
    };
    json!({"static_resources": {
        "secrets": [secret],
        "clusters": [{
            "name": "upstream", "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9}}}}]}]},
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "common_tls_context": context}}
        }]
    }})
}

/// Envoy's verdict per version: `Ok` when it loads the material.
fn envoy_verdicts(variant: &Variant, envoys: &[(String, PathBuf)], scratch: &Path) -> Vec<Result<(), String>> {
    let path = scratch.join(format!("{}.json", variant.name));
    std::fs::write(&path, envoy_bootstrap(variant).to_string()).unwrap();
    envoys.iter().map(|(_, envoy)| support::envoy_validate_with(envoy, &path)).collect()
}

fn last_line(text: &str) -> &str {
    text.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or_default()
}

#[test]
fn translator_accepts_exactly_what_every_envoy_loads() {
    let envoys = support::envoy_binaries();
    let scratch = tempfile::tempdir().unwrap();
    let variants = variants();
    assert!(variants.len() >= 70, "expected the full matrix, found {} variants", variants.len());

    let find = |name: &str| variants.iter().find(|v| v.name == name).unwrap();
    for (sound, name) in [(true, "rsa2048-v3-pkcs8"), (false, "mismatched-key")] {
        for ((version, _), verdict) in envoys.iter().zip(envoy_verdicts(find(name), &envoys, scratch.path())) {
            assert_eq!(verdict.is_ok(), sound, "the oracle is unsound: Envoy {version} on {name}: {verdict:?}");
        }
    }

    let results = support::in_parallel(&variants, |variant| {
        (translate(variant, scratch.path()), envoy_verdicts(variant, &envoys, scratch.path()))
    });
    let mut disagreements = Vec::new();
    let mut table = String::new();
    for (variant, (ours, theirs)) in variants.iter().zip(&results) {
        let envoy_loads = theirs.iter().all(Result::is_ok);
        let per_version: Vec<String> = envoys
            .iter()
            .zip(theirs)
            .map(|((version, _), verdict)| format!("{version}:{}", if verdict.is_ok() { "loads" } else { "refuses" }))
            .collect();
        table.push_str(&format!(
            "{:<34} ours: {:<7} envoy: {}\n",
            variant.name,
            if ours.is_ok() { "serves" } else { "refuses" },
            per_version.join(" ")
        ));
        if ours.is_ok() != envoy_loads {
            let envoy_reasons: Vec<String> =
                theirs.iter().filter_map(|r| r.as_ref().err()).map(|e| last_line(e).to_string()).collect();
            disagreements.push(format!(
                "{}: translator {:?}, Envoy {}: {}",
                variant.name,
                ours,
                per_version.join(" "),
                envoy_reasons.join(" | ")
            ));
        }
    }
    println!(
        "{} variants against Envoy {:?}:\n{table}",
        variants.len(),
        envoys.iter().map(|(v, _)| v).collect::<Vec<_>>()
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements with Envoy:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
