//! Versions are content hashes: the same resources give the same versions in every replica and
//! every run, and a change of content changes them.
//!
//! BLAKE3, not SHA-1: a one-Mapping change at 50,000 Mappings hashes the whole 3.9 MB route
//! table again, and with SHA-1 (even with the CPU's SHA instructions) that was a fifteenth of the
//! reload. It stays a cryptographic hash, and versions keep 128 bits of it, because Mapping authors
//! choose much of what is hashed: two contents they could make collide would be taken for one and
//! the second never pushed (at 64 bits, as the SHA-1 versions were, a birthday search for such a
//! pair takes about 2^32 hashes).

/// A version as Envoy sees it: the first 16 bytes of the hash, in hex.
#[derive(Default)]
pub struct VersionHasher(blake3::Hasher);

impl VersionHasher {
    pub fn update(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(bytes);
        self
    }

    /// A type's version: over every (name, version) of its resources, in name order.
    pub fn entry(&mut self, name: &str, version: &str) -> &mut Self {
        self.update(name.as_bytes()).update(&[0]).update(version.as_bytes()).update(&[0])
    }

    pub fn finish(&self) -> String {
        hex::encode(&self.0.finalize().as_bytes()[..16])
    }
}

/// The version of one resource: a hash of its encoding.
pub fn of_body(body: &[u8]) -> String {
    VersionHasher::default().update(body).finish()
}
