//! Ambassador resources → [`ir::Ir`] plus diagnostics. Pure: cert files named by TLSContexts are
//! read by the source layer and handed in as [`TlsFiles`].
//!
//! Rules (DESIGN.md §2): Emissary's semantics for services, cluster names, matching, order and
//! weights; our fixes for TLS: certificates over SDS, default SNI, cert-less origination contexts,
//! one cluster per (service, context), and fail-closed routes when TLS cannot be provided.

mod balancing;
mod cluster;
mod cluster_options;
mod cluster_set;
mod edge;
mod error_response;
pub mod format;
mod group;
mod group_fields;
mod group_memo;
mod host;
mod identity;
pub mod ir;
mod last_good;
mod mapping;
mod mapping_memo;
pub mod matching;
mod material;
mod module;
pub mod names;
pub mod order;
mod policy;
mod processing_order;
mod redirect;
mod resolver;
mod select;
pub mod service;
mod tcp;
pub mod tls;
mod transport;
mod upstream;

pub use edge::{listener_name, ALL_HOSTS_VIRTUAL_HOST};
pub use last_good::{compile_with, LastGood};
pub use material::{check_ca_bundle, check_certificate, leaf_uri_sans, CertifiedPem, MaterialError};

use crate::diagnostic::{self, Diagnostic, Kind, ResourceId};
use crate::model::{Mapping, Model, TlsFiles};
use edge::termination::ResolvedTermination;
use edge::Origins;
use ir::Ir;
use mapping::MappingCompiler;
use mapping_memo::MappingMemo;
use select::{select, unique, unique_in_order, ContextLookup};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tls::{ResolvedContext, SecretIndex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Port of the HTTP listener used when no `Listener` resource is given.
    pub listener_port: u16,
    /// Bare service hosts from Mappings in other namespaces get `.<namespace>` appended.
    pub ambassador_namespace: String,
    /// Only resources whose `ambassador_id` names this instance are used.
    pub ambassador_id: String,
    /// Envoy's `re2.max_program_size.error_level` (see `xds::validate`).
    pub max_regex_program_size: u32,
    /// Which namespaces' Secrets a TLSContext may name.
    pub secret_namespaces: SecretNamespaces,
    /// What listeners do with request headers whose names contain `_` (unless the Module says).
    pub headers_with_underscores: ir::UnderscoreHeaders,
    /// `host:port` at which Envoy reaches the admin endpoint, which answers Emissary's probe
    /// routes (`/ambassador/v0/check_alive`, `check_ready`).
    pub diagnostics_service: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listener_port: 8080,
            ambassador_namespace: "default".into(),
            ambassador_id: "default".into(),
            // Envoy's default error level; `xds::validate::DEFAULT_REGEX_PROGRAM_SIZE_LIMIT`.
            max_regex_program_size: 100,
            secret_namespaces: SecretNamespaces::Any,
            headers_with_underscores: ir::UnderscoreHeaders::Allow,
            diagnostics_service: "127.0.0.1:8877".into(),
        }
    }
}

/// Which namespaces' Secrets a TLSContext may name (`secret: name.namespace`, `ca_secret`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SecretNamespaces {
    /// Any namespace, as in Emissary.
    #[default]
    Any,
    /// Its own namespace, and these (for multi-tenant clusters, where anyone who may write a
    /// TLSContext must not be able to present another tenant's client certificate).
    Own { also: BTreeSet<String> },
}

impl SecretNamespaces {
    pub fn allows(&self, context_namespace: &str, secret_namespace: &str) -> bool {
        match self {
            SecretNamespaces::Any => true,
            SecretNamespaces::Own { also } => secret_namespace == context_namespace || also.contains(secret_namespace),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    pub ir: Ir,
    /// Sorted by file, document and resource.
    pub diagnostics: Vec<Diagnostic>,
}

/// Name of the RouteConfiguration every HTTP listener takes over RDS when no Host is given.
pub const ROUTE_CONFIG_NAME: &str = "ambassador-routes";

/// Compiles everything as it is now (what `translate` does): no earlier version to fall back to.
pub fn compile(model: &Model, files: &TlsFiles, options: &Options) -> Compiled {
    // Shared, as a reload's model is (its resources are, so this copies no resource).
    let model = Arc::new(model.clone());
    compile_pass(&model, files, options, &Resolutions::default(), MappingMemo::default()).compiled
}

/// TLS resolved by a pass, and what the next one falls back to while material is unusable.
#[derive(Debug, Clone, Default)]
struct Resolutions {
    /// Origination contexts, by TLSContext.
    contexts: HashMap<ResourceId, ResolvedContext>,
    /// Terminations, by owner (TLSContext or Host).
    terminations: HashMap<ResourceId, ResolvedTermination>,
}

/// One compile, and what the last-good bookkeeping needs to know about it.
struct Pass {
    compiled: Compiled,
    /// Mappings, Listeners and Hosts of this instance that produced nothing.
    rejected: BTreeSet<ResourceId>,
    /// TLS in use now, resolved (or its last good resolution).
    resolved: Resolutions,
    /// What each Mapping compiled to, for the next compile.
    memo: MappingMemo,
}

/// The steps, in order: select this instance's resources, resolve TLSContexts for origination
/// (falling back to `last` while their material is unusable), compile the Module, turn Mappings
/// (Emissary's probe Mappings first) into route candidates (creating their clusters), read the
/// Listeners and Hosts and resolve their TLS, build the TCPMappings' listeners, name clusters,
/// group and order routes, collect the secrets in use, build the edge (listeners, Hosts,
/// termination, route tables).
fn compile_pass(
    model: &Arc<Model>,
    files: &TlsFiles,
    options: &Options,
    last: &Resolutions,
    mut memo: MappingMemo,
) -> Pass {
    let last_contexts = &last.contexts;
    let mut diagnostics = Vec::new();
    let contexts = unique(select(&model.tls_contexts, options), &mut diagnostics);
    let listeners = unique(select(&model.listeners, options), &mut diagnostics);
    let hosts = unique(select(&model.hosts, options), &mut diagnostics);
    let secrets = unique(model.secrets.iter().collect(), &mut diagnostics);
    let resolver_resources = unique(select(&model.resolvers, options), &mut diagnostics);
    let resolvers = resolver::Resolvers::new(&resolver_resources, &mut diagnostics);

    let secret_index: SecretIndex<'_> = secrets.iter().map(|s| ((s.meta.namespace(), s.meta.name()), *s)).collect();
    let inputs = tls::Inputs { secrets: &secret_index, files, secret_namespaces: &options.secret_namespaces };
    let mut resolved: HashMap<&ResourceId, Result<ResolvedContext, String>> = HashMap::new();
    for ctx in &contexts {
        let (origin, id) = (&ctx.meta.origin, &ctx.meta.id);
        let result = match tls::resolve_context(ctx, &inputs, &mut diagnostics) {
            Ok(context) => Ok(context),
            // A termination context's problems are reported by its termination (below); here it
            // matters only to the Mappings that use it for origination, which say so.
            Err(unusable) if ctx.spec.terminates() => Err(unusable.message),
            Err(unusable) => {
                diagnostics.push(Diagnostic::error(Some(origin), Some(id), &unusable.message).with_kind(unusable.kind));
                match last_contexts.get(id).filter(|_| unusable.is_transient()) {
                    Some(previous) => {
                        let message = "serving this context's last good certificate, key and CA until its material is usable again";
                        diagnostics.push(Diagnostic::warning(Some(origin), Some(id), message).with_kind(Kind::Stale));
                        Ok(previous.clone())
                    }
                    None => Err(unusable.message),
                }
            }
        };
        resolved.insert(id, result);
    }

    let modules = unique(select(&model.modules, options), &mut diagnostics);
    let tcp_mappings = unique(select(&model.tcp_mappings, options), &mut diagnostics);
    let skipped_kinds: BTreeSet<String> = model
        .skipped
        .iter()
        .filter(|meta| meta.belongs_to(&options.ambassador_id))
        .map(|meta| meta.id.kind.to_string())
        .collect();
    let mut rejected = BTreeSet::new();
    let settings = module::settings(&modules, &skipped_kinds, options, &mut diagnostics, &mut rejected);

    let lookup = ContextLookup::new(&contexts);
    let mut builder = MappingCompiler::new(options, &settings, &skipped_kinds, lookup.clone(), &resolvers, &resolved);
    let memo_inputs = mapping_memo::Inputs {
        options,
        settings: &settings,
        skipped_kinds: &skipped_kinds,
        contexts: &contexts,
        resolvers: &resolver_resources,
        resolved: &resolved,
    };
    let (previous_groups, previous_clusters, previous_order) = memo.split();
    let mut memo = MappingMemo::continuing(memo, &memo_inputs);
    // Emissary processes Mappings in the order of their `name.namespace` keys; route order ties
    // depend on it, so we do the same. Its probe Mappings come first.
    let (mappings, processing_order) = previous_order.sort(model, options);
    let ordered = unique_in_order(mappings, &mut diagnostics);
    let all_mappings: Vec<&Mapping> = settings.probes.iter().chain(ordered.iter().copied()).collect();
    let mut compiled_mappings = Vec::with_capacity(all_mappings.len());
    let mut clusters = cluster_set::ClusterSet::default();
    let mut used_contexts: BTreeSet<&ResourceId> = BTreeSet::new();
    for (at, mapping) in all_mappings.iter().enumerate() {
        let probe = at < settings.probes.len();
        let compiled = memo.compiled(mapping, probe, || builder.compile(mapping));
        diagnostics.extend(compiled.diagnostics.iter().cloned());
        if let Some(claim) = &compiled.cluster {
            clusters.claim(claim);
        }
        if let Some((id, _)) = compiled.used_context.as_ref().and_then(|id| resolved.get_key_value(id)) {
            used_contexts.insert(id);
        }
        if compiled.candidate.is_none() {
            rejected.insert(mapping.meta.id.clone());
        }
        compiled_mappings.push(compiled);
    }
    let candidates: Vec<_> = compiled_mappings.iter().filter_map(|c| c.candidate.as_ref()).collect();

    let tcp_hosts: BTreeSet<&str> = tcp_mappings.iter().filter_map(|m| m.spec.host.as_deref()).collect();
    let edge_inputs = edge::Inputs {
        listeners: &listeners,
        hosts: &hosts,
        contexts: &contexts,
        tcp_hosts: &tcp_hosts,
        lookup: &lookup,
        tls: &inputs,
        last_terminations: &last.terminations,
        options,
    };
    let prepared = edge::prepare(&edge_inputs, &mut diagnostics, &mut rejected);
    let http_ports = prepared.ports();
    let tcp_inputs = tcp::TcpInputs {
        options,
        settings: &settings,
        contexts: &lookup,
        all_contexts: &contexts,
        resolved: &resolved,
        http_ports: &http_ports,
    };
    let mut tcp_listeners = tcp::tcp_listeners(
        &tcp_mappings,
        &tcp_inputs,
        &mut clusters,
        &mut used_contexts,
        &mut diagnostics,
        &mut rejected,
    );

    let (clusters, envoy_names, made_clusters) = clusters.finish(&previous_clusters, &mut diagnostics);
    for chain in tcp_listeners.iter_mut().flat_map(|l| l.chains.iter_mut()) {
        for (cluster, _) in &mut chain.clusters {
            *cluster = envoy_names[cluster.as_str()].clone();
        }
    }

    let origins = Origins::new(&all_mappings, &compiled_mappings);
    let groups = group::group(&candidates, &mut diagnostics, &mut rejected);
    // The probe Mappings come first, so the groups they form are formed first.
    let probe_candidates =
        &candidates[..compiled_mappings[..settings.probes.len()].iter().filter(|c| c.candidate.is_some()).count()];
    let probe_groups =
        groups.iter().take_while(|g| probe_candidates.iter().any(|c| Arc::ptr_eq(c, g.formed_by))).count();
    let mut group_memo = group_memo::GroupPass::continuing(previous_groups, &envoy_names);
    let (routes, rejected_groups) =
        order::order_routes(groups, probe_groups, &settings.defaults, &envoy_names, &mut group_memo, &mut diagnostics);
    let memo = memo.finish(group_memo.finish(), made_clusters, processing_order);
    for group in rejected_groups {
        for member in &group.members {
            let meta = &origins.of(member).meta;
            rejected.insert(meta.id.clone());
            diagnostics.push(Diagnostic::error(
                Some(&meta.origin),
                Some(&meta.id),
                format!("{}; every Mapping of this canary group is dropped", group.reason),
            ));
        }
    }

    let mut http = settings.http.clone();
    if routes.iter().any(|r| !matches!(r.policy.error_responses, ir::ErrorResponses::Inherit)) {
        http.error_responses.get_or_insert_with(Vec::new);
    }
    let edge = edge::build(prepared, &http, routes, &origins, &mut diagnostics);

    let mut secrets_out: Vec<_> = used_contexts
        .iter()
        .filter_map(|id| resolved.get(id).and_then(|r| r.as_ref().ok()))
        .flat_map(|ctx| ctx.secrets.iter().cloned())
        .chain(edge.secrets)
        .collect();
    secrets_out.sort_by(|a, b| a.name.cmp(&b.name));
    // A termination several Hosts share is listed once per chain.
    secrets_out.dedup_by(|a, b| a.name == b.name);

    let endpoint_services = resolver::eds_services(&clusters, &mut diagnostics);
    let ir = Ir {
        listeners: edge.listeners,
        tcp_listeners,
        route_configs: edge.route_configs.into_iter().map(Arc::new).collect(),
        clusters,
        secrets: secrets_out,
        endpoint_services,
        regex_max_size: settings.regex_max_size,
    };
    diagnostic::normalize(&mut diagnostics);
    let contexts = resolved.into_iter().filter_map(|(id, r)| Some((id.clone(), r.ok()?))).collect();
    let resolved = Resolutions { contexts, terminations: edge.terminations };
    Pass { compiled: Compiled { ir, diagnostics }, rejected, resolved, memo }
}
