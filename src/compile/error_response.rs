//! `error_response_overrides` (Module and Mapping): answers with a given status get another
//! body. Emissary skips a rule it cannot use and keeps the others; so does this.

use super::format::check_command_operators;
use super::ir::{ErrorBody, ErrorResponseRule};
use crate::model::policy::ErrorResponseOverride;
use serde_yaml::Value;

/// The usable rules, and why each other one was skipped.
pub fn rules(overrides: &[ErrorResponseOverride]) -> (Vec<ErrorResponseRule>, Vec<String>) {
    let mut rules = Vec::new();
    let mut problems = Vec::new();
    for (index, rule) in overrides.iter().enumerate() {
        match one_rule(rule) {
            Ok(rule) => rules.push(rule),
            Err(problem) => problems.push(format!("rule {index}: {problem}")),
        }
    }
    (rules, problems)
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn one_rule(rule: &ErrorResponseOverride) -> Result<ErrorResponseRule, String> {
    let code = rule.on_status_code.as_ref().ok_or("`on_status_code` is required")?;
    let status_code = scalar(code)
        .and_then(|text| text.parse::<u16>().ok())
        .filter(|code| (400..600).contains(code))
        .ok_or("`on_status_code` must be an integer from 400 to 599")?;
    let body = rule.body.as_ref().ok_or("`body` is required")?;
    let formats =
        [&body.text_format, &body.json_format, &body.text_format_source].iter().filter(|f| f.is_some()).count();
    if formats != 1 {
        return Err(format!(
            "`body` needs exactly one of `text_format`, `json_format`, `text_format_source` ({formats} given)"
        ));
    }
    let body_out = if let Some(text) = &body.text_format {
        let text = scalar(text).ok_or("`text_format` must be a string")?;
        check_command_operators(&text).map_err(|p| format!("`text_format`: {p}"))?;
        ErrorBody::Text(text)
    } else if let Some(json) = &body.json_format {
        let Value::Mapping(map) = json else { return Err("`json_format` must map keys to strings".into()) };
        let mut fields = Vec::new();
        for (key, value) in map {
            let (Some(key), Some(value)) = (scalar(key), scalar(value)) else {
                return Err("`json_format` values must be strings, numbers or booleans".into());
            };
            check_command_operators(&value).map_err(|p| format!("`json_format.{key}`: {p}"))?;
            fields.push((key, value));
        }
        ErrorBody::Json(fields)
    } else {
        // Envoy would read the file itself, on its own machine; the translator cannot check it.
        return Err("`text_format_source` (a file Envoy would read) is not supported; use `text_format`".into());
    };
    Ok(ErrorResponseRule { status_code, body: body_out, content_type: body.content_type.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rules_are_skipped_good_ones_kept() {
        let overrides: Vec<ErrorResponseOverride> = serde_yaml::from_str(
            r#"
- {on_status_code: 404, body: {text_format: "nothing here: %RESPONSE_CODE%", content_type: text/plain}}
- {on_status_code: "503", body: {json_format: {error: down, code: "%RESPONSE_CODE%", retry: true}}}
- {on_status_code: 302, body: {text_format: x}}
- {on_status_code: 500, body: {text_format: "100%"}}
- {on_status_code: 500, body: {text_format_source: {filename: /x}}}
"#,
        )
        .unwrap();
        let (rules, problems) = rules(&overrides);
        assert_eq!(rules.len(), 2, "{problems:?}");
        assert_eq!(
            rules[1].body,
            ErrorBody::Json(vec![
                ("error".into(), "down".into()),
                ("code".into(), "%RESPONSE_CODE%".into()),
                ("retry".into(), "true".into())
            ])
        );
        assert_eq!(problems.len(), 3);
    }
}
