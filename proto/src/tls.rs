//! The client side of kplan's transport security, one implementation for the
//! CLI and the agent.
//!
//! - `https://` URLs use TLS (rustls): the server's certificate must chain to
//!   the CA bundle in `ca_file` (one or more PEM certificates: during a CA
//!   rotation, the old and the new CA); `cert_file` and `key_file` are the
//!   client's own certificate (an agent's names its cluster, see the README's
//!   "Security model").
//! - `http://` URLs are plaintext, refused unless `insecure_plaintext` is set.
//! - `token_file` holds a bearer token (readers and planners, never agents),
//!   sent as `authorization: Bearer ...` on every call, over TLS only.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use kplan_proto::tls::ClientSecurity;
//! let security = ClientSecurity {
//!     ca_file: Some("ca.crt".into()),
//!     cert_file: Some("fra-prod-1.crt".into()),
//!     key_file: Some("fra-prod-1.key".into()),
//!     ..Default::default()
//! };
//! // Lazily connecting; keepalives and timeouts set, overridable on the endpoint.
//! let endpoint = security.endpoint("https://kplan.example.com:7470")?;
//! let channel = security.channel(endpoint.connect_lazy())?;
//! let mut client = kplan_proto::v1::inventory_service_client::InventoryServiceClient::new(channel);
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Connection timeout set by [`ClientSecurity::endpoint`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshake timeout set by [`ClientSecurity::endpoint`].
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 PING interval on an open connection (a dead peer is noticed).
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a PING may go unanswered before the connection is closed.
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// TCP keepalive of the client's socket (firewalls drop idle flows).
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// How a client reaches and proves itself to kplan-server. Every path is read
/// when an endpoint or channel is built, so a bad file is reported before any
/// connection is attempted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSecurity {
    /// PEM bundle of the CA certificates the server's certificate must chain to.
    /// Required for `https://`.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (with its chain, if any). Goes with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// File holding one bearer token (readers and planners; never agents).
    pub token_file: Option<PathBuf>,
    /// Name the server's certificate must carry, when it differs from the URL's
    /// host (e.g. connecting by IP address to a certificate with a DNS name).
    pub server_name: Option<String>,
    /// Allow `http://` URLs: no encryption, no authentication.
    pub insecure_plaintext: bool,
}

/// What [`ClientSecurity::read_files`] read; compares equal when no file changed.
/// Its `Debug` shows sizes only (it holds a private key and a token).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecurityFiles(Vec<Vec<u8>>);

impl std::fmt::Debug for SecurityFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sizes: Vec<usize> = self.0.iter().map(Vec::len).collect();
        f.debug_tuple("SecurityFiles").field(&sizes).finish()
    }
}

/// A channel that adds the bearer token (if any) to every call. Generated
/// clients take it like a [`Channel`]: `QueryServiceClient::new(channel)`.
pub type AuthChannel = InterceptedService<Channel, BearerToken>;

/// The `authorization` metadata of every call, or nothing. Its `Debug` never
/// shows the token.
#[derive(Clone, Default)]
pub struct BearerToken(Option<AsciiMetadataValue>);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "BearerToken(<redacted>)" } else { "BearerToken(none)" })
    }
}

impl BearerToken {
    /// No token: calls go out as they are (certificate or plaintext).
    pub fn none() -> BearerToken {
        BearerToken(None)
    }

    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// A token as given (e.g. read from a file); surrounding whitespace is ignored.
    pub fn new(token: &str) -> Result<BearerToken, ClientSecurityError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(ClientSecurityError::BadToken { reason: "it is empty" });
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ClientSecurityError::BadToken { reason: "it holds spaces or non-ASCII characters" });
        }
        let mut value = AsciiMetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| ClientSecurityError::BadToken { reason: "it is not valid in a header" })?;
        value.set_sensitive(true);
        Ok(BearerToken(Some(value)))
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Why no endpoint or channel could be built. Never contains a token.
#[derive(Debug, thiserror::Error)]
pub enum ClientSecurityError {
    #[error("server url {url:?} is not a valid URL (e.g. https://kplan.example.com:7470)")]
    BadUrl { url: String },
    #[error("server url {url:?}: use https:// (or http:// with --insecure-plaintext)")]
    UnsupportedScheme { url: String },
    #[error(
        "{url} is plaintext (no encryption, no authentication): pass --insecure-plaintext to allow it, \
         or use https:// with --ca"
    )]
    PlaintextNotAllowed { url: String },
    #[error("{url}: {what} needs TLS; use https://")]
    NeedsTls { url: String, what: &'static str },
    #[error("{url}: https:// needs the CA bundle that signed the server's certificate (--ca FILE)")]
    MissingCa { url: String },
    #[error("a client certificate needs its key and the key its certificate: give --cert and --key together")]
    CertWithoutKey,
    #[error("give a client certificate (--cert, --key) or a bearer token (--token-file), not both")]
    CertAndToken,
    #[error("reading {what} {}: {source}", path.display())]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{what} {}: {problem}", path.display())]
    BadPem { what: &'static str, path: PathBuf, problem: String },
    #[error("bearer token: {reason}")]
    BadToken { reason: &'static str },
    #[error("token file {}: {source}", path.display())]
    TokenFile { path: PathBuf, source: Box<ClientSecurityError> },
    #[error("TLS configuration for {url}: {source}")]
    Tls { url: String, source: tonic::transport::Error },
}

impl ClientSecurity {
    /// An endpoint for `url` with TLS set up (for `https://`), connect and TLS
    /// handshake timeouts, HTTP/2 and TCP keepalives. Callers may override any
    /// option on it, then connect (or `connect_lazy`) and pass the channel to
    /// [`ClientSecurity::channel`].
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, ClientSecurityError> {
        let scheme = url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|_| ClientSecurityError::BadUrl { url: url.to_string() })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_keepalive(Some(TCP_KEEPALIVE))
            .http2_keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
        match scheme.as_deref() {
            Some("https") => {
                let tls = self.client_tls_config(url)?;
                endpoint.tls_config(tls).map_err(|source| ClientSecurityError::Tls { url: url.to_string(), source })
            }
            Some("http") => {
                if !self.insecure_plaintext {
                    return Err(ClientSecurityError::PlaintextNotAllowed { url: url.to_string() });
                }
                if self.token_file.is_some() {
                    return Err(ClientSecurityError::NeedsTls { url: url.to_string(), what: "a bearer token" });
                }
                if self.cert_file.is_some() || self.key_file.is_some() {
                    return Err(ClientSecurityError::NeedsTls { url: url.to_string(), what: "a client certificate" });
                }
                Ok(endpoint)
            }
            _ => Err(ClientSecurityError::UnsupportedScheme { url: url.to_string() }),
        }
    }

    /// The bearer token of `token_file`, or none.
    pub fn bearer_token(&self) -> Result<BearerToken, ClientSecurityError> {
        let Some(path) = &self.token_file else { return Ok(BearerToken::none()) };
        let text = std::fs::read_to_string(path).map_err(|source| ClientSecurityError::Read {
            what: "token file",
            path: path.clone(),
            source,
        })?;
        BearerToken::new(&text)
            .map_err(|err| ClientSecurityError::TokenFile { path: path.clone(), source: Box::new(err) })
    }

    /// Wraps a channel (from [`ClientSecurity::endpoint`]) so that every call
    /// carries the bearer token, if one is configured.
    pub fn channel(&self, channel: Channel) -> Result<AuthChannel, ClientSecurityError> {
        Ok(InterceptedService::new(channel, self.bearer_token()?))
    }

    /// The contents of the configured CA, certificate, key and token files,
    /// to notice when they change on disk (a rotated Kubernetes Secret):
    /// long-running clients compare two readings and build a new channel when
    /// they differ. Empty without any file (plaintext).
    pub fn read_files(&self) -> Result<SecurityFiles, ClientSecurityError> {
        let named = [
            ("CA file", &self.ca_file),
            ("certificate file", &self.cert_file),
            ("key file", &self.key_file),
            ("token file", &self.token_file),
        ];
        let mut contents = Vec::new();
        for (what, path) in named {
            let Some(path) = path else { continue };
            let bytes =
                std::fs::read(path).map_err(|source| ClientSecurityError::Read { what, path: path.clone(), source })?;
            contents.push(bytes);
        }
        Ok(SecurityFiles(contents))
    }

    /// [`ClientSecurity::endpoint`], connected now.
    pub async fn connect(&self, url: &str) -> Result<AuthChannel, ConnectError> {
        let endpoint = self.endpoint(url)?;
        let bearer = self.bearer_token()?;
        let channel =
            endpoint.connect().await.map_err(|source| ConnectError::Connect { url: url.to_string(), source })?;
        Ok(InterceptedService::new(channel, bearer))
    }

    /// [`ClientSecurity::endpoint`], connecting at the first call (and again
    /// after a failure).
    pub fn connect_lazy(&self, url: &str) -> Result<AuthChannel, ClientSecurityError> {
        let endpoint = self.endpoint(url)?;
        self.channel(endpoint.connect_lazy())
    }

    fn client_tls_config(&self, url: &str) -> Result<ClientTlsConfig, ClientSecurityError> {
        if self.token_file.is_some() && (self.cert_file.is_some() || self.key_file.is_some()) {
            return Err(ClientSecurityError::CertAndToken);
        }
        let ca_file = self.ca_file.as_deref().ok_or_else(|| ClientSecurityError::MissingCa { url: url.to_string() })?;
        let ca = read_certificates(ca_file, "CA file")?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).timeout(TLS_HANDSHAKE_TIMEOUT);
        match (&self.cert_file, &self.key_file) {
            (Some(cert_file), Some(key_file)) => {
                let cert = read_certificates(cert_file, "certificate file")?;
                let key = read_private_key(key_file)?;
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            (None, None) => {}
            _ => return Err(ClientSecurityError::CertWithoutKey),
        }
        if let Some(name) = &self.server_name {
            tls = tls.domain_name(name.clone());
        }
        Ok(tls)
    }
}

/// Why [`ClientSecurity::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Security(#[from] ClientSecurityError),
    #[error("connecting to {url}: {source}")]
    Connect { url: String, source: tonic::transport::Error },
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, ClientSecurityError> {
    std::fs::read(path).map_err(|source| ClientSecurityError::Read { what, path: path.to_path_buf(), source })
}

/// Reads a PEM file of one or more certificates; refuses a file without any.
pub fn read_certificates(path: &Path, what: &'static str) -> Result<Vec<u8>, ClientSecurityError> {
    let pem = read(path, what)?;
    let n_certificates = count_certificates(&pem).map_err(|problem| ClientSecurityError::BadPem {
        what,
        path: path.to_path_buf(),
        problem,
    })?;
    if n_certificates == 0 {
        return Err(ClientSecurityError::BadPem {
            what,
            path: path.to_path_buf(),
            problem: "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_string(),
        });
    }
    Ok(pem)
}

/// Reads a PEM private key file; refuses a file without a key.
pub fn read_private_key(path: &Path) -> Result<Vec<u8>, ClientSecurityError> {
    let what = "key file";
    let pem = read(path, what)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|err| ClientSecurityError::BadPem {
        what,
        path: path.to_path_buf(),
        problem: format!("no PEM private key in it ({err})"),
    })?;
    Ok(pem)
}

/// The number of PEM certificates in `pem`, or what is wrong with it.
pub fn count_certificates(pem: &[u8]) -> Result<usize, String> {
    CertificateDer::pem_slice_iter(pem)
        .try_fold(0, |n, cert| cert.map(|_| n + 1))
        .map_err(|err| format!("not a PEM certificate file ({err})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_only_when_asked_for() {
        let security = ClientSecurity::default();
        let err = security.endpoint("http://127.0.0.1:7470").expect_err("refused");
        assert!(err.to_string().contains("--insecure-plaintext"), "{err}");
        let security = ClientSecurity { insecure_plaintext: true, ..Default::default() };
        security.endpoint("http://127.0.0.1:7470").expect("allowed");
        let err = security.endpoint("ftp://127.0.0.1:7470").expect_err("refused");
        assert!(matches!(err, ClientSecurityError::UnsupportedScheme { .. }), "{err}");
        let err = security.endpoint("not a url").expect_err("refused");
        assert!(err.to_string().contains("not a url"), "{err}");
    }

    #[test]
    fn secrets_never_travel_in_clear() {
        let security = ClientSecurity { insecure_plaintext: true, token_file: Some("t".into()), ..Default::default() };
        let err = security.endpoint("http://127.0.0.1:7470").expect_err("refused");
        assert!(err.to_string().contains("bearer token needs TLS"), "{err}");
        let security = ClientSecurity { insecure_plaintext: true, cert_file: Some("c".into()), ..Default::default() };
        assert!(security.endpoint("http://127.0.0.1:7470").is_err());
    }

    #[test]
    fn https_needs_a_ca_and_names_bad_files() {
        let err = ClientSecurity::default().endpoint("https://127.0.0.1:7470").expect_err("no CA");
        assert!(err.to_string().contains("--ca"), "{err}");
        let dir = std::env::temp_dir().join(format!("kplan-proto-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ca = dir.join("ca.crt");
        std::fs::write(&ca, "hello\n").expect("writes");
        let security = ClientSecurity { ca_file: Some(ca.clone()), ..Default::default() };
        let err = security.endpoint("https://127.0.0.1:7470").expect_err("no certificate in it");
        assert!(err.to_string().contains("ca.crt") && err.to_string().contains("no PEM certificate"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_token_is_sent_and_never_shown() {
        let mut token = BearerToken::new(" s3cret-token\n").expect("valid");
        assert!(!format!("{token:?}").contains("s3cret"));
        let request = token.call(tonic::Request::new(())).expect("passes");
        let value = request.metadata().get("authorization").expect("set");
        assert_eq!(value.to_str().expect("ascii"), "Bearer s3cret-token");
        assert!(!format!("{value:?}").contains("s3cret"), "sensitive values are redacted in Debug");
        assert!(BearerToken::new("  \n").is_err());
        assert!(BearerToken::new("two words").is_err());
        let mut none = BearerToken::none();
        assert!(none.call(tonic::Request::new(())).expect("passes").metadata().get("authorization").is_none());
    }
}
