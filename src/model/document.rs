//! Splits multi-document YAML into typed resources. Recognises the CRD form, the flat annotation
//! form, `v1` Secrets, Services carrying `getambassador.io/config`, and `v1` `List`s.

use super::{ListenerSpec, MappingSpec, Meta, Model, Resource, SecretData, TlsContextSpec};
use crate::diagnostic::{Diagnostic, Origin, ResourceId};
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping as YamlMap, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How YAML syntax errors begin: the config-dir source keeps a file's last good version while
/// its current one has such an error.
pub const SYNTAX_ERROR: &str = "unparseable YAML";
const AMBASSADOR_ANNOTATION: &str = "getambassador.io/config";
const CRD_VERSIONS: &[&str] = &["v1", "v2", "v3alpha1"];
const FLAT_VERSIONS: &[&str] = &["v0", "v1", "v2"];
const DEFAULT_NAMESPACE: &str = "default";

/// Parses every document of one file. Bad documents become diagnostics; the rest is returned.
///
/// The text is first split into documents at `---` lines (YAML forbids such a line inside
/// content, so the split is exact). That lets one syntax error cost only its own document, and
/// lets large files be parsed on every core; document numbers do not depend on either.
pub fn parse_documents(file: &str, text: &str) -> (Model, Vec<Diagnostic>) {
    let file: Arc<str> = Arc::from(file);
    let documents = split_documents(text);
    let workers = if text.len() < PARALLEL_THRESHOLD {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(documents.len())
    };
    let chunk = documents.len().div_ceil(workers.max(1)).max(1);
    let parse_chunk = |chunk: &[Document<'_>]| {
        let mut parser = Parser { model: Model::default(), diagnostics: Vec::new() };
        for document in chunk {
            parser.parse_document(&file, document, None);
        }
        (parser.model, parser.diagnostics)
    };
    if workers <= 1 {
        return parse_chunk(&documents);
    }
    let results: Vec<(Model, Vec<Diagnostic>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = documents.chunks(chunk).map(|c| scope.spawn(move || parse_chunk(c))).collect();
        handles.into_iter().map(|h| h.join().expect("YAML parsing does not panic")).collect()
    });
    let mut model = Model::default();
    let mut diagnostics = Vec::new();
    for (part, part_diagnostics) in results {
        model.extend(part);
        diagnostics.extend(part_diagnostics);
    }
    (model, diagnostics)
}

/// Parses one object that arrives on its own (from the Kubernetes API), already as a value.
pub fn parse_object(origin: &Origin, value: Value) -> (Model, Vec<Diagnostic>) {
    let mut parser = Parser { model: Model::default(), diagnostics: Vec::new() };
    parser.parse_value(origin, value, None);
    (parser.model, parser.diagnostics)
}

/// Below this size a file is parsed on one thread; spawning costs more than it saves.
const PARALLEL_THRESHOLD: usize = 256 * 1024;

/// One YAML document of a stream: its text (starting at its `---` line, if any), its index, and
/// the line it starts on (0-based) so error positions refer to the whole file.
struct Document<'a> {
    text: &'a str,
    index: usize,
    first_line: usize,
}

/// Splits a YAML stream at document markers (`---` at the start of a line, alone or followed by
/// a space). Text before the first marker is a document only if it holds content.
fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut starts = vec![(0usize, 0usize)];
    let mut offset = 0;
    for (line_number, line) in text.split_inclusive('\n').enumerate() {
        let content = line.trim_end_matches(['\n', '\r']);
        let is_marker = content == "---" || content.starts_with("--- ") || content.starts_with("---\t");
        if is_marker && offset > 0 {
            starts.push((offset, line_number));
        }
        offset += line.len();
    }
    let mut documents = Vec::with_capacity(starts.len());
    for (i, &(start, first_line)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(text.len(), |next| next.0);
        let doc = &text[start..end];
        let has_content = doc.lines().any(|line| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#') && !line.starts_with('%')
        });
        if i == 0 && !has_content {
            continue;
        }
        documents.push(Document { text: doc, index: documents.len(), first_line });
    }
    documents
}

/// serde_yaml reports positions within the document it was given; shift them to file lines.
fn shift_line_numbers(message: &str, offset: usize) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        let (before, after) = rest.split_at(at + "line ".len());
        out.push_str(before);
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match after[..digits].parse::<usize>() {
            Ok(line) => out.push_str(&(line + offset).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
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
    fn parse_document(&mut self, file: &Arc<str>, document: &Document<'_>, default_namespace: Option<&str>) {
        let origin = Origin { file: file.clone(), document: document.index };
        match serde_yaml::from_str::<Value>(document.text) {
            Ok(value) => self.parse_value(&origin, value, default_namespace),
            Err(err) => {
                let message = shift_line_numbers(&err.to_string(), document.first_line);
                self.error(&origin, None, format!("{SYNTAX_ERROR}: {message}"));
            }
        }
    }

    fn parse_stream(&mut self, file: &Arc<str>, text: &str, default_namespace: Option<&str>) {
        for document in split_documents(text) {
            self.parse_document(file, &document, default_namespace);
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
        let file: Arc<str> = Arc::from(format!("{origin} Service {namespace}/{name} annotation"));
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
    fn syntax_error_costs_only_its_document_and_names_the_file_line() {
        let text = "kind: Mapping\nname: a\nprefix: /a/\nservice: a\n---\nkind: [\n---\nkind: Mapping\nname: b\nprefix: /b/\nservice: b\n";
        let (model, diags) = parse(text);
        assert_eq!(model.mappings.len(), 2);
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(diags[0].starts_with("error: test.yaml (document 1): unparseable YAML"), "{diags:?}");
        assert!(diags[0].contains("line 7"), "line numbers count from the top of the file: {diags:?}");
    }

    #[test]
    fn document_split_follows_yaml_markers() {
        let indexes =
            |text: &str| split_documents(text).iter().map(|d| (d.index, d.text.to_string())).collect::<Vec<_>>();
        assert_eq!(indexes("---\na: 1\n---\nb: 2\n"), [(0, "---\na: 1\n".into()), (1, "---\nb: 2\n".into())]);
        assert_eq!(indexes("# comment\n---\na: 1\n").len(), 1);
        assert_eq!(indexes("a: 1\n--- |\n  text\nb: ---x\n").len(), 2);
        // `---` not at the start of a line, or followed by other characters, is content.
        assert_eq!(indexes("a: |\n  ---\nb: ---\nc: ----\n").len(), 1);
    }

    #[test]
    fn large_files_parse_in_parallel_with_stable_document_numbers() {
        let doc = |i: usize| {
            format!("---\nkind: Mapping\nname: m{i}\nprefix: /m{i}/\nservice: s{i}\n# {}\n", "x".repeat(200))
        };
        let text: String = (0..2000).map(doc).collect::<String>() + "---\nkind: [\n";
        assert!(text.len() > PARALLEL_THRESHOLD);
        let (model, diags) = parse_documents("big.yaml", &text);
        assert_eq!(model.mappings.len(), 2000);
        assert!(model
            .mappings
            .iter()
            .enumerate()
            .all(|(i, m)| m.meta.origin.document == i && m.meta.name() == format!("m{i}")));
        assert_eq!(diags[0].origin.as_ref().unwrap().document, 2000);
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
