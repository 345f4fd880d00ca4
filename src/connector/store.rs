//! Writes through the Kubernetes API: the Secret by server-side apply (a field manager of its
//! own, forced, so whatever else last wrote the Secret's data yields), and the TLSContext the
//! seed names, created once when it is missing and never changed afterwards (it is the user's
//! to edit).

use crate::model::Sensitive;
use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use std::collections::BTreeMap;

/// The field manager of every write, as `managedFields` shows it.
pub const FIELD_MANAGER: &str = "ambassador-xds-consul-connect";

/// Where the certificate goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub secret: String,
    /// The TLSContext to create when missing (`None`: do not).
    pub tls_context: Option<String>,
    /// The TLSContext's `ambassador_id` (when the connector serves another instance).
    pub ambassador_id: Option<String>,
}

/// The Secret as applied: `kubernetes.io/tls`, its three keys base64.
pub fn secret_manifest(target: &Target, entries: &BTreeMap<String, Sensitive>) -> serde_json::Value {
    let data: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(key, value)| (key.clone(), json!(base64::engine::general_purpose::STANDARD.encode(value.expose()))))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": target.secret,
            "namespace": target.namespace,
            "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER},
        },
        "type": "kubernetes.io/tls",
        "data": data,
    })
}

/// The seed's TLSContext: `hosts: []`, `secret: <the Secret>`.
pub fn tls_context_manifest(target: &Target, name: &str, resource: &ApiResource) -> serde_json::Value {
    let mut spec = json!({"hosts": [], "secret": target.secret});
    if let Some(id) = &target.ambassador_id {
        spec["ambassador_id"] = json!([id]);
    }
    json!({
        "apiVersion": resource.api_version,
        "kind": "TLSContext",
        "metadata": {"name": name, "namespace": target.namespace},
        "spec": spec,
    })
}

/// Applies the Secret. The error says what failed, never what was written.
pub async fn apply_secret(
    client: &Client,
    target: &Target,
    entries: &BTreeMap<String, Sensitive>,
) -> Result<(), String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &target.namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&target.secret, &params, &Patch::Apply(secret_manifest(target, entries)))
        .await
        .map(|_| ())
        .map_err(|err| format!("applying Secret {}/{}: {}", target.namespace, target.secret, describe(&err)))
}

/// Creates the TLSContext unless it exists. `Ok(false)`: the getambassador.io CRDs are not
/// installed (nothing to create it as).
pub async fn ensure_tls_context(client: &Client, target: &Target, name: &str) -> Result<bool, String> {
    let Some(resource) = tls_context_resource(client).await? else { return Ok(false) };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &target.namespace, &resource);
    match api.get_opt(name).await {
        Ok(Some(_)) => return Ok(true),
        Ok(None) => {}
        Err(err) => return Err(format!("reading TLSContext {}/{name}: {}", target.namespace, describe(&err))),
    }
    let object: DynamicObject = serde_json::from_value(tls_context_manifest(target, name, &resource))
        .map_err(|err| format!("building the TLSContext: {err}"))?;
    match api.create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &object).await {
        Ok(_) => {
            tracing::info!(tls_context = %format!("{}/{name}", target.namespace), secret = %target.secret, "created the TLSContext");
            Ok(true)
        }
        // Created meanwhile by someone else: what they wrote stays.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(true),
        Err(err) => Err(format!("creating TLSContext {}/{name}: {}", target.namespace, describe(&err))),
    }
}

/// TLSContext in the version the cluster serves (v3alpha1, else v2).
async fn tls_context_resource(client: &Client) -> Result<Option<ApiResource>, String> {
    let group = match kube::discovery::group(client, "getambassador.io").await {
        Ok(group) => group,
        Err(kube::Error::Discovery(_)) => return Ok(None),
        Err(err) => return Err(format!("discovering getambassador.io: {}", describe(&err))),
    };
    Ok(["v3alpha1", "v2"].iter().find_map(|version| {
        group.versioned_resources(version).into_iter().find(|(ar, _)| ar.kind == "TLSContext").map(|(ar, _)| ar)
    }))
}

/// An API error as one line (the status message, or the transport error).
pub fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("HTTP {} {}: {}", status.code, status.reason, status.message),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_the_seeds() {
        let target = Target {
            namespace: "ambassador".into(),
            secret: "ambassador-consul-connect".into(),
            tls_context: Some("ambassador-consul".into()),
            ambassador_id: None,
        };
        let entries = BTreeMap::from([("tls.crt".to_string(), Sensitive::new(b"CERT".to_vec()))]);
        let secret = secret_manifest(&target, &entries);
        assert_eq!(secret["type"], "kubernetes.io/tls");
        assert_eq!(secret["data"]["tls.crt"], "Q0VSVA==");
        let resource = ApiResource {
            group: "getambassador.io".into(),
            version: "v3alpha1".into(),
            api_version: "getambassador.io/v3alpha1".into(),
            kind: "TLSContext".into(),
            plural: "tlscontexts".into(),
        };
        let context = tls_context_manifest(&target, "ambassador-consul", &resource);
        assert_eq!(context["spec"], json!({"hosts": [], "secret": "ambassador-consul-connect"}));
        let blue = Target { ambassador_id: Some("blue".into()), ..target };
        assert_eq!(tls_context_manifest(&blue, "x", &resource)["spec"]["ambassador_id"], json!(["blue"]));
    }
}
