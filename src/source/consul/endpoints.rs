//! ConsulResolver endpoints: one blocking query per wanted service, on
//! `/v1/health/service/<service>?passing=1&dc=<dc>` (or `/v1/health/connect/...` for the
//! Connect proxies of a service whose identity is verified), against the resolver's agent.
//! Instances without an address of their own use their node's; names are resolved to IPs here
//! (EDS takes none). A failing query keeps the last known endpoints, with the problem attached.

use super::blocking;
use super::client::{ConsulClient, ConsulConfig, ConsulError};
use super::connect::percent_encode;
use crate::model::endpoint::{Endpoint, EndpointTable, EndpointTarget, TargetEndpoints};
use crate::source::endpoints::EndpointSource;
use crate::source::{BoxFuture, Changes};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::watch;

pub struct ConsulEndpoints {
    inner: Arc<Inner>,
}

struct Inner {
    config: ConsulConfig,
    wait: Duration,
    changes: Changes,
    runtime: Handle,
    state: Mutex<State>,
    /// Bumped whenever a target is fetched for the first time.
    fetched: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    clients: HashMap<String, ConsulClient>,
    watches: HashMap<EndpointTarget, Watch>,
}

struct Watch {
    stop: watch::Sender<bool>,
    known: Arc<Mutex<Option<TargetEndpoints>>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

impl ConsulEndpoints {
    /// Watches run on `runtime`; `changes` hears of every change of a wanted target's endpoints.
    pub fn new(config: ConsulConfig, wait: Duration, changes: Changes, runtime: Handle) -> ConsulEndpoints {
        let inner = Inner { config, wait, changes, runtime, state: Mutex::default(), fetched: watch::channel(0).0 };
        ConsulEndpoints { inner: Arc::new(inner) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self, target: &EndpointTarget, state: &mut State) -> Watch {
        let (stop, stop_rx) = watch::channel(false);
        let known = Arc::new(Mutex::new(None));
        let EndpointTarget::Consul { address, datacenter, service, connect } = target else {
            unreachable!("only Consul targets are wanted here")
        };
        let agent = address.clone().unwrap_or_else(|| self.inner.config.address.clone());
        let client = match state.clients.get(&agent) {
            Some(client) => Ok(client.clone()),
            None => ConsulClient::new(&agent, &self.inner.config).inspect(|client| {
                state.clients.insert(agent.clone(), client.clone());
            }),
        };
        let api = if *connect { "connect" } else { "service" };
        let path = format!("/v1/health/{api}/{}?passing=1&dc={}&", percent_encode(service), percent_encode(datacenter));
        let (inner, slot, label) = (self.inner.clone(), known.clone(), target.to_string());
        self.inner.runtime.spawn(async move {
            let client = match client {
                Ok(client) => client,
                Err(why) => {
                    tracing::error!(target = %label, "cannot reach Consul: {why}");
                    return update(&inner, &slot, Err(ConsulError::Unreachable(why)), &label);
                }
            };
            let answers = tokio::sync::mpsc::unbounded_channel();
            let (answer_tx, mut answer_rx) = answers;
            let error_tx = answer_tx.clone();
            let query = blocking::run(
                &client,
                &path,
                inner.wait,
                stop_rx,
                move |body| {
                    let _ = answer_tx.send(Ok(body));
                },
                move |err| {
                    let _ = error_tx.send(Err(err));
                },
            );
            let follow = async {
                while let Some(answer) = answer_rx.recv().await {
                    let endpoints = match answer {
                        Ok(body) => endpoints_of(&body).await,
                        Err(err) => Err(err),
                    };
                    update(&inner, &slot, endpoints, &label);
                }
            };
            tokio::join!(query, follow);
        });
        Watch { stop, known }
    }
}

/// Records a fetch; notifies the controller when the endpoints (or the problem) changed, and
/// logs once per change of error state.
fn update(
    inner: &Inner,
    slot: &Mutex<Option<TargetEndpoints>>,
    result: Result<Vec<Endpoint>, ConsulError>,
    label: &str,
) {
    let mut known = slot.lock().unwrap_or_else(|p| p.into_inner());
    let first = known.is_none();
    let previous = known.clone().unwrap_or_default();
    let next = match result {
        Ok(endpoints) => TargetEndpoints { endpoints, problem: None },
        Err(err) => TargetEndpoints { endpoints: previous.endpoints.clone(), problem: Some(err.to_string()) },
    };
    let state_of = |t: &TargetEndpoints| t.problem.is_some();
    if first || state_of(&previous) != state_of(&next) {
        match &next.problem {
            Some(problem) => tracing::warn!(target = %label, "{problem}; keeping the last known endpoints"),
            None if !first => tracing::info!(target = %label, "Consul answers again"),
            None => {}
        }
    }
    let changed = first || previous != next;
    *known = Some(next);
    drop(known);
    if first {
        inner.fetched.send_modify(|n| *n += 1);
    }
    if changed {
        inner.changes.notify();
    }
}

/// The passing instances of one answer, as IP endpoints.
async fn endpoints_of(body: &[u8]) -> Result<Vec<Endpoint>, ConsulError> {
    let entries: Vec<super::api::HealthEntry> =
        serde_json::from_slice(body).map_err(|err| ConsulError::Invalid(err.to_string()))?;
    let mut endpoints = BTreeSet::new();
    for entry in entries {
        let address = if entry.service.address.is_empty() { entry.node.address } else { entry.service.address };
        if address.is_empty() || entry.service.port == 0 {
            continue;
        }
        if let Ok(ip) = address.parse::<std::net::IpAddr>() {
            endpoints.insert(Endpoint { address: ip.to_string(), port: entry.service.port });
            continue;
        }
        // A name (Emissary resolves it too): every address it has.
        match tokio::net::lookup_host(format!("{address}:{}", entry.service.port)).await {
            Ok(found) => endpoints.extend(found.map(|a| Endpoint { address: a.ip().to_string(), port: a.port() })),
            Err(err) => tracing::warn!(%address, %err, "cannot resolve a Consul instance's address; skipped"),
        }
    }
    Ok(endpoints.into_iter().collect())
}

impl EndpointSource for ConsulEndpoints {
    fn name(&self) -> String {
        "consul".into()
    }

    fn serves(&self, target: &EndpointTarget) -> bool {
        matches!(target, EndpointTarget::Consul { .. })
    }

    fn want(&self, targets: &BTreeSet<EndpointTarget>) {
        let mut state = self.lock();
        state.watches.retain(|target, _| targets.contains(target));
        for target in targets.iter().filter(|t| self.serves(t)) {
            if !state.watches.contains_key(target) {
                let watch = self.start(target, &mut state);
                state.watches.insert(target.clone(), watch);
            }
        }
    }

    fn first_fetch(&self, deadline: Instant) -> BoxFuture<'_, ()> {
        let mut fetched = self.inner.fetched.subscribe();
        Box::pin(async move {
            let all_known = || self.lock().watches.values().all(|w| w.known.lock().is_ok_and(|k| k.is_some()));
            let wait = async {
                while !all_known() {
                    if fetched.changed().await.is_err() {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout_at(deadline.into(), wait).await;
        })
    }

    fn endpoints(&self) -> EndpointTable {
        let state = self.lock();
        state
            .watches
            .iter()
            .filter_map(|(target, watch)| {
                let known = watch.known.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
                Some((target.clone(), known))
            })
            .collect()
    }
}
