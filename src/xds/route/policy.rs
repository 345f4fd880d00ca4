//! What a route does besides its action: headers added and removed, its CORS policy (for the
//! listener's CORS filter) and its error-response overrides (for the custom-response filter).

use crate::compile::ir::{Cors, ErrorResponses, HeaderToAdd, RoutePolicy};
use crate::xds::error_response::custom_response;
use crate::xds::listener::{CORS_FILTER, CUSTOM_RESPONSE_FILTER};
use crate::xds::to_any;
use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption, RuntimeFractionalPercent,
};
use envoy_types::pb::envoy::config::route::v3::{FilterConfig, Route};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::BoolValue;

pub fn apply(route: &mut Route, policy: &RoutePolicy) {
    route.request_headers_to_add = policy.request_headers_to_add.iter().map(header).collect();
    route.response_headers_to_add = policy.response_headers_to_add.iter().map(header).collect();
    route.request_headers_to_remove = policy.request_headers_to_remove.clone();
    route.response_headers_to_remove = policy.response_headers_to_remove.clone();
    if let Some(cors) = &policy.cors {
        route.typed_per_filter_config.insert(CORS_FILTER.into(), to_any(&cors_policy(cors)));
    }
    match &policy.error_responses {
        ErrorResponses::Inherit => {}
        ErrorResponses::Bypass => {
            let disabled = FilterConfig { disabled: true, ..Default::default() };
            route.typed_per_filter_config.insert(CUSTOM_RESPONSE_FILTER.into(), to_any(&disabled));
        }
        ErrorResponses::Override(rules) => {
            route.typed_per_filter_config.insert(CUSTOM_RESPONSE_FILTER.into(), to_any(&custom_response(rules)));
        }
    }
}

fn header(header: &HeaderToAdd) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue { key: header.name.clone(), value: header.value.clone(), ..Default::default() }),
        append_action: if header.append {
            HeaderAppendAction::AppendIfExistsOrAdd
        } else {
            HeaderAppendAction::OverwriteIfExistsOrAdd
        } as i32,
        ..Default::default()
    }
}

fn cors_policy(cors: &Cors) -> CorsPolicy {
    CorsPolicy {
        allow_origin_string_match: cors
            .origins
            .iter()
            .map(|origin| StringMatcher {
                match_pattern: Some(MatchPattern::Exact(origin.clone())),
                ignore_case: false,
            })
            .collect(),
        allow_methods: cors.methods.clone().unwrap_or_default(),
        allow_headers: cors.headers.clone().unwrap_or_default(),
        expose_headers: cors.exposed_headers.clone().unwrap_or_default(),
        max_age: cors.max_age.clone().unwrap_or_default(),
        allow_credentials: cors.credentials.then_some(BoolValue { value: true }),
        filter_enabled: Some(RuntimeFractionalPercent {
            default_value: Some(FractionalPercent { numerator: 100, denominator: DenominatorType::Hundred as i32 }),
            runtime_key: cors.runtime_key.clone(),
        }),
        ..Default::default()
    }
}
