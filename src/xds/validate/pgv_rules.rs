//! The value-level protoc-gen-validate rules: what one `validate.FieldRules` kind (`string`,
//! `uint32`, `duration`, ...) demands of one value. The walk over messages is in `pgv`.

use prost_reflect::{DynamicMessage, ReflectMessage, Value};

/// Every `<kind>.<rule>` this module enforces; `pgv`'s test fails when Envoy's protos use another.
#[cfg_attr(not(test), allow(dead_code))]
pub const KNOWN: &[&str] = &[
    "string.min_len",
    "string.max_len",
    "string.len",
    "string.min_bytes",
    "string.max_bytes",
    "string.len_bytes",
    "string.prefix",
    "string.suffix",
    "string.contains",
    "string.not_contains",
    "string.in",
    "string.not_in",
    "string.const",
    "string.well_known_regex",
    "string.strict",
    "string.ignore_empty",
    "string.pattern",
    "string.hostname",
    "string.address",
    "string.ip",
    "string.ipv4",
    "string.ipv6",
    "bytes.min_len",
    "bytes.max_len",
    "bytes.len",
    "bytes.ignore_empty",
    "uint32.gt",
    "uint32.gte",
    "uint32.lt",
    "uint32.lte",
    "uint32.in",
    "uint32.not_in",
    "uint32.const",
    "uint32.ignore_empty",
    "uint64.gt",
    "uint64.gte",
    "uint64.lt",
    "uint64.lte",
    "uint64.in",
    "uint64.not_in",
    "uint64.const",
    "uint64.ignore_empty",
    "int32.gt",
    "int32.gte",
    "int32.lt",
    "int32.lte",
    "int32.in",
    "int32.not_in",
    "int32.const",
    "int32.ignore_empty",
    "int64.gt",
    "int64.gte",
    "int64.lt",
    "int64.lte",
    "int64.in",
    "int64.not_in",
    "int64.const",
    "int64.ignore_empty",
    "double.gt",
    "double.gte",
    "double.lt",
    "double.lte",
    "double.in",
    "double.not_in",
    "double.const",
    "float.gt",
    "float.gte",
    "float.lt",
    "float.lte",
    "float.in",
    "float.not_in",
    "float.const",
    "bool.const",
    "enum.defined_only",
    "enum.in",
    "enum.not_in",
    "enum.const",
    "message.required",
    "message.skip",
    "repeated.min_items",
    "repeated.max_items",
    "repeated.unique",
    "repeated.items",
    "repeated.ignore_empty",
    "map.min_pairs",
    "map.max_pairs",
    "map.keys",
    "map.values",
    "map.no_sparse",
    "map.ignore_empty",
    "any.required",
    "any.in",
    "any.not_in",
    "duration.required",
    "duration.gt",
    "duration.gte",
    "duration.lt",
    "duration.lte",
    "duration.const",
    "timestamp.required",
    "timestamp.gt",
    "timestamp.lt",
];

fn get(rules: &DynamicMessage, name: &str) -> Option<Value> {
    let field = rules.descriptor().get_field_by_name(name)?;
    let set = rules.has_field(&field) && !matches!(&*rules.get_field(&field), Value::List(l) if l.is_empty());
    set.then(|| rules.get_field(&field).into_owned())
}

fn number(value: &Value) -> Option<f64> {
    Some(match value {
        Value::I32(v) => *v as f64,
        Value::I64(v) => *v as f64,
        Value::U32(v) => *v as f64,
        Value::U64(v) => *v as f64,
        Value::F32(v) => *v as f64,
        Value::F64(v) => *v,
        Value::EnumNumber(v) => *v as f64,
        _ => return None,
    })
}

fn list_numbers(value: Option<Value>) -> Vec<f64> {
    match value {
        Some(Value::List(items)) => items.iter().filter_map(number).collect(),
        _ => Vec::new(),
    }
}

/// `gt`/`gte`/`lt`/`lte`/`const`/`in`/`not_in` on a number (durations as seconds + nanos / 1e9).
fn range(rules: &DynamicMessage, value: f64, to_number: impl Fn(&Value) -> Option<f64>) -> Option<String> {
    let bound = |name: &str| get(rules, name).as_ref().and_then(&to_number);
    if let Some(c) = bound("const") {
        if value != c {
            return Some(format!("value must equal {c}"));
        }
    }
    let lower = bound("gt").map(|v| (v, false)).or(bound("gte").map(|v| (v, true)));
    let upper = bound("lt").map(|v| (v, false)).or(bound("lte").map(|v| (v, true)));
    let above = |(b, inclusive): (f64, bool)| if inclusive { value >= b } else { value > b };
    let below = |(b, inclusive): (f64, bool)| if inclusive { value <= b } else { value < b };
    let ok = match (lower, upper) {
        // PGV: a lower bound above the upper bound means "outside the range".
        (Some(l), Some(u)) if l.0 > u.0 => above(l) || below(u),
        (l, u) => l.is_none_or(above) && u.is_none_or(below),
    };
    if !ok {
        let describe = |b: Option<(f64, bool)>, op: &str, op_eq: &str| {
            b.map(|(v, inclusive)| format!("{} {v}", if inclusive { op_eq } else { op }))
        };
        let parts: Vec<String> =
            [describe(lower, ">", ">="), describe(upper, "<", "<=")].into_iter().flatten().collect();
        return Some(format!("value {value} must be {}", parts.join(" and ")));
    }
    None
}

fn in_lists(rules: &DynamicMessage, value: f64) -> Option<String> {
    let allowed = list_numbers(get(rules, "in"));
    if !allowed.is_empty() && !allowed.contains(&value) {
        return Some(format!("value {value} must be one of {allowed:?}"));
    }
    if list_numbers(get(rules, "not_in")).contains(&value) {
        return Some(format!("value {value} is not allowed"));
    }
    None
}

fn flag(rules: &DynamicMessage, name: &str) -> bool {
    get(rules, name).and_then(|v| v.as_bool()) == Some(true)
}

/// Rules on a whole repeated field or map (their items are checked one by one by the caller).
pub fn collection(kind: &str, rules: &DynamicMessage, value: &Value) -> Option<String> {
    let count = match value {
        Value::List(items) => items.len(),
        Value::Map(entries) => entries.len(),
        _ => return None,
    };
    if count == 0 && flag(rules, "ignore_empty") {
        return None;
    }
    let (min, max) = match kind {
        "repeated" => ("min_items", "max_items"),
        "map" => ("min_pairs", "max_pairs"),
        _ => return None,
    };
    if let Some(min) = get(rules, min).as_ref().and_then(number) {
        if (count as f64) < min {
            return Some(format!("needs at least {min} items, has {count}"));
        }
    }
    if let Some(max) = get(rules, max).as_ref().and_then(number) {
        if count as f64 > max {
            return Some(format!("allows at most {max} items, has {count}"));
        }
    }
    if let (true, Value::List(items)) = (flag(rules, "unique"), value) {
        for (i, item) in items.iter().enumerate() {
            if items[..i].contains(item) {
                return Some(format!("items must be unique; item {i} repeats an earlier one"));
            }
        }
    }
    None
}

/// Rules on one value; `present` is whether a message-typed field is set.
pub fn single(kind: &str, rules: &DynamicMessage, value: &Value, present: bool) -> Option<String> {
    match kind {
        "string" => super::pgv_strings::string(rules, value.as_str().unwrap_or_default()),
        "bytes" => {
            let bytes = value.as_bytes().map(|b| b.len()).unwrap_or_default();
            if bytes == 0 && flag(rules, "ignore_empty") {
                return None;
            }
            super::pgv_strings::lengths(rules, bytes, "bytes", ("min_len", "max_len", "len"))
        }
        "bool" => get(rules, "const")
            .and_then(|c| c.as_bool())
            .filter(|c| value.as_bool() != Some(*c))
            .map(|c| format!("value must be {c}")),
        "enum" => {
            let number = match value {
                Value::EnumNumber(n) => *n,
                _ => return None,
            };
            in_lists(rules, number as f64)
                .or_else(|| range(rules, number as f64, number_of).filter(|_| get(rules, "const").is_some()))
        }
        "duration" | "timestamp" => {
            let message = value.as_message();
            if !present {
                return flag(rules, "required").then(|| "value is required".to_string());
            }
            let seconds = |m: &DynamicMessage| {
                let s = m.get_field_by_name("seconds").and_then(|v| v.as_i64()).unwrap_or_default();
                let n = m.get_field_by_name("nanos").and_then(|v| v.as_i32()).unwrap_or_default();
                s as f64 + n as f64 / 1e9
            };
            let value = seconds(message?);
            range(rules, value, |v| v.as_message().map(seconds))
        }
        "any" => {
            if !present {
                return flag(rules, "required").then(|| "value is required".to_string());
            }
            let type_url = value.as_message()?.get_field_by_name("type_url")?.as_str()?.to_string();
            let names = |name: &str| match get(rules, name) {
                Some(Value::List(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                _ => Vec::new(),
            };
            let allowed: Vec<String> = names("in");
            if !allowed.is_empty() && !allowed.contains(&type_url) {
                return Some(format!("type {type_url} is not one of {allowed:?}"));
            }
            names("not_in").contains(&type_url).then(|| format!("type {type_url} is not allowed"))
        }
        _ => {
            let value = number(value)?;
            if value == 0.0 && flag(rules, "ignore_empty") {
                return None;
            }
            range(rules, value, number_of).or_else(|| in_lists(rules, value))
        }
    }
}

fn number_of(value: &Value) -> Option<f64> {
    number(value)
}
