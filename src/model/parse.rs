//! Documents → typed resources: dispatch on `apiVersion` and `kind`, the CRD and flat forms of
//! Ambassador resources, and the Kubernetes kinds that carry them (`Secret`, `Service`, `List`).

use super::module::AMBASSADOR_MODULE;
use super::resolver::{ConsulResolverFields, KubernetesResolverFields, ResolverKind, ResolverSpec};
use super::yaml::{self, Document};
use super::{secret, service, Labels, Meta, Model, OneOrMany, Rejected, Resource};
use crate::diagnostic::{self, Diagnostic, Kind, Origin, ResourceId};
use serde_yaml::{Mapping as YamlMap, Value};
use std::sync::Arc;

const CRD_VERSIONS: &[&str] = &["v1", "v2", "v3alpha1"];
const FLAT_VERSIONS: &[&str] = &["v0", "v1", "v2"];
pub(super) const DEFAULT_NAMESPACE: &str = "default";

/// Parses every document of one file. Bad documents become diagnostics; the rest is returned.
///
/// Documents are parsed one by one, so one syntax error costs only its own document, and large
/// files are parsed on every core; document numbers do not depend on either.
pub fn parse_documents(file: &str, text: &str) -> (Model, Vec<Diagnostic>) {
    let file: Arc<str> = Arc::from(file);
    let documents = match yaml::check_stream_size(text).and_then(|()| yaml::split_documents(text)) {
        Ok(documents) => documents,
        Err(err) => {
            let mut parser = Parser::default();
            parser.reject(&Origin { file, document: 0 }, None, err.kind, err.message);
            return parser.finish();
        }
    };
    let workers = if text.len() < yaml::PARALLEL_THRESHOLD {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(documents.len())
    };
    let chunk = documents.len().div_ceil(workers.max(1)).max(1);
    let parse_chunk = |chunk: &[Document<'_>]| {
        let mut parser = Parser::default();
        for document in chunk {
            parser.parse_document(&file, document, None);
        }
        parser
    };
    if workers <= 1 {
        return parse_chunk(&documents).finish();
    }
    let parts: Vec<Parser> = std::thread::scope(|scope| {
        let handles: Vec<_> = documents.chunks(chunk).map(|c| scope.spawn(move || parse_chunk(c))).collect();
        handles.into_iter().map(|h| h.join().expect("YAML parsing does not panic")).collect()
    });
    let mut merged = Parser::default();
    for part in parts {
        let (model, diagnostics, capper) = part.into_parts();
        merged.model.extend(model);
        merged.capper.hidden_from(capper);
        for diagnostic in diagnostics {
            merged.push(diagnostic);
        }
    }
    merged.finish()
}

/// Parses one object that arrives on its own (from the Kubernetes API), already as a value.
pub fn parse_object(origin: &Origin, value: Value) -> (Model, Vec<Diagnostic>) {
    let mut parser = Parser::default();
    parser.parse_value(origin, value, None);
    parser.finish()
}

#[derive(Default)]
pub(super) struct Parser {
    model: Model,
    diagnostics: Vec<Diagnostic>,
    /// Keeps at most [`diagnostic::MAX_PER_FILE`] diagnostics per file while parsing, so a file of
    /// many broken documents does not hold one diagnostic each even for a moment.
    capper: diagnostic::Capper,
    /// Files (streams) already rejected as a whole.
    rejected_files: std::collections::HashSet<Arc<str>>,
}

/// How a document spells its resource: `metadata`/`spec` or everything at the top level.
enum Form {
    Crd,
    Flat,
}

impl Parser {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.capper.push(&mut self.diagnostics, diagnostic);
    }

    fn finish(self) -> (Model, Vec<Diagnostic>) {
        let (model, mut diagnostics, capper) = self.into_parts();
        capper.summarize(&mut diagnostics);
        (model, diagnostics)
    }

    /// What was parsed, before the count of hidden diagnostics becomes one.
    fn into_parts(self) -> (Model, Vec<Diagnostic>, diagnostic::Capper) {
        (self.model, self.diagnostics, self.capper)
    }
    fn parse_document(&mut self, file: &Arc<str>, document: &Document<'_>, default_namespace: Option<&str>) {
        let origin = Origin { file: file.clone(), document: document.index };
        match document.parse() {
            Ok(value) => self.parse_value(&origin, value, default_namespace),
            Err(err) => self.reject(&origin, None, err.kind, err.message),
        }
    }

    /// A YAML stream embedded in another document (a Service annotation), under its own name.
    pub(super) fn parse_stream(&mut self, file: &Arc<str>, text: &str, default_namespace: Option<&str>) {
        match yaml::check_stream_size(text).and_then(|()| yaml::split_documents(text)) {
            Ok(documents) => {
                for document in documents {
                    self.parse_document(file, &document, default_namespace);
                }
            }
            Err(err) => self.reject(&Origin { file: file.clone(), document: 0 }, None, err.kind, err.message),
        }
    }

    fn parse_value(&mut self, origin: &Origin, value: Value, default_namespace: Option<&str>) {
        let mut doc = match value {
            Value::Null => return,
            Value::Mapping(map) => map,
            other => {
                let found = yaml::type_name(&other);
                return self.error(origin, None, format!("expected a mapping at the top level, found {found}"));
            }
        };
        let api_version = match take_string(&mut doc, "apiVersion") {
            Ok(api) => api,
            Err(msg) => return self.error(origin, None, msg),
        };
        let kind = match take_string(&mut doc, "kind") {
            Ok(Some(kind)) => kind,
            Ok(None) => return self.error(origin, None, "missing required field `kind`"),
            Err(msg) => return self.error(origin, None, msg),
        };

        match api_version.as_deref() {
            Some("v1") => match kind.as_str() {
                "Secret" => self.parse_secret(origin, doc, default_namespace),
                "Service" => service::parse_service(self, origin, doc),
                "List" => self.parse_list(origin, doc, default_namespace),
                other => tracing::debug!(%origin, kind = other, "skipping Kubernetes object"),
            },
            Some(api) if api.starts_with("getambassador.io/") => {
                let version = &api["getambassador.io/".len()..];
                if !CRD_VERSIONS.contains(&version) {
                    return self.error(origin, None, format!("unsupported apiVersion `{api}` for kind {kind} (expected getambassador.io/v1, v2 or v3alpha1)"));
                }
                self.parse_ambassador(origin, &kind, doc, default_namespace);
            }
            Some(api) if api.starts_with("ambassador/") => {
                let version = &api["ambassador/".len()..];
                if !FLAT_VERSIONS.contains(&version) {
                    return self.error(
                        origin,
                        None,
                        format!("unsupported apiVersion `{api}` for kind {kind} (expected ambassador/v0, v1 or v2)"),
                    );
                }
                self.parse_ambassador(origin, &kind, doc, default_namespace);
            }
            None => self.parse_ambassador(origin, &kind, doc, default_namespace),
            Some(api) => tracing::debug!(%origin, api, kind, "skipping object of another API group"),
        }
    }

    fn parse_ambassador(&mut self, origin: &Origin, kind: &str, mut doc: YamlMap, default_namespace: Option<&str>) {
        let form = if doc.contains_key("metadata") || doc.contains_key("spec") { Form::Crd } else { Form::Flat };
        let (name, namespace, labels, spec) = match form {
            Form::Crd => {
                let metadata = match take_metadata(&mut doc, default_namespace) {
                    Ok(metadata) => metadata,
                    Err(msg) => return self.error(origin, None, format!("{kind}: {msg}")),
                };
                let spec = match doc.remove("spec") {
                    None | Some(Value::Null) => Value::Mapping(YamlMap::new()),
                    Some(spec @ Value::Mapping(_)) => spec,
                    Some(other) => {
                        let id = ResourceId::new(kind, metadata.namespace, metadata.name);
                        let found = yaml::type_name(&other);
                        return self.error(origin, Some(&id), format!("`spec` must be a mapping, found {found}"));
                    }
                };
                (metadata.name, metadata.namespace, metadata.labels, spec)
            }
            Form::Flat => {
                let name = match take_string(&mut doc, "name") {
                    Ok(Some(name)) => name,
                    Ok(None) => return self.error(origin, None, format!("{kind}: missing required field `name`")),
                    Err(msg) => return self.error(origin, None, msg),
                };
                let namespace = match take_string(&mut doc, "namespace") {
                    Ok(namespace) => {
                        namespace.unwrap_or_else(|| default_namespace.unwrap_or(DEFAULT_NAMESPACE).to_string())
                    }
                    Err(msg) => return self.error(origin, None, msg),
                };
                let labels = match take_labels(&mut doc, "metadata_labels") {
                    Ok(labels) => labels,
                    Err(msg) => return self.error(origin, Some(&ResourceId::new(kind, namespace, name)), msg),
                };
                (name, namespace, labels, Value::Mapping(doc))
            }
        };
        let id = ResourceId::new(kind, namespace, name);
        let field_prefix = match form {
            Form::Crd => "spec.",
            Form::Flat => "",
        };
        macro_rules! typed {
            ($slot:ident) => {
                if let Some((spec, meta)) = self.typed_spec(origin, id, labels, spec, field_prefix) {
                    self.model.$slot.push(Resource::new(meta, spec));
                }
            };
        }
        match kind {
            "Mapping" => typed!(mappings),
            "TCPMapping" => typed!(tcp_mappings),
            "TLSContext" => typed!(tls_contexts),
            "Listener" => typed!(listeners),
            "Host" => typed!(hosts),
            "Module" if *id.name == *AMBASSADOR_MODULE => typed!(modules),
            "ConsulResolver" => {
                if let Some((fields, meta)) =
                    self.typed_spec::<ConsulResolverFields>(origin, id, labels, spec, field_prefix)
                {
                    let ConsulResolverFields { address, datacenter, ambassador_id } = fields;
                    let spec = ResolverSpec { kind: ResolverKind::Consul, address, datacenter, ambassador_id };
                    self.model.resolvers.push(Resource::new(meta, spec));
                }
            }
            "KubernetesEndpointResolver" | "KubernetesServiceResolver" => {
                let kind = ResolverKind::from_kind_name(kind).expect("a Kubernetes resolver kind");
                if let Some((fields, meta)) =
                    self.typed_spec::<KubernetesResolverFields>(origin, id, labels, spec, field_prefix)
                {
                    let spec =
                        ResolverSpec { kind, address: None, datacenter: None, ambassador_id: fields.ambassador_id };
                    self.model.resolvers.push(Resource::new(meta, spec));
                }
            }
            _ => {
                let message = match kind {
                    "Module" => format!(
                        "only the `{AMBASSADOR_MODULE}` Module is read (Module {} is not supported by ambassador-xds); skipped",
                        id.name
                    ),
                    _ => format!("kind {kind} is not supported by ambassador-xds; skipped"),
                };
                self.push(Diagnostic::warning(Some(origin), Some(&id), message).with_kind(Kind::UnsupportedKind));
                // Whether such a resource is there decides about fields that only matter with it.
                let ambassador_id = spec
                    .get("ambassador_id")
                    .and_then(|value| serde_yaml::from_value::<OneOrMany>(value.clone()).ok())
                    .map(OneOrMany::into_vec);
                self.model.skipped.push(Meta { id, origin: origin.clone(), ambassador_id, labels });
            }
        }
    }

    fn parse_secret(&mut self, origin: &Origin, mut doc: YamlMap, default_namespace: Option<&str>) {
        let metadata = match take_metadata(&mut doc, default_namespace) {
            Ok(metadata) => metadata,
            Err(msg) => return self.error(origin, None, format!("Secret: {msg}")),
        };
        let id = ResourceId::new("Secret", metadata.namespace, metadata.name);
        match secret::decode(doc) {
            Ok(data) => {
                let meta = Meta { id, origin: origin.clone(), ambassador_id: None, labels: metadata.labels };
                self.model.secrets.push(Resource::new(meta, data));
            }
            Err(err) => self.error(origin, Some(&id), err.to_string()),
        }
    }

    fn parse_list(&mut self, origin: &Origin, mut doc: YamlMap, default_namespace: Option<&str>) {
        match doc.remove("items") {
            Some(Value::Sequence(items)) => {
                for item in items {
                    self.parse_value(origin, item, default_namespace);
                }
            }
            None | Some(Value::Null) => {}
            Some(_) => self.error(origin, None, "`items` of a List must be a sequence"),
        }
    }

    /// A document that could not be read into a resource: an error, and a [`Rejected`] entry so
    /// that the resource's last good version stays in service.
    pub(super) fn error(&mut self, origin: &Origin, id: Option<&ResourceId>, message: impl Into<String>) {
        self.reject(origin, id, Kind::Invalid, message.into());
    }

    /// A whole embedded stream (`file`) could not be read.
    pub(super) fn rejected_stream(&mut self, file: &Arc<str>) {
        if self.rejected_files.insert(file.clone()) {
            self.model.rejected.push(Rejected { origin: Origin { file: file.clone(), document: 0 }, id: None });
        }
    }

    fn reject(&mut self, origin: &Origin, id: Option<&ResourceId>, kind: Kind, message: String) {
        self.push(Diagnostic::error(Some(origin), id, message).with_kind(kind));
        // One rejection without a resource stands for the whole file; more add nothing.
        if id.is_some() || self.rejected_files.insert(origin.file.clone()) {
            self.model.rejected.push(Rejected { origin: origin.clone(), id: id.cloned() });
        }
    }
}

struct Metadata {
    name: String,
    namespace: String,
    labels: Labels,
}

fn take_metadata(doc: &mut YamlMap, default_namespace: Option<&str>) -> Result<Metadata, String> {
    let mut metadata = match doc.remove("metadata") {
        Some(Value::Mapping(metadata)) => metadata,
        None | Some(Value::Null) => return Err("missing required field `metadata.name`".into()),
        Some(_) => return Err("`metadata` must be a mapping".into()),
    };
    let name = take_string(&mut metadata, "name")?.ok_or("missing required field `metadata.name`")?;
    let namespace = take_string(&mut metadata, "namespace")?
        .unwrap_or_else(|| default_namespace.unwrap_or(DEFAULT_NAMESPACE).to_string());
    let labels = take_labels(&mut metadata, "labels").map_err(|msg| format!("metadata: {msg}"))?;
    Ok(Metadata { name, namespace, labels })
}

/// Labels: a mapping of names to strings (numbers and booleans, which YAML writers leave
/// unquoted, are read as the strings they spell).
fn take_labels(map: &mut YamlMap, key: &str) -> Result<Labels, String> {
    let entries = match map.remove(key) {
        None | Some(Value::Null) => return Ok(Labels::new()),
        Some(Value::Mapping(entries)) => entries,
        Some(other) => return Err(format!("`{key}` must be a mapping, found {}", yaml::type_name(&other))),
    };
    let scalar = |value: &Value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    };
    entries
        .iter()
        .map(|(name, value)| match (scalar(name), scalar(value)) {
            (Some(name), Some(value)) => Ok((name, value)),
            _ => Err(format!("`{key}` must map label names to strings")),
        })
        .collect()
}

pub(super) fn take_string(map: &mut YamlMap, key: &str) -> Result<Option<String>, String> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(other) => Err(format!("`{key}` must be a string, found {}", yaml::type_name(&other))),
    }
}

mod spec;

#[cfg(test)]
mod tests;
