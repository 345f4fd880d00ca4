//! A route's match: path (prefix, exact path or RE2 regex), headers, query parameters, and the
//! runtime fraction of a canary member.

use crate::compile::ir::{HeaderValueMatch, PathMatch, RouteMatch as IrMatch};
use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier, route_match,
    HeaderMatcher, QueryParameterMatcher, RouteMatch,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, RegexMatcher, StringMatcher};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::BoolValue;

pub fn regex(regex: &str) -> RegexMatcher {
    RegexMatcher { regex: regex.to_string(), ..Default::default() }
}

fn string_matcher(value: &HeaderValueMatch, ignore_case: bool) -> Option<StringMatcher> {
    let pattern = match value {
        HeaderValueMatch::Exact(value) => MatchPattern::Exact(value.clone()),
        HeaderValueMatch::Prefix(value) => MatchPattern::Prefix(value.clone()),
        HeaderValueMatch::Suffix(value) => MatchPattern::Suffix(value.clone()),
        // Regexes say their own case sensitivity.
        HeaderValueMatch::Regex(pattern) => {
            return Some(StringMatcher {
                match_pattern: Some(MatchPattern::SafeRegex(regex(pattern))),
                ignore_case: false,
            })
        }
        HeaderValueMatch::Present => return None,
    };
    Some(StringMatcher { match_pattern: Some(pattern), ignore_case })
}

pub fn build_match(ir: &IrMatch) -> RouteMatch {
    let path_specifier = match &ir.path {
        PathMatch::Prefix(prefix) => route_match::PathSpecifier::Prefix(prefix.clone()),
        PathMatch::Exact(path) => route_match::PathSpecifier::Path(path.clone()),
        PathMatch::Regex(pattern) => route_match::PathSpecifier::SafeRegex(regex(pattern)),
    };
    let headers = ir
        .headers
        .iter()
        .map(|header| HeaderMatcher {
            name: header.name.clone(),
            header_match_specifier: Some(match string_matcher(&header.value, header.ignore_case) {
                Some(matcher) => HeaderMatchSpecifier::StringMatch(matcher),
                None => HeaderMatchSpecifier::PresentMatch(true),
            }),
            ..Default::default()
        })
        .collect();
    let query_parameters = ir
        .query_parameters
        .iter()
        .map(|query| QueryParameterMatcher {
            name: query.name.clone(),
            query_parameter_match_specifier: Some(match string_matcher(&query.value, false) {
                Some(matcher) => QueryParameterMatchSpecifier::StringMatch(matcher),
                None => QueryParameterMatchSpecifier::PresentMatch(true),
            }),
        })
        .collect();
    RouteMatch {
        path_specifier: Some(path_specifier),
        // Envoy's default is case sensitive; only say so when it is not.
        case_sensitive: (!ir.case_sensitive).then_some(BoolValue { value: false }),
        headers,
        query_parameters,
        runtime_fraction: ir.runtime_fraction.as_ref().map(|fraction| RuntimeFractionalPercent {
            default_value: Some(FractionalPercent {
                numerator: fraction.percent,
                denominator: DenominatorType::Hundred as i32,
            }),
            runtime_key: fraction.runtime_key.clone(),
        }),
        ..Default::default()
    }
}
