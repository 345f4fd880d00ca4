//! `host_redirect`: the route answers with a redirect to the Mapping's `service` instead of
//! proxying, with `path_redirect`, `prefix_redirect` or `regex_redirect` (in that order of
//! preference, as Emissary prefers them) and `redirect_response_code`.

use super::ir::{Redirect, RedirectCode, RedirectPath, RegexRewrite};
use super::service::{Scheme, Service};
use crate::model::MappingSpec;

/// The redirect, and warnings for what Emissary reports and ignores.
pub fn redirect(spec: &MappingSpec, service: &Service) -> (Redirect, Vec<String>) {
    let mut warnings = Vec::new();
    let given: Vec<&str> = [
        spec.path_redirect.as_ref().map(|_| "path_redirect"),
        spec.prefix_redirect.as_ref().map(|_| "prefix_redirect"),
        spec.regex_redirect.as_ref().map(|_| "regex_redirect"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let [used, ignored @ ..] = given.as_slice() {
        for ignored in ignored {
            warnings.push(format!(
                "both `{used}` and `{ignored}` are set; `{used}` is used and `{ignored}` ignored, as in Emissary"
            ));
        }
    }
    let path = if let Some(path) = &spec.path_redirect {
        RedirectPath::Path(path.clone())
    } else if let Some(prefix) = &spec.prefix_redirect {
        RedirectPath::Prefix(prefix.clone())
    } else if let Some(regex) = &spec.regex_redirect {
        RedirectPath::Regex(RegexRewrite { pattern: regex.pattern.clone(), substitution: regex.substitution.clone() })
    } else {
        RedirectPath::Keep
    };
    let response_code = match spec.redirect_response_code {
        None | Some(301) => RedirectCode::MovedPermanently,
        Some(302) => RedirectCode::Found,
        Some(303) => RedirectCode::SeeOther,
        Some(307) => RedirectCode::TemporaryRedirect,
        Some(308) => RedirectCode::PermanentRedirect,
        Some(other) => {
            warnings.push(format!(
                "`redirect_response_code: {other}` is not 301, 302, 303, 307 or 308; 301 is used, as in Emissary"
            ));
            RedirectCode::MovedPermanently
        }
    };
    // Emissary puts the service, scheme and all, into Envoy's host; the scheme is what it means.
    let host = match service.port {
        Some(port) if service.host.contains(':') => format!("[{}]:{port}", service.host),
        Some(port) => format!("{}:{port}", service.host),
        None => service.host.clone(),
    };
    let redirect = Redirect { host, https: service.scheme == Some(Scheme::Https), path, response_code };
    (redirect, warnings)
}

/// Redirect fields on a Mapping without `host_redirect`: Emissary reads them only from a
/// redirecting Mapping.
pub fn stray_fields(spec: &MappingSpec) -> Vec<&'static str> {
    [
        spec.path_redirect.as_ref().map(|_| "path_redirect"),
        spec.prefix_redirect.as_ref().map(|_| "prefix_redirect"),
        spec.regex_redirect.as_ref().map(|_| "regex_redirect"),
        spec.redirect_response_code.map(|_| "redirect_response_code"),
    ]
    .into_iter()
    .flatten()
    .collect()
}
