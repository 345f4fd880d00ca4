//! Envoy names derived from source identity, so golden diffs and Envoy stats read well.

use sha1::{Digest, Sha1};
use std::collections::{BTreeMap, HashMap};

/// Envoy stats break up names on non-word characters; Emissary keeps cluster names to
/// `[A-Za-z0-9_]` and so do we, so users' dashboards keep working after a migration.
pub fn mangle(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// `cluster_<service>[_otls][_<context>][_hr-<host_rewrite>]_<namespace>`, mangled.
pub fn cluster_name(fields: &[&str]) -> String {
    let mut parts = vec!["cluster"];
    parts.extend(fields.iter().copied().filter(|f| !f.is_empty()));
    mangle(&parts.join("_"))
}

/// Longest cluster name Emissary lets through unchanged.
pub const MAX_CLUSTER_NAME: usize = 60;

/// Emissary's rule for names over 60 characters: the first 40 characters, `-`, the first 16
/// upper-case hex digits of the SHA-1 of the full name, and `-<i>` numbering the full names that
/// share that short form (in sorted order). Returns full name → Envoy name for the names it
/// shortens; every other name is its own Envoy name.
pub fn shorten_long_cluster_names<'a>(names: impl IntoIterator<Item = &'a str>) -> HashMap<String, String> {
    let mut result = HashMap::new();
    let mut by_short: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for name in names {
        if name.len() > MAX_CLUSTER_NAME {
            let digest = hex::encode_upper(Sha1::digest(name.as_bytes()));
            by_short.entry(format!("{}-{}", &name[..40], &digest[..16])).or_default().push(name);
        }
    }
    for (short, mut full_names) in by_short {
        full_names.sort_unstable();
        full_names.dedup();
        for (index, full) in full_names.into_iter().enumerate() {
            result.insert(full.to_string(), format!("{short}-{index}"));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emissary_examples() {
        assert_eq!(cluster_name(&["bar-0.example.com:6666", "bar0"]), "cluster_bar_0_example_com_6666_bar0");
        assert_eq!(cluster_name(&["https://foo:8443", "otls", "", "default"]), "cluster_https___foo_8443_otls_default");
        assert_eq!(cluster_name(&["foo", "otls", "ctx1", "default"]), "cluster_foo_otls_ctx1_default");
    }

    #[test]
    fn long_names_are_hashed_to_59_characters() {
        let long = cluster_name(&["a-very-long-service-name.with-a-namespace.svc.cluster.local:8443", "default"]);
        assert!(long.len() > 60);
        let short = &shorten_long_cluster_names([long.as_str()])[&long];
        assert_eq!(short.len(), 59);
        assert!(short.starts_with(&long[..40]));
        assert!(short.ends_with("-0"));
        let digest = hex::encode_upper(Sha1::digest(long.as_bytes()));
        assert_eq!(&short[41..57], &digest[..16]);
    }

    #[test]
    fn sixty_characters_stay() {
        let exact = "c".repeat(60);
        assert!(shorten_long_cluster_names([exact.as_str()]).is_empty());
    }
}
