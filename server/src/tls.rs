//! Transport security without tonic: who a peer is and how that is read.
//!
//! - [`Identity`] (defined in `kplan_proto::identity`, shared with `kplan certs`):
//!   the kplan identity in a certificate's URI SAN, the only
//!   source of an agent's cluster id (never the message):
//!
//!   | URI SAN | identity | role |
//!   | --- | --- | --- |
//!   | `spiffe://kplan/cluster/<cluster-id>` | the agent of one cluster | agent |
//!   | `spiffe://kplan/reader/<name>` | a person or tool that reads | reader |
//!   | `spiffe://kplan/planner/<name>` | a person or tool that also plans | planner |
//!
//!   Names use the syntax of cluster ids (lowercase letters, digits, '-' and
//!   '.', at most 253 characters, starting and ending with a letter or digit).
//! - [`TokenTable`]: the bearer tokens of readers and planners, stored as
//!   SHA-256 hashes and compared in constant time (never agents: an agent's
//!   cluster comes from its certificate only).
//! - [`TlsMaterial`]: the server's certificate, key and client CA bundle, read
//!   and checked before any port is bound.

use std::fmt;
use std::path::Path;

use subtle::ConstantTimeEq;

pub use kplan_proto::identity::{
    Identity, IdentityError, Role, TRUST_DOMAIN, identity_from_certificate, is_valid_name, token_sha256_hex,
};

/// The bearer tokens the server accepts: `token_file`, one per line,
/// `ROLE NAME SHA256-HEX-OF-THE-TOKEN` (ROLE `reader` or `planner`); blank
/// lines and `#` comments are ignored. Only hashes are kept; nothing here is
/// ever logged but the names.
#[derive(Clone, Default)]
pub struct TokenTable {
    entries: Vec<(Identity, [u8; 32])>,
}

impl fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenTable").field("n_tokens", &self.entries.len()).finish_non_exhaustive()
    }
}

impl TokenTable {
    /// Reads and checks a token file; every problem is reported, with its line.
    pub fn load(path: &Path) -> Result<TokenTable, Vec<String>> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| vec![format!("token_file: reading {}: {err}", path.display())])?;
        TokenTable::parse(&text)
            .map_err(|problems| problems.into_iter().map(|p| format!("token_file {}: {p}", path.display())).collect())
    }

    pub fn parse(text: &str) -> Result<TokenTable, Vec<String>> {
        let mut entries: Vec<(Identity, [u8; 32])> = Vec::new();
        let mut problems = Vec::new();
        for (idx, line) in text.lines().enumerate() {
            let line_no = idx + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [role, name, hash] = fields[..] else {
                problems.push(format!("line {line_no}: expected `ROLE NAME SHA256-HEX`, got {} fields", fields.len()));
                continue;
            };
            let role = match role {
                "reader" => Role::Reader,
                "planner" => Role::Planner,
                "agent" | "cluster" => {
                    problems.push(format!(
                        "line {line_no}: tokens are for readers and planners only; an agent proves its cluster \
                         with its certificate"
                    ));
                    continue;
                }
                other => {
                    problems.push(format!("line {line_no}: role {other:?} is not reader or planner"));
                    continue;
                }
            };
            let identity = match Identity::new(role, name) {
                Ok(identity) => identity,
                Err(err) => {
                    problems.push(format!("line {line_no}: {err}"));
                    continue;
                }
            };
            let Some(digest) = parse_sha256_hex(hash) else {
                problems.push(format!(
                    "line {line_no}: the third field must be the SHA-256 of the token in hex (64 characters), \
                     never the token itself"
                ));
                continue;
            };
            if entries.iter().any(|(_, known)| known == &digest) {
                problems.push(format!("line {line_no}: the same token hash appears twice"));
                continue;
            }
            entries.push((identity, digest));
        }
        if problems.is_empty() { Ok(TokenTable { entries }) } else { Err(problems) }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The identity of a presented token. Every entry is compared, in constant
    /// time, whether or not one matched already.
    pub fn verify(&self, token: &str) -> Option<Identity> {
        let presented = ring::digest::digest(&ring::digest::SHA256, token.trim().as_bytes());
        let mut found = None;
        for (identity, digest) in &self.entries {
            if bool::from(digest.as_slice().ct_eq(presented.as_ref())) {
                found = Some(identity.clone());
            }
        }
        found
    }
}

fn parse_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (idx, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(idx * 2..idx * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The server's certificate chain, key and client CA bundle, read from disk
/// and checked. `Debug` never shows the key.
#[derive(Clone)]
pub struct TlsMaterial {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub client_ca_pem: Vec<u8>,
    /// CA certificates in the client CA bundle (two during a CA rotation).
    pub n_client_cas: usize,
    /// When the server's own certificate expires (unix seconds).
    pub not_after_unix: i64,
    /// The DNS names and IP addresses of the server's certificate.
    pub server_names: Vec<String>,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("n_client_cas", &self.n_client_cas)
            .field("not_after_unix", &self.not_after_unix)
            .field("server_names", &self.server_names)
            .finish_non_exhaustive()
    }
}

/// Where the server's TLS files are (`[tls]` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct TlsPaths<'a> {
    pub cert_file: &'a Path,
    pub key_file: &'a Path,
    pub client_ca_file: &'a Path,
}

impl TlsMaterial {
    /// Reads the three files; every problem is reported.
    pub fn load(paths: TlsPaths<'_>, now_unix: i64) -> Result<TlsMaterial, Vec<String>> {
        use kplan_proto::tls::{count_certificates, read_certificates, read_private_key};
        let mut problems = Vec::new();
        let cert_pem = read_certificates(paths.cert_file, "certificate file")
            .map_err(|err| problems.push(format!("tls.cert_file: {err}")))
            .ok();
        let key_pem =
            read_private_key(paths.key_file).map_err(|err| problems.push(format!("tls.key_file: {err}"))).ok();
        let client_ca_pem = read_certificates(paths.client_ca_file, "CA file")
            .map_err(|err| problems.push(format!("tls.client_ca_file: {err}")))
            .ok();
        let mut leaf = None;
        if let Some(pem) = &cert_pem {
            match server_certificate_facts(pem) {
                Ok((not_after, _)) if not_after <= now_unix => problems.push(format!(
                    "tls.cert_file: {}: the certificate expired at {}",
                    paths.cert_file.display(),
                    kplan_model::time::utc_readable(not_after)
                )),
                Ok(facts) => leaf = Some(facts),
                Err(err) => problems.push(format!("tls.cert_file: {}: {err}", paths.cert_file.display())),
            }
        }
        match (cert_pem, key_pem, client_ca_pem, leaf) {
            (Some(cert_pem), Some(key_pem), Some(client_ca_pem), Some((not_after_unix, server_names)))
                if problems.is_empty() =>
            {
                let n_client_cas = count_certificates(&client_ca_pem).unwrap_or(0);
                Ok(TlsMaterial { cert_pem, key_pem, client_ca_pem, n_client_cas, not_after_unix, server_names })
            }
            _ => Err(problems),
        }
    }
}

/// The first certificate's expiry and its DNS/IP SANs.
fn server_certificate_facts(pem: &[u8]) -> Result<(i64, Vec<String>), String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let der = CertificateDer::pem_slice_iter(pem)
        .next()
        .ok_or("no certificate")?
        .map_err(|err| format!("not a PEM certificate ({err})"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|err| format!("unparsable ({err})"))?;
    let not_after = cert.validity().not_after.timestamp();
    let mut names = Vec::new();
    if let Ok(Some(sans)) = cert.subject_alternative_name() {
        for name in &sans.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => names.push((*dns).to_string()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => names
                        .push(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*bytes).unwrap_or_default()).to_string()),
                    16 => names
                        .push(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*bytes).unwrap_or_default()).to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok((not_after, names))
}

/// How the gRPC port is protected: chosen explicitly, never by default.
// Made once at start and never moved in bulk: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum TransportSecurity {
    /// Mutual TLS; bearer tokens (readers and planners) when a token file is set.
    /// `paths`: where they were read from, watched for changes (`tls_reload`).
    MutualTls { material: TlsMaterial, tokens: Option<TokenTable>, paths: crate::tls_reload::TlsFilePaths },
    /// No encryption and no authentication: every caller may do everything.
    InsecurePlaintext,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_hold_hashes_for_readers_and_planners() {
        let alice = token_sha256_hex("alice-token");
        let bob = token_sha256_hex("bob-token");
        let table = TokenTable::parse(&format!("# who\nreader alice {alice}\n\nplanner bob {bob}\n")).expect("parses");
        assert_eq!(table.len(), 2);
        assert_eq!(table.verify("alice-token"), Some(Identity::Reader("alice".into())));
        assert_eq!(table.verify("bob-token\n"), Some(Identity::Planner("bob".into())));
        assert_eq!(table.verify("mallory"), None);
        assert_eq!(table.verify(""), None);
        assert!(!format!("{table:?}").contains(&alice));

        let problems = TokenTable::parse(&format!(
            "agent fra-prod-1 {alice}\nreader alice alice-token\nadmin root {bob}\nreader Alice {bob}\nreader x\n\
             reader a {bob}\nplanner b {bob}\n"
        ))
        .expect_err("bad");
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems[0].contains("line 1") && problems[0].contains("certificate"), "{problems:?}");
        assert!(problems[1].contains("never the token itself"), "{problems:?}");
        assert!(problems[5].contains("line 7") && problems[5].contains("twice"), "{problems:?}");
    }

    #[test]
    fn the_hash_is_sha256() {
        // sha256("abc"), FIPS 180-2 appendix B.1
        assert_eq!(token_sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
