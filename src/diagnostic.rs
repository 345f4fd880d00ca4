//! User mistakes as data: every problem names the file, the document and the resource, so that the
//! CLI can print it and the server can log it without ever stopping on bad input.

use std::fmt;
use std::sync::Arc;

/// Where a resource came from: a file (or another source such as `kubernetes`) and the index of
/// the YAML document inside it, counting from 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    pub file: Arc<str>,
    pub document: usize,
}

impl Origin {
    /// `document` of objects that come one at a time (from the Kubernetes API), not from a stream.
    pub const SINGLE_OBJECT: usize = usize::MAX;

    pub fn object(source: &str) -> Origin {
        Origin { file: Arc::from(source), document: Origin::SINGLE_OBJECT }
    }

    /// The file as a whole (problems that are not about one document).
    pub fn file(file: &str) -> Origin {
        Origin { file: Arc::from(file), document: 0 }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.document {
            Origin::SINGLE_OBJECT => f.write_str(&self.file),
            document => write!(f, "{} (document {document})", self.file),
        }
    }
}

/// One Ambassador (or Kubernetes) resource behind a served xDS resource: what a NACK or a failed
/// validation of that xDS resource is reported against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Provenance {
    pub origin: Origin,
    pub resource: ResourceId,
}

/// Identity of an Ambassador or Kubernetes resource, printed as `Kind namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId {
    pub kind: Arc<str>,
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ResourceId {
    pub fn new(kind: impl Into<Arc<str>>, namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        ResourceId { kind: kind.into(), namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The resource (or the route it feeds) was dropped or fails closed.
    Error,
    /// Something was ignored; the output is still what the user most likely meant.
    Warning,
}

/// What kind of problem a diagnostic reports: what code branches on (never the message text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The text is not YAML (or not UTF-8 text): nothing in the document could be read.
    Syntax,
    /// A file or directory could not be read.
    Unreadable,
    /// An input is over a size, depth, expansion or count limit (README, "Limits"); it is not read.
    Limit,
    /// A value is missing, of the wrong type, or not one Emissary accepts.
    Invalid,
    /// A kind this tool does not translate; the document is skipped.
    UnsupportedKind,
    /// A field this tool does not translate; it is ignored.
    IgnoredField,
    /// A field that changes routing and is not implemented: the resource is not served as
    /// written (its route fails closed).
    Refused,
    /// A second resource with the same kind, namespace and name.
    Duplicate,
    /// A reference (TLSContext, Secret, file) that does not resolve.
    Reference,
    /// Certificate, key or CA material that cannot be served.
    Material,
    /// An input is broken and its last good version is served instead.
    Stale,
    /// The built xDS resource breaks a rule Envoy enforces (proto validation, regex size, ...);
    /// it is not sent, or sent as a fail-closed replacement.
    Rejected,
    /// The endpoints of an EDS cluster could not be refreshed (Consul or the Kubernetes API
    /// failing, no source for them); the last known ones stay in service.
    Endpoints,
}

impl Kind {
    /// Stable lowercase name, for metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Syntax => "syntax",
            Kind::Unreadable => "unreadable",
            Kind::Limit => "limit",
            Kind::Invalid => "invalid",
            Kind::UnsupportedKind => "unsupported_kind",
            Kind::IgnoredField => "ignored_field",
            Kind::Refused => "refused",
            Kind::Duplicate => "duplicate",
            Kind::Reference => "reference",
            Kind::Material => "material",
            Kind::Stale => "stale",
            Kind::Rejected => "rejected",
            Kind::Endpoints => "endpoints",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Diagnostic {
    pub severity: Severity,
    pub kind: Kind,
    pub origin: Option<Origin>,
    pub resource: Option<ResourceId>,
    pub message: String,
}

impl Diagnostic {
    /// An error of kind [`Kind::Invalid`]; [`Self::with_kind`] says what else it is.
    pub fn error(origin: Option<&Origin>, resource: Option<&ResourceId>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, origin, resource, message)
    }

    /// A warning of kind [`Kind::Invalid`]; [`Self::with_kind`] says what else it is.
    pub fn warning(origin: Option<&Origin>, resource: Option<&ResourceId>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, origin, resource, message)
    }

    fn new(
        severity: Severity,
        origin: Option<&Origin>,
        resource: Option<&ResourceId>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity,
            kind: Kind::Invalid,
            origin: origin.cloned(),
            resource: resource.cloned(),
            message: one_line(message.into()),
        }
    }

    pub fn with_kind(self, kind: Kind) -> Self {
        Diagnostic { kind, ..self }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}: ")?;
        if let Some(origin) = &self.origin {
            write!(f, "{origin}: ")?;
        }
        if let Some(resource) = &self.resource {
            write!(f, "{resource}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Longest message kept: parser errors quote the offending value, which may be megabytes long.
pub const MAX_MESSAGE_CHARS: usize = 400;

/// Messages are one line (whatever the input quoted) and at most [`MAX_MESSAGE_CHARS`] long.
fn one_line(message: String) -> String {
    let too_long = message.chars().count() > MAX_MESSAGE_CHARS;
    if !too_long && !message.contains(['\n', '\r']) {
        return message;
    }
    let mut line: String =
        message.chars().take(MAX_MESSAGE_CHARS).map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect();
    if too_long {
        line.push('…');
    }
    line
}

/// Sorts diagnostics into a stable order (by file, document, then message) and removes repeats,
/// so CLI output and golden files do not depend on hash-map iteration order; then
/// [`cap_per_file`].
pub fn normalize(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| {
        (&a.origin, &a.resource, a.severity, &a.message).cmp(&(&b.origin, &b.resource, b.severity, &b.message))
    });
    diagnostics.dedup();
    cap_per_file(diagnostics);
}

/// Most diagnostics kept per file: a file of 100,000 broken documents is one problem to fix, not
/// 100,000 log lines and megabytes held for `/snapshot`.
pub const MAX_PER_FILE: usize = 200;

/// Keeps the first [`MAX_PER_FILE`] diagnostics of each file (in the given order) and replaces the
/// rest with one saying how many there were (earlier such summaries included).
pub fn cap_per_file(diagnostics: &mut Vec<Diagnostic>) {
    let mut capper = Capper::default();
    let all = std::mem::take(diagnostics);
    for diagnostic in all {
        capper.push(diagnostics, diagnostic);
    }
    capper.summarize(diagnostics);
}

/// Counts diagnostics per file as they are pushed, keeping at most [`MAX_PER_FILE`] of each.
#[derive(Debug, Default)]
pub struct Capper {
    /// Per file: kept, hidden, whether any hidden one is an error.
    files: std::collections::HashMap<Arc<str>, (usize, usize, bool)>,
}

impl Capper {
    pub fn push(&mut self, kept: &mut Vec<Diagnostic>, diagnostic: Diagnostic) {
        let Some(origin) = &diagnostic.origin else { return kept.push(diagnostic) };
        let entry = self.files.entry(origin.file.clone()).or_default();
        if entry.0 < MAX_PER_FILE {
            entry.0 += 1;
            kept.push(diagnostic);
        } else {
            entry.1 += 1;
            entry.2 |= diagnostic.is_error();
        }
    }

    /// Counts what `other` (a part of the same files, capped separately) hid as hidden here too.
    pub fn hidden_from(&mut self, other: Capper) {
        for (file, (_, hidden, errors)) in other.files {
            let entry = self.files.entry(file).or_default();
            entry.1 += hidden;
            entry.2 |= errors;
        }
    }

    /// One diagnostic per file that had more than it kept.
    pub fn summarize(self, kept: &mut Vec<Diagnostic>) {
        let mut summaries: Vec<(Arc<str>, usize, bool)> =
            self.files.into_iter().filter(|(_, (_, hidden, _))| *hidden > 0).map(|(f, (_, h, e))| (f, h, e)).collect();
        summaries.sort();
        for (file, hidden, errors) in summaries {
            let origin = Origin { file, document: 0 };
            let severity = if errors { Severity::Error } else { Severity::Warning };
            let message = format!("{hidden} more problems in this file are not shown");
            kept.push(Diagnostic::new(severity, Some(&origin), None, message).with_kind(Kind::Limit));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_many_problems_is_capped_with_a_count() {
        let origin = Origin::file("many.yaml");
        let mut diagnostics: Vec<Diagnostic> =
            (0..MAX_PER_FILE + 50).map(|i| Diagnostic::error(Some(&origin), None, format!("problem {i}"))).collect();
        diagnostics.push(Diagnostic::warning(Some(&Origin::file("other.yaml")), None, "fine"));
        cap_per_file(&mut diagnostics);
        assert_eq!(diagnostics.len(), MAX_PER_FILE + 2);
        let last = diagnostics.last().unwrap();
        assert_eq!((last.kind, last.message.as_str()), (Kind::Limit, "50 more problems in this file are not shown"));
        assert!(last.is_error());
    }

    #[test]
    fn messages_are_one_bounded_line() {
        let long = Diagnostic::error(None, None, format!("invalid type: string \"{}\"", "x".repeat(10_000)));
        assert_eq!(long.message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(long.message.ends_with('…'));
        assert_eq!(Diagnostic::warning(None, None, "a\nb\r\nc").message, "a b  c");
    }
}
