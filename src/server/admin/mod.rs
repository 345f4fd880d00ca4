//! The admin endpoint, for operators only (bind it to loopback): the diagnostics page (`/`), the
//! same data as JSON (`/debug/status`, what `ambassador-xds status` reads), `/healthz` (process
//! up), `/readyz` (first snapshot built), `/snapshot` (the served resources in `translate`'s
//! canonical JSON, keys redacted, with the current diagnostics), `/metrics` (Prometheus text), and
//! Emissary's probe paths, which the probe routes every configuration has send here through Envoy:
//! `/ambassador/v0/check_alive` and `/ambassador/v0/check_ready` (as `/healthz` and `/readyz`).

mod certs;
mod exposition;
mod page;
mod time;
pub mod view;

use crate::controller::ReloadReport;
use crate::metrics::Metrics;
use crate::render;
use crate::server::status::Registry;
use crate::snapshot::Snapshot;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use tokio::sync::watch;

pub use certs::EXPIRY_WARNING_DAYS;

#[derive(Debug, Clone)]
pub struct AdminState {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub ready: watch::Receiver<bool>,
    pub metrics: Arc<Metrics>,
    /// What the last reload found.
    pub report: watch::Receiver<Arc<ReloadReport>>,
    /// The connected Envoys and their NACKs.
    pub status: Arc<Registry>,
}

impl AdminState {
    fn overview(&self) -> view::Overview {
        let snapshot = self.snapshots.borrow().clone();
        let report = self.report.borrow().clone();
        view::overview(&snapshot, *self.ready.borrow(), &report, &self.status)
    }
}

/// Only `/healthz` and `/readyz`, which say nothing about the configuration: for kubelet's probes
/// on the Pod IP (`serve --health-address`) while the admin endpoint stays on loopback.
pub fn health_router(ready: watch::Receiver<bool>) -> axum::Router {
    axum::Router::new().route("/healthz", get(|| async { "ok\n" })).route("/readyz", get(move || readyz(ready.clone())))
}

pub fn router(state: AdminState) -> axum::Router {
    axum::Router::new()
        .route("/", get(page))
        .route("/debug/status", get(status))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|State(state): State<AdminState>| readyz(state.ready)))
        .route("/ambassador/v0/check_alive", get(|| async { "ambassador liveness check OK\n" }))
        .route("/ambassador/v0/check_ready", get(check_ready))
        .route("/snapshot", get(snapshot))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// The page and the JSON are built per request from shared state; neither is cached by browsers
/// (a stale status page is worse than none).
const NO_STORE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-store");

async fn page(State(state): State<AdminState>) -> impl IntoResponse {
    let html = page::render(&state.overview());
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            NO_STORE,
            // The page's own inline style and script only; nothing loaded from anywhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:",
            ),
        ],
        html,
    )
}

async fn status(State(state): State<AdminState>) -> impl IntoResponse {
    let json = serde_json::to_string_pretty(&state.overview()).unwrap_or_else(|_| "{}".to_string());
    ([(header::CONTENT_TYPE, "application/json"), NO_STORE], json)
}

async fn readyz(ready: watch::Receiver<bool>) -> impl IntoResponse {
    if *ready.borrow() {
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
    let report = state.report.borrow().clone();
    let nacks = state.status.nacks.diagnostics();
    let json = match serde_json::from_str::<serde_json::Value>(&json) {
        Ok(serde_json::Value::Object(mut fields)) => {
            let lines = report
                .diagnostics
                .iter()
                .chain(nacks.iter())
                .map(|d| serde_json::Value::String(d.to_string()))
                .collect();
            fields.insert("diagnostics".into(), serde_json::Value::Array(lines));
            serde_json::to_string_pretty(&fields).unwrap_or(json)
        }
        _ => json,
    };
    ([(header::CONTENT_TYPE, "application/json")], json)
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let snapshot = state.snapshots.borrow().clone();
    let report = state.report.borrow().clone();
    let text = exposition::render(&state.metrics, &snapshot, &report, &state.status);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

#[cfg(test)]
mod tests;
