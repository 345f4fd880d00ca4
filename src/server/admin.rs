//! The admin endpoint: `/healthz` (process up), `/readyz` (first snapshot built), `/snapshot`
//! (the served resources in `translate`'s canonical JSON, keys redacted, and the last reload's
//! diagnostics), `/metrics` (counters, and diagnostics by severity and kind), and Emissary's probe
//! paths, which the probe routes every configuration has send here through Envoy:
//! `/ambassador/v0/check_alive` and `/ambassador/v0/check_ready` (as `/healthz` and `/readyz`).

use super::Metrics;
use crate::diagnostic::{Diagnostic, Severity};
use crate::render;
use crate::snapshot::Snapshot;
use crate::xds::XdsType;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct AdminState {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub ready: watch::Receiver<bool>,
    pub metrics: Arc<Metrics>,
    /// What the last reload reported (one line each, as logged).
    pub diagnostics: watch::Receiver<Arc<Vec<Diagnostic>>>,
}

pub fn router(state: AdminState) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/ambassador/v0/check_alive", get(|| async { "ambassador liveness check OK\n" }))
        .route("/ambassador/v0/check_ready", get(check_ready))
        .route("/snapshot", get(snapshot))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    if *state.ready.borrow() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: no snapshot built yet\n")
    }
}

async fn check_ready(State(state): State<AdminState>) -> impl IntoResponse {
    if *state.ready.borrow() {
        (StatusCode::OK, "ambassador readiness check OK\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "ambassador waiting for config\n")
    }
}

async fn snapshot(State(state): State<AdminState>) -> impl IntoResponse {
    let snapshot = state.snapshots.borrow().clone();
    let json = render::snapshot_json(&render::redacted(snapshot.resources.clone()));
    let diagnostics = state.diagnostics.borrow().clone();
    let json = match serde_json::from_str::<serde_json::Value>(&json) {
        Ok(serde_json::Value::Object(mut fields)) => {
            let lines = diagnostics.iter().map(|d| serde_json::Value::String(d.to_string())).collect();
            fields.insert("diagnostics".into(), serde_json::Value::Array(lines));
            serde_json::to_string_pretty(&fields).unwrap_or(json)
        }
        _ => json,
    };
    ([(header::CONTENT_TYPE, "application/json")], json)
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let snapshot = state.snapshots.borrow().clone();
    let m = &state.metrics;
    let mut out = String::new();
    for (name, value) in [
        ("ambassador_xds_snapshot_serial", snapshot.serial),
        ("ambassador_xds_streams_opened_total", m.streams_opened.load(Ordering::Relaxed)),
        ("ambassador_xds_streams_active", m.streams_active.load(Ordering::Relaxed)),
        ("ambassador_xds_responses_sent_total", m.responses_sent.load(Ordering::Relaxed)),
        ("ambassador_xds_nacks_total", m.nacks.load(Ordering::Relaxed)),
        ("ambassador_xds_ignored_requests_total", m.ignored_requests.load(Ordering::Relaxed)),
    ] {
        let _ = writeln!(out, "{name} {value}");
    }
    let diagnostics = state.diagnostics.borrow().clone();
    let mut by_kind = std::collections::BTreeMap::new();
    for diagnostic in diagnostics.iter() {
        let severity = match diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        *by_kind.entry((severity, diagnostic.kind.name())).or_insert(0u64) += 1;
    }
    for ((severity, kind), count) in by_kind {
        let _ = writeln!(out, "ambassador_xds_diagnostics{{severity=\"{severity}\",kind=\"{kind}\"}} {count}");
    }
    for xds_type in XdsType::PUSH_ORDER {
        let types = snapshot.of(xds_type);
        let _ = writeln!(out, "ambassador_xds_resources{{type=\"{}\"}} {}", xds_type.short_name(), types.entries.len());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
