//! `service: [scheme://]host[:port]` as Emissary reads it.

use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// A parsed `service`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub scheme: Option<Scheme>,
    /// Lowercased, namespace-qualified where Emissary qualifies it; IPv6 without brackets.
    pub host: String,
    /// The port as written; the default (80/443) depends on TLS and is applied by the caller.
    pub port: Option<u16>,
}

impl Service {
    /// The service as it appears in cluster names: `[scheme://]host[:port]`, as written but
    /// normalized (lowercase host, namespace qualification), exactly like Emissary.
    pub fn normalized(&self) -> String {
        let scheme = match self.scheme {
            None => "",
            Some(Scheme::Http) => "http://",
            Some(Scheme::Https) => "https://",
        };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        match self.port {
            Some(port) => format!("{scheme}{host}:{port}"),
            None => format!("{scheme}{host}"),
        }
    }

    /// `host[:port]` as written (no scheme): what Emissary names a cluster's stats after.
    pub fn without_scheme(&self) -> String {
        let normalized = self.normalized();
        match normalized.split_once("://") {
            Some((_, rest)) => rest.to_string(),
            None => normalized,
        }
    }

    /// `host:port`, the port defaulting by scheme only (Emissary's `hostname_port`, which
    /// `add_linkerd_headers` sends).
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port_or_default(self.scheme == Some(Scheme::Https)))
    }

    /// Whether the host is a DNS name (and so usable as SNI) rather than an IP literal.
    pub fn is_dns_name(&self) -> bool {
        self.host.parse::<IpAddr>().is_err()
    }

    pub fn port_or_default(&self, tls: bool) -> u16 {
        self.port.unwrap_or(if tls { 443 } else { 80 })
    }
}

/// Parses a Mapping's `service`. A bare host (no `.`, not `localhost`) from a Mapping outside
/// Ambassador's namespace gets `.<mapping namespace>` appended, as Emissary does, so it resolves
/// from Envoy's namespace (unless the Module's `use_ambassador_namespace_for_service_resolution`
/// turns that off: `qualify` false). A path, query or fragment after the host is ignored with a
/// warning, as Emissary ignores it (its docs write `https://upstream/`).
pub fn parse_service(
    text: &str,
    mapping_namespace: &str,
    ambassador_namespace: &str,
    qualify: bool,
) -> Result<(Service, Option<String>), String> {
    let text = text.trim();
    let (scheme, rest) = match text.split_once("://") {
        None => (None, text),
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "http" => (Some(Scheme::Http), rest),
            "https" => (Some(Scheme::Https), rest),
            other => return Err(format!("unsupported scheme `{other}://` (expected http:// or https://)")),
        },
    };
    // `//host:port` is a URL without a scheme, as Emissary's URL parser reads it.
    let rest = if scheme.is_none() { rest.strip_prefix("//").unwrap_or(rest) } else { rest };
    let (authority, warning) = match rest.find(['/', '?', '#']) {
        None => (rest, None),
        Some(at) => {
            let warning = format!(
                "`service: {text}` has more than a host and port; `{}` is ignored, as Emissary ignores it",
                &rest[at..]
            );
            (&rest[..at], Some(warning))
        }
    };
    let (host, port) = split_host_port(authority)?;
    if host.is_empty() {
        return Err("no host".to_string());
    }
    let is_ipv6 = host.contains(':');
    if !is_ipv6 && !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_') {
        return Err(format!("`{host}` is not a valid host name"));
    }
    let mut host = host.to_ascii_lowercase();
    let qualified = host.contains('.') || is_ipv6 || host == "localhost";
    if qualify && !qualified && mapping_namespace != ambassador_namespace {
        host = format!("{host}.{mapping_namespace}");
    }
    Ok((Service { scheme, host, port }, warning))
}

fn split_host_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or("unterminated `[` in IPv6 address")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`[{host}]` is not an IPv6 address"));
        }
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("expected `:port` after `]`")?)),
        }
    } else {
        match text.matches(':').count() {
            0 => (text, None),
            1 => {
                let (host, port) = text.split_once(':').unwrap();
                (host, Some(port))
            }
            _ => return Err("IPv6 addresses must be written in brackets, as [addr]:port".to_string()),
        }
    };
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("`{port}` is not a port number (1-65535)")),
            Ok(port) => Some(port),
        },
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, ns: &str) -> Result<Service, String> {
        parse_service(text, ns, "default", true).map(|(service, _)| service)
    }

    #[test]
    fn scheme_host_port() {
        let svc = parse("https://Productpage:9080", "default").unwrap();
        assert_eq!(svc, Service { scheme: Some(Scheme::Https), host: "productpage".into(), port: Some(9080) });
        assert_eq!(svc.normalized(), "https://productpage:9080");
    }

    #[test]
    fn default_ports_depend_on_tls() {
        let svc = parse("upstream-service", "default").unwrap();
        assert_eq!(svc.port_or_default(false), 80);
        assert_eq!(svc.port_or_default(true), 443);
    }

    #[test]
    fn bare_hosts_outside_ambassador_namespace_are_qualified() {
        assert_eq!(parse("backoffice", "otherns").unwrap().host, "backoffice.otherns");
        assert_eq!(parse("backoffice", "default").unwrap().host, "backoffice");
        assert_eq!(parse("backoffice.shop", "otherns").unwrap().host, "backoffice.shop");
        assert_eq!(parse("localhost:8080", "otherns").unwrap().host, "localhost");
        assert_eq!(parse("http://backoffice:80", "otherns").unwrap().normalized(), "http://backoffice.otherns:80");
    }

    #[test]
    fn ipv6_needs_brackets() {
        let svc = parse("[::1]:8443", "otherns").unwrap();
        assert_eq!((svc.host.as_str(), svc.port), ("::1", Some(8443)));
        assert!(!svc.is_dns_name());
        assert_eq!(svc.normalized(), "[::1]:8443");
        assert!(parse("::1:8443", "default").is_err());
    }

    #[test]
    fn paths_are_ignored_with_a_warning_as_emissary_does() {
        let (svc, warning) = parse_service("https://upstream/", "default", "default", true).unwrap();
        assert_eq!((svc.scheme, svc.host.as_str(), svc.port_or_default(true)), (Some(Scheme::Https), "upstream", 443));
        assert!(warning.unwrap().contains("`/` is ignored"));
        let (svc, warning) = parse_service("foo:8080/x?y#z", "default", "default", true).unwrap();
        assert_eq!((svc.host.as_str(), svc.port), ("foo", Some(8080)));
        assert!(warning.is_some());
        assert!(parse_service("upstream", "default", "default", true).unwrap().1.is_none());
        assert_eq!(parse("//foo.ns:1234", "otherns").unwrap().normalized(), "foo.ns:1234");
        assert_eq!(parse_service("svc", "other", "default", false).unwrap().0.host, "svc", "not qualified");
    }

    #[test]
    fn rejects_bad_ports_and_schemes() {
        assert!(parse("/x", "default").is_err());
        assert!(parse("foo:http", "default").unwrap_err().contains("port"));
        assert!(parse("foo:70000", "default").is_err());
        assert!(parse("grpc://foo", "default").unwrap_err().contains("scheme"));
        assert!(parse("", "default").is_err());
    }
}
