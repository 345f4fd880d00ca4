//! TLSContext → upstream TLS settings plus the SDS secrets that carry its certificate and CA, and
//! the material and settings termination (`edge::termination`) shares with origination.
//!
//! A context that cannot be resolved is reported once and marked broken; every Mapping that names
//! it then fails closed (503) instead of falling back to plaintext as Emissary does (#4476).

use super::ir::{SecretContent, TlsSecret, TlsVersion, UpstreamTls};
use super::material::{check_ca_bundle, check_certificate, leaf_uri_sans, CertifiedPem};
use super::SecretNamespaces;
use crate::diagnostic::{Diagnostic, Kind, Provenance, ResourceId};
use crate::model::{Secret, SecretData, TlsContext, TlsContextSpec, TlsFileError, TlsFiles};
use std::collections::HashMap;

/// A context ready to be attached to clusters. `tls.sni` is only the explicit `sni`; the
/// per-service default is applied by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedContext {
    pub tls: UpstreamTls,
    pub secrets: Vec<TlsSecret>,
    /// The client certificate's URI SANs (its SPIFFE ID, for `verify_spiffe_id: true`).
    pub client_uri_sans: Vec<String>,
}

pub type SecretIndex<'a> = HashMap<(&'a str, &'a str), &'a Secret>;

/// Why a context cannot be used now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    /// [`Kind::Reference`]: its material is gone (a Secret that does not exist or may not be
    /// used, a file path that is refused), so it fails closed. Anything else ([`Kind::Material`],
    /// [`Kind::Invalid`]) may be a moment of a rotation, so its last good version stays in use.
    pub kind: Kind,
    pub message: String,
}

impl Unusable {
    pub fn gone(message: String) -> Unusable {
        Unusable { kind: Kind::Reference, message }
    }

    pub fn invalid(message: impl Into<String>) -> Unusable {
        Unusable { kind: Kind::Invalid, message: message.into() }
    }

    pub fn material(message: String) -> Unusable {
        Unusable { kind: Kind::Material, message }
    }

    /// Whether the context's last good version may stand in for it.
    pub fn is_transient(&self) -> bool {
        self.kind != Kind::Reference
    }
}

/// What a context may read: the Secrets, the files, and which namespaces' Secrets it may name.
pub struct Inputs<'a> {
    pub secrets: &'a SecretIndex<'a>,
    pub files: &'a TlsFiles,
    pub secret_namespaces: &'a SecretNamespaces,
}

/// SDS resource names: derived from the TLSContext, so one rotation touches one secret.
pub fn client_certificate_secret_name(ctx: &ResourceId) -> String {
    format!("tlscontext/{}/{}/client-cert", ctx.namespace, ctx.name)
}

pub fn validation_secret_name(ctx: &ResourceId) -> String {
    format!("tlscontext/{}/{}/ca", ctx.namespace, ctx.name)
}

/// Where a context's certificate comes from.
#[derive(Debug, Clone, Copy)]
pub enum CertificateSource<'a> {
    /// The context's own `secret` or `cert_chain_file`/`private_key_file` (none is fine).
    Spec,
    /// A Secret named outright, in a namespace (a Host's `tlsSecret`: never split on `.`).
    Secret { name: &'a str, namespace: &'a str },
}

/// A context's certificate and CA, checked to load in Envoy, and the resources they came from
/// (the context first, then every Secret read).
pub struct Material {
    pub certificate: Option<CertifiedPem>,
    pub trusted_ca: Option<Vec<u8>>,
    pub provenance: Vec<Provenance>,
}

/// TLS settings shared by origination and termination, checked.
pub struct Params {
    pub alpn_protocols: Vec<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
}

/// Resolves one origination context. Warnings go to `diagnostics`; the error, if any, is
/// returned and the caller reports it.
pub fn resolve_context(
    ctx: &TlsContext,
    inputs: &Inputs<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<ResolvedContext, Unusable> {
    let spec = &ctx.spec;
    let id = &ctx.meta.id;
    // A termination context's own fields are reported by its termination; here it may also
    // serve as an origination context, and those fields simply do not apply.
    if !spec.terminates() {
        let warn = |diagnostics: &mut Vec<Diagnostic>, message: &str| {
            diagnostics.push(Diagnostic::warning(Some(&ctx.meta.origin), Some(id), message));
        };
        if spec.cert_required.is_some() {
            warn(
                diagnostics,
                "`cert_required` applies to TLS termination and has no meaning for upstream origination; ignored",
            );
        }
        if spec.redirect_cleartext_from.is_some() {
            warn(diagnostics, "`redirect_cleartext_from` applies to TLS termination; ignored");
        }
        if spec.crl_secret.is_some() || spec.crl_file.is_some() {
            warn(diagnostics, "`crl_secret`/`crl_file` apply to client certificates (TLS termination); ignored");
        }
    }
    let material = resolve_material(ctx.meta.provenance(), spec, CertificateSource::Spec, inputs)?;
    let params = resolve_params(spec)?;
    let mut secrets_out = Vec::new();
    let mut tls = UpstreamTls {
        sni: spec.sni.clone().filter(|sni| !sni.is_empty()),
        alpn_protocols: params.alpn_protocols,
        min_version: params.min_version,
        max_version: params.max_version,
        cipher_suites: spec.cipher_suites.clone(),
        ecdh_curves: spec.ecdh_curves.clone(),
        ..Default::default()
    };
    let provenance = material.provenance;
    let client_uri_sans = material.certificate.as_ref().map(|c| leaf_uri_sans(&c.chain)).unwrap_or_default();
    if let Some(certificate) = material.certificate {
        let name = client_certificate_secret_name(id);
        tls.client_certificate_secret = Some(name.clone());
        secrets_out.push(TlsSecret {
            name,
            content: SecretContent::Certificate { chain: certificate.chain, private_key: certificate.private_key },
            provenance: provenance.clone(),
        });
    }
    if let Some(trusted_ca) = material.trusted_ca {
        let name = validation_secret_name(id);
        tls.validation_secret = Some(name.clone());
        secrets_out.push(TlsSecret {
            name,
            content: SecretContent::ValidationContext { trusted_ca, crl: None },
            provenance,
        });
    }
    Ok(ResolvedContext { tls, secrets: secrets_out, client_uri_sans })
}

/// The certificate and CA of a context whose namespace and identity `first` gives.
pub fn resolve_material(
    first: Provenance,
    spec: &TlsContextSpec,
    source: CertificateSource<'_>,
    inputs: &Inputs<'_>,
) -> Result<Material, Unusable> {
    let Inputs { secrets, files, secret_namespaces } = inputs;
    let id = first.resource.clone();
    if spec.secret.is_some() && (spec.cert_chain_file.is_some() || spec.private_key_file.is_some()) {
        return Err(Unusable::invalid("set either `secret` or `cert_chain_file`/`private_key_file`, not both"));
    }
    if spec.cacert_chain_file.is_some() && spec.ca_secret.is_some() {
        return Err(Unusable::invalid("set either `ca_secret` or `cacert_chain_file`, not both"));
    }
    let namespacing = spec.secret_namespacing.unwrap_or(true);

    let mut ca_from_secret = None;
    // The context, then every Secret it reads: what a rejected SDS secret is reported against.
    let mut provenance = vec![first];
    let named_secret = match (source, &spec.secret) {
        (CertificateSource::Secret { name, namespace }, _) => {
            Some(find_secret_in(name, namespace, &id, secrets, secret_namespaces)?)
        }
        (CertificateSource::Spec, Some(reference)) => {
            Some(find_secret(reference, namespacing, &id, secrets, secret_namespaces)?)
        }
        (CertificateSource::Spec, None) => None,
    };
    let certificate = match (named_secret, &spec.cert_chain_file, &spec.private_key_file) {
        (Some(secret), _, _) => {
            provenance.push(secret.meta.provenance());
            let data = &secret.spec;
            let (chain_key, chain) = data.cert_chain().ok_or_else(|| {
                Unusable::material(format!(
                    "{} has no certificate (expected key `tls.crt` or `cert-chain.pem`)",
                    secret.meta.id
                ))
            })?;
            let (_, key) = data.private_key().ok_or_else(|| {
                Unusable::material(format!(
                    "{} has `{chain_key}` but no private key (expected `tls.key` or `key.pem`)",
                    secret.meta.id
                ))
            })?;
            // Istio's root certificate is the mesh CA its peers present; `ca.crt` in a plain
            // TLS secret is the certificate's own issuer and is not trusted implicitly.
            ca_from_secret = data.entries.get("root-cert.pem").cloned();
            Some(
                check_certificate(chain, key)
                    .map_err(|err| Unusable::material(format!("{}: {err}", secret.meta.id)))?,
            )
        }
        (None, Some(chain_file), Some(key_file)) => {
            let chain = read(files, "cert_chain_file", chain_file)?;
            let key = read(files, "private_key_file", key_file)?;
            Some(
                check_certificate(chain, key)
                    .map_err(|err| Unusable::material(format!("`{chain_file}`/`{key_file}`: {err}")))?,
            )
        }
        (None, Some(_), None) => return Err(Unusable::invalid("`cert_chain_file` needs `private_key_file`")),
        (None, None, Some(_)) => return Err(Unusable::invalid("`private_key_file` needs `cert_chain_file`")),
        (None, None, None) => None,
    };

    let trusted_ca = if let Some(ca_file) = &spec.cacert_chain_file {
        let bundle = read(files, "cacert_chain_file", ca_file)?;
        Some(check_ca_bundle(bundle).map_err(|err| Unusable::material(format!("`{ca_file}`: {err}")))?)
    } else if let Some(reference) = &spec.ca_secret {
        let secret = find_secret(reference, namespacing, &id, secrets, secret_namespaces)?;
        provenance.push(secret.meta.provenance());
        let (_, bundle) = ca_of(&secret.spec).ok_or_else(|| {
            Unusable::material(format!(
                "{} has no CA certificate (expected `ca.crt`, `root-cert.pem` or `tls.crt`)",
                secret.meta.id
            ))
        })?;
        Some(check_ca_bundle(bundle).map_err(|err| Unusable::material(format!("{}: {err}", secret.meta.id)))?)
    } else if let Some(bundle) = ca_from_secret {
        Some(check_ca_bundle(bundle.expose()).map_err(|err| Unusable::material(format!("root-cert.pem: {err}")))?)
    } else {
        None
    };
    Ok(Material { certificate, trusted_ca, provenance })
}

/// ALPN protocols and TLS versions, checked (ciphers and curves are checked by name where every
/// resource is validated, `xds::validate`).
pub fn resolve_params(spec: &TlsContextSpec) -> Result<Params, Unusable> {
    let version = |field, value: &Option<String>| {
        value.as_deref().map(|v| tls_version(field, v)).transpose().map_err(Unusable::invalid)
    };
    let min_version = version("min_tls_version", &spec.min_tls_version)?;
    let max_version = version("max_tls_version", &spec.max_tls_version)?;
    if let (Some(min), Some(max)) = (min_version, max_version) {
        if min > max {
            return Err(Unusable::invalid("`min_tls_version` is newer than `max_tls_version`"));
        }
    }
    let alpn_protocols = split_alpn(spec.alpn_protocols.clone().map(|a| a.into_vec()).unwrap_or_default());
    Ok(Params { alpn_protocols, min_version, max_version })
}

/// `secret: name` lives in the context's namespace; `secret: name.ns` names another namespace
/// (split on the last `.`) unless `secret_namespacing: false`.
pub fn split_secret_reference<'a>(reference: &'a str, namespacing: bool, ctx_namespace: &'a str) -> (&'a str, &'a str) {
    match reference.rsplit_once('.') {
        Some((name, namespace)) if namespacing => (name, namespace),
        _ => (reference, ctx_namespace),
    }
}

pub fn find_secret<'a>(
    reference: &str,
    namespacing: bool,
    ctx: &ResourceId,
    secrets: &SecretIndex<'a>,
    allowed: &SecretNamespaces,
) -> Result<&'a Secret, Unusable> {
    let (name, namespace) = split_secret_reference(reference, namespacing, &ctx.namespace);
    find_secret_in(name, namespace, ctx, secrets, allowed).map_err(|unusable| {
        if name != reference && unusable.kind == Kind::Reference && !unusable.message.contains("--secret-namespaces") {
            Unusable::gone(format!(
                "{} (`{reference}` was read as name.namespace; set `secret_namespacing: false` to use it as one name)",
                unusable.message
            ))
        } else {
            unusable
        }
    })
}

/// The Secret `namespace/name`, if it exists and the policy lets `ctx` (by its namespace) use it.
pub fn find_secret_in<'a>(
    name: &str,
    namespace: &str,
    ctx: &ResourceId,
    secrets: &SecretIndex<'a>,
    allowed: &SecretNamespaces,
) -> Result<&'a Secret, Unusable> {
    if !allowed.allows(&ctx.namespace, namespace) {
        return Err(Unusable::gone(format!(
            "Secret {namespace}/{name} is in another namespace, which --secret-namespaces own does not allow (--allow-secret-namespace {namespace} would)"
        )));
    }
    secrets
        .get(&(namespace, name))
        .copied()
        .ok_or_else(|| Unusable::gone(format!("Secret {namespace}/{name} not found")))
}

fn ca_of(data: &SecretData) -> Option<(&'static str, &[u8])> {
    data.ca_bundle().or_else(|| data.cert_chain())
}

pub fn read<'a>(files: &'a TlsFiles, field: &str, path: &str) -> Result<&'a [u8], Unusable> {
    match files.get(path) {
        Some(Ok(bytes)) => Ok(bytes),
        Some(Err(TlsFileError::Refused(why))) => Err(Unusable::gone(format!("{field} `{path}` is refused: {why}"))),
        Some(Err(TlsFileError::Unreadable(why))) => {
            Err(Unusable::material(format!("cannot read {field} `{path}`: {why}")))
        }
        None => Err(Unusable::material(format!("{field} `{path}` was not loaded"))),
    }
}

fn tls_version(field: &str, value: &str) -> Result<TlsVersion, String> {
    match value {
        "v1.0" => Ok(TlsVersion::V1_0),
        "v1.1" => Ok(TlsVersion::V1_1),
        "v1.2" => Ok(TlsVersion::V1_2),
        "v1.3" => Ok(TlsVersion::V1_3),
        other => Err(format!("`{field}: {other}` is not one of v1.0, v1.1, v1.2, v1.3")),
    }
}

/// `"h2,http/1.1"` means two protocols (Emissary passes the whole string as one).
fn split_alpn(values: Vec<String>) -> Vec<String> {
    values.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|p| !p.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_references_split_on_the_last_dot() {
        assert_eq!(split_secret_reference("certs", true, "ctxns"), ("certs", "ctxns"));
        assert_eq!(split_secret_reference("certs.other", true, "ctxns"), ("certs", "other"));
        assert_eq!(split_secret_reference("istio.default.other", true, "ctxns"), ("istio.default", "other"));
        assert_eq!(split_secret_reference("istio.default", false, "ctxns"), ("istio.default", "ctxns"));
    }

    #[test]
    fn alpn_is_split_on_commas() {
        assert_eq!(split_alpn(vec!["h2, http/1.1".into()]), vec!["h2", "http/1.1"]);
        assert_eq!(split_alpn(vec!["h2".into(), "http/1.1".into()]), vec!["h2", "http/1.1"]);
    }

    #[test]
    fn tls_versions_use_emissary_spelling() {
        assert_eq!(tls_version("min_tls_version", "v1.3"), Ok(TlsVersion::V1_3));
        assert!(tls_version("min_tls_version", "1.3").unwrap_err().contains("v1.0, v1.1"));
    }
}
