//! KubernetesEndpointResolver endpoints: the ready endpoints of a Service's EndpointSlices
//! (`discovery.k8s.io/v1`, label `kubernetes.io/service-name`), on the endpoint port named like
//! the Service port the Mapping targets, as kube-proxy picks it. One EndpointSlice watch per
//! watched namespace (or the whole cluster), started when a Mapping first needs it.

use super::{KubernetesOptions, ServiceObjects};
use crate::model::endpoint::{Endpoint, EndpointTable, EndpointTarget, TargetEndpoints};
use crate::source::endpoints::EndpointSource;
use crate::source::{BoxFuture, Changes};
use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

pub struct KubernetesEndpoints {
    client: Client,
    namespaces: Vec<String>,
    /// The Kubernetes source's Service store (trimmed to names and ports).
    services: ServiceObjects,
    changes: Changes,
    runtime: tokio::runtime::Handle,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    wanted: BTreeSet<EndpointTarget>,
    /// `None` until a Kubernetes target is first wanted.
    slices: Option<Vec<Store<EndpointSlice>>>,
    /// The watch's last error, until it recovers.
    problem: Option<String>,
}

impl KubernetesEndpoints {
    /// Must be called inside the runtime the watches will run on.
    pub fn new(
        client: Client,
        options: &KubernetesOptions,
        services: ServiceObjects,
        changes: Changes,
    ) -> KubernetesEndpoints {
        KubernetesEndpoints {
            client,
            namespaces: options.namespaces.clone(),
            services,
            changes,
            runtime: tokio::runtime::Handle::current(),
            state: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start_watches(&self) -> Vec<Store<EndpointSlice>> {
        let scopes: Vec<Option<String>> =
            if self.namespaces.is_empty() { vec![None] } else { self.namespaces.iter().cloned().map(Some).collect() };
        scopes
            .into_iter()
            .map(|namespace| {
                let api: Api<EndpointSlice> = match &namespace {
                    None => Api::all(self.client.clone()),
                    Some(ns) => Api::namespaced(self.client.clone(), ns),
                };
                let writer = reflector::store::Writer::default();
                let store = writer.as_reader();
                let objects = watcher(api, watcher::Config::default()).modify(trim);
                let stream = reflector::reflector(writer, objects.default_backoff());
                let (state, changes) = (self.state.clone(), self.changes.clone());
                let scope = namespace.unwrap_or_else(|| "all namespaces".into());
                self.runtime.spawn(async move {
                    let mut stream = std::pin::pin!(stream);
                    while let Some(event) = stream.next().await {
                        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                        let recovered = state.problem.take().is_some() && event.is_ok();
                        let relevant = match &event {
                            Ok(watcher::Event::Apply(slice) | watcher::Event::Delete(slice)) => {
                                wanted_service(&state.wanted, slice)
                            }
                            Ok(watcher::Event::InitDone) => true,
                            Ok(_) => false,
                            Err(err) => {
                                tracing::warn!(namespace = %scope, %err, "EndpointSlice watch failed; retrying");
                                state.problem = Some(format!("the EndpointSlice watch failed: {err}"));
                                true
                            }
                        };
                        drop(state);
                        if relevant || recovered {
                            changes.notify();
                        }
                    }
                });
                store
            })
            .collect()
    }
}

/// Whether a slice belongs to a Service some wanted target names.
fn wanted_service(wanted: &BTreeSet<EndpointTarget>, slice: &EndpointSlice) -> bool {
    let namespace = slice.metadata.namespace.as_deref().unwrap_or_default();
    let service = slice.metadata.labels.as_ref().and_then(|labels| labels.get(SERVICE_NAME_LABEL));
    wanted.iter().any(|target| match target {
        EndpointTarget::Kubernetes { namespace: ns, service: name, .. } => {
            ns == namespace && service.is_some_and(|s| s == name)
        }
        EndpointTarget::Consul { .. } => false,
    })
}

/// Only what the endpoints are made of stays in the store.
fn trim(slice: &mut EndpointSlice) {
    slice.metadata.managed_fields = None;
    slice.metadata.annotations = None;
    for endpoint in &mut slice.endpoints {
        endpoint.hints = None;
        endpoint.target_ref = None;
        endpoint.deprecated_topology = None;
        endpoint.node_name = None;
        endpoint.hostname = None;
        endpoint.zone = None;
    }
}

/// Service port number → port name (`""` when unnamed), per `(namespace, name)`.
type ServicePorts = HashMap<(String, String), Vec<(u16, String)>>;

fn service_ports(services: &ServiceObjects) -> ServicePorts {
    let mut out = ServicePorts::new();
    for objects in &services.0 {
        let objects = objects.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (namespace, name, parsed) in objects.by_name() {
            let key = (namespace.clone().unwrap_or_default(), name.to_string());
            out.insert(key, parsed.service_ports.clone());
        }
    }
    out
}

/// The ready endpoints of `slices` on the port named `port_name`.
fn ready_endpoints<'a>(slices: impl Iterator<Item = &'a EndpointSlice>, port_name: &str) -> Vec<Endpoint> {
    let mut endpoints = BTreeSet::new();
    for slice in slices.filter(|s| s.address_type == "IPv4" || s.address_type == "IPv6") {
        let port = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or_default() == port_name && p.protocol.as_deref().unwrap_or("TCP") == "TCP"
        });
        let Some(port) = port.and_then(|p| p.port).and_then(|p| u16::try_from(p).ok()) else { continue };
        for endpoint in &slice.endpoints {
            // `ready` unset means ready (the API's rule for consumers).
            let ready = endpoint.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if let (true, Some(address)) = (ready, endpoint.addresses.first()) {
                endpoints.insert(Endpoint { address: address.clone(), port });
            }
        }
    }
    endpoints.into_iter().collect()
}

impl EndpointSource for KubernetesEndpoints {
    fn name(&self) -> String {
        "the Kubernetes API (EndpointSlices)".into()
    }

    fn serves(&self, target: &EndpointTarget) -> bool {
        matches!(target, EndpointTarget::Kubernetes { .. })
    }

    fn want(&self, targets: &BTreeSet<EndpointTarget>) {
        let mut state = self.lock();
        state.wanted = targets.iter().filter(|t| self.serves(t)).cloned().collect();
        if !state.wanted.is_empty() && state.slices.is_none() {
            state.slices = Some(self.start_watches());
        }
    }

    fn first_fetch(&self, deadline: Instant) -> BoxFuture<'_, ()> {
        let stores = self.lock().slices.clone().unwrap_or_default();
        Box::pin(async move {
            let listed = futures::future::join_all(stores.iter().map(|store| store.wait_until_ready()));
            let _ = tokio::time::timeout_at(deadline.into(), listed).await;
        })
    }

    fn endpoints(&self) -> EndpointTable {
        let (wanted, stores, problem) = {
            let state = self.lock();
            (state.wanted.clone(), state.slices.clone().unwrap_or_default(), state.problem.clone())
        };
        if wanted.is_empty() || stores.is_empty() {
            return EndpointTable::new();
        }
        let slices: Vec<Arc<EndpointSlice>> = stores.iter().flat_map(|store| store.state()).collect();
        let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for slice in &slices {
            let namespace = slice.metadata.namespace.as_deref().unwrap_or_default();
            if let Some(service) = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) {
                by_service.entry((namespace, service.as_str())).or_default().push(slice);
            }
        }
        let ports = service_ports(&self.services);
        let mut table = EndpointTable::new();
        for target in wanted {
            let EndpointTarget::Kubernetes { namespace, service, port } = &target else { continue };
            let known = match ports.get(&(namespace.clone(), service.clone())) {
                None => TargetEndpoints {
                    endpoints: Vec::new(),
                    problem: Some(format!("no Service {namespace}/{service}")),
                },
                Some(service_ports) => match service_ports.iter().find(|(number, _)| number == port) {
                    None => TargetEndpoints {
                        endpoints: Vec::new(),
                        problem: Some(format!("Service {namespace}/{service} has no port {port}")),
                    },
                    Some((_, name)) => {
                        let slices = by_service.get(&(namespace.as_str(), service.as_str())).into_iter().flatten();
                        TargetEndpoints { endpoints: ready_endpoints(slices.copied(), name), problem: problem.clone() }
                    }
                },
            };
            table.insert(target, known);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(value: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn ready_endpoints_on_the_named_port() {
        let slices = [
            slice(json!({
                "metadata": {"name": "web-abc", "namespace": "shop", "labels": {SERVICE_NAME_LABEL: "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics", "port": 9090}],
                "endpoints": [
                    {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                    {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
                    {"addresses": ["10.0.0.3"]}
                ]
            })),
            slice(json!({
                "metadata": {"name": "web-fqdn", "namespace": "shop"},
                "addressType": "FQDN",
                "ports": [{"name": "http", "port": 8080}],
                "endpoints": [{"addresses": ["web.example.com"]}]
            })),
        ];
        let endpoints = ready_endpoints(slices.iter(), "http");
        let addresses: Vec<String> = endpoints.iter().map(|e| format!("{}:{}", e.address, e.port)).collect();
        assert_eq!(addresses, ["10.0.0.1:8080", "10.0.0.3:8080"]);
        assert_eq!(ready_endpoints(slices.iter(), "metrics")[0].port, 9090);
        assert!(ready_endpoints(slices.iter(), "").is_empty());
    }
}
