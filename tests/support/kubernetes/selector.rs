//! `fieldSelector` as the API server applies it: comma-separated requirements, all of which must
//! hold, each `field=value`, `field==value` or `field!=value` (`\,`, `\=` and `\\` escape
//! inside a value). Every kind supports `metadata.name` and `metadata.namespace`; a Secret also
//! `type` (an object without a `type` is an `Opaque` Secret to the API server, which defaults it).
//! Any other field label is a 400, as `field label not supported: <label>`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    field: String,
    equal: bool,
    value: String,
}

/// A parsed selector; the empty one selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<Requirement>);

impl FieldSelector {
    /// Parses `text` for objects of `kind`; `Err` is the message of the API server's 400.
    pub fn parse(kind: &str, text: &str) -> Result<FieldSelector, String> {
        let mut requirements = Vec::new();
        for term in split_unescaped(text, ',') {
            if term.is_empty() {
                continue;
            }
            let (field, equal, value) = if let Some((field, value)) = split_operator(&term, "!=") {
                (field, false, value)
            } else if let Some((field, value)) = split_operator(&term, "==") {
                (field, true, value)
            } else if let Some((field, value)) = split_operator(&term, "=") {
                (field, true, value)
            } else {
                return Err(format!("invalid selector: '{text}'; can't understand '{term}'"));
            };
            let field = field.trim().to_owned();
            if !supported(kind, &field) {
                return Err(format!("field label not supported: {field}"));
            }
            requirements.push(Requirement { field, equal, value: unescape(value) });
        }
        Ok(FieldSelector(requirements))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the stored `object` is selected.
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|requirement| {
            let found = match requirement.field.as_str() {
                "metadata.name" => object["metadata"]["name"].as_str().unwrap_or_default(),
                "metadata.namespace" => object["metadata"]["namespace"].as_str().unwrap_or_default(),
                "type" => object["type"].as_str().unwrap_or("Opaque"),
                _ => unreachable!("parse admits only supported fields"),
            };
            (found == requirement.value) == requirement.equal
        })
    }
}

fn supported(kind: &str, field: &str) -> bool {
    matches!(field, "metadata.name" | "metadata.namespace") || (kind == "Secret" && field == "type")
}

/// `text` split at each `separator` not preceded by a backslash (escapes kept).
fn split_unescaped(text: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in text.chars() {
        if c == separator && !escaped {
            parts.push(String::new());
            continue;
        }
        escaped = c == '\\' && !escaped;
        parts.last_mut().unwrap().push(c);
    }
    parts
}

/// The first unescaped `operator` in `term`: what comes before and after it.
fn split_operator<'a>(term: &'a str, operator: &str) -> Option<(&'a str, &'a str)> {
    let mut escaped = false;
    for (at, c) in term.char_indices() {
        if !escaped && term[at..].starts_with(operator) {
            return Some((&term[..at], &term[at + operator.len()..]));
        }
        escaped = c == '\\' && !escaped;
    }
    None
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(name: &str, kind: Option<&str>) -> Value {
        let mut secret = json!({"metadata": {"name": name, "namespace": "ns"}});
        if let Some(kind) = kind {
            secret["type"] = json!(kind);
        }
        secret
    }

    #[test]
    fn requirements_are_anded_with_every_operator() {
        let selector =
            FieldSelector::parse("Secret", "type!=helm.sh/release.v1,metadata.namespace==ns,metadata.name=a").unwrap();
        assert!(selector.matches(&secret("a", Some("kubernetes.io/tls"))));
        assert!(selector.matches(&secret("a", None)), "no type is Opaque");
        assert!(!selector.matches(&secret("a", Some("helm.sh/release.v1"))));
        assert!(!selector.matches(&secret("b", Some("Opaque"))));
        assert!(FieldSelector::parse("Secret", "type=Opaque").unwrap().matches(&secret("x", None)));
        assert!(FieldSelector::parse("Secret", "").unwrap().is_empty());
    }

    #[test]
    fn escaped_separators_belong_to_the_value() {
        let selector = FieldSelector::parse("Secret", r"metadata.name=a\,b").unwrap();
        assert!(selector.matches(&secret("a,b", None)));
        assert!(!selector.matches(&secret("a", None)));
    }

    #[test]
    fn unsupported_labels_and_terms_without_operator_are_refused() {
        assert_eq!(FieldSelector::parse("Mapping", "type=x").unwrap_err(), "field label not supported: type");
        assert_eq!(FieldSelector::parse("Secret", "spec.foo!=x").unwrap_err(), "field label not supported: spec.foo");
        assert!(FieldSelector::parse("Secret", "type").unwrap_err().starts_with("invalid selector"));
        assert!(FieldSelector::parse("Mapping", "metadata.name!=x").is_ok());
    }
}
