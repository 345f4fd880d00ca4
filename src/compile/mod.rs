//! Ambassador resources → [`ir::Ir`] plus diagnostics. Pure: cert files named by TLSContexts are
//! read by the source layer and handed in as [`TlsFiles`].
//!
//! Rules (DESIGN.md §2): Emissary's semantics for services, cluster names, matching, order and
//! weights; our fixes for TLS: certificates over SDS, default SNI, cert-less origination contexts,
//! one cluster per (service, context), and fail-closed routes when TLS cannot be provided.

mod cluster;
pub mod ir;
mod listener;
mod mapping;
pub mod matching;
mod material;
pub mod names;
pub mod order;
mod select;
pub mod service;
pub mod tls;

pub use listener::listener_name;

use crate::diagnostic::{self, Diagnostic, Kind, ResourceId};
use crate::model::{Meta, Model, TlsFiles};
use ir::{Ir, RouteAction, RouteTable};
use mapping::{route_name, MappingCompiler};
use order::Candidate;
use select::{select, unique, ContextLookup};
use std::collections::{BTreeSet, HashMap};
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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listener_port: 8080,
            ambassador_namespace: "default".into(),
            ambassador_id: "default".into(),
            // Envoy's default error level; `xds::validate::DEFAULT_REGEX_PROGRAM_SIZE_LIMIT`.
            max_regex_program_size: 100,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    pub ir: Ir,
    /// Sorted by file, document and resource.
    pub diagnostics: Vec<Diagnostic>,
}

/// Name of the one RouteConfiguration every HTTP listener takes over RDS.
pub const ROUTE_CONFIG_NAME: &str = "ambassador-routes";

/// The steps, in order: select this instance's resources, resolve TLSContexts, turn Mappings
/// into route candidates (creating their clusters), name clusters, order routes, collect the
/// secrets of the contexts in use, build listeners.
pub fn compile(model: &Model, files: &TlsFiles, options: &Options) -> Compiled {
    let mut diagnostics = Vec::new();
    let mappings = unique(select(&model.mappings, options), &mut diagnostics);
    let contexts = unique(select(&model.tls_contexts, options), &mut diagnostics);
    let listeners = unique(select(&model.listeners, options), &mut diagnostics);
    let secrets = unique(model.secrets.iter().collect(), &mut diagnostics);

    let secret_index: SecretIndex<'_> = secrets.iter().map(|s| ((s.meta.namespace(), s.meta.name()), *s)).collect();
    let mut resolved: HashMap<&ResourceId, Result<ResolvedContext, String>> = HashMap::new();
    for ctx in &contexts {
        let result = tls::resolve_context(ctx, &secret_index, files, &mut diagnostics);
        if let Err(reason) = &result {
            diagnostics.push(
                Diagnostic::error(Some(&ctx.meta.origin), Some(&ctx.meta.id), reason.clone()).with_kind(Kind::Material),
            );
        }
        resolved.insert(&ctx.meta.id, result);
    }

    let mut builder = MappingCompiler {
        options,
        contexts: ContextLookup::new(&contexts),
        resolved: &resolved,
        clusters: Default::default(),
        used_contexts: BTreeSet::new(),
        diagnostics: &mut diagnostics,
    };
    // Emissary processes Mappings in the order of their `name.namespace` keys; route order ties
    // depend on it, so we do the same.
    let mut ordered = mappings;
    ordered.sort_by_cached_key(|m| format!("{}.{}", m.meta.name(), m.meta.namespace()));
    let mut candidates: Vec<Candidate> = ordered.iter().filter_map(|m| builder.candidate(m)).collect();
    let MappingCompiler { clusters, used_contexts, .. } = builder;

    let (clusters, envoy_names) = clusters.finish();
    for candidate in &mut candidates {
        if let RouteAction::Forward(forward) = &mut candidate.action {
            forward.cluster = envoy_names[&forward.cluster].clone();
            candidate.runtime_key = forward.cluster.clone();
        }
    }

    let origins: HashMap<String, &Meta> = ordered.iter().map(|m| (route_name(m), &m.meta)).collect();
    let (routes, rejected) = order::order_routes(candidates);
    for group in rejected {
        for member in &group.members {
            let meta = origins[member];
            diagnostics.push(Diagnostic::error(
                Some(&meta.origin),
                Some(&meta.id),
                format!("{}; every Mapping of this canary group is dropped", group.reason),
            ));
        }
    }

    let mut secrets_out: Vec<_> = used_contexts
        .iter()
        .filter_map(|id| resolved.get(id).and_then(|r| r.as_ref().ok()))
        .flat_map(|ctx| ctx.secrets.iter().cloned())
        .collect();
    secrets_out.sort_by(|a, b| a.name.cmp(&b.name));

    let ir = Ir {
        listeners: listener::http_listeners(&listeners, options, &mut diagnostics),
        route_configs: vec![RouteTable { name: ROUTE_CONFIG_NAME.to_string(), routes }],
        clusters,
        secrets: secrets_out,
    };
    diagnostic::normalize(&mut diagnostics);
    Compiled { ir, diagnostics }
}
