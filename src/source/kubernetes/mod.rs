//! The Kubernetes API as a source: one reflector per watched kind (and namespace), feeding the
//! same parse/compile pipeline as files.
//!
//! * `getambassador.io` Mapping, TLSContext, Module and TCPMapping in the version the cluster
//!   serves (v3alpha1 preferred, else v2), Listener (v3alpha1), and AuthService and
//!   RateLimitService (not translated, but whether one exists decides whether Mappings that
//!   depend on them are served); a missing CRD is a warning, not a failure;
//! * core `Service`s (for `getambassador.io/config` annotations) and every `Secret` in the
//!   watched namespaces (so a TLSContext may name any of them; secret data is never logged);
//! * kube-rs watchers relist on 410 Gone and back off on errors; the reflector stores keep the
//!   last listed state meanwhile, so the last good snapshot keeps being served;
//! * objects are trimmed as they arrive ([`trim`]) and parsed once per resourceVersion.

mod endpoints;
mod trim;

pub use endpoints::KubernetesEndpoints;

use super::{BoxFuture, Changes, Contribution, Source};
use crate::diagnostic::{Diagnostic, Origin, ResourceId};
use crate::model::{parse_object, Model};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, ApiResource, DynamicObject, TypeMeta};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use std::collections::HashMap;
use std::time::Duration;

const GROUP: &str = "getambassador.io";
/// Versions used for each kind, in order of preference.
const AMBASSADOR_KINDS: [(&str, &[&str]); 10] = [
    ("Mapping", &["v3alpha1", "v2"]),
    ("TLSContext", &["v3alpha1", "v2"]),
    ("Listener", &["v3alpha1"]),
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
    store: Store<DynamicObject>,
}

/// What one object parsed to, for as long as its resourceVersion stays.
struct Parsed {
    resource_version: Option<String>,
    model: Model,
    diagnostics: Vec<Diagnostic>,
}

/// Kind, namespace and name of a watched object.
type ObjectKey = (String, Option<String>, String);

/// Watchers running in the background, and read access to what they hold.
pub struct KubernetesSource {
    watched: Vec<Watched>,
    parsed: HashMap<ObjectKey, Parsed>,
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
                let writer = reflector::store::Writer::new(resource.clone());
                let store = writer.as_reader();
                let mut config = watcher::Config::default();
                if resource.kind == "Secret" {
                    config = config.fields(trim::SECRET_FIELD_SELECTOR);
                }
                let kind = resource.kind.clone();
                let objects = watcher(api, config).modify(move |object| trim::trim(&kind, object));
                let stream = reflector::reflector(writer, objects.default_backoff());
                let (kind, scope) =
                    (resource.kind.clone(), namespace.clone().unwrap_or_else(|| "all namespaces".into()));
                let changes = changes.clone();
                tokio::spawn(async move {
                    let mut stream = std::pin::pin!(stream);
                    while let Some(event) = stream.next().await {
                        match event {
                            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                            Ok(_) => changes.notify(),
                            // The watcher relists (410 Gone) and backs off by itself; the store
                            // keeps the last state meanwhile.
                            Err(err) => {
                                tracing::warn!(kind, namespace = %scope, %err, "Kubernetes watch failed; retrying")
                            }
                        }
                    }
                });
                watched.push(Watched { resource: resource.clone(), namespace: namespace.clone(), store });
            }
        }
        KubernetesSource { watched, parsed: HashMap::new() }
    }

    /// The Service stores (one per watched namespace, or one for all): their ports tell which
    /// EndpointSlice port a Mapping's Service port is.
    pub fn services(&self) -> Vec<Store<DynamicObject>> {
        self.watched.iter().filter(|w| w.resource.kind == "Service").map(|w| w.store.clone()).collect()
    }

    /// Resolves once every watcher has listed its objects once.
    pub async fn synced(&self) {
        for watched in &self.watched {
            loop {
                match tokio::time::timeout(Duration::from_secs(10), watched.store.wait_until_ready()).await {
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

    /// Everything the watchers hold, parsed (each object once per resourceVersion). Objects are
    /// ordered by kind, namespace and name, so the result does not depend on the stores' order.
    pub fn model(&mut self) -> (Model, Vec<Diagnostic>) {
        let mut model = Model::default();
        let mut diagnostics = Vec::new();
        let mut parsed = HashMap::with_capacity(self.parsed.len());
        for watched in &self.watched {
            let mut objects = watched.store.state();
            objects.sort_by(|a, b| {
                (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
            });
            for object in objects {
                let kind = &watched.resource.kind;
                let key: ObjectKey =
                    (kind.clone(), object.metadata.namespace.clone(), object.metadata.name.clone().unwrap_or_default());
                let entry = match self.parsed.remove(&key) {
                    Some(entry)
                        if entry.resource_version.is_some()
                            && entry.resource_version == object.metadata.resource_version =>
                    {
                        entry
                    }
                    _ => parse(&watched.resource, &object),
                };
                model.extend(entry.model.clone());
                diagnostics.extend(entry.diagnostics.iter().cloned());
                parsed.insert(key, entry);
            }
        }
        self.parsed = parsed;
        (model, diagnostics)
    }
}

/// Parses one object. What fails to parse is rejected under the object's own identity (the API
/// server guarantees it has one), so its last good version stays in service.
fn parse(resource: &ApiResource, object: &DynamicObject) -> Parsed {
    let mut object = object.clone();
    // List items come without apiVersion/kind; the parser needs them.
    object.types = Some(TypeMeta { api_version: resource.api_version.clone(), kind: resource.kind.clone() });
    let resource_version = object.metadata.resource_version.clone();
    let (mut model, diagnostics) = match serde_yaml::to_value(&object) {
        Ok(value) => parse_object(&Origin::object("kubernetes"), value),
        Err(err) => {
            tracing::warn!(kind = %resource.kind, %err, "skipping an object that does not serialize");
            (Model::default(), Vec::new())
        }
    };
    if resource.kind != "Service" {
        let namespace = object.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let id = ResourceId::new(&resource.kind, namespace, object.metadata.name.clone().unwrap_or_default());
        for rejected in &mut model.rejected {
            rejected.id.get_or_insert_with(|| id.clone());
        }
    }
    Parsed { resource_version, model, diagnostics }
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
