//! What a route does with a request: forward it to a cluster (rewrites, timeouts, retries,
//! upgrades, a mirror, what a hashing load balancer hashes on), redirect it (as the Mapping says,
//! or to `https://` for a Host's insecure action), or answer directly (fail closed).

use super::matcher::regex;
use crate::compile::ir::{
    Forward, HashPolicy as IrHashPolicy, Redirect, RedirectCode, RedirectPath, RegexRewrite, RouteAction as IrAction,
};
use crate::xds::{millis, to_duration};
use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource, RoutingPriority, RuntimeFractionalPercent};
use envoy_types::pb::envoy::config::route::v3::{
    redirect_action, route, route_action, DirectResponseAction, RedirectAction, RetryPolicy, RouteAction,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};

pub fn build_action(ir: &IrAction) -> route::Action {
    match ir {
        IrAction::Forward(forward) => route::Action::Route(build_forward(forward)),
        IrAction::Redirect(redirect) => route::Action::Redirect(build_redirect(redirect)),
        IrAction::HttpsRedirect => route::Action::Redirect(RedirectAction {
            scheme_rewrite_specifier: Some(redirect_action::SchemeRewriteSpecifier::HttpsRedirect(true)),
            ..Default::default()
        }),
        IrAction::FailClosed { status, body } => route::Action::DirectResponse(DirectResponseAction {
            status: *status,
            body: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineString(body.clone())),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn regex_rewrite(rewrite: &RegexRewrite) -> RegexMatchAndSubstitute {
    RegexMatchAndSubstitute { pattern: Some(regex(&rewrite.pattern)), substitution: rewrite.substitution.clone() }
}

fn build_forward(forward: &Forward) -> RouteAction {
    RouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(forward.cluster.clone())),
        prefix_rewrite: forward.prefix_rewrite.clone().unwrap_or_default(),
        regex_rewrite: forward.regex_rewrite.as_ref().map(regex_rewrite),
        timeout: Some(millis(forward.timeout_ms)),
        idle_timeout: forward.idle_timeout_ms.map(millis),
        host_rewrite_specifier: match (&forward.host_rewrite, forward.auto_host_rewrite) {
            (Some(host), _) => Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(host.clone())),
            (None, true) => Some(route_action::HostRewriteSpecifier::AutoHostRewrite(BoolValue { value: true })),
            (None, false) => None,
        },
        retry_policy: forward.retry.as_ref().map(|retry| RetryPolicy {
            retry_on: retry.retry_on.clone(),
            num_retries: retry.num_retries.map(|value| UInt32Value { value }),
            per_try_timeout: retry.per_try_timeout.map(to_duration),
            ..Default::default()
        }),
        upgrade_configs: forward
            .upgrades
            .iter()
            .map(|upgrade| route_action::UpgradeConfig { upgrade_type: upgrade.clone(), ..Default::default() })
            .collect(),
        request_mirror_policies: forward
            .mirror
            .iter()
            .map(|mirror| route_action::RequestMirrorPolicy {
                cluster: mirror.cluster.clone(),
                runtime_fraction: Some(RuntimeFractionalPercent {
                    default_value: Some(FractionalPercent {
                        numerator: mirror.percent,
                        denominator: DenominatorType::Hundred as i32,
                    }),
                    runtime_key: String::new(),
                }),
                ..Default::default()
            })
            .collect(),
        priority: if forward.high_priority { RoutingPriority::High } else { RoutingPriority::Default } as i32,
        hash_policy: forward.hash_policy.as_deref().map(build_hash_policy).into_iter().collect(),
        ..Default::default()
    }
}

fn build_hash_policy(policy: &IrHashPolicy) -> route_action::HashPolicy {
    use route_action::hash_policy::{ConnectionProperties, Cookie, Header, PolicySpecifier};
    let specifier = match policy {
        IrHashPolicy::Cookie { name, path, ttl_ms } => PolicySpecifier::Cookie(Cookie {
            name: name.clone(),
            ttl: ttl_ms.map(millis),
            path: path.clone().unwrap_or_default(),
            ..Default::default()
        }),
        IrHashPolicy::Header(name) => {
            PolicySpecifier::Header(Header { header_name: name.clone(), ..Default::default() })
        }
        IrHashPolicy::SourceIp(source_ip) => {
            PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: *source_ip })
        }
    };
    route_action::HashPolicy { policy_specifier: Some(specifier), terminal: false }
}

fn build_redirect(redirect: &Redirect) -> RedirectAction {
    use redirect_action::PathRewriteSpecifier;
    RedirectAction {
        host_redirect: redirect.host.clone(),
        scheme_rewrite_specifier: redirect
            .https
            .then_some(redirect_action::SchemeRewriteSpecifier::HttpsRedirect(true)),
        path_rewrite_specifier: match &redirect.path {
            RedirectPath::Keep => None,
            RedirectPath::Path(path) => Some(PathRewriteSpecifier::PathRedirect(path.clone())),
            RedirectPath::Prefix(prefix) => Some(PathRewriteSpecifier::PrefixRewrite(prefix.clone())),
            RedirectPath::Regex(rewrite) => Some(PathRewriteSpecifier::RegexRewrite(regex_rewrite(rewrite))),
        },
        response_code: match redirect.response_code {
            RedirectCode::MovedPermanently => redirect_action::RedirectResponseCode::MovedPermanently,
            RedirectCode::Found => redirect_action::RedirectResponseCode::Found,
            RedirectCode::SeeOther => redirect_action::RedirectResponseCode::SeeOther,
            RedirectCode::TemporaryRedirect => redirect_action::RedirectResponseCode::TemporaryRedirect,
            RedirectCode::PermanentRedirect => redirect_action::RedirectResponseCode::PermanentRedirect,
        } as i32,
        ..Default::default()
    }
}
