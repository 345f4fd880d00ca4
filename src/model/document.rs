//! Splits multi-document YAML into typed resources. Recognises the CRD form, the flat annotation
//! form, `v1` Secrets, Services carrying `getambassador.io/config`, and `v1` `List`s.

use super::{ListenerSpec, MappingSpec, Meta, Model, Resource, SecretData, TlsContextSpec};
use crate::diagnostic::{Diagnostic, Origin, ResourceId};
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml::{Mapping as YamlMap, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

const AMBASSADOR_ANNOTATION: &str = "getambassador.io/config";
const CRD_VERSIONS: &[&str] = &["v1", "v2", "v3alpha1"];
const FLAT_VERSIONS: &[&str] = &["v0", "v1", "v2"];
const DEFAULT_NAMESPACE: &str = "default";

/// Parses every document of one file. Bad documents become diagnostics; the rest is returned.
pub fn parse_documents(file: &str, text: &str) -> (Model, Vec<Diagnostic>) {
    let mut parser = Parser { model: Model::default(), diagnostics: Vec::new() };
    parser.parse_stream(&Arc::from(file), text, None);
    (parser.model, parser.diagnostics)
}

struct Parser {
    model: Model,
    diagnostics: Vec<Diagnostic>,
}

/// How a document spells its resource: `metadata`/`spec` or everything at the top level.
enum Form {
    Crd,
    Flat,
}

impl Parser {
    fn parse_stream(&mut self, file: &Arc<str>, text: &str, default_namespace: Option<&str>) {
        for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let origin = Origin { file: file.clone(), document: index };
            match Value::deserialize(document) {
                Ok(value) => self.parse_value(&origin, value, default_namespace),
                Err(err) => {
                    // The YAML scanner cannot resynchronise after a syntax error, so the rest of
                    // this file is lost; other files are unaffected.
                    self.error(&origin, None, format!("unparseable YAML: {err}"));
                    break;
                }
            }
        }
    }

    fn parse_value(&mut self, origin: &Origin, value: Value, default_namespace: Option<&str>) {
        let mut doc = match value {
            Value::Null => return,
            Value::Mapping(map) => map,
            other => {
                let found = yaml_type_name(&other);
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
                "Service" => self.parse_service(origin, doc),
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
        let (name, namespace, spec) = match form {
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
                        let found = yaml_type_name(&other);
                        return self.error(origin, Some(&id), format!("`spec` must be a mapping, found {found}"));
                    }
                };
                (metadata.name, metadata.namespace, spec)
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
                // Emissary's annotation form also carries these; they do not affect translation.
                doc.remove("metadata_labels");
                (name, namespace, Value::Mapping(doc))
            }
        };
        let id = ResourceId::new(kind, namespace, name);
        let field_prefix = match form {
            Form::Crd => "spec.",
            Form::Flat => "",
        };
        match kind {
            "Mapping" => {
                if let Some((spec, meta)) =
                    self.typed_spec::<MappingSpec>(origin, id, spec, field_prefix, |s| s.ambassador_id.clone())
                {
                    self.model.mappings.push(Resource { meta, spec });
                }
            }
            "TLSContext" => {
                if let Some((spec, meta)) =
                    self.typed_spec::<TlsContextSpec>(origin, id, spec, field_prefix, |s| s.ambassador_id.clone())
                {
                    self.model.tls_contexts.push(Resource { meta, spec });
                }
            }
            "Listener" => {
                if let Some((spec, meta)) =
                    self.typed_spec::<ListenerSpec>(origin, id, spec, field_prefix, |s| s.ambassador_id.clone())
                {
                    self.model.listeners.push(Resource { meta, spec });
                }
            }
            _ => self.diagnostics.push(Diagnostic::warning(
                Some(origin),
                Some(&id),
                format!("kind {kind} is not supported by ambassador-xds; skipped"),
            )),
        }
    }

    /// Deserializes a spec, reporting every field it does not know as a warning (not an error:
    /// Emissary has many fields this tool does not translate, and configs should still load).
    fn typed_spec<S: DeserializeOwned>(
        &mut self,
        origin: &Origin,
        id: ResourceId,
        spec: Value,
        field_prefix: &str,
        ambassador_id: impl Fn(&S) -> Option<super::OneOrMany>,
    ) -> Option<(S, Meta)> {
        let mut ignored = Vec::new();
        let parsed: Result<S, _> = serde_ignored::deserialize(spec, |path| ignored.push(path.to_string()));
        match parsed {
            Ok(spec) => {
                for field in ignored {
                    self.diagnostics.push(Diagnostic::warning(
                        Some(origin),
                        Some(&id),
                        format!("field `{field_prefix}{field}` is not supported by ambassador-xds; ignored"),
                    ));
                }
                let ambassador_id = ambassador_id(&spec).map(super::OneOrMany::into_vec);
                Some((spec, Meta { id, origin: origin.clone(), ambassador_id }))
            }
            Err(err) => {
                self.error(
                    origin,
                    Some(&id),
                    format!("invalid {}: {err}", if field_prefix.is_empty() { "fields" } else { "spec" }),
                );
                None
            }
        }
    }

    fn parse_secret(&mut self, origin: &Origin, mut doc: YamlMap, default_namespace: Option<&str>) {
        let metadata = match take_metadata(&mut doc, default_namespace) {
            Ok(metadata) => metadata,
            Err(msg) => return self.error(origin, None, format!("Secret: {msg}")),
        };
        let id = ResourceId::new("Secret", metadata.namespace, metadata.name);
        let secret_type = match take_string(&mut doc, "type") {
            Ok(secret_type) => secret_type.unwrap_or_else(|| "Opaque".to_string()),
            Err(msg) => return self.error(origin, Some(&id), msg),
        };
        let mut entries = BTreeMap::new();
        for (field, base64_encoded) in [("data", true), ("stringData", false)] {
            let values: BTreeMap<String, String> = match doc.remove(field) {
                None | Some(Value::Null) => BTreeMap::new(),
                Some(value) => match serde_yaml::from_value(value) {
                    Ok(values) => values,
                    Err(err) => {
                        return self.error(origin, Some(&id), format!("`{field}` must map keys to strings: {err}"))
                    }
                },
            };
            for (key, value) in values {
                let bytes = if base64_encoded {
                    // Kubernetes accepts line-wrapped base64 in YAML written by hand.
                    let compact: String = value.split_whitespace().collect();
                    match base64::engine::general_purpose::STANDARD.decode(compact) {
                        Ok(bytes) => bytes,
                        Err(err) => {
                            return self.error(origin, Some(&id), format!("`data.{key}` is not valid base64: {err}"))
                        }
                    }
                } else {
                    value.into_bytes()
                };
                // Kubernetes semantics: stringData wins over data for the same key.
                entries.insert(key, bytes);
            }
        }
        let meta = Meta { id, origin: origin.clone(), ambassador_id: None };
        self.model.secrets.push(Resource { meta, spec: SecretData { secret_type, entries } });
    }

    fn parse_service(&mut self, origin: &Origin, mut doc: YamlMap) {
        let mut metadata = match doc.remove("metadata") {
            Some(Value::Mapping(metadata)) => metadata,
            _ => return,
        };
        let Ok(namespace) = take_string(&mut metadata, "namespace") else { return };
        let namespace = namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        let name = take_string(&mut metadata, "name").ok().flatten().unwrap_or_else(|| "?".to_string());
        let annotation = match metadata
            .get("annotations")
            .and_then(|annotations| annotations.get(AMBASSADOR_ANNOTATION))
        {
            None => return tracing::debug!(%origin, "skipping Service without {AMBASSADOR_ANNOTATION}"),
            Some(Value::String(text)) => text.clone(),
            Some(_) => {
                let id = ResourceId::new("Service", namespace, name);
                return self.error(origin, Some(&id), format!("annotation `{AMBASSADOR_ANNOTATION}` must be a string"));
            }
        };
        let file: Arc<str> =
            Arc::from(format!("{} (document {}) Service {namespace}/{name} annotation", origin.file, origin.document));
        self.parse_stream(&file, &annotation, Some(&namespace));
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

    fn error(&mut self, origin: &Origin, id: Option<&ResourceId>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::error(Some(origin), id, message));
    }
}

struct Metadata {
    name: String,
    namespace: String,
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
    Ok(Metadata { name, namespace })
}

fn take_string(map: &mut YamlMap, key: &str) -> Result<Option<String>, String> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(other) => Err(format!("`{key}` must be a string, found {}", yaml_type_name(&other))),
    }
}

fn yaml_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a sequence",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Model, Vec<String>) {
        let (model, diagnostics) = parse_documents("test.yaml", text);
        (model, diagnostics.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn crd_form_defaults_namespace() {
        let (model, diags) = parse(
            "apiVersion: getambassador.io/v2\nkind: Mapping\nmetadata: {name: m}\nspec: {prefix: /a/, service: s}\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(model.mappings[0].meta.id, ResourceId::new("Mapping", "default", "m"));
        assert_eq!(model.mappings[0].spec.prefix.as_deref(), Some("/a/"));
    }

    #[test]
    fn flat_form_without_api_version() {
        let (model, diags) = parse("kind: TLSContext\nname: upstream-context\nhosts: []\nsecret: upstream-certs\n");
        assert!(diags.is_empty(), "{diags:?}");
        let ctx = &model.tls_contexts[0];
        assert_eq!(ctx.meta.name(), "upstream-context");
        assert_eq!(ctx.spec.secret.as_deref(), Some("upstream-certs"));
        assert_eq!(ctx.spec.hosts, Some(vec![]));
    }

    #[test]
    fn service_annotation_takes_service_namespace() {
        let text = r#"
apiVersion: v1
kind: Service
metadata:
  name: qotm
  namespace: shop
  annotations:
    getambassador.io/config: |
      ---
      apiVersion: ambassador/v1
      kind: Mapping
      name: qotm
      prefix: /qotm/
      service: qotm
"#;
        let (model, diags) = parse(text);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(model.mappings[0].meta.id, ResourceId::new("Mapping", "shop", "qotm"));
    }

    #[test]
    fn secret_data_and_string_data() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: aGVsbG8=\nstringData:\n  tls.key: world\n";
        let (model, diags) = parse(text);
        assert!(diags.is_empty(), "{diags:?}");
        let secret = &model.secrets[0].spec;
        assert_eq!(secret.cert_chain(), Some(("tls.crt", &b"hello"[..])));
        assert_eq!(secret.private_key(), Some(("tls.key", &b"world"[..])));
        assert!(!format!("{secret:?}").contains("world"), "Debug must not print secret values");
    }

    #[test]
    fn bad_base64_is_a_diagnostic() {
        let (model, diags) = parse("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {tls.crt: '!!!'}\n");
        assert!(model.secrets.is_empty());
        assert_eq!(diags.len(), 1);
        assert!(diags[0].contains("Secret default/s") && diags[0].contains("not valid base64"), "{diags:?}");
    }

    #[test]
    fn unknown_fields_warn_and_keep_the_resource() {
        let (model, diags) = parse("apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: m}\nspec: {prefix: /, service: s, cors: {origins: '*'}}\n");
        assert_eq!(model.mappings.len(), 1);
        assert_eq!(diags, vec!["warning: test.yaml (document 0): Mapping default/m: field `spec.cors` is not supported by ambassador-xds; ignored"]);
    }

    #[test]
    fn wrong_types_drop_the_resource_with_its_name() {
        let (model, diags) = parse(
            "apiVersion: getambassador.io/v2\nkind: Mapping\nmetadata: {name: m}\nspec: {prefix: [1], service: s}\n",
        );
        assert!(model.mappings.is_empty());
        assert!(diags[0].starts_with("error: test.yaml (document 0): Mapping default/m: invalid spec"), "{diags:?}");
    }

    #[test]
    fn syntax_error_names_document() {
        let (model, diags) = parse("kind: Mapping\nname: a\nprefix: /a/\nservice: a\n---\nkind: [\n");
        assert_eq!(model.mappings.len(), 1);
        assert!(diags[0].starts_with("error: test.yaml (document 1): unparseable YAML"), "{diags:?}");
    }

    #[test]
    fn other_api_groups_are_skipped_quietly() {
        let (model, diags) = parse("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n");
        assert_eq!(model, Model::default());
        assert!(diags.is_empty());
    }

    #[test]
    fn unknown_ambassador_version_is_an_error() {
        let (_, diags) = parse("apiVersion: getambassador.io/v9\nkind: Mapping\nmetadata: {name: m}\n");
        assert!(diags[0].contains("unsupported apiVersion `getambassador.io/v9`"), "{diags:?}");
    }
}
