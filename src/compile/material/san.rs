//! The URI SANs of a certificate (its SPIFFE ID), read with x509-parser: AWS-LC's bindings offer
//! them only through the `GENERAL_NAMES` stack macros, which bindgen does not export.

use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

/// The URI subject alternative names of the first certificate in `chain` (PEM, already checked
/// to load); empty when it has none or cannot be read here.
pub fn leaf_uri_sans(chain: &[u8]) -> Vec<String> {
    let Some(pem) = Pem::iter_from_buffer(chain).flatten().find(|pem| pem.label.ends_with("CERTIFICATE")) else {
        return Vec::new();
    };
    let Ok(certificate) = pem.parse_x509() else { return Vec::new() };
    let Ok(Some(names)) = certificate.subject_alternative_name() else { return Vec::new() };
    names
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(uri.to_string()),
            _ => None,
        })
        .collect()
}
