//! What one watch holds: each object parsed as it arrives, kept as its parse only.
//!
//! kube-rs' reflector stores would keep every object as a `DynamicObject` (a JSON tree, about
//! 5 KiB for a trimmed Secret, more for a Mapping) beside its parse, for the life of the process;
//! with 10,000 Secrets that is most of the memory. Here the watcher's events are applied to a map
//! of parses instead, with the reflector's semantics: a relist (first start, 410 Gone, a watch
//! error) is collected aside and replaces the map only when complete, so until then the last
//! listed state stays in service.

use super::trim;
use crate::diagnostic::{Diagnostic, Origin, ResourceId};
use crate::model::{parse_object, Model};
use kube::api::{ApiResource, DynamicObject, TypeMeta};
use kube::runtime::watcher::Event;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What one object parsed to, for as long as its resourceVersion stays.
#[derive(Debug)]
pub(super) struct Parsed {
    resource_version: Option<String>,
    pub model: Model,
    pub diagnostics: Vec<Diagnostic>,
    /// A Service's ports (number, name; `""` when unnamed): which EndpointSlice port a Mapping's
    /// Service port is.
    pub service_ports: Vec<(u16, String)>,
}

/// Namespace and name: the order objects are read in, whatever order the API sent them.
type ObjectKey = (Option<String>, String);

#[derive(Default)]
pub(super) struct ParsedObjects {
    objects: BTreeMap<ObjectKey, Arc<Parsed>>,
    /// A relist in progress.
    relisting: Option<BTreeMap<ObjectKey, Arc<Parsed>>>,
    /// A complete list has been applied at least once.
    pub listed: bool,
}

impl ParsedObjects {
    /// Applies one watcher event (the object already trimmed); whether what is served changed.
    pub fn apply(&mut self, resource: &ApiResource, event: Event<DynamicObject>) -> bool {
        match event {
            Event::Init => {
                self.relisting = Some(BTreeMap::new());
                false
            }
            Event::InitApply(object) => {
                let key = key(&object);
                // Unchanged since the last list: its parse is reused.
                let parsed = match self.objects.get(&key) {
                    Some(old) if same_version(old, &object) => old.clone(),
                    _ => Arc::new(parse(resource, object)),
                };
                self.relisting.get_or_insert_with(BTreeMap::new).insert(key, parsed);
                false
            }
            Event::InitDone => {
                self.objects = self.relisting.take().unwrap_or_default();
                self.listed = true;
                true
            }
            Event::Apply(object) => {
                let key = key(&object);
                if self.objects.get(&key).is_some_and(|old| same_version(old, &object)) {
                    return false;
                }
                self.objects.insert(key, Arc::new(parse(resource, object)));
                true
            }
            Event::Delete(object) => self.objects.remove(&key(&object)).is_some(),
        }
    }

    /// Every object's parse, by namespace and name.
    pub fn parses(&self) -> impl Iterator<Item = &Parsed> {
        self.objects.values().map(|parsed| &**parsed)
    }

    /// Every object's namespace, name and parse.
    pub fn by_name(&self) -> impl Iterator<Item = (&Option<String>, &str, &Parsed)> {
        self.objects.iter().map(|((namespace, name), parsed)| (namespace, name.as_str(), &**parsed))
    }
}

fn key(object: &DynamicObject) -> ObjectKey {
    (object.metadata.namespace.clone(), object.metadata.name.clone().unwrap_or_default())
}

fn same_version(parsed: &Parsed, object: &DynamicObject) -> bool {
    parsed.resource_version.is_some() && parsed.resource_version == object.metadata.resource_version
}

/// Trims and parses one object. What fails to parse is rejected under the object's own identity
/// (the API server guarantees it has one), so its last good version stays in service.
fn parse(resource: &ApiResource, mut object: DynamicObject) -> Parsed {
    trim::trim(&resource.kind, &mut object);
    // List items come without apiVersion/kind; the parser needs them.
    object.types = Some(TypeMeta { api_version: resource.api_version.clone(), kind: resource.kind.clone() });
    let resource_version = object.metadata.resource_version.clone();
    let service_ports = match resource.kind.as_str() {
        "Service" => ports(&object.data["spec"]["ports"]),
        _ => Vec::new(),
    };
    let namespace = object.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = object.metadata.name.clone().unwrap_or_default();
    let (mut model, diagnostics) = match serde_yaml::to_value(object) {
        Ok(value) => parse_object(&Origin::object("kubernetes"), value),
        Err(err) => {
            tracing::warn!(kind = %resource.kind, %err, "skipping an object that does not serialize");
            (Model::default(), Vec::new())
        }
    };
    if &*resource.kind != "Service" {
        let id = ResourceId::new(resource.kind.clone(), namespace, name);
        for rejected in &mut model.rejected {
            rejected.id.get_or_insert_with(|| id.clone());
        }
    }
    Parsed { resource_version, model, diagnostics, service_ports }
}

fn ports(ports: &serde_json::Value) -> Vec<(u16, String)> {
    let ports = ports.as_array().map(Vec::as_slice).unwrap_or_default();
    ports
        .iter()
        .filter_map(|port| {
            let number = u16::try_from(port["port"].as_u64()?).ok()?;
            Some((number, port["name"].as_str().unwrap_or_default().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use serde_json::json;

    fn mapping(name: &str, version: &str, prefix: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "resourceVersion": version},
            "spec": {"prefix": prefix, "service": "svc"}
        }))
        .unwrap()
    }

    fn resource() -> ApiResource {
        let mut resource = ApiResource::erase::<Service>(&());
        (resource.group, resource.version, resource.api_version) =
            ("getambassador.io".into(), "v3alpha1".into(), "getambassador.io/v3alpha1".into());
        (resource.kind, resource.plural) = ("Mapping".into(), "mappings".into());
        resource
    }

    fn prefixes(objects: &ParsedObjects) -> Vec<String> {
        objects
            .parses()
            .flat_map(|p| p.model.mappings.iter().map(|m| m.spec.prefix.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn a_relist_replaces_what_is_served_only_when_complete() {
        let (resource, mut objects) = (resource(), ParsedObjects::default());
        assert!(!objects.apply(&resource, Event::Init));
        assert!(!objects.apply(&resource, Event::InitApply(mapping("b", "1", "/b/"))));
        assert!(!objects.apply(&resource, Event::InitApply(mapping("a", "2", "/a/"))));
        assert!(!objects.listed && prefixes(&objects).is_empty(), "nothing is served before the list is complete");
        assert!(objects.apply(&resource, Event::InitDone));
        assert!(objects.listed);
        assert_eq!(prefixes(&objects), ["/a/", "/b/"], "in name order, not arrival order");

        // A relist (410 Gone) in which `b` is gone: `b` keeps serving until the list completes.
        objects.apply(&resource, Event::Init);
        objects.apply(&resource, Event::InitApply(mapping("a", "2", "/a/")));
        assert_eq!(prefixes(&objects), ["/a/", "/b/"]);
        objects.apply(&resource, Event::InitDone);
        assert_eq!(prefixes(&objects), ["/a/"]);
    }

    #[test]
    fn an_object_is_parsed_once_per_resource_version() {
        let (resource, mut objects) = (resource(), ParsedObjects::default());
        objects.apply(&resource, Event::Init);
        objects.apply(&resource, Event::InitApply(mapping("a", "1", "/a/")));
        objects.apply(&resource, Event::InitDone);
        let first = objects.objects.values().next().unwrap().clone();
        assert!(!objects.apply(&resource, Event::Apply(mapping("a", "1", "/a/"))), "same version: no change");
        objects.apply(&resource, Event::Init);
        objects.apply(&resource, Event::InitApply(mapping("a", "1", "/a/")));
        objects.apply(&resource, Event::InitDone);
        assert!(Arc::ptr_eq(&first, objects.objects.values().next().unwrap()), "a relist reuses the parse");
        assert!(objects.apply(&resource, Event::Apply(mapping("a", "2", "/a2/"))));
        assert_eq!(prefixes(&objects), ["/a2/"]);
        assert!(objects.apply(&resource, Event::Delete(mapping("a", "3", "/a2/"))));
        assert!(prefixes(&objects).is_empty());
    }
}
