//! The Kubernetes API as a source: one watcher per watched kind (and namespace), feeding the
//! same parse/compile pipeline as files.
//!
//! * `getambassador.io` Mapping, TLSContext, Host, Module and TCPMapping in the version the cluster
//!   serves (v3alpha1 preferred, else v2), Listener (v3alpha1), and AuthService and
//!   RateLimitService (not translated, but whether one exists decides whether Mappings that
//!   depend on them are served); a missing CRD is a warning, not a failure;
//! * core `Service`s (for `getambassador.io/config` annotations) and every `Secret` in the
//!   watched namespaces (so a TLSContext may name any of them; secret data is never logged);
//! * kube-rs watchers relist on 410 Gone and back off on errors; the last complete list stays in
//!   service meanwhile, so the last good snapshot keeps being served;
//! * objects are trimmed and parsed as they arrive, once per resourceVersion, and only their
//!   parses are kept ([`parsed`], not kube-rs' reflector stores of whole objects).

mod endpoints;
mod parsed;
mod trim;

pub use endpoints::KubernetesEndpoints;

use super::{BoxFuture, Changes, Contribution, Source};
use crate::diagnostic::Diagnostic;
use crate::model::Model;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use parsed::ParsedObjects;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

const GROUP: &str = "getambassador.io";
/// Versions used for each kind, in order of preference.
const AMBASSADOR_KINDS: [(&str, &[&str]); 11] = [
    ("Mapping", &["v3alpha1", "v2"]),
    ("TLSContext", &["v3alpha1", "v2"]),
    ("Listener", &["v3alpha1"]),
    ("Host", &["v3alpha1", "v2"]),
    ("Module", &["v3alpha1", "v2"]),
    ("TCPMapping", &["v3alpha1", "v2"]),
    ("AuthService", &["v3alpha1", "v2"]),
    ("RateLimitService", &["v3alpha1", "v2"]),
    ("ConsulResolver", &["v3alpha1", "v2"]),
    ("KubernetesEndpointResolver", &["v3alpha1", "v2"]),
    ("KubernetesServiceResolver", &["v3alpha1", "v2"]),
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubernetesOptions {
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
}

struct Watched {
    resource: ApiResource,
    namespace: Option<String>,
    objects: Arc<Mutex<ParsedObjects>>,
    /// Turns true once the first complete list is applied.
    listed: watch::Receiver<bool>,
}

/// The watched Services (one map per watched namespace, or one for all), for their ports.
#[derive(Clone)]
pub struct ServiceObjects(Vec<Arc<Mutex<ParsedObjects>>>);

/// Watchers running in the background, and read access to what they hold.
pub struct KubernetesSource {
    watched: Vec<Watched>,
}

impl KubernetesSource {
    /// Finds the served API versions and starts one watcher per kind and namespace. Notifies
    /// `changes` (cheaply, possibly often) whenever a watched object changes.
    pub async fn start(client: Client, options: &KubernetesOptions, changes: Changes) -> KubernetesSource {
        let mut resources = vec![ApiResource::erase::<Secret>(&()), ApiResource::erase::<Service>(&())];
        resources.extend(ambassador_resources(&client).await);
        let scopes: Vec<Option<String>> = if options.namespaces.is_empty() {
            vec![None]
        } else {
            options.namespaces.iter().cloned().map(Some).collect()
        };
        let mut watched = Vec::new();
        for resource in resources {
            for namespace in &scopes {
                let api: Api<DynamicObject> = match namespace {
                    None => Api::all_with(client.clone(), &resource),
                    Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                };
                let mut config = watcher::Config::default();
                if resource.kind == "Secret" {
                    config = config.fields(trim::SECRET_FIELD_SELECTOR);
                }
                let stream = watcher(api, config).default_backoff();
                let objects = Arc::new(Mutex::new(ParsedObjects::default()));
                let (listed_tx, listed) = watch::channel(false);
                let (kind, scope) =
                    (resource.kind.clone(), namespace.clone().unwrap_or_else(|| "all namespaces".into()));
                let (changes, held, applied_to) = (changes.clone(), objects.clone(), resource.clone());
                tokio::spawn(async move {
                    let mut stream = std::pin::pin!(stream);
                    while let Some(event) = stream.next().await {
                        match event {
                            Ok(event) => {
                                let listed = matches!(event, watcher::Event::InitDone);
                                let mut held = held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                                if held.apply(&applied_to, event) {
                                    listed_tx.send_replace(held.listed);
                                    changes.notify();
                                }
                                drop(held);
                                if listed {
                                    // A whole list was decoded and trimmed on this thread: give
                                    // back what that freed before the reload builds (memory.rs).
                                    crate::memory::release_freed();
                                }
                            }
                            // The watcher relists (410 Gone) and backs off by itself; the last
                            // complete list stays in service meanwhile.
                            Err(err) => {
                                tracing::warn!(kind, namespace = %scope, %err, "Kubernetes watch failed; retrying")
                            }
                        }
                    }
                });
                watched.push(Watched { resource: resource.clone(), namespace: namespace.clone(), objects, listed });
            }
        }
        KubernetesSource { watched }
    }

    /// The Service stores (one per watched namespace, or one for all): their ports tell which
    /// EndpointSlice port a Mapping's Service port is.
    pub fn services(&self) -> ServiceObjects {
        ServiceObjects(
            self.watched.iter().filter(|w| w.resource.kind == "Service").map(|w| w.objects.clone()).collect(),
        )
    }

    /// Resolves once every watcher has listed its objects once.
    pub async fn synced(&self) {
        for watched in &self.watched {
            loop {
                let mut listed = watched.listed.clone();
                let waited = tokio::time::timeout(Duration::from_secs(10), listed.wait_for(|listed| *listed)).await;
                match waited.map(|result| result.is_ok()) {
                    Ok(_) => break,
                    Err(_) => tracing::warn!(
                        kind = %watched.resource.kind,
                        namespace = watched.namespace.as_deref().unwrap_or("all namespaces"),
                        "still waiting for the first list from the Kubernetes API"
                    ),
                }
            }
        }
    }

    /// Everything the watchers hold, parsed (each object once per resourceVersion, as it
    /// arrived). Objects are in kind, namespace and name order, whatever order the API sent them.
    pub fn model(&mut self) -> (Model, Vec<Diagnostic>) {
        let mut model = Model::default();
        let mut diagnostics = Vec::new();
        for watched in &self.watched {
            let objects = watched.objects.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for parsed in objects.parses() {
                model.extend(parsed.model.clone());
                diagnostics.extend(parsed.diagnostics.iter().cloned());
            }
        }
        (model, diagnostics)
    }
}

impl Source for KubernetesSource {
    fn name(&self) -> String {
        "kubernetes".to_string()
    }

    fn ready(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.synced().await;
            tracing::info!("Kubernetes resources listed");
        })
    }

    /// The reflector stores always hold the last listed state (through outages too), so reading
    /// never fails as a whole.
    fn read(&mut self) -> Result<Contribution, Box<Diagnostic>> {
        let (model, diagnostics) = self.model();
        Ok(Contribution { model, diagnostics })
    }
}

/// The getambassador.io kinds this cluster serves, retried while the API is unreachable.
async fn ambassador_resources(client: &Client) -> Vec<ApiResource> {
    let mut delay = Duration::from_millis(500);
    let group = loop {
        match kube::discovery::group(client, GROUP).await {
            Ok(group) => break Some(group),
            Err(kube::Error::Discovery(err)) => {
                tracing::warn!(%err, "the getambassador.io API group is not served (CRDs not installed?); watching Secrets and Services only");
                break None;
            }
            Err(err) => {
                tracing::warn!(%err, retry_in = ?delay, "cannot reach the Kubernetes API for discovery");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    };
    let Some(group) = group else { return Vec::new() };
    let mut resources = Vec::new();
    for (kind, versions) in AMBASSADOR_KINDS {
        let found = versions.iter().find_map(|version| {
            group.versioned_resources(version).into_iter().find(|(ar, _)| ar.kind == kind).map(|(ar, _)| ar)
        });
        match found {
            Some(resource) => {
                tracing::info!(kind, version = %resource.version, "watching");
                resources.push(resource);
            }
            None => tracing::warn!(kind, "getambassador.io serves no {kind} in {}; not watched", versions.join(" or ")),
        }
    }
    resources
}
