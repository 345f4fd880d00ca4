//! What users write: Ambassador resources in CRD form (`metadata` + `spec`) or the flat annotation
//! form (`kind`, `name` and fields at top level), Kubernetes `Secret`s, and `Service`s whose
//! `getambassador.io/config` annotation carries flat-form documents.
//!
//! Parsing never fails as a whole: a bad document becomes a [`Diagnostic`] and is skipped.

pub mod endpoint;
pub mod fields;
pub mod host;
pub mod listener;
pub mod mapping;
pub mod module;
mod parse;
pub mod policy;
pub mod resolver;
pub mod secret;
mod sensitive;
mod service;
pub mod tcp_mapping;
pub mod tls_context;
mod yaml;

pub use host::HostSpec;
pub use listener::ListenerSpec;
pub use mapping::MappingSpec;
pub use module::ModuleSpec;
pub use parse::{parse_documents, parse_object};
pub use resolver::{ResolverKind, ResolverSpec};
pub use secret::SecretData;
pub use sensitive::Sensitive;
pub use tcp_mapping::TcpMappingSpec;
pub use tls_context::TlsContextSpec;
pub use yaml::limits::DocumentLimits;
pub use yaml::{DOCUMENT_LIMITS, MAX_DOCUMENTS, MAX_DOCUMENT_BYTES, MAX_STREAM_BYTES};

use crate::diagnostic::{Origin, ResourceId};
use serde::Deserialize;

/// Identity and provenance shared by every resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub id: ResourceId,
    pub origin: Origin,
    /// `ambassador_id` as written; `None` means the resource belongs to the `default` instance.
    pub ambassador_id: Option<Vec<String>>,
    /// `metadata.labels` (CRD form) or `metadata_labels` (flat form): what Hosts select
    /// Mappings by, and Listeners Hosts.
    pub labels: Labels,
}

pub type Labels = std::collections::BTreeMap<String, String>;

impl Meta {
    pub fn name(&self) -> &str {
        &self.id.name
    }

    pub fn provenance(&self) -> crate::diagnostic::Provenance {
        crate::diagnostic::Provenance { origin: self.origin.clone(), resource: self.id.clone() }
    }

    pub fn namespace(&self) -> &str {
        &self.id.namespace
    }

    /// Emissary's rule: a resource without `ambassador_id` belongs to the instance named `default`.
    pub fn belongs_to(&self, ambassador_id: &str) -> bool {
        match &self.ambassador_id {
            None => ambassador_id == "default",
            Some(ids) => ids.iter().any(|id| id == ambassador_id),
        }
    }
}

/// One resource as read. Its identity and spec are shared: reloads pass every unchanged resource
/// from the source's cache through restoring, compiling and the last good record without copying
/// it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource<S> {
    pub meta: std::sync::Arc<Meta>,
    pub spec: std::sync::Arc<S>,
}

impl<S> Resource<S> {
    pub fn new(meta: Meta, spec: S) -> Resource<S> {
        Resource { meta: std::sync::Arc::new(meta), spec: std::sync::Arc::new(spec) }
    }
}

pub type Mapping = Resource<MappingSpec>;
pub type TlsContext = Resource<TlsContextSpec>;
pub type Listener = Resource<ListenerSpec>;
pub type Host = Resource<HostSpec>;
pub type Module = Resource<ModuleSpec>;
pub type Secret = Resource<SecretData>;
pub type TcpMapping = Resource<TcpMappingSpec>;
pub type Resolver = Resource<ResolverSpec>;

/// Contents of the files TLSContexts name (`cert_chain_file`, ...), keyed by the path as written;
/// `Err` holds why the file could not be read. Read by the sources, so that compiling stays pure.
pub type TlsFiles = std::collections::BTreeMap<String, Result<Vec<u8>, TlsFileError>>;

/// Why a file a TLSContext names was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFileError {
    /// The path is not allowed (`..`, outside the configured roots): a decision, so the
    /// context has no material at all.
    Refused(String),
    /// The file is missing, unreadable, not a regular file or too large: possibly for a moment
    /// (a rotation in progress), so the context's last good material stays in service.
    Unreadable(String),
}

impl std::fmt::Display for TlsFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsFileError::Refused(why) | TlsFileError::Unreadable(why) => f.write_str(why),
        }
    }
}

/// Everything read from the sources, in source order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    pub mappings: Vec<Mapping>,
    pub tls_contexts: Vec<TlsContext>,
    pub listeners: Vec<Listener>,
    pub hosts: Vec<Host>,
    pub secrets: Vec<Secret>,
    /// `ambassador` Modules (one is used; the others are reported).
    pub modules: Vec<Module>,
    pub tcp_mappings: Vec<TcpMapping>,
    /// ConsulResolvers, KubernetesEndpointResolvers and KubernetesServiceResolvers.
    pub resolvers: Vec<Resolver>,
    /// Ambassador resources of kinds that are not translated (an `AuthService`, a
    /// `RateLimitService`, ...): what decides whether fields that only matter with them are safe
    /// to ignore.
    pub skipped: Vec<Meta>,
    /// Inputs that exist but could not be read into resources (each also reported as a
    /// diagnostic): what lets the last good version of their resources stay in service.
    pub rejected: Vec<Rejected>,
}

impl Model {
    /// Every resource read, and where from (operators' inventory), in source order by kind; the
    /// kinds read but not translated (`skipped`, each with its own diagnostic) come last.
    pub fn inventory(&self) -> Vec<crate::diagnostic::Provenance> {
        self.metas().map(Meta::provenance).collect()
    }

    /// The identity of every resource read, in the order of [`Model::inventory`].
    pub fn metas(&self) -> impl Iterator<Item = &Meta> {
        self.mappings
            .iter()
            .map(|r| &*r.meta)
            .chain(self.tls_contexts.iter().map(|r| &*r.meta))
            .chain(self.listeners.iter().map(|r| &*r.meta))
            .chain(self.hosts.iter().map(|r| &*r.meta))
            .chain(self.secrets.iter().map(|r| &*r.meta))
            .chain(self.modules.iter().map(|r| &*r.meta))
            .chain(self.tcp_mappings.iter().map(|r| &*r.meta))
            .chain(self.resolvers.iter().map(|r| &*r.meta))
            .chain(self.skipped.iter())
    }

    pub fn extend(&mut self, other: Model) {
        self.mappings.extend(other.mappings);
        self.tls_contexts.extend(other.tls_contexts);
        self.listeners.extend(other.listeners);
        self.hosts.extend(other.hosts);
        self.secrets.extend(other.secrets);
        self.modules.extend(other.modules);
        self.tcp_mappings.extend(other.tcp_mappings);
        self.resolvers.extend(other.resolvers);
        self.skipped.extend(other.skipped);
        self.rejected.extend(other.rejected);
    }
}

/// A document, object or file that is there but could not be read: a syntax error, a limit, a
/// value of the wrong type, an unreadable file. Its resources are not gone; they are broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub origin: Origin,
    /// The resource it holds, when that much could be read; `None` stands for whatever the
    /// file (`origin.file`) held.
    pub id: Option<ResourceId>,
}

/// `ambassador_id` may be one string or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}
