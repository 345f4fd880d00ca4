//! `Host` resources (and, when there is none, the names of TLSContexts with `hosts`) → the hosts
//! Envoy serves: a host glob, its TLS termination, its cleartext policy, the Mappings it takes.
//!
//! Where a Host's TLS comes from, as in Emissary, with two fixes:
//! - `tlsSecret` + `tlsContext`: the context's settings and the Secret's certificate (they must
//!   agree when the context names a secret too); `tlsSecret` + `tls`: inline settings;
//!   `tlsSecret` alone: the TLSContext `<host>-context` if there is one, else defaults;
//! - `tlsContext` without `tlsSecret` uses the context's own certificate (Emissary ignores it);
//! - a Host with no TLS of its own terminates with the TLSContext whose `hosts` lists its name.
//!
//! TLS that cannot be served (a missing Secret or context, a bad certificate) fails closed: the
//! Host's TLS connections are refused, its cleartext policy still applies, other Hosts are untouched.

use super::hostglob;
use super::termination::Source;
use super::Terminations;
use crate::compile::select::ContextLookup;
use crate::compile::tls::{split_secret_reference, CertificateSource};
use crate::diagnostic::{Diagnostic, Kind, Provenance, ResourceId};
use crate::model::host::LabelSelector;
use crate::model::{Host, Labels, TlsContext, TlsContextSpec};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsecureAction {
    Redirect,
    Route,
    Reject,
}

/// How a host's TLS connections are served.
#[derive(Debug, Clone, PartialEq)]
pub enum HostTls {
    /// Cleartext only.
    None,
    /// Terminated: the termination's identity (what its SDS secrets are named after).
    Terminated(ResourceId),
    /// Asked for but not servable (reported): connections for the name are refused.
    Refused,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EdgeHost<'a> {
    /// The Host, or the TLSContext a host was made from.
    pub provenance: Provenance,
    /// As written, without a port; compared ignoring case.
    pub hostname: String,
    pub namespace: &'a str,
    pub labels: &'a Labels,
    pub insecure: InsecureAction,
    pub additional_port: Option<u16>,
    /// A TLSContext's `redirect_cleartext_from`: cleartext on this port is redirected.
    pub redirect_cleartext_from: Option<u16>,
    pub mapping_selector: Option<&'a LabelSelector>,
    pub tls: HostTls,
}

impl EdgeHost<'_> {
    pub fn id(&self) -> &ResourceId {
        &self.provenance.resource
    }

    /// What cleartext requests arriving on `port` get.
    pub fn insecure_action(&self, port: u16) -> InsecureAction {
        if self.redirect_cleartext_from == Some(port) {
            InsecureAction::Redirect
        } else {
            self.insecure
        }
    }
}

/// The hosts to serve, sorted by host name (then namespace and name), which is the order
/// duplicates are decided in. Hosts that cannot be read are reported and added to `rejected`.
pub fn edge_hosts<'a>(
    hosts: &[&'a Host],
    contexts: &[&'a TlsContext],
    tcp_hosts: &BTreeSet<&str>,
    lookup: &ContextLookup<'a>,
    terminations: &mut Terminations<'_, '_>,
    rejected: &mut BTreeSet<ResourceId>,
) -> Vec<EdgeHost<'a>> {
    let termination_contexts: Vec<&TlsContext> = contexts.iter().copied().filter(|c| c.spec.terminates()).collect();
    let mut out = Vec::new();
    for host in hosts {
        match read_host(host, &termination_contexts, lookup, terminations) {
            Some(edge) => out.push(edge),
            None => {
                rejected.insert(host.meta.id.clone());
            }
        }
    }
    if hosts.is_empty() {
        // No Host at all: a TLSContext's `hosts` are what it terminates (Emissary 1.x), except
        // the names TCPMappings terminate with it on their own listeners. With Hosts, they only
        // say which Host a context belongs to (Emissary 2+).
        for ctx in &termination_contexts {
            for name in ctx.spec.hosts.iter().flatten().filter(|name| !tcp_hosts.contains(name.as_str())) {
                let Some(hostname) = checked_hostname(name, &ctx.meta.origin, &ctx.meta.id, terminations.diagnostics)
                else {
                    continue;
                };
                let owner = ctx.meta.provenance();
                let source = context_source(ctx, CertificateSource::Spec);
                let tls = terminations.terminate(source, &owner);
                out.push(EdgeHost {
                    provenance: owner,
                    hostname,
                    namespace: ctx.meta.namespace(),
                    labels: &ctx.meta.labels,
                    insecure: InsecureAction::Route,
                    additional_port: None,
                    redirect_cleartext_from: ctx.spec.redirect_cleartext_from,
                    mapping_selector: None,
                    tls,
                });
            }
        }
    } else {
        for ctx in &termination_contexts {
            for name in ctx.spec.hosts.iter().flatten().filter(|name| !tcp_hosts.contains(name.as_str())) {
                let served = out.iter().any(|h| h.hostname.eq_ignore_ascii_case(name) || *h.id().name == **name);
                if !served {
                    let message = format!("`hosts` lists {name}, which no Host serves; TLS is not terminated for it (add a Host with `hostname: {name}`)");
                    terminations.diagnostics.push(Diagnostic::warning(
                        Some(&ctx.meta.origin),
                        Some(&ctx.meta.id),
                        message,
                    ));
                }
            }
        }
    }
    out.sort_by(|a, b| {
        (a.hostname.to_ascii_lowercase(), a.namespace, &a.id().name).cmp(&(
            b.hostname.to_ascii_lowercase(),
            b.namespace,
            &b.id().name,
        ))
    });
    out
}

/// A host name as Envoy can serve it: a port is dropped with a warning (the listeners strip
/// ports before routing); an invalid glob is an error.
fn checked_hostname(
    written: &str,
    origin: &crate::diagnostic::Origin,
    id: &ResourceId,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<String> {
    let hostname = match written.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            let message = format!("hostname `{written}`: hosts match without their port; serving `{name}`");
            diagnostics.push(Diagnostic::warning(Some(origin), Some(id), message));
            name
        }
        _ => written,
    };
    if hostglob::is_valid(hostname) {
        Some(hostname.to_string())
    } else {
        let message = format!("hostname `{written}` is not a DNS name or a glob with one leading or trailing `*`");
        diagnostics.push(Diagnostic::error(Some(origin), Some(id), message));
        None
    }
}

fn context_source<'a>(ctx: &'a TlsContext, certificate: CertificateSource<'a>) -> Source<'a> {
    Source {
        owner: ctx.meta.provenance(),
        secret_prefix: format!("tlscontext/{}/{}", ctx.meta.namespace(), ctx.meta.name()),
        spec: &ctx.spec,
        certificate,
    }
}

fn read_host<'a>(
    host: &'a Host,
    termination_contexts: &[&'a TlsContext],
    lookup: &ContextLookup<'a>,
    terminations: &mut Terminations<'_, '_>,
) -> Option<EdgeHost<'a>> {
    let (spec, meta) = (&host.spec, &host.meta);
    let diagnostics = &mut *terminations.diagnostics;
    let error = |diagnostics: &mut Vec<Diagnostic>, message: String| {
        diagnostics.push(Diagnostic::error(Some(&meta.origin), Some(&meta.id), message));
    };
    let hostname = checked_hostname(spec.hostname.as_deref().unwrap_or("*"), &meta.origin, &meta.id, diagnostics)?;
    let insecure_policy = spec.request_policy.as_ref().and_then(|p| p.insecure.as_ref());
    let insecure = match insecure_policy.and_then(|p| p.action.as_deref()) {
        None | Some("Redirect") => InsecureAction::Redirect,
        Some("Route") => InsecureAction::Route,
        Some("Reject") => InsecureAction::Reject,
        Some(other) => {
            error(
                diagnostics,
                format!("`requestPolicy.insecure.action: {other}` is not one of Redirect, Route, Reject"),
            );
            return None;
        }
    };
    let additional_port = match insecure_policy.and_then(|p| p.additional_port) {
        None => None,
        Some(port) if port < 0 => None,
        Some(port @ 1..=65535) => Some(port as u16),
        Some(port) => {
            error(diagnostics, format!("`requestPolicy.insecure.additionalPort: {port}` is not a port"));
            return None;
        }
    };
    if let Some(authority) = spec.acme_provider.as_ref().and_then(|acme| acme.authority.as_deref()) {
        if !authority.eq_ignore_ascii_case("none") {
            let message = format!("`acmeProvider.authority: {authority}`: ACME is not supported (nor by Emissary, only Edge Stack); the certificate comes from `tlsSecret`");
            diagnostics
                .push(Diagnostic::warning(Some(&meta.origin), Some(&meta.id), message).with_kind(Kind::IgnoredField));
        }
    }
    let secret = match &spec.tls_secret {
        None => None,
        Some(reference) => match reference.name.as_deref() {
            Some(name) => Some((name, reference.namespace.as_deref().unwrap_or(meta.namespace()))),
            None => {
                error(diagnostics, "`tlsSecret` needs a `name`".into());
                return None;
            }
        },
    };
    let context_name = spec.tls_context.as_ref().and_then(|c| c.name.as_deref());
    if context_name.is_some() && spec.tls.is_some() {
        error(diagnostics, "set either `tlsContext` or `tls`, not both".into());
        return None;
    }
    let tls_owner = TlsOwner { host, hostname: &hostname, lookup };
    let (tls, redirect_cleartext_from) = match (secret, context_name, &spec.tls) {
        (secret, Some(name), _) => tls_owner.named_context(name, secret, terminations),
        (Some(secret), None, Some(inline)) => tls_owner.inline(inline, secret, terminations),
        (None, None, Some(_)) => tls_owner
            .refuse(terminations, "`tls` needs `tlsSecret` (the certificate); TLS for this Host is refused".into()),
        (Some(secret), None, None) => match lookup.find(&format!("{}-context", meta.name()), meta.namespace()) {
            Ok(implicit) => tls_owner.named_context(implicit.meta.name(), Some(secret), terminations),
            Err(_) => tls_owner.inline(&TlsContextSpec::default(), secret, terminations),
        },
        (None, None, None) => {
            let listing: Vec<&&TlsContext> = termination_contexts
                .iter()
                .filter(|c| c.spec.hosts.iter().flatten().any(|h| h.eq_ignore_ascii_case(&hostname)))
                .collect();
            match listing.as_slice() {
                [] => (HostTls::None, None),
                [ctx] => tls_owner.named_context(ctx.meta.name(), None, terminations),
                many => {
                    let names: Vec<String> = many.iter().map(|c| c.meta.id.to_string()).collect();
                    let message = format!(
                        "several TLSContexts list {hostname} in `hosts` ({}); TLS for this Host is refused",
                        names.join(", ")
                    );
                    tls_owner.refuse(terminations, message)
                }
            }
        }
    };
    Some(EdgeHost {
        provenance: meta.provenance(),
        hostname,
        namespace: meta.namespace(),
        labels: &meta.labels,
        insecure,
        additional_port,
        redirect_cleartext_from,
        mapping_selector: spec.mapping_selector.as_ref().or(spec.selector.as_ref()),
        tls,
    })
}

/// Works out one Host's termination.
struct TlsOwner<'h, 'a> {
    host: &'a Host,
    hostname: &'h str,
    lookup: &'h ContextLookup<'a>,
}

impl<'a> TlsOwner<'_, 'a> {
    /// A `tlsSecret` in a namespace the policy does not let this Host use (checked against the
    /// Host's namespace: the TLSContext it names may live elsewhere).
    fn refused_secret(
        &self,
        certificate: CertificateSource<'_>,
        terminations: &mut Terminations<'_, '_>,
    ) -> Option<(HostTls, Option<u16>)> {
        let CertificateSource::Secret { name, namespace } = certificate else { return None };
        if terminations.secret_namespaces().allows(self.host.meta.namespace(), namespace) {
            return None;
        }
        let message = format!("Secret {namespace}/{name} is in another namespace, which --secret-namespaces own does not allow (--allow-secret-namespace {namespace} would); TLS for this Host is refused");
        Some(self.refuse(terminations, message))
    }

    fn refuse(&self, terminations: &mut Terminations<'_, '_>, message: String) -> (HostTls, Option<u16>) {
        let meta = &self.host.meta;
        terminations
            .diagnostics
            .push(Diagnostic::error(Some(&meta.origin), Some(&meta.id), message).with_kind(Kind::Reference));
        (HostTls::Refused, None)
    }

    /// TLS from a TLSContext (`tlsContext`, `<host>-context`, or one listing the host name),
    /// with the Host's Secret when it names one.
    fn named_context(
        &self,
        name: &str,
        secret: Option<(&'a str, &'a str)>,
        terminations: &mut Terminations<'_, '_>,
    ) -> (HostTls, Option<u16>) {
        let meta = &self.host.meta;
        let ctx = match self.lookup.find(name, meta.namespace()) {
            Ok(ctx) => ctx,
            Err(reason) => return self.refuse(terminations, format!("{reason}; TLS for this Host is refused")),
        };
        let hosts = ctx.spec.hosts.iter().flatten();
        if ctx.spec.terminates() && !hosts.clone().any(|h| h.eq_ignore_ascii_case(self.hostname) || *h == meta.name()) {
            let listed: Vec<&String> = hosts.collect();
            let message =
                format!("{} lists hosts {listed:?}, not {}; its settings are used anyway", ctx.meta.id, self.hostname);
            terminations.diagnostics.push(Diagnostic::warning(Some(&meta.origin), Some(&meta.id), message));
        }
        let certificate = match (secret, &ctx.spec.secret) {
            (None, _) => CertificateSource::Spec,
            (Some((name, namespace)), Some(own)) => {
                let namespacing = ctx.spec.secret_namespacing.unwrap_or(true);
                if split_secret_reference(own, namespacing, ctx.meta.namespace()) != (name, namespace) {
                    let message = format!(
                        "`tlsSecret` {namespace}/{name} is not the Secret {} names (`secret: {own}`); TLS for this Host is refused",
                        ctx.meta.id
                    );
                    return self.refuse(terminations, message);
                }
                CertificateSource::Spec
            }
            (Some((name, namespace)), None) => CertificateSource::Secret { name, namespace },
        };
        if let Some(refusal) = self.refused_secret(certificate, terminations) {
            return refusal;
        }
        let tls = terminations.terminate(context_source(ctx, certificate), &meta.provenance());
        (tls, ctx.spec.redirect_cleartext_from)
    }

    /// TLS owned by the Host itself: inline settings (or defaults) and its Secret.
    fn inline(
        &self,
        spec: &'a TlsContextSpec,
        (name, namespace): (&'a str, &'a str),
        terminations: &mut Terminations<'_, '_>,
    ) -> (HostTls, Option<u16>) {
        let meta = &self.host.meta;
        let misplaced = [
            ("hosts", spec.hosts.is_some()),
            ("secret", spec.secret.is_some()),
            ("certChainFile", spec.cert_chain_file.is_some()),
            ("privateKeyFile", spec.private_key_file.is_some()),
        ];
        if let Some((field, _)) = misplaced.iter().find(|(_, set)| *set) {
            let message = format!(
                "`tls.{field}` cannot be set inline (the certificate is `tlsSecret`); TLS for this Host is refused"
            );
            return self.refuse(terminations, message);
        }
        let certificate = CertificateSource::Secret { name, namespace };
        if let Some(refusal) = self.refused_secret(certificate, terminations) {
            return refusal;
        }
        let source = Source {
            owner: meta.provenance(),
            secret_prefix: format!("host/{}/{}", meta.namespace(), meta.name()),
            spec,
            certificate,
        };
        (terminations.terminate(source, &meta.provenance()), spec.redirect_cleartext_from)
    }
}
