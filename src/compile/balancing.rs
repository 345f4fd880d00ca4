//! `load_balancer:` → Envoy's `lb_policy` on the cluster and, for the hashing policies, a
//! `hash_policy` on the route, with Emissary's rules: `round_robin` and `least_request` take
//! nothing else; `ring_hash` and `maglev` take exactly one of `cookie` (with a `name`), `header`
//! or `source_ip`. Anything else invalidates the Mapping.

use super::ir::{HashPolicy, LbPolicy};
use crate::model::mapping::LoadBalancer;

/// A Mapping's load balancing, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balancing {
    pub policy: LbPolicy,
    pub hash: Option<HashPolicy>,
    /// Emissary's cluster name field: `er-<policy>[-hdr-<header>][-cookie-<name>][-srcip]`.
    pub name_field: String,
}

pub fn balancing(lb: &LoadBalancer) -> Result<Balancing, String> {
    let policy_name = lb.policy.as_deref().ok_or("`load_balancer` needs a `policy`")?;
    let policy = match policy_name {
        "round_robin" => LbPolicy::RoundRobin,
        "least_request" => LbPolicy::LeastRequest,
        "ring_hash" => LbPolicy::RingHash,
        "maglev" => LbPolicy::Maglev,
        other => {
            return Err(format!(
                "`load_balancer.policy: {other}` is not one of round_robin, least_request, ring_hash, maglev"
            ))
        }
    };
    let given = [lb.cookie.is_some(), lb.header.is_some(), lb.source_ip.is_some()].iter().filter(|g| **g).count();
    let hash = match policy {
        LbPolicy::RoundRobin | LbPolicy::LeastRequest if given > 0 => {
            return Err(format!("`load_balancer.policy: {policy_name}` takes no `cookie`, `header` or `source_ip`"))
        }
        LbPolicy::RoundRobin | LbPolicy::LeastRequest => None,
        LbPolicy::RingHash | LbPolicy::Maglev if given != 1 => {
            return Err(format!(
                "`load_balancer.policy: {policy_name}` hashes on exactly one of `cookie`, `header` or `source_ip`"
            ))
        }
        LbPolicy::RingHash | LbPolicy::Maglev => Some(hash_policy(lb)?),
    };
    let mut fields = vec!["er".to_string(), policy_name.to_string()];
    if let Some(header) = &lb.header {
        fields.extend(["hdr".to_string(), header.clone()]);
    }
    if let Some(cookie) = &lb.cookie {
        fields.extend(["cookie".to_string(), cookie.name.clone().unwrap_or_default()]);
    }
    if lb.source_ip.is_some() {
        fields.push("srcip".to_string());
    }
    Ok(Balancing { policy, hash, name_field: fields.join("-") })
}

fn hash_policy(lb: &LoadBalancer) -> Result<HashPolicy, String> {
    if let Some(cookie) = &lb.cookie {
        let name = cookie.name.clone().filter(|n| !n.is_empty()).ok_or("`load_balancer.cookie` needs a `name`")?;
        let ttl_ms = cookie.ttl.as_deref().map(parse_duration_ms).transpose()?;
        return Ok(HashPolicy::Cookie { name, path: cookie.path.clone(), ttl_ms });
    }
    if let Some(header) = &lb.header {
        if header.is_empty() {
            return Err("`load_balancer.header` is empty".into());
        }
        // As written: Envoy compares header names ignoring case.
        return Ok(HashPolicy::Header(header.clone()));
    }
    Ok(HashPolicy::SourceIp(lb.source_ip.unwrap_or(false)))
}

/// A protobuf JSON duration (`10s`, `0.5s`), the only form Envoy reads from Emissary's output.
fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let bad = || format!("`load_balancer.cookie.ttl: {text}` is not a duration in seconds such as `10s` or `0.5s`");
    let number = text.strip_suffix('s').ok_or_else(bad)?;
    let (whole, fraction) = number.split_once('.').map_or((number, None), |(w, f)| (w, Some(f)));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f) || f.len() > 9) {
        return Err(bad());
    }
    let seconds: u64 = whole.parse().map_err(|_| bad())?;
    let millis: u64 = format!("{:0<3}", fraction.unwrap_or(""))[..3].parse().map_err(|_| bad())?;
    seconds.checked_mul(1000).and_then(|ms| ms.checked_add(millis)).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::mapping::LoadBalancerCookie;

    fn lb(policy: &str) -> LoadBalancer {
        LoadBalancer { policy: Some(policy.into()), ..Default::default() }
    }

    #[test]
    fn emissary_validation() {
        assert_eq!(balancing(&lb("round_robin")).unwrap().policy, LbPolicy::RoundRobin);
        assert!(balancing(&LoadBalancer { header: Some("x".into()), ..lb("least_request") }).is_err());
        assert!(balancing(&lb("ring_hash")).is_err());
        assert!(balancing(&lb("random")).unwrap_err().contains("not one of"));
        let both = LoadBalancer { header: Some("x".into()), source_ip: Some(true), ..lb("maglev") };
        assert!(balancing(&both).is_err());
        let nameless = LoadBalancer { cookie: Some(LoadBalancerCookie::default()), ..lb("ring_hash") };
        assert!(balancing(&nameless).unwrap_err().contains("name"));
    }

    #[test]
    fn hash_policies_and_cluster_name_fields() {
        let header = balancing(&LoadBalancer { header: Some("X-User".into()), ..lb("ring_hash") }).unwrap();
        assert_eq!(header.hash, Some(HashPolicy::Header("X-User".into())));
        assert_eq!(header.name_field, "er-ring_hash-hdr-X-User");
        let cookie = LoadBalancerCookie { name: Some("sticky".into()), path: None, ttl: Some("1.5s".into()) };
        let cookie = balancing(&LoadBalancer { cookie: Some(cookie), ..lb("maglev") }).unwrap();
        assert_eq!(cookie.hash, Some(HashPolicy::Cookie { name: "sticky".into(), path: None, ttl_ms: Some(1500) }));
        assert_eq!(cookie.name_field, "er-maglev-cookie-sticky");
        let source = balancing(&LoadBalancer { source_ip: Some(true), ..lb("ring_hash") }).unwrap();
        assert_eq!((source.hash, source.name_field.as_str()), (Some(HashPolicy::SourceIp(true)), "er-ring_hash-srcip"));
    }

    #[test]
    fn cookie_ttls_are_protobuf_durations() {
        assert_eq!(parse_duration_ms("10s"), Ok(10_000));
        assert_eq!(parse_duration_ms("0.25s"), Ok(250));
        for bad in ["10", "1m", "s", ".5s", "1.s", "-1s", "1.0000000001s"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
