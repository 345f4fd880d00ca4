//! A termination context (a TLSContext with `hosts`, a Host's `tlsSecret`/`tlsContext`/`tls`) →
//! a `DownstreamTls` plus the SDS secrets holding its server certificate and client CA.
//!
//! Rules on top of origination's (`compile::tls`):
//! - a certificate is required;
//! - `cert_required` needs a CA: Envoy would otherwise accept any client certificate at all
//!   (Emissary sends it as is);
//! - a CRL (`crl_secret`, key `crl.pem`, or `crl_file`) needs a CA too (Envoy refuses it
//!   without one) and is served inside the CA's SDS secret;
//! - `sni` has no meaning when terminating and is not sent.

use crate::compile::ir::{DownstreamTls, SecretContent, TlsSecret};
use crate::compile::material::check_crl;
use crate::compile::tls::{self, CertificateSource, Inputs, Unusable};
use crate::diagnostic::{Diagnostic, Provenance, ResourceId};
use crate::model::TlsContextSpec;

/// A termination ready to be put on filter chains.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTermination {
    pub tls: DownstreamTls,
    pub secrets: Vec<TlsSecret>,
}

/// What a termination is made of.
pub struct Source<'a> {
    /// The TLSContext, or the Host whose implicit context this is: what the SDS secrets are named
    /// after and problems are reported against.
    pub owner: Provenance,
    /// `tlscontext/<ns>/<name>` or `host/<ns>/<name>`.
    pub secret_prefix: String,
    pub spec: &'a TlsContextSpec,
    pub certificate: CertificateSource<'a>,
}

pub fn server_certificate_secret_name(prefix: &str) -> String {
    format!("{prefix}/server-cert")
}

pub fn client_ca_secret_name(prefix: &str) -> String {
    format!("{prefix}/client-ca")
}

/// Resolves one termination; warnings go to `diagnostics`, the error is returned.
pub fn resolve(
    source: &Source<'_>,
    inputs: &Inputs<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<ResolvedTermination, Unusable> {
    let spec = source.spec;
    let id: &ResourceId = &source.owner.resource;
    let material = tls::resolve_material(source.owner.clone(), spec, source.certificate, inputs)?;
    let params = tls::resolve_params(spec)?;
    let Some(certificate) = material.certificate else {
        return Err(Unusable::invalid(
            "terminating TLS needs a server certificate (`secret`, or `cert_chain_file` and `private_key_file`)",
        ));
    };
    let mut provenance = material.provenance;
    let crl = match (&spec.crl_secret, &spec.crl_file) {
        (Some(_), Some(_)) => return Err(Unusable::invalid("set either `crl_secret` or `crl_file`, not both")),
        (Some(reference), None) => {
            let namespacing = spec.secret_namespacing.unwrap_or(true);
            let secret = tls::find_secret(reference, namespacing, id, inputs.secrets, inputs.secret_namespaces)?;
            provenance.push(secret.meta.provenance());
            let (_, pem) =
                secret.spec.crl().ok_or_else(|| Unusable::material(format!("{} has no `crl.pem`", secret.meta.id)))?;
            Some(check_crl(pem).map_err(|err| Unusable::material(format!("{}: {err}", secret.meta.id)))?)
        }
        (None, Some(file)) => {
            let pem = tls::read(inputs.files, "crl_file", file)?;
            Some(check_crl(pem).map_err(|err| Unusable::material(format!("`{file}`: {err}")))?)
        }
        (None, None) => None,
    };
    let require_client_certificate = spec.cert_required.unwrap_or(false);
    if material.trusted_ca.is_none() {
        if require_client_certificate {
            return Err(Unusable::invalid(
                "`cert_required` needs `ca_secret` or `cacert_chain_file`: without a CA, any client certificate would be accepted",
            ));
        }
        if crl.is_some() {
            return Err(Unusable::invalid(
                "a CRL needs `ca_secret` or `cacert_chain_file` (the CA whose certificates it revokes)",
            ));
        }
    }
    if crl.as_ref().is_some_and(|crl| crl.crls == 0) {
        let message = "the CRL holds no revocation list, so it revokes nothing";
        diagnostics.push(Diagnostic::warning(Some(&source.owner.origin), Some(id), message));
    }

    let certificate_secret = server_certificate_secret_name(&source.secret_prefix);
    let mut secrets = vec![TlsSecret {
        name: certificate_secret.clone(),
        content: SecretContent::Certificate { chain: certificate.chain, private_key: certificate.private_key },
        provenance: provenance.clone(),
    }];
    let validation_secret = material.trusted_ca.map(|trusted_ca| {
        let name = client_ca_secret_name(&source.secret_prefix);
        let crl = crl.map(|crl| crl.pem);
        secrets.push(TlsSecret {
            name: name.clone(),
            content: SecretContent::ValidationContext { trusted_ca, crl },
            provenance,
        });
        name
    });
    let tls = DownstreamTls {
        certificate_secret,
        validation_secret,
        require_client_certificate,
        alpn_protocols: params.alpn_protocols,
        min_version: params.min_version,
        max_version: params.max_version,
        cipher_suites: spec.cipher_suites.clone(),
        ecdh_curves: spec.ecdh_curves.clone(),
    };
    Ok(ResolvedTermination { tls, secrets })
}
