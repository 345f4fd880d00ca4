//! The one module that calls into AWS-LC's libcrypto (a fork of BoringSSL, the library Envoy
//! loads certificates with) through `aws-lc-sys`. Every `unsafe` block of the material check is
//! here, behind owned handles that free themselves; callers see safe functions only.
//!
//! Each function mirrors one step of Envoy's loading code, with the same libcrypto calls: the
//! chain is read as Envoy's `TlsContext::loadCertificateChain` reads it (first block with
//! `PEM_read_bio_X509_AUX`, the rest with `PEM_read_bio_X509`, then "did it stop at the end?"),
//! the key as `loadPrivateKey` does (`PEM_read_bio_PrivateKey` without a password), and a CA
//! bundle and a CRL as `DefaultCertValidator` does (`PEM_X509_INFO_read_bio`).

use aws_lc_sys as ffi;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr::{self, NonNull};

/// A memory BIO over borrowed bytes, freed on drop.
struct Bio(NonNull<ffi::BIO>);

impl Bio {
    fn new(bytes: &[u8]) -> Bio {
        // SAFETY: the BIO only reads `bytes`, which outlive it (it is dropped inside the caller).
        let bio = unsafe { ffi::BIO_new_mem_buf(bytes.as_ptr().cast::<c_void>(), bytes.len() as ffi::ossl_ssize_t) };
        Bio(NonNull::new(bio).expect("BIO_new_mem_buf allocates"))
    }
}

impl Drop for Bio {
    fn drop(&mut self) {
        // SAFETY: owned, freed once.
        unsafe { ffi::BIO_free(self.0.as_ptr()) };
    }
}

/// One parsed X.509 certificate.
pub struct Certificate(NonNull<ffi::X509>);

impl Drop for Certificate {
    fn drop(&mut self) {
        // SAFETY: owned, freed once.
        unsafe { ffi::X509_free(self.0.as_ptr()) };
    }
}

/// A public or private key.
pub struct Key(NonNull<ffi::EVP_PKEY>);

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: owned, freed once.
        unsafe { ffi::EVP_PKEY_free(self.0.as_ptr()) };
    }
}

/// What kind of key, in the terms Envoy's rules use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa {
        bits: u32,
    },
    /// `curve` is the OpenSSL NID of the named curve (`None` for explicit parameters).
    Ec {
        curve: Option<i32>,
    },
    Ed25519,
    /// RSA-PSS, DSA, ... (libcrypto's `EVP_PKEY_*` id).
    Other(i32),
}

pub const NID_P256: i32 = ffi::NID_X9_62_prime256v1;
pub const NID_P384: i32 = ffi::NID_secp384r1;
pub const NID_P521: i32 = ffi::NID_secp521r1;

/// A password callback that has no password: encrypted keys fail to load, as they do in Envoy
/// without `password` (and nothing ever prompts on a terminal).
unsafe extern "C" fn no_password(_buf: *mut c_char, _size: c_int, _rwflag: c_int, _userdata: *mut c_void) -> c_int {
    0
}

/// libcrypto reports failures on a thread-local queue; each read starts from an empty one.
fn clear_errors() {
    // SAFETY: no arguments, only touches this thread's queue.
    unsafe { ffi::ERR_clear_error() };
}

/// Did the last failed read stop because there was no further PEM block (a clean end)?
fn stopped_at_end() -> bool {
    // SAFETY: no arguments.
    let err = unsafe { ffi::ERR_peek_last_error() };
    // ERR_GET_LIB / ERR_GET_REASON are macros in the C headers.
    let lib = ((err >> 24) & 0xff) as i32;
    let reason = (err & 0xfff) as i32;
    lib == ffi::ERR_LIB_PEM && reason == ffi::PEM_R_NO_START_LINE
}

/// How reading a certificate chain failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainError {
    /// No certificate could be read at the start (no PEM certificate block, or it does not parse).
    NoLeaf,
    /// Certificate number `index` (counting from 1, the leaf being 1) does not parse.
    Corrupt { index: usize },
}

/// Reads a chain as Envoy does; the leaf comes first.
pub fn read_chain(pem: &[u8]) -> Result<Vec<Certificate>, ChainError> {
    clear_errors();
    let bio = Bio::new(pem);
    // SAFETY: valid BIO; a null out-pointer asks for a new object; the callback never writes.
    let leaf =
        unsafe { ffi::PEM_read_bio_X509_AUX(bio.0.as_ptr(), ptr::null_mut(), Some(no_password), ptr::null_mut()) };
    let mut chain = vec![Certificate(NonNull::new(leaf).ok_or(ChainError::NoLeaf)?)];
    loop {
        // SAFETY: as above.
        let next =
            unsafe { ffi::PEM_read_bio_X509(bio.0.as_ptr(), ptr::null_mut(), Some(no_password), ptr::null_mut()) };
        match NonNull::new(next) {
            Some(cert) => chain.push(Certificate(cert)),
            None if stopped_at_end() => break,
            None => return Err(ChainError::Corrupt { index: chain.len() + 1 }),
        }
    }
    clear_errors();
    Ok(chain)
}

/// Reads the first private key as Envoy does (no password).
pub fn read_private_key(pem: &[u8]) -> Option<Key> {
    clear_errors();
    let bio = Bio::new(pem);
    // SAFETY: valid BIO, new object, callback never writes.
    let key =
        unsafe { ffi::PEM_read_bio_PrivateKey(bio.0.as_ptr(), ptr::null_mut(), Some(no_password), ptr::null_mut()) };
    clear_errors();
    NonNull::new(key).map(Key)
}

/// What a PEM bundle read as Envoy reads CA bundles and CRLs (`PEM_X509_INFO_read_bio`) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BundleCounts {
    pub certificates: usize,
    pub crls: usize,
}

/// Reads a CA bundle or a CRL file as Envoy does (`None` when it does not parse at all).
pub fn count_bundle(pem: &[u8]) -> Option<BundleCounts> {
    clear_errors();
    let bio = Bio::new(pem);
    // SAFETY: valid BIO; a null stack asks for a new one.
    let list =
        unsafe { ffi::PEM_X509_INFO_read_bio(bio.0.as_ptr(), ptr::null_mut(), Some(no_password), ptr::null_mut()) };
    clear_errors();
    let list = NonNull::new(list)?;
    let stack = list.as_ptr().cast::<ffi::OPENSSL_STACK>();
    let mut counts = BundleCounts::default();
    // SAFETY: `stack` is the X509_INFO stack just returned; items are X509_INFO pointers.
    unsafe {
        let len = ffi::OPENSSL_sk_num(stack);
        for i in 0..len {
            let info = ffi::OPENSSL_sk_value(stack, i).cast::<ffi::X509_INFO>();
            if !info.is_null() {
                counts.certificates += usize::from(!(*info).x509.is_null());
                counts.crls += usize::from(!(*info).crl.is_null());
            }
            ffi::X509_INFO_free(info);
        }
        ffi::OPENSSL_sk_free(stack);
    }
    Some(counts)
}

impl Certificate {
    /// The subject public key, if libcrypto can decode it.
    pub fn public_key(&self) -> Option<Key> {
        // SAFETY: valid certificate; returns a new reference or null.
        NonNull::new(unsafe { ffi::X509_get_pubkey(self.0.as_ptr()) }).map(Key)
    }

    /// Whether the key usage extension, if present, allows digital signatures.
    pub fn allows_digital_signature(&self) -> bool {
        // SAFETY: valid certificate; computes the cached extension flags.
        let usage = unsafe { ffi::X509_get_key_usage(self.0.as_ptr()) };
        usage == u32::MAX || usage & ffi::KU_DIGITAL_SIGNATURE as u32 != 0
    }
}

impl Key {
    pub fn key_type(&self) -> KeyType {
        let key = self.0.as_ptr();
        // SAFETY: valid key; the get0 accessors borrow from it and are checked for null.
        unsafe {
            match ffi::EVP_PKEY_id(key) {
                ffi::EVP_PKEY_RSA => {
                    let rsa = ffi::EVP_PKEY_get0_RSA(key);
                    KeyType::Rsa { bits: if rsa.is_null() { 0 } else { ffi::RSA_bits(rsa) } }
                }
                ffi::EVP_PKEY_EC => {
                    let ec = ffi::EVP_PKEY_get0_EC_KEY(key);
                    let group = if ec.is_null() { ptr::null() } else { ffi::EC_KEY_get0_group(ec) };
                    let nid = if group.is_null() { 0 } else { ffi::EC_GROUP_get_curve_name(group) };
                    KeyType::Ec { curve: (nid != 0).then_some(nid) }
                }
                ffi::EVP_PKEY_ED25519 => KeyType::Ed25519,
                other => KeyType::Other(other),
            }
        }
    }

    /// Whether a private key belongs to this public key (libssl's check, `EVP_PKEY_cmp`).
    pub fn matches(&self, private_key: &Key) -> bool {
        // SAFETY: both keys valid; compares public components only.
        unsafe { ffi::EVP_PKEY_cmp(self.0.as_ptr(), private_key.0.as_ptr()) == 1 }
    }
}
