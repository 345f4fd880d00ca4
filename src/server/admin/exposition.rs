//! `/metrics`: every metric the process has, by its conventional name. The README's metrics
//! table lists the same names; `tests/admin.rs` parses this output and checks both.

use super::certs;
use crate::controller::ReloadReport;
use crate::diagnostic::Severity;
use crate::metrics::{by_label, Exposition, Metrics, Samples};
use crate::server::status::Registry;
use crate::snapshot::Snapshot;
use crate::xds::XdsType;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

pub fn render(metrics: &Metrics, snapshot: &Snapshot, report: &ReloadReport, registry: &Registry) -> String {
    let mut out = Exposition::default();
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed) as f64;

    // Reloads.
    out.counter(
        "ambassador_xds_reloads_total",
        "Reloads of the configuration, by result (published, unchanged, failed).",
        by_label("result", &metrics.reloads.values()),
    );
    out.histogram(
        "ambassador_xds_reload_duration_seconds",
        "Time from the start of a reload to its snapshot (or failure).",
        &metrics.reload_duration,
    );
    out.gauge(
        "ambassador_xds_diagnostics",
        "Problems the last reload found, by severity and kind.",
        diagnostics(report),
    );
    out.gauge(
        "ambassador_xds_resources",
        "xDS resources in the served snapshot, by type.",
        XdsType::PUSH_ORDER
            .iter()
            .map(|t| (vec![("type", t.short_name().to_string())], snapshot.of(*t).entries.len() as f64))
            .collect(),
    );
    out.single("gauge", "ambassador_xds_snapshot_serial", "Serial of the served snapshot.", snapshot.serial as f64);

    // Streams.
    let streams: Samples = {
        let open = metrics.streams.lock().expect("never poisoned");
        ["sotw", "delta"]
            .iter()
            .map(|protocol| (vec![("protocol", protocol.to_string())], *open.get(protocol).unwrap_or(&0) as f64))
            .collect()
    };
    out.gauge("ambassador_xds_streams", "Open xDS streams, by protocol (sotw, delta).", streams);
    out.single("counter", "ambassador_xds_streams_opened_total", "xDS streams opened.", load(&metrics.streams_opened));
    out.counter(
        "ambassador_xds_pushes_total",
        "xDS responses sent, by type.",
        by_label("type", &metrics.pushes.values()),
    );
    out.single(
        "counter",
        "ambassador_xds_responses_sent_total",
        "xDS responses written to the connection.",
        load(&metrics.responses_sent),
    );
    out.counter(
        "ambassador_xds_nacks_total",
        "xDS responses Envoy rejected, by type.",
        by_label("type", &metrics.nacks.values()),
    );
    out.counter(
        "ambassador_xds_nacks_by_resource_total",
        "Rejections by type and the Ambassador resource behind them (`Kind namespace/name`).",
        registry
            .nacks
            .counts()
            .into_iter()
            .map(|((t, culprit), n)| (vec![("type", t.short_name().to_string()), ("culprit", culprit)], n as f64))
            .collect(),
    );
    out.single(
        "counter",
        "ambassador_xds_ignored_requests_total",
        "Requests ignored (stale nonce, or a type this server does not serve).",
        load(&metrics.ignored_requests),
    );
    out.histogram(
        "ambassador_xds_push_ack_latency_seconds",
        "Time from sending a response to the request that ACKs it.",
        &metrics.push_ack_latency,
    );

    // Certificates.
    out.gauge(
        "ambassador_xds_certificate_expiry_timestamp_seconds",
        "When the soonest-expiring certificate of each served secret expires (Unix seconds).",
        certificate_expiry(snapshot),
    );

    // Connections.
    let connections = [
        (
            "counter",
            "ambassador_xds_connections_accepted_total",
            "Connections accepted, xDS and admin ports.",
            &metrics.connections_accepted,
        ),
        ("gauge", "ambassador_xds_connections", "Open connections, xDS and admin ports.", &metrics.connections_active),
        (
            "counter",
            "ambassador_xds_connections_refused_total",
            "Connections closed at once because --max-connections were open.",
            &metrics.connections_refused,
        ),
        (
            "counter",
            "ambassador_xds_connections_idle_closed_total",
            "Connections closed for carrying nothing for --idle-timeout-s.",
            &metrics.connections_idle_closed,
        ),
        (
            "counter",
            "ambassador_xds_accept_backoffs_total",
            "Pauses of the accept loop because the process was out of file descriptors.",
            &metrics.accept_backoffs,
        ),
    ];
    for (kind, name, help, value) in connections {
        out.single(kind, name, help, load(value));
    }
    out.finish()
}

fn diagnostics(report: &ReloadReport) -> Samples {
    let mut counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for diagnostic in &report.diagnostics {
        let severity = match diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        *counts.entry((severity, diagnostic.kind.name())).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((severity, kind), n)| (vec![("severity", severity.to_string()), ("kind", kind.to_string())], n as f64))
        .collect()
}

fn certificate_expiry(snapshot: &Snapshot) -> Samples {
    let mut soonest: BTreeMap<String, i64> = BTreeMap::new();
    for view in certs::served(snapshot, super::time::now()) {
        let entry = soonest.entry(view.secret).or_insert(i64::MAX);
        *entry = (*entry).min(view.not_after);
    }
    soonest.into_iter().map(|(secret, at)| (vec![("secret", secret)], at as f64)).collect()
}
