//! The page and `/debug/status` from a fixed configuration (`testdata/admin/input`: upstream mTLS,
//! a header-matched route, a route that fails closed, a file that is not YAML), one connected
//! Envoy and one NACK, at a fixed instant. The page is compared with `testdata/admin/page.html`
//! (`UPDATE_GOLDEN=1` rewrites it); key material is looked for in both outputs.

use super::{page, view};
use crate::controller::ReloadReport;
use crate::server::status::{NodeInfo, Registry};
use crate::server::{Nack, TypeSync};
use crate::snapshot::Snapshot;
use crate::source::files::{self, LoadOptions};
use crate::xds::XdsType;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// 2026-12-01T12:00:00Z: the test certificates (valid until 2126) are far from expiry.
const NOW: i64 = 1_796_126_400;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Fixture {
    snapshot: Snapshot,
    report: ReloadReport,
    registry: Arc<Registry>,
    /// Keep the stream's entry registered.
    _stream: crate::server::status::StreamHandle,
}

fn fixture() -> Fixture {
    let options = crate::compile::Options::default();
    // Relative to the package root (where cargo runs tests), as an operator passes paths: the
    // page shows them as given.
    let input = PathBuf::from("testdata/admin/input");
    let loaded = files::load(&[input], &LoadOptions::default(), &options.ambassador_id).unwrap();
    let inventory = crate::controller::Inventory::of(Arc::new(loaded.model.clone()));
    let translation = crate::pipeline::translate(loaded, &options);
    let snapshot = Snapshot::new(translation.resources, 3, None).with_provenance(translation.provenance);
    let report = ReloadReport { diagnostics: translation.diagnostics, inventory };

    let registry = Arc::new(Registry::default());
    let stream = registry.register("127.0.0.1:40001", "sotw", "ADS");
    let nack = Nack {
        xds_type: XdsType::Cluster,
        version: "3-2".into(),
        // What the stream sent (the state machine fills this in).
        resource_names: vec!["cluster_upstream_service_otls_upstream_context_default".into()],
        message: "cluster_upstream_service_otls_upstream_context_default: unknown cipher <b>".into(),
    };
    let report_of_nack = registry.nacks.record("127.0.0.1:40001", nack, &snapshot);
    stream.update(|entry| {
        entry.node = Some(NodeInfo { id: "edge-1".into(), cluster: "edge".into(), agent: "envoy 1.40.0".into() });
        entry.connected_since = UNIX_EPOCH + Duration::from_secs(NOW as u64 - 3600);
        entry.types = vec![
            TypeSync {
                xds_type: XdsType::Cluster,
                sent: Some("3-2".into()),
                acked: Some("2-1".into()),
                nacked: true,
                pending: false,
            },
            TypeSync {
                xds_type: XdsType::Listener,
                sent: Some("3-1".into()),
                acked: Some("3-1".into()),
                nacked: false,
                pending: false,
            },
        ];
        entry.last_nacks.insert(XdsType::Cluster, report_of_nack);
    });
    Fixture { snapshot, report, registry, _stream: stream }
}

fn overview(fixture: &Fixture) -> view::Overview {
    view::overview_at(&fixture.snapshot, true, &fixture.report, &fixture.registry, NOW)
}

#[test]
fn the_page_matches_its_golden_file() {
    let fixture = fixture();
    let html = page::render(&overview(&fixture));
    let golden = manifest_dir().join("testdata/admin/page.html");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &html).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    if html != expected {
        let diff =
            similar::TextDiff::from_lines(&expected, &html).unified_diff().header("golden", "rendered").to_string();
        panic!("the page differs from {} (UPDATE_GOLDEN=1 rewrites it):\n{diff}", golden.display());
    }
}

#[test]
fn the_page_shows_what_operators_look_for() {
    let fixture = fixture();
    let overview = overview(&fixture);
    let html = page::render(&overview);
    // The broken file, by name, with its document.
    let broken =
        overview.diagnostics.iter().find(|d| d.file.ends_with("broken.yaml")).expect("a diagnostic for broken.yaml");
    assert_eq!(broken.severity, "error");
    assert!(html.contains("testdata/admin/input/broken.yaml"));
    // The route that fails closed says why.
    let lost = overview.routes.iter().find(|r| r.name == "default/lost-mapping").expect("the lost route");
    assert!(lost.target.starts_with("answers 503"), "{lost:?}");
    assert!(lost.fail_closed.contains("no-such-context"), "{lost:?}");
    // The upstream route originates TLS with its context.
    let upstream = overview.routes.iter().find(|r| r.name == "default/upstream-mapping").unwrap();
    assert_eq!(upstream.tls_context, "TLSContext default/upstream-context");
    // The Envoy, its NACK and the resources behind it.
    let envoy = &overview.envoys[0];
    assert_eq!((envoy.node.as_str(), envoy.agent.as_str(), envoy.state), ("edge-1", "envoy 1.40.0", "NACKED"));
    assert!(
        envoy.nacks[0].culprits.iter().any(|c| c.starts_with("Mapping default/upstream-mapping")),
        "{:?}",
        envoy.nacks
    );
    // Everything from the outside is escaped.
    assert!(html.contains("unknown cipher &lt;b&gt;") && !html.contains("<b>\n") && !html.contains("cipher <b>"));
    // The served certificate: subject, SANs, issuer, expiry.
    let certificate = overview.certificates.iter().find(|c| c.role == "certificate").expect("the client certificate");
    assert!(certificate.subject.contains("CN=envoy-client"), "{certificate:?}");
    assert_eq!(certificate.sans, ["DNS:envoy-client"]);
    assert!(certificate.issuer.contains("ambassador-xds test CA"), "{certificate:?}");
    assert!(certificate.warning.is_empty());
}

#[test]
fn certificates_near_or_past_expiry_are_flagged() {
    let fixture = fixture();
    let not_after = overview(&fixture).certificates[0].not_after;
    let at = |now: i64| view::overview_at(&fixture.snapshot, true, &fixture.report, &fixture.registry, now);
    assert_eq!(at(not_after - 20 * 86_400).certificates[0].warning, "");
    assert_eq!(at(not_after - 13 * 86_400 - 1).certificates[0].warning, "expires in 13 days");
    assert_eq!(at(not_after).certificates[0].warning, "expired");
    assert!(page::render(&at(not_after + 1)).contains("<span class=\"badge warn\">expired</span>"));
}

/// Every line of every private key in `testdata` (PEM, and the base64 of the PEM as a Secret's
/// `data` holds it) is absent from the page and from `/debug/status`, for every testdata input.
#[test]
fn no_key_material_is_ever_shown() {
    let fixture = fixture();
    let html = page::render(&overview(&fixture));
    let json = serde_json::to_string(&overview(&fixture)).unwrap();
    let key_pem = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key_in_secret_yaml()).unwrap(),
    )
    .unwrap();
    for line in key_pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!html.contains(line) && !json.contains(line), "key material in the output: {line}");
    }
    assert!(!html.contains(&key_in_secret_yaml()[..40]) && !json.contains(&key_in_secret_yaml()[..40]));
    assert!(!html.contains("PRIVATE KEY") && !json.contains("PRIVATE KEY"));
}

fn key_in_secret_yaml() -> String {
    let text = std::fs::read_to_string(manifest_dir().join("testdata/admin/input/secret.yaml")).unwrap();
    let line = text.lines().find_map(|l| l.trim().strip_prefix("tls.key: ")).unwrap();
    line.trim().to_string()
}
