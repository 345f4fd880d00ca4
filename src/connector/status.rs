//! What the connector reports: on `/readyz` (ready when the Secret is up to date, or, on a
//! standby replica, when Consul answers), `/metrics`, and in the log, where each problem is
//! written once when it starts and once when it ends, never for every retry.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// The kinds of trouble, as metric labels: Consul's (see `ConsulError::state`), then the
/// connector's own.
pub const PROBLEM_STATES: [&str; 6] =
    ["unreachable", "acl_denied", "server_error", "invalid_response", "invalid_certificate", "kubernetes_write_failed"];

#[derive(Debug, Clone, Default)]
pub struct Status {
    pub leader: bool,
    /// Who holds the lease when this replica does not.
    pub holder: Option<String>,
    pub secret: String,
    /// Consul's answer is not usable (the last good certificate stays).
    pub consul: Option<(&'static str, String)>,
    /// The certificate Consul issued does not load (it is not written).
    pub invalid: Option<String>,
    /// The last write through the Kubernetes API failed.
    pub write: Option<String>,
    pub have_certificate: bool,
    /// The current certificate is the one in the Secret.
    pub up_to_date: bool,
    pub writes: u64,
    pub last_write_unix: Option<u64>,
    /// Times each problem started.
    pub problems: BTreeMap<&'static str, u64>,
}

impl Status {
    /// The problem readiness reports, if any.
    pub fn problem(&self) -> Option<(&'static str, &str)> {
        if let Some((state, message)) = &self.consul {
            return Some((state, message));
        }
        if let Some(message) = &self.invalid {
            return Some(("invalid_certificate", message));
        }
        self.write.as_deref().filter(|_| self.leader).map(|message| ("kubernetes_write_failed", message))
    }
}

/// Shared between the connector's loop and its admin endpoint.
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<Mutex<Status>>);

impl Shared {
    pub fn get(&self) -> Status {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn update(&self, change: impl FnOnce(&mut Status)) {
        let mut status = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let before = status.problem().map(|(state, _)| state);
        change(&mut status);
        let after = status.problem().map(|(state, message)| (state, message.to_string()));
        if before != after.as_ref().map(|(state, _)| *state) {
            match &after {
                Some((state, message)) => {
                    *status.problems.entry(state).or_default() += 1;
                    tracing::warn!(state, "{message}; the Secret keeps its last written certificate");
                }
                None => tracing::info!("the problem is gone: {}", before.unwrap_or_default()),
            }
        }
    }
}

pub fn router(shared: Shared) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

async fn readyz(State(shared): State<Shared>) -> impl IntoResponse {
    let status = shared.get();
    if let Some((state, message)) = status.problem() {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("not ready ({state}): {message}\n"));
    }
    match (status.leader, status.have_certificate, status.up_to_date) {
        (_, false, _) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: no certificate from Consul yet\n".into()),
        (true, true, true) => (StatusCode::OK, format!("ready: leader, Secret {} is up to date\n", status.secret)),
        (true, true, false) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: writing Secret {}\n", status.secret))
        }
        (false, true, _) => {
            let holder = status.holder.as_deref().unwrap_or("another replica");
            (StatusCode::OK, format!("ready: standby, {holder} holds the lease\n"))
        }
    }
}

async fn metrics(State(shared): State<Shared>) -> impl IntoResponse {
    let status = shared.get();
    let mut out = String::new();
    let current = status.problem().map(|(state, _)| state);
    let _ = writeln!(out, "ambassador_xds_consul_connect_leader {}", u8::from(status.leader));
    let _ =
        writeln!(out, "ambassador_xds_consul_connect_ready {}", u8::from(current.is_none() && status.have_certificate));
    let _ = writeln!(out, "ambassador_xds_consul_connect_secret_writes_total {}", status.writes);
    if let Some(at) = status.last_write_unix {
        let _ = writeln!(out, "ambassador_xds_consul_connect_last_write_timestamp_seconds {at}");
    }
    for state in PROBLEM_STATES {
        let _ = writeln!(
            out,
            "ambassador_xds_consul_connect_problem{{state=\"{state}\"}} {}",
            u8::from(current == Some(state))
        );
        let total = status.problems.get(state).copied().unwrap_or(0);
        let _ = writeln!(out, "ambassador_xds_consul_connect_problems_total{{state=\"{state}\"}} {total}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
