//! Writes to the fake API server, as the real one answers them:
//!
//! * `POST` a collection: create (201), `409 AlreadyExists` when the name is taken;
//! * `PUT` an object: replace (200), `409 Conflict` when the body's `resourceVersion` is not the
//!   stored one (optimistic concurrency, what Lease-based leader election relies on), 404 when
//!   missing;
//! * `PATCH` with `application/apply-patch+yaml`: server-side apply. `fieldManager` is
//!   required; each manager owns the leaf fields it last applied (lists are atomic, as for
//!   fields without a merge key); applying a value to a field another manager owns is a
//!   `409 Conflict` naming the fields unless `force=true`, which takes them over; a field a
//!   manager stops applying is removed unless someone else owns it; a missing object is
//!   created. `managedFields` shows the owners (`FieldsV1`);
//! * `DELETE` an object (200, 404).
//!
//! Every accepted write is recorded ([`super::FakeKube::writes`]) and is seen by watches.

use super::{parse_path, status_object, Change, EventType, FakeKube, Inner, Key, KindInfo, Route, CREATED};
use axum::http::Method;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// A request's body and content type.
pub struct WriteRequest {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// One write the server accepted.
#[derive(Debug, Clone)]
pub struct Written {
    pub at: Instant,
    /// `POST`, `PUT`, `PATCH` (server-side apply) or `DELETE`.
    pub method: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `fieldManager` of the request.
    pub manager: Option<String>,
    pub resource_version: u64,
}

/// A field as a path of keys (keys may contain dots, as `tls.crt` does).
type Path = Vec<String>;

impl FakeKube {
    /// Every write accepted so far, in order.
    pub fn writes(&self) -> Vec<Written> {
        self.shared.lock().writes.clone()
    }
}

fn conflict(message: String) -> (u16, Value) {
    (409, status_object(409, "Conflict", &message))
}

impl Inner {
    pub(super) fn write(
        &mut self,
        method: &Method,
        path: &str,
        query: &[(String, String)],
        request: Option<&WriteRequest>,
    ) -> (u16, Value) {
        let param = |name: &str| query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
        let manager = param("fieldManager").map(str::to_owned);
        let (group, version, plural, namespace, name) = match parse_path(path) {
            Route::Collection { group, version, plural, namespace: Some(namespace) } => {
                (group, version, plural, namespace, None)
            }
            Route::Object { group, version, plural, namespace, name } => {
                (group, version, plural, namespace, Some(name))
            }
            _ => return (405, status_object(405, "MethodNotAllowed", &format!("{method} {path}"))),
        };
        let Some(scope) = self.scope(group, version, plural, Some(namespace)) else {
            return (
                404,
                status_object(404, "NotFound", &format!("the server could not find the requested resource ({path})")),
            );
        };
        let info = scope.info;
        let body = || -> Result<Value, (u16, Value)> {
            let bytes = request.map(|r| r.body.as_slice()).unwrap_or_default();
            serde_yaml::from_slice::<Value>(bytes)
                .map_err(|err| (400, status_object(400, "BadRequest", &format!("the body is not an object: {err}"))))
        };
        let result = match (method.as_str(), name) {
            ("POST", None) => {
                body().and_then(|object| self.create(info, version, namespace, object, manager.as_deref()))
            }
            ("PUT", Some(name)) => {
                body().and_then(|object| self.replace(info, version, namespace, name, object, manager.as_deref()))
            }
            ("PATCH", Some(name)) => {
                let content_type = request.map(|r| r.content_type.as_str()).unwrap_or_default();
                if !content_type.starts_with("application/apply-patch") {
                    return (
                        415,
                        status_object(
                            415,
                            "UnsupportedMediaType",
                            &format!(
                                "the fake API server applies only server-side apply patches, not {content_type:?}"
                            ),
                        ),
                    );
                }
                let Some(manager) = manager.as_deref() else {
                    return (400, status_object(400, "BadRequest", "fieldManager is required for apply requests"));
                };
                let force = matches!(param("force"), Some("true"));
                body().and_then(|object| self.server_side_apply(info, version, namespace, name, object, manager, force))
            }
            ("DELETE", Some(name)) => self.remove(info, namespace, name),
            _ => return (405, status_object(405, "MethodNotAllowed", &format!("{method} {path}"))),
        };
        match result {
            Ok((status, object, rv)) => {
                let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                self.writes.push(Written {
                    at: Instant::now(),
                    method: method.to_string(),
                    kind: info.kind.to_owned(),
                    namespace: namespace.to_owned(),
                    name,
                    manager,
                    resource_version: rv,
                });
                (status, scope.present(&object))
            }
            Err(answer) => answer,
        }
    }

    fn key(info: &'static KindInfo, namespace: &str, name: &str) -> Key {
        Key { group: info.group, plural: info.plural, namespace: namespace.to_owned(), name: name.to_owned() }
    }

    fn create(
        &mut self,
        info: &'static KindInfo,
        version: &str,
        namespace: &str,
        object: Value,
        manager: Option<&str>,
    ) -> Result<(u16, Value, u64), (u16, Value)> {
        let Some(name) = object["metadata"]["name"].as_str().map(str::to_owned) else {
            return Err((422, status_object(422, "Invalid", "metadata.name: Required value")));
        };
        let key = Self::key(info, namespace, &name);
        if self.objects.contains_key(&key) {
            let message = format!("{}.{} \"{name}\" already exists", info.plural, info.group);
            return Err((409, status_object(409, "AlreadyExists", &message)));
        }
        let (object, rv) = self.store(info, version, key, object, manager.unwrap_or("unknown"), "Update");
        Ok((201, object, rv))
    }

    fn replace(
        &mut self,
        info: &'static KindInfo,
        version: &str,
        namespace: &str,
        name: &str,
        object: Value,
        manager: Option<&str>,
    ) -> Result<(u16, Value, u64), (u16, Value)> {
        let key = Self::key(info, namespace, name);
        let Some(existing) = self.objects.get(&key) else {
            return Err((
                404,
                status_object(404, "NotFound", &format!("{}.{} \"{name}\" not found", info.plural, info.group)),
            ));
        };
        let stored = existing["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_owned();
        match object["metadata"]["resourceVersion"].as_str() {
            Some(given) if !given.is_empty() && given != stored => {
                return Err(conflict(format!(
                    "Operation cannot be fulfilled on {}.{} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    info.plural, info.group
                )));
            }
            _ => {}
        }
        let (object, rv) = self.store(info, version, key, object, manager.unwrap_or("unknown"), "Update");
        Ok((200, object, rv))
    }

    #[allow(clippy::too_many_arguments)]
    fn server_side_apply(
        &mut self,
        info: &'static KindInfo,
        version: &str,
        namespace: &str,
        name: &str,
        applied: Value,
        manager: &str,
        force: bool,
    ) -> Result<(u16, Value, u64), (u16, Value)> {
        let key = Self::key(info, namespace, name);
        let mut fields = BTreeMap::new();
        leaf_fields(&applied, &mut Vec::new(), &mut fields);
        let existing = self.objects.get(&key).cloned();
        let owners = self.owners.entry(key.clone()).or_default();
        let mut conflicts = Vec::new();
        for (path, value) in &fields {
            for (other, owned) in owners.iter() {
                let differs = existing.as_ref().map(|e| get(e, path)) != Some(Some(value));
                if other != manager && owned.contains(path) && differs {
                    conflicts.push(format!("conflict with \"{other}\": .{}", path.join(".")));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return Err(conflict(format!(
                "Apply failed with {} conflict(s): {}",
                conflicts.len(),
                conflicts.join(", ")
            )));
        }
        let mut object = existing.clone().unwrap_or_else(|| json!({"metadata": {"name": name}}));
        let previously: BTreeSet<Path> = owners.get(manager).cloned().unwrap_or_default();
        for (other, owned) in owners.iter_mut() {
            if other != manager {
                owned.retain(|path| !fields.contains_key(path));
            }
        }
        for path in previously.iter().filter(|p| !fields.contains_key(*p)) {
            if !owners.iter().any(|(other, owned)| other != manager && owned.contains(path)) {
                remove(&mut object, path);
            }
        }
        for (path, value) in &fields {
            set(&mut object, path, value.clone());
        }
        owners.insert(manager.to_owned(), fields.keys().cloned().collect());
        if object.get("apiVersion").is_none() {
            object["apiVersion"] = applied["apiVersion"].clone();
        }
        let status = if existing.is_some() { 200 } else { 201 };
        let (object, rv) = self.store(info, version, key, object, manager, "Apply");
        Ok((status, object, rv))
    }

    fn remove(
        &mut self,
        info: &'static KindInfo,
        namespace: &str,
        name: &str,
    ) -> Result<(u16, Value, u64), (u16, Value)> {
        let key = Self::key(info, namespace, name);
        let Some(mut object) = self.objects.remove(&key) else {
            return Err((
                404,
                status_object(404, "NotFound", &format!("{}.{} \"{name}\" not found", info.plural, info.group)),
            ));
        };
        self.owners.remove(&key);
        self.rv += 1;
        let rv = self.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.history.push(Change {
            rv,
            key,
            event: EventType::Deleted,
            object: object.clone(),
            previous: Some(object.clone()),
        });
        Ok((200, object, rv))
    }

    /// Stores `object` under `key` with the metadata the API server sets, and records the event.
    fn store(
        &mut self,
        info: &'static KindInfo,
        version: &str,
        key: Key,
        mut object: Value,
        manager: &str,
        operation: &str,
    ) -> (Value, u64) {
        self.rv += 1;
        let rv = self.rv;
        let existing = self.objects.get(&key).cloned();
        let uid = match existing.as_ref().and_then(|old| old["metadata"]["uid"].as_str()) {
            Some(uid) => uid.to_owned(),
            None => {
                self.next_uid += 1;
                format!("6f1c0de0-0000-4000-8000-{:012x}", self.next_uid)
            }
        };
        let api_version = super::join_api_version(info.group, version);
        object["apiVersion"] = json!(api_version);
        object["kind"] = json!(info.kind);
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        let metadata = object["metadata"].as_object_mut().unwrap();
        metadata.insert("name".into(), json!(key.name));
        metadata.insert("namespace".into(), json!(key.namespace));
        metadata.insert("uid".into(), json!(uid));
        metadata.insert("resourceVersion".into(), json!(rv.to_string()));
        metadata.insert(
            "creationTimestamp".into(),
            existing.as_ref().map_or(json!(CREATED), |old| old["metadata"]["creationTimestamp"].clone()),
        );
        if !info.group.is_empty() && !info.group.contains(".k8s.io") {
            let generation = existing.as_ref().and_then(|old| old["metadata"]["generation"].as_u64()).unwrap_or(0);
            metadata.insert("generation".into(), json!(generation + 1));
        }
        let owners = self.owners.get(&key);
        let mut managed: Vec<Value> = owners
            .into_iter()
            .flatten()
            .filter(|(_, fields)| !fields.is_empty())
            .map(|(owner, fields)| {
                json!({"manager": owner, "operation": "Apply", "apiVersion": api_version, "time": CREATED, "fieldsType": "FieldsV1", "fieldsV1": fields_v1(fields)})
            })
            .collect();
        if operation != "Apply" {
            managed.push(json!({"manager": manager, "operation": operation, "apiVersion": api_version, "time": CREATED, "fieldsType": "FieldsV1", "fieldsV1": {}}));
        }
        metadata.insert("managedFields".into(), Value::Array(managed));
        let event = if existing.is_some() { EventType::Modified } else { EventType::Added };
        self.objects.insert(key.clone(), object.clone());
        self.history.push(Change { rv, key, event, object: object.clone(), previous: existing.clone() });
        (object, rv)
    }
}

/// The leaf fields of an applied object (objects are walked, lists and scalars are leaves);
/// only labels and annotations of the metadata.
fn leaf_fields(value: &Value, path: &mut Path, out: &mut BTreeMap<Path, Value>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let top = path.is_empty();
                if top && (key == "apiVersion" || key == "kind") {
                    continue;
                }
                if path.len() == 1 && path[0] == "metadata" && key != "labels" && key != "annotations" {
                    continue;
                }
                path.push(key.clone());
                leaf_fields(child, path, out);
                path.pop();
            }
        }
        leaf => {
            out.insert(path.clone(), leaf.clone());
        }
    }
}

fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |node, key| node.get(key))
}

fn set(value: &mut Value, path: &[String], leaf: Value) {
    let mut node = value;
    for key in &path[..path.len() - 1] {
        if !node[key.as_str()].is_object() {
            node[key.as_str()] = Value::Object(Map::new());
        }
        node = &mut node[key.as_str()];
    }
    node[path[path.len() - 1].as_str()] = leaf;
}

fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut node = value;
    for key in parents {
        match node.get_mut(key) {
            Some(child) => node = child,
            None => return,
        }
    }
    if let Some(map) = node.as_object_mut() {
        map.remove(last);
    }
}

/// `FieldsV1`: `{"f:data": {"f:tls.crt": {}}}`.
fn fields_v1(fields: &BTreeSet<Path>) -> Value {
    let mut root = Value::Object(Map::new());
    for path in fields {
        let mut node = &mut root;
        for key in path {
            node = node.as_object_mut().unwrap().entry(format!("f:{key}")).or_insert_with(|| json!({}));
        }
    }
    root
}
