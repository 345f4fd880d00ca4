//! Envoy's protoc-gen-validate rules, read from the `validate.rules` options in Envoy's own
//! descriptors and enforced on a reflected message: every field that carries rules, at any depth,
//! is checked, as Envoy's generated `Validate()` does when it receives the resource.
//!
//! A generic interpreter over the descriptor pool rather than generated code: the one Rust PGV
//! library for prost-reflect (`prost-reflect-validate`) needs `protoc` at build time, which a fresh
//! machine does not have (README, "Dependencies"). Rules Envoy's resources use are all here;
//! `tests` asserts that every rule reachable from the served types is one this module knows.

use super::super::descriptors::pool;
use prost_reflect::{DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MapKey, ReflectMessage, Value};
use std::sync::LazyLock;

struct Extensions {
    rules: ExtensionDescriptor,
    oneof_required: ExtensionDescriptor,
    disabled: ExtensionDescriptor,
    ignored: ExtensionDescriptor,
}

static EXTENSIONS: LazyLock<Extensions> = LazyLock::new(|| {
    let ext = |name: &str| pool().get_extension_by_name(name).unwrap_or_else(|| panic!("{name} is in the pool"));
    Extensions {
        rules: ext("validate.rules"),
        oneof_required: ext("validate.required"),
        disabled: ext("validate.disabled"),
        ignored: ext("validate.ignored"),
    }
});

/// A rule violation: the field path (`route.timeout`) and what the rule demands.
pub type Violation = String;

/// Checks `message` and everything below it (not inside `Any`: the caller unpacks those).
pub fn check(message: &DynamicMessage, path: &str, out: &mut Vec<Violation>) {
    let descriptor = message.descriptor();
    let options = descriptor.options();
    if bool_ext(&options, &EXTENSIONS.disabled) || bool_ext(&options, &EXTENSIONS.ignored) {
        return;
    }
    for oneof in descriptor.oneofs().filter(|o| !o.is_synthetic()) {
        if bool_ext(&oneof.options(), &EXTENSIONS.oneof_required) && !oneof.fields().any(|f| message.has_field(&f)) {
            out.push(format!("{}: exactly one of the `{}` fields is required", join(path, oneof.name()), oneof.name()));
        }
    }
    for field in descriptor.fields() {
        let path = join(path, field.name());
        let present = message.has_field(&field);
        let in_oneof = field.containing_oneof().is_some_and(|o| !o.is_synthetic());
        let rules = field_rules(&field);
        if in_oneof && !present {
            continue;
        }
        let value = message.get_field(&field);
        if let Some(rules) = &rules {
            check_field(&field, rules, &value, present, &path, out);
        }
        let skip = rules.as_ref().and_then(|r| sub(r, "message")).is_some_and(|m| flag(&m, "skip"));
        if !skip && present {
            recurse(&value, &path, out);
        }
    }
}

fn recurse(value: &Value, path: &str, out: &mut Vec<Violation>) {
    match value {
        Value::Message(message) => check(message, path, out),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                recurse(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Map(entries) => {
            for (key, item) in entries {
                recurse(item, &format!("{path}[{}]", map_key(key)), out);
            }
        }
        _ => {}
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn bool_ext(options: &DynamicMessage, ext: &ExtensionDescriptor) -> bool {
    options.has_extension(ext) && options.get_extension(ext).as_bool() == Some(true)
}

fn field_rules(field: &FieldDescriptor) -> Option<DynamicMessage> {
    let options = field.options();
    options.has_extension(&EXTENSIONS.rules).then(|| options.get_extension(&EXTENSIONS.rules).as_message().cloned())?
}

/// A set sub-message of a rules message (`rules.string`, `rules.message`, ...).
fn sub(rules: &DynamicMessage, name: &str) -> Option<DynamicMessage> {
    let field = rules.descriptor().get_field_by_name(name)?;
    rules.has_field(&field).then(|| rules.get_field(&field).as_message().cloned())?
}

fn get(rules: &DynamicMessage, name: &str) -> Option<Value> {
    let field = rules.descriptor().get_field_by_name(name)?;
    let set = rules.has_field(&field) && !matches!(&*rules.get_field(&field), Value::List(l) if l.is_empty());
    set.then(|| rules.get_field(&field).into_owned())
}

fn flag(rules: &DynamicMessage, name: &str) -> bool {
    get(rules, name).and_then(|v| v.as_bool()) == Some(true)
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::String(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// The kind of rules set on a field (`string`, `uint32`, `repeated`, ...) and the rules.
fn rule_kind(rules: &DynamicMessage) -> Option<(String, DynamicMessage)> {
    let oneof = rules.descriptor().oneofs().find(|o| o.name() == "type")?;
    let field = oneof.fields().find(|f| rules.has_field(f))?;
    Some((field.name().to_string(), sub(rules, field.name())?))
}

fn check_field(
    field: &FieldDescriptor,
    rules: &DynamicMessage,
    value: &Value,
    present: bool,
    path: &str,
    out: &mut Vec<Violation>,
) {
    if let Some(message_rules) = sub(rules, "message") {
        if flag(&message_rules, "required") && !present {
            out.push(format!("{path}: value is required"));
        }
    }
    let Some((kind, typed)) = rule_kind(rules) else { return };
    if field.is_list() || field.is_map() {
        if let Some(problem) = super::pgv_rules::collection(&kind, &typed, value) {
            out.push(format!("{path}: {problem}"));
        }
        if let (Some(items), Value::List(list)) = (sub(&typed, "items"), value) {
            for (i, item) in list.iter().enumerate() {
                check_single(&items, item, true, &format!("{path}[{i}]"), out);
            }
        }
        if let Value::Map(entries) = value {
            for (key, item) in entries {
                let key_path = format!("{path}[{}]", map_key(key));
                if let Some(keys) = sub(&typed, "keys") {
                    check_single(&keys, &key.clone().into(), true, &key_path, out);
                }
                if let Some(values) = sub(&typed, "values") {
                    check_single(&values, item, true, &key_path, out);
                }
            }
        }
        return;
    }
    // Scalar rules on a wrapper message (`UInt32Value`...) apply to its `value` when it is set.
    if let (Kind::Message(descriptor), true) = (field.kind(), is_scalar_kind(&kind)) {
        if descriptor.full_name().starts_with("google.protobuf.") && present {
            if let Some(inner) = value.as_message().and_then(|m| m.get_field_by_name("value")) {
                check_single(rules, &inner, true, path, out);
            }
        }
        return;
    }
    if let (Kind::Enum(descriptor), Value::EnumNumber(number), "enum") = (field.kind(), value, kind.as_str()) {
        if flag(&typed, "defined_only") && descriptor.get_value(*number).is_none() {
            out.push(format!("{path}: {number} is not a defined {} value", descriptor.name()));
        }
    }
    check_single(rules, value, present, path, out);
}

fn is_scalar_kind(kind: &str) -> bool {
    !matches!(kind, "message" | "repeated" | "map" | "any" | "duration" | "timestamp" | "enum")
}

/// Rules of one value (a field, a list item, a map key or value).
fn check_single(rules: &DynamicMessage, value: &Value, present: bool, path: &str, out: &mut Vec<Violation>) {
    let Some((kind, typed)) = rule_kind(rules) else { return };
    if let Some(problem) = super::pgv_rules::single(&kind, &typed, value, present) {
        out.push(format!("{path}: {problem}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every rule kind and rule set anywhere below the served resource types and the typed
    /// configs they embed.
    fn reachable_rules() -> BTreeSet<String> {
        let roots = super::super::SERVED_MESSAGES;
        let mut seen = BTreeSet::new();
        let mut rules = BTreeSet::new();
        let mut stack: Vec<_> = roots
            .iter()
            .map(|name| {
                pool().get_message_by_name(name).unwrap_or_else(|| panic!("{name} is not in the descriptor pool"))
            })
            .collect();
        while let Some(message) = stack.pop() {
            if !seen.insert(message.full_name().to_string()) {
                continue;
            }
            for field in message.fields() {
                if let Some(r) = field_rules(&field) {
                    if let Some((kind, typed)) = rule_kind(&r) {
                        for (f, _) in typed.fields() {
                            rules.insert(format!("{kind}.{}", f.name()));
                        }
                        for nested in ["items", "keys", "values"] {
                            if let Some((k, t)) = sub(&typed, nested).as_ref().and_then(rule_kind) {
                                for (f, _) in t.fields() {
                                    rules.insert(format!("{k}.{}", f.name()));
                                }
                            }
                        }
                    }
                }
                if let Kind::Message(m) = field.kind() {
                    stack.push(m);
                }
            }
        }
        rules
    }

    #[test]
    fn every_reachable_rule_is_enforced() {
        let reachable = reachable_rules();
        for expected in ["string.min_len", "duration.gt", "uint32.lte", "repeated.min_items", "string.well_known_regex"]
        {
            assert!(reachable.contains(expected), "{expected} not found: the rules are not being read");
        }
        let unknown: Vec<String> =
            reachable.into_iter().filter(|rule| !super::super::pgv_rules::KNOWN.contains(&rule.as_str())).collect();
        assert!(unknown.is_empty(), "rules in Envoy's protos that pgv_rules does not enforce: {unknown:?}");
    }
}
