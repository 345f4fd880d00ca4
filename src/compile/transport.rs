//! How a Mapping talks to its upstream (plaintext, TLS, a TLSContext's client settings): what
//! both its cluster and its upstream checks (`verify_spiffe_id` needs a TLSContext) depend on.

use super::tls::ResolvedContext;
use crate::model::TlsContext;

/// How a Mapping talks to its upstream.
pub enum Transport<'a> {
    Plaintext,
    /// `https://` or `tls: true`: TLS without a client certificate.
    Tls,
    Context(&'a TlsContext, &'a ResolvedContext),
    /// TLS was asked for but cannot be provided: the route fails closed.
    Unavailable(String),
}
