//! The Consul agent's HTTP API, as one agent's pooled client: plain HTTP or TLS (a CA file, a
//! client certificate), the ACL token as `X-Consul-Token`, bounded response bodies, and errors a
//! caller can branch on. Built on the hyper client and rustls connector kube-rs uses, so Consul
//! adds no second HTTP stack.

use crate::model::Sensitive;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Largest response read: a health answer for thousands of instances is a few MiB.
const MAX_BODY_BYTES: usize = 32 << 20;

/// How to reach Consul agents: the default agent's address and what every request carries.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsulConfig {
    /// `host:port`, or with `http://` / `https://`, of the agent used when a ConsulResolver names
    /// none (and for Connect certificates).
    pub address: String,
    /// `CONSUL_HTTP_SSL`: HTTPS to agents whose address has no scheme.
    pub https: bool,
    /// `CONSUL_CACERT`: the CA that signs the agent's certificate (else the system's roots).
    pub ca_file: Option<PathBuf>,
    /// `CONSUL_CLIENT_CERT` and `CONSUL_CLIENT_KEY`, for agents that verify clients.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `CONSUL_TLS_SERVER_NAME`: the name the agent's certificate is checked against.
    pub server_name: Option<String>,
    /// `CONSUL_HTTP_TOKEN`: an ACL token.
    pub token: Option<Sensitive>,
}

impl fmt::Debug for ConsulConfig {
    // The token is a credential: only whether there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsulConfig")
            .field("address", &self.address)
            .field("https", &self.https)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert.as_ref().map(|(cert, _)| cert))
            .field("server_name", &self.server_name)
            .field("token", &self.token.as_ref().map(|_| "[set]"))
            .finish()
    }
}

/// Why a request did not produce an answer; [`ConsulError::state`] is what logs and metrics
/// branch on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsulError {
    /// No connection, a reset, a timeout.
    Unreachable(String),
    /// 403: the ACL token is missing, unknown, or lacks the permission.
    Denied(String),
    /// Any other answer than 200.
    Status(u16, String),
    /// A 200 whose body is not what the API documents.
    Invalid(String),
}

impl ConsulError {
    /// Stable name for metrics and for "logged once per state".
    pub fn state(&self) -> &'static str {
        match self {
            ConsulError::Unreachable(_) => "unreachable",
            ConsulError::Denied(_) => "acl_denied",
            ConsulError::Status(..) => "server_error",
            ConsulError::Invalid(_) => "invalid_response",
        }
    }
}

impl fmt::Display for ConsulError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsulError::Unreachable(why) => write!(f, "Consul is unreachable: {why}"),
            ConsulError::Denied(body) => write!(f, "Consul denied the request (ACL, HTTP 403): {body}"),
            ConsulError::Status(status, body) => write!(f, "Consul answered HTTP {status}: {body}"),
            ConsulError::Invalid(why) => write!(f, "Consul's answer is not valid: {why}"),
        }
    }
}

/// A 200 answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// `X-Consul-Index`, for the next blocking query.
    pub index: Option<u64>,
    pub body: Bytes,
}

/// One agent.
#[derive(Clone)]
pub struct ConsulClient {
    base: String,
    token: Option<Sensitive>,
    http: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl ConsulClient {
    /// A client for the agent at `address` (`host:port`, `http://...` or `https://...`; `$VAR`
    /// and `${VAR}` are taken from the environment). TLS files are read here.
    pub fn new(address: &str, config: &ConsulConfig) -> Result<ConsulClient, String> {
        let address = expand_env(address.trim());
        let base = if address.starts_with("http://") || address.starts_with("https://") {
            address.trim_end_matches('/').to_string()
        } else {
            format!("{}://{}", if config.https { "https" } else { "http" }, address.trim_end_matches('/'))
        };
        base.parse::<http::Uri>().map_err(|err| format!("Consul address `{address}`: {err}"))?;
        let tls = tls_config(config)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .with_server_name_resolver(ServerName(config.server_name.clone()))
            .enable_http1()
            .wrap_connector(http);
        let http = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(90)).build(connector);
        Ok(ConsulClient { base, token: config.token.clone(), http })
    }

    /// `http(s)://host:port` of the agent.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path_and_query` (starting with `/v1/`), given up after `timeout`.
    pub async fn get(&self, path_and_query: &str, timeout: Duration) -> Result<Reply, ConsulError> {
        let uri = format!("{}{path_and_query}", self.base);
        let mut request = http::Request::get(uri.as_str());
        if let Some(token) = &self.token {
            let value = http::HeaderValue::from_bytes(token.expose())
                .map_err(|_| ConsulError::Invalid("the ACL token is not a valid header value".into()))?;
            request = request.header("X-Consul-Token", value);
        }
        let request = request.body(Empty::new()).map_err(|err| ConsulError::Invalid(err.to_string()))?;
        let exchange = async {
            let response = self.http.request(request).await.map_err(|err| ConsulError::Unreachable(chain(&err)))?;
            let status = response.status();
            let index = response
                .headers()
                .get("X-Consul-Index")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|err| ConsulError::Unreachable(format!("reading the answer: {err}")))?
                .to_bytes();
            Ok::<_, ConsulError>((status, index, body))
        };
        let (status, index, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ConsulError::Unreachable(format!("no answer within {timeout:?}")))??;
        match status.as_u16() {
            200 => Ok(Reply { index, body }),
            403 => Err(ConsulError::Denied(snippet(&body))),
            code => Err(ConsulError::Status(code, snippet(&body))),
        }
    }
}

/// The start of an error body, one line (Consul's errors are short text).
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.trim().chars().take(200).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if line.is_empty() {
        "(no body)".into()
    } else {
        line
    }
}

/// An error and its causes on one line (hyper's own message says only "client error").
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `$VAR` and `${VAR}` replaced from the environment (Emissary's ConsulResolver `address`).
pub fn expand_env(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => ("", after),
            }
        } else {
            let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
        } else {
            out.push_str(&std::env::var(name).unwrap_or_default());
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

fn tls_config(config: &ConsulConfig) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|err| format!("CONSUL_CACERT {}: {err}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|err| format!("CONSUL_CACERT {}: {err}", path.display()))?;
                roots.add(cert).map_err(|err| format!("CONSUL_CACERT {}: {err}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("CONSUL_CACERT {}: no certificate", path.display()));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_root_certificates(roots);
    match &config.client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let read = |path: &PathBuf, what: &str| {
                std::fs::read(path).map_err(|err| format!("{what} {}: {err}", path.display()))
            };
            let chain_pem = read(cert, "CONSUL_CLIENT_CERT")?;
            let chain = rustls_pemfile::certs(&mut chain_pem.as_slice())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| format!("CONSUL_CLIENT_CERT {}: {err}", cert.display()))?;
            let key_pem = read(key, "CONSUL_CLIENT_KEY")?;
            let private_key = rustls_pemfile::private_key(&mut key_pem.as_slice())
                .map_err(|err| format!("CONSUL_CLIENT_KEY {}: {err}", key.display()))?
                .ok_or_else(|| format!("CONSUL_CLIENT_KEY {}: no private key", key.display()))?;
            builder.with_client_auth_cert(chain, private_key).map_err(|err| format!("Consul client certificate: {err}"))
        }
    }
}

/// `CONSUL_TLS_SERVER_NAME`, else the host of the address.
#[derive(Clone)]
struct ServerName(Option<String>);

impl hyper_rustls::ResolveServerName for ServerName {
    fn resolve(
        &self,
        uri: &http::Uri,
    ) -> Result<rustls::pki_types::ServerName<'static>, Box<dyn std::error::Error + Sync + Send>> {
        let host = match &self.0 {
            Some(name) => name.clone(),
            None => uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string(),
        };
        Ok(rustls::pki_types::ServerName::try_from(host)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_expand_the_environment() {
        std::env::set_var("AMBASSADOR_XDS_TEST_CONSUL_HOST", "10.1.2.3");
        assert_eq!(expand_env("$AMBASSADOR_XDS_TEST_CONSUL_HOST:8500"), "10.1.2.3:8500");
        assert_eq!(expand_env("https://${AMBASSADOR_XDS_TEST_CONSUL_HOST}:8501"), "https://10.1.2.3:8501");
        assert_eq!(expand_env("plain:8500"), "plain:8500");
        assert_eq!(expand_env("a$"), "a$");
        assert_eq!(expand_env("${unterminated"), "${unterminated");
    }

    #[test]
    fn the_token_is_never_printed() {
        let config = ConsulConfig {
            address: "127.0.0.1:8500".into(),
            https: false,
            ca_file: None,
            client_cert: None,
            server_name: None,
            token: Some(Sensitive::new(b"s3cr3t-token".to_vec())),
        };
        assert!(!format!("{config:?}").contains("s3cr3t"));
    }
}
