//! `verify_spiffe_id`: the upstream must present a certificate that chains to the TLSContext's
//! CA *and* carries a given SPIFFE ID as a URI SAN, so Envoy talks to the service it meant to and
//! not to whatever else the mesh CA signed. Emissary never checked the sidecar it talked to.
//!
//! `verify_spiffe_id: spiffe://...` is matched exactly. `verify_spiffe_id: true` derives the ID
//! the way Consul Connect names services, from the client certificate Consul issued to
//! Ambassador (`spiffe://<trust domain>[/ap/<partition>]/ns/<namespace>/dc/<dc>/svc/ambassador`):
//! the same trust domain, partition and namespace, the datacenter of the Mapping's ConsulResolver
//! (else the certificate's), and the Mapping's service.

use crate::model::mapping::SpiffeIdSetting;

/// The SPIFFE ID the upstream must present, or why none can be checked.
pub fn upstream_spiffe_id(
    setting: &SpiffeIdSetting,
    client_uri_sans: &[String],
    service: &str,
    datacenter: Option<&str>,
) -> Result<Option<String>, String> {
    match setting {
        SpiffeIdSetting::Derived(false) => Ok(None),
        SpiffeIdSetting::Exact(id) => {
            check_spiffe_id(id)?;
            Ok(Some(id.clone()))
        }
        SpiffeIdSetting::Derived(true) => {
            let own = client_uri_sans.iter().find_map(|san| ConsulId::parse(san)).ok_or_else(|| {
                "`verify_spiffe_id: true` derives the upstream's ID from the TLSContext's client certificate, which has no Consul SPIFFE ID (spiffe://<trust domain>/ns/<ns>/dc/<dc>/svc/<service>); give the ID instead".to_string()
            })?;
            let id = ConsulId { datacenter: datacenter.unwrap_or(own.datacenter), service, ..own };
            Ok(Some(id.to_string()))
        }
    }
}

/// `spiffe://<trust domain>/<path>`, as the SPIFFE spec allows it.
fn check_spiffe_id(id: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("`verify_spiffe_id: {id}` is not a SPIFFE ID: {why}"));
    let Some(rest) = id.strip_prefix("spiffe://") else { return bad("it must start with spiffe://") };
    let (domain, path) = rest.split_once('/').unwrap_or((rest, ""));
    let domain_ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_');
    if domain.is_empty() || !domain.chars().all(domain_ok) {
        return bad("the trust domain is lowercase letters, digits, `.`, `-` and `_`");
    }
    let segment_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if !path.is_empty() && path.split('/').any(|s| s.is_empty() || s == "." || s == ".." || !s.chars().all(segment_ok))
    {
        return bad("path segments are letters, digits, `.`, `-` and `_`, not empty, `.` or `..`");
    }
    Ok(())
}

/// A Consul Connect service identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConsulId<'a> {
    trust_domain: &'a str,
    partition: Option<&'a str>,
    namespace: &'a str,
    datacenter: &'a str,
    service: &'a str,
}

impl<'a> ConsulId<'a> {
    fn parse(uri: &'a str) -> Option<ConsulId<'a>> {
        let rest = uri.strip_prefix("spiffe://")?;
        let (trust_domain, path) = rest.split_once('/')?;
        let segments: Vec<&str> = path.split('/').collect();
        let (partition, rest) = match segments.as_slice() {
            ["ap", partition, rest @ ..] => (Some(*partition), rest),
            rest => (None, rest),
        };
        match rest {
            ["ns", namespace, "dc", datacenter, "svc", service] => {
                Some(ConsulId { trust_domain, partition, namespace, datacenter, service })
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for ConsulId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "spiffe://{}", self.trust_domain)?;
        if let Some(partition) = self.partition {
            write!(f, "/ap/{partition}")?;
        }
        write!(f, "/ns/{}/dc/{}/svc/{}", self.namespace, self.datacenter, self.service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/ambassador";

    #[test]
    fn derived_ids_keep_the_trust_domain_and_take_the_service_and_datacenter() {
        let sans = vec!["https://example.com".to_string(), OWN.to_string()];
        let derived = upstream_spiffe_id(&SpiffeIdSetting::Derived(true), &sans, "qotm", None).unwrap();
        assert_eq!(
            derived.as_deref(),
            Some("spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/qotm")
        );
        let other_dc = upstream_spiffe_id(&SpiffeIdSetting::Derived(true), &sans, "qotm", Some("dc2")).unwrap();
        assert!(other_dc.unwrap().ends_with("/dc/dc2/svc/qotm"));
        let partitioned = vec!["spiffe://td.consul/ap/team/ns/web/dc/dc1/svc/ambassador".to_string()];
        let id = upstream_spiffe_id(&SpiffeIdSetting::Derived(true), &partitioned, "api", None).unwrap();
        assert_eq!(id.as_deref(), Some("spiffe://td.consul/ap/team/ns/web/dc/dc1/svc/api"));
        assert!(upstream_spiffe_id(&SpiffeIdSetting::Derived(true), &[], "qotm", None).is_err());
        assert_eq!(upstream_spiffe_id(&SpiffeIdSetting::Derived(false), &sans, "qotm", None), Ok(None));
    }

    #[test]
    fn exact_ids_must_be_spiffe_ids() {
        let exact = |id: &str| upstream_spiffe_id(&SpiffeIdSetting::Exact(id.into()), &[], "x", None);
        assert!(exact("spiffe://cluster.local/ns/default/sa/productpage").is_ok());
        assert!(exact("spiffe://example.org").is_ok());
        for bad in
            ["https://x/y", "spiffe://", "spiffe://Upper/x", "spiffe://td//x", "spiffe://td/a/../b", "spiffe://td/a b"]
        {
            assert!(exact(bad).is_err(), "{bad}");
        }
    }
}
