//! Bytes that may be key material. The type has no `Display`, and its `Debug` prints only the
//! length, so no diagnostic, log line or `{:?}` can carry a key, whoever formats it.

use std::fmt;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Sensitive(Vec<u8>);

impl Sensitive {
    pub fn new(bytes: Vec<u8>) -> Sensitive {
        Sensitive(bytes)
    }

    /// The bytes themselves: only for checking them and for the SDS resource that carries them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[redacted {} bytes]", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_bytes() {
        let key = Sensitive::new(b"-----BEGIN PRIVATE KEY-----\nMIIE\n".to_vec());
        let shown = format!("{key:?} {:?} {:#?}", Some(&key), vec![key.clone()]);
        assert!(!shown.contains("PRIVATE") && !shown.contains("MIIE"), "{shown}");
        assert!(shown.contains("[redacted 33 bytes]"), "{shown}");
    }
}
