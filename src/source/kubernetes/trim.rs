//! What is kept of each object as it arrives from the API: only what the translator reads.
//!
//! Reflector stores hold every watched object for the life of the process, and every Secret in a
//! namespace is watched; Helm release Secrets alone are hundreds of KiB each, and
//! `kubectl.kubernetes.io/last-applied-configuration` repeats a whole object (a Secret's data
//! included) in an annotation. So managed fields and annotations go (a Service keeps
//! `getambassador.io/config`), a Service keeps only the names and numbers of its ports (which
//! EndpointSlice port a Mapping's port is), and a Secret keeps only the
//! keys a TLSContext can use, and none at all when its type is not one a TLSContext reads.

use kube::api::DynamicObject;

/// Server-side filter for Secrets: the types that are numerous or large and never TLS material.
pub const SECRET_FIELD_SELECTOR: &str =
    "type!=helm.sh/release.v1,type!=kubernetes.io/service-account-token,type!=kubernetes.io/dockerconfigjson";

/// Secret types a TLSContext can read (`Opaque` is also what a Secret without a type is).
const SECRET_TYPES: &[&str] = &["kubernetes.io/tls", "Opaque", "istio.io/key-and-cert"];
/// The keys of those Secrets the translator reads (`model::secret`).
const SECRET_KEYS: &[&str] = &["tls.crt", "tls.key", "ca.crt", "cert-chain.pem", "key.pem", "root-cert.pem", "crl.pem"];
const AMBASSADOR_ANNOTATION: &str = "getambassador.io/config";

/// Trims an object of `kind` (as watched) to what the translator reads.
pub fn trim(kind: &str, object: &mut DynamicObject) {
    object.metadata.managed_fields = None;
    let annotations = object.metadata.annotations.take().unwrap_or_default();
    match kind {
        "Secret" => {
            let fields = object.data.as_object_mut();
            if let Some(fields) = fields {
                let wanted = fields.get("type").and_then(|t| t.as_str()).is_none_or(|t| SECRET_TYPES.contains(&t));
                fields.retain(|field, _| field == "type" || (wanted && field == "data"));
                if let Some(serde_json::Value::Object(data)) = fields.get_mut("data") {
                    data.retain(|key, _| SECRET_KEYS.contains(&key.as_str()));
                }
            }
        }
        "Service" => {
            let ports: Vec<serde_json::Value> = object.data["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|port| serde_json::json!({"name": port["name"], "port": port["port"]}))
                .collect();
            object.data = if ports.is_empty() {
                serde_json::Value::Object(Default::default())
            } else {
                serde_json::json!({"spec": {"ports": ports}})
            };
            let kept: std::collections::BTreeMap<String, String> =
                annotations.into_iter().filter(|(key, _)| key == AMBASSADOR_ANNOTATION).collect();
            object.metadata.annotations = (!kept.is_empty()).then_some(kept);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: serde_json::Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn secrets_keep_only_tls_keys_and_only_tls_types() {
        let mut secret = object(json!({
            "metadata": {"name": "s", "namespace": "ns", "managedFields": [{"manager": "kubectl"}],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\": \"...\"}"}},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5", "extra.bin": "eHh4"}
        }));
        trim("Secret", &mut secret);
        assert!(secret.metadata.managed_fields.is_none() && secret.metadata.annotations.is_none());
        assert_eq!(
            secret.data,
            json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}})
        );

        let mut release = object(
            json!({"metadata": {"name": "sh.helm.release.v1.x.v1"}, "type": "helm.sh/release.v1", "data": {"release": "H4sI..."}}),
        );
        trim("Secret", &mut release);
        assert_eq!(release.data, json!({"type": "helm.sh/release.v1"}));
    }

    #[test]
    fn services_keep_only_the_ambassador_annotation() {
        let mut service = object(json!({
            "metadata": {"name": "svc", "annotations": {"getambassador.io/config": "---\nkind: Mapping\n", "other": "x"}},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}], "selector": {"app": "x"}}, "status": {}
        }));
        trim("Service", &mut service);
        assert_eq!(service.data, json!({"spec": {"ports": [{"name": "http", "port": 80}]}}));
        assert_eq!(service.metadata.annotations.unwrap().keys().collect::<Vec<_>>(), ["getambassador.io/config"]);
    }
}
