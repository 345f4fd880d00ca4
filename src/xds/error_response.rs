//! `error_response_overrides` as Envoy's custom-response filter config: one matcher per rule on
//! the response status, answering with the rule's body (status and headers stay).

use super::to_any;
use crate::compile::ir::{ErrorBody, ErrorResponseRule};
use envoy_types::pb::envoy::config::core::v3::{
    data_source, substitution_format_string, DataSource, SubstitutionFormatString,
};
use envoy_types::pb::envoy::extensions::filters::http::custom_response::v3::CustomResponse;
use envoy_types::pb::envoy::extensions::http::custom_response::local_response_policy::v3::LocalResponsePolicy;
use envoy_types::pb::envoy::r#type::matcher::v3::HttpResponseStatusCodeMatchInput;
use envoy_types::pb::google::protobuf::{value, Struct, Value};
use envoy_types::pb::xds::core::v3::TypedExtensionConfig;
use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_list::predicate::{
    single_predicate, MatchType, SinglePredicate,
};
use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_list::{FieldMatcher, Predicate};
use envoy_types::pb::xds::r#type::matcher::v3::matcher::{on_match, MatcherList, MatcherType, OnMatch};
use envoy_types::pb::xds::r#type::matcher::v3::{string_matcher, Matcher, StringMatcher};

pub fn custom_response(rules: &[ErrorResponseRule]) -> CustomResponse {
    let matchers = rules.iter().map(matcher).collect::<Vec<_>>();
    CustomResponse {
        custom_response_matcher: (!matchers.is_empty()).then(|| Matcher {
            matcher_type: Some(MatcherType::MatcherList(MatcherList { matchers })),
            ..Default::default()
        }),
    }
}

fn matcher(rule: &ErrorResponseRule) -> FieldMatcher {
    let input = TypedExtensionConfig {
        name: "status_code".into(),
        typed_config: Some(to_any(&HttpResponseStatusCodeMatchInput {})),
    };
    let predicate = SinglePredicate {
        input: Some(input),
        matcher: Some(single_predicate::Matcher::ValueMatch(StringMatcher {
            match_pattern: Some(string_matcher::MatchPattern::Exact(rule.status_code.to_string())),
            ignore_case: false,
        })),
    };
    let format = match &rule.body {
        ErrorBody::Text(text) => substitution_format_string::Format::TextFormatSource(DataSource {
            specifier: Some(data_source::Specifier::InlineString(text.clone())),
            ..Default::default()
        }),
        ErrorBody::Json(fields) => substitution_format_string::Format::JsonFormat(Struct {
            fields: fields
                .iter()
                .map(|(key, text)| (key.clone(), Value { kind: Some(value::Kind::StringValue(text.clone())) }))
                .collect(),
        }),
    };
    let policy = LocalResponsePolicy {
        body_format: Some(SubstitutionFormatString {
            format: Some(format),
            content_type: rule.content_type.clone().unwrap_or_default(),
            ..Default::default()
        }),
        ..Default::default()
    };
    FieldMatcher {
        predicate: Some(Predicate { match_type: Some(MatchType::SinglePredicate(predicate)) }),
        on_match: Some(OnMatch {
            on_match: Some(on_match::OnMatch::Action(TypedExtensionConfig {
                name: "error_response".into(),
                typed_config: Some(to_any(&policy)),
            })),
            ..Default::default()
        }),
    }
}
