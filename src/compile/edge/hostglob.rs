//! Host globs, as Emissary compares them: whether a Host's `hostname` and a Mapping's host could
//! both match some name. A glob is a DNS name, `*` (everything), or a name with `*` as its whole
//! first label (`*.example.com`, any prefix) or last label (`example.*`, any suffix); the `*` never
//! matches the empty string.

/// Whether some host name matches both globs. Case-insensitive (host names are).
pub fn compatible(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    if a == b || a == "*" || b == "*" {
        return true;
    }
    if a.is_empty() || b.is_empty() || a.starts_with('.') || b.starts_with('.') {
        return false;
    }
    let ends = |g: &str| (g.starts_with('*'), g.ends_with('*'));
    let ((a_start, a_end), (b_start, b_end)) = (ends(&a), ends(&b));
    if (a_start && a_end) || (b_start && b_end) {
        // `*` at both ends is not a glob Envoy knows: only an identical one can match it.
        return false;
    }
    match (a_start || a_end, b_start || b_end) {
        (false, false) => false,
        // One leading, one trailing wildcard: `*.example.com` and `api.*` share `api.example.com`.
        _ if (a_start && b_end) || (b_start && a_end) => true,
        _ if a_start => suffix_compatible(&a[1..], &b, b_start),
        _ if b_start => suffix_compatible(&b[1..], &a, a_start),
        _ if a_end => prefix_compatible(&a[..a.len() - 1], &b, b_end),
        _ => prefix_compatible(&b[..b.len() - 1], &a, a_end),
    }
}

/// `*<suffix>` against `other` (itself `*<...>` when `other_wild`).
fn suffix_compatible(suffix: &str, other: &str, other_wild: bool) -> bool {
    if other_wild {
        let other = &other[1..];
        return other.ends_with(suffix) || suffix.ends_with(other);
    }
    // The `*` matches at least one character.
    other.len() > suffix.len() && other.ends_with(suffix)
}

/// `<prefix>*` against `other` (itself `<...>*` when `other_wild`).
fn prefix_compatible(prefix: &str, other: &str, other_wild: bool) -> bool {
    if other_wild {
        let other = &other[..other.len() - 1];
        return other.starts_with(prefix) || prefix.starts_with(other);
    }
    other.len() > prefix.len() && other.starts_with(prefix)
}

/// Longest DNS name.
const MAX_NAME: usize = 253;

/// Whether `hostname` is a glob Envoy's virtual hosts can serve: `*`, a name, or a name with a
/// leading or trailing `*` (`*.example.com`, `*-api.example.com`, `api.*`), at most as long as a
/// DNS name.
pub fn is_valid(hostname: &str) -> bool {
    if hostname == "*" {
        return true;
    }
    if hostname.len() > MAX_NAME {
        return false;
    }
    let inner = hostname.strip_prefix('*').or_else(|| hostname.strip_suffix('*')).unwrap_or(hostname);
    !inner.is_empty()
        && !inner.contains('*')
        && inner.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// The SNI names a TLS filter chain for `hostname` matches (empty: every name), or `None` when
/// SNI cannot express it: Envoy's `server_names` take exact names and `*.`-prefixed wildcards only.
pub fn server_names(hostname: &str) -> Option<Vec<String>> {
    let hostname = hostname.to_ascii_lowercase();
    if hostname == "*" {
        return Some(Vec::new());
    }
    let rest = hostname.strip_prefix("*.").unwrap_or(&hostname);
    (!rest.contains('*')).then(|| vec![hostname.clone()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_overlap_as_emissary_computes_it() {
        assert!(compatible("*", "anything.example.com"));
        assert!(compatible("a.example.com", "A.Example.com"));
        assert!(!compatible("a.example.com", "b.example.com"));
        assert!(compatible("*.example.com", "a.example.com"));
        assert!(!compatible("*.example.com", "example.com"), "the wildcard matches at least one character");
        assert!(compatible("*.example.com", "*.a.example.com"));
        assert!(compatible("*example.com", "*.example.com"));
        assert!(compatible("api.*", "*.example.com"));
        assert!(compatible("api.*", "api.example.com"));
        assert!(!compatible("api.*", "web.example.com"));
        assert!(compatible("api.*", "api.example.*"));
        assert!(!compatible("*.a.*", "x.a.y"));
    }

    #[test]
    fn valid_globs() {
        for good in ["*", "example.com", "*.example.com", "*-api.example.com", "api.*", "localhost"] {
            assert!(is_valid(good), "{good}");
        }
        for bad in ["", "a.*.com", "*.*", "a b", "a.com:*", "**"] {
            assert!(!is_valid(bad), "{bad}");
        }
        assert!(is_valid(&format!("{}.com", "a".repeat(249))));
        assert!(!is_valid(&format!("{}.com", "a".repeat(250))));
    }

    #[test]
    fn sni_takes_exact_names_and_leading_label_wildcards() {
        assert_eq!(server_names("*"), Some(vec![]));
        assert_eq!(server_names("A.Example.com"), Some(vec!["a.example.com".to_string()]));
        assert_eq!(server_names("*.example.com"), Some(vec!["*.example.com".to_string()]));
        assert_eq!(server_names("api.*"), None);
        assert_eq!(server_names("*-api.example.com"), None);
    }
}
