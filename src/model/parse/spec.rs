//! Typed specs from YAML values, with every field the type does not hold looked up in the field
//! table ([`crate::model::fields`]): safe-to-ignore fields become warnings, fields the compiler
//! must refuse are recorded on the spec, anything else is an unknown field (a warning, as
//! Emissary ignores it too).

use super::Parser;
use crate::diagnostic::{Diagnostic, Kind, Origin, ResourceId};
use crate::model::fields::{self, Support, Table, Unimplemented};
use crate::model::resolver::{ConsulResolverFields, KubernetesResolverFields};
use crate::model::{
    HostSpec, Labels, ListenerSpec, MappingSpec, Meta, ModuleSpec, OneOrMany, TcpMappingSpec, TlsContextSpec,
};
use serde::de::DeserializeOwned;
use serde_yaml::Value;

/// A spec type the parser reads.
pub(super) trait Spec: DeserializeOwned {
    /// The table for the fields this type does not hold, if its kind has one.
    const TABLE: Option<&'static Table> = None;
    /// Where the table's fields live inside the spec (`config.` for the Module).
    const NESTED: &'static str = "";
    fn ambassador_id(&self) -> Option<OneOrMany>;
    /// Where fields the compiler decides on are recorded.
    fn unimplemented(&mut self) -> Option<&mut Vec<Unimplemented>> {
        None
    }
}

impl Spec for MappingSpec {
    const TABLE: Option<&'static Table> = Some(&fields::MAPPING);
    fn ambassador_id(&self) -> Option<OneOrMany> {
        self.ambassador_id.clone()
    }
    fn unimplemented(&mut self) -> Option<&mut Vec<Unimplemented>> {
        Some(&mut self.unimplemented)
    }
}

impl Spec for TcpMappingSpec {
    const TABLE: Option<&'static Table> = Some(&fields::TCP_MAPPING);
    fn ambassador_id(&self) -> Option<OneOrMany> {
        self.ambassador_id.clone()
    }
    fn unimplemented(&mut self) -> Option<&mut Vec<Unimplemented>> {
        Some(&mut self.unimplemented)
    }
}

impl Spec for ModuleSpec {
    const TABLE: Option<&'static Table> = Some(&fields::MODULE);
    const NESTED: &'static str = "config.";
    fn ambassador_id(&self) -> Option<OneOrMany> {
        self.ambassador_id.clone()
    }
    fn unimplemented(&mut self) -> Option<&mut Vec<Unimplemented>> {
        Some(&mut self.config.unimplemented)
    }
}

impl Spec for TlsContextSpec {
    fn ambassador_id(&self) -> Option<OneOrMany> {
        self.ambassador_id.clone()
    }
}

impl Spec for ListenerSpec {
    fn ambassador_id(&self) -> Option<OneOrMany> {
        self.ambassador_id.clone()
    }
}

impl Spec for ConsulResolverFields {
    fn ambassador_id(&self) -> Option<OneOrMany> {
        self.ambassador_id.clone()
    }
}

impl Spec for KubernetesResolverFields {
    fn ambassador_id(&self) -> Option<OneOrMany> {
        self.ambassador_id.clone()
    }
}

impl Spec for HostSpec {
    fn ambassador_id(&self) -> Option<OneOrMany> {
        self.ambassador_id.clone()
    }
}

/// What to do with one field the spec type did not take.
enum Verdict {
    Ignored(String),
    Decide(Unimplemented),
    Unknown,
}

fn classify<S: Spec>(path: &str) -> Verdict {
    let Some(table) = S::TABLE else { return Verdict::Unknown };
    let Some(inner) = path.strip_prefix(S::NESTED) else { return Verdict::Unknown };
    if inner.contains('.') {
        return Verdict::Unknown;
    }
    match table.get(inner) {
        None | Some(fields::Field { support: Support::Implemented, .. }) => Verdict::Unknown,
        Some(field) => match field.support {
            Support::Ignored => Verdict::Ignored(field.note.to_string()),
            support => Verdict::Decide(Unimplemented { field: inner.to_string(), support, note: field.note }),
        },
    }
}

impl Parser {
    /// Deserializes a spec; every field it does not hold is classified (see the module docs).
    pub(super) fn typed_spec<S: Spec>(
        &mut self,
        origin: &Origin,
        id: ResourceId,
        labels: Labels,
        spec: Value,
        field_prefix: &str,
    ) -> Option<(S, Meta)> {
        let mut ignored = Vec::new();
        let parsed: Result<S, _> = serde_ignored::deserialize(spec, |path| ignored.push(path.to_string()));
        match parsed {
            Ok(mut spec) => {
                for field in ignored {
                    // serde_ignored names an `Option`'s inside `?`: not a field anyone wrote.
                    let field = field.split('.').filter(|part| *part != "?").collect::<Vec<_>>().join(".");
                    let message = match classify::<S>(&field) {
                        Verdict::Ignored(note) if note.is_empty() => {
                            format!("field `{field_prefix}{field}` has no effect in ambassador-xds; ignored")
                        }
                        Verdict::Ignored(note) => {
                            format!("field `{field_prefix}{field}` has no effect in ambassador-xds ({note}); ignored")
                        }
                        Verdict::Decide(unimplemented) => {
                            if let Some(list) = spec.unimplemented() {
                                list.push(unimplemented);
                            }
                            continue;
                        }
                        Verdict::Unknown => {
                            format!("field `{field_prefix}{field}` is not supported by ambassador-xds; ignored")
                        }
                    };
                    self.push(Diagnostic::warning(Some(origin), Some(&id), message).with_kind(Kind::IgnoredField));
                }
                let ambassador_id = spec.ambassador_id().map(OneOrMany::into_vec);
                Some((spec, Meta { id, origin: origin.clone(), ambassador_id, labels }))
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
}
