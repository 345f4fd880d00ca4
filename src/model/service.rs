//! Kubernetes `Service`s as a carrier of Ambassador resources: the `getambassador.io/config`
//! annotation holds a YAML stream of flat-form documents, in the Service's namespace.

use super::parse::{take_string, Parser, DEFAULT_NAMESPACE};
use crate::diagnostic::{Origin, ResourceId};
use serde_yaml::{Mapping as YamlMap, Value};
use std::sync::Arc;

const AMBASSADOR_ANNOTATION: &str = "getambassador.io/config";

/// Parses the annotation's documents (if any) into `parser`. Each gets a file name of its own,
/// `<origin> Service <ns>/<name> annotation`, so diagnostics point at the Service.
pub(super) fn parse_service(parser: &mut Parser, origin: &Origin, mut doc: YamlMap) {
    let mut metadata = match doc.remove("metadata") {
        Some(Value::Mapping(metadata)) => metadata,
        _ => return,
    };
    let Ok(namespace) = take_string(&mut metadata, "namespace") else { return };
    let namespace = namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let name = take_string(&mut metadata, "name").ok().flatten().unwrap_or_else(|| "?".to_string());
    let file: Arc<str> = Arc::from(format!("{origin} Service {namespace}/{name} annotation"));
    let annotation = match metadata.get("annotations").and_then(|annotations| annotations.get(AMBASSADOR_ANNOTATION)) {
        None => return tracing::debug!(%origin, "skipping Service without {AMBASSADOR_ANNOTATION}"),
        Some(Value::String(text)) => text.clone(),
        Some(_) => {
            let id = ResourceId::new("Service", namespace, name);
            parser.error(origin, Some(&id), format!("annotation `{AMBASSADOR_ANNOTATION}` must be a string"));
            // Whatever the annotation held before is broken, not gone.
            return parser.rejected_stream(&file);
        }
    };
    parser.parse_stream(&file, &annotation, Some(&namespace));
}
