//! kplan identities: who a peer is (the URI SAN scheme of certificates and the
//! roles), shared by the server's authentication and `kplan certs`.
//!
//! | URI SAN | identity | role |
//! | --- | --- | --- |
//! | `spiffe://kplan/cluster/<cluster-id>` | the agent of one cluster | agent |
//! | `spiffe://kplan/reader/<name>` | a person or tool that reads | reader |
//! | `spiffe://kplan/planner/<name>` | a person or tool that also plans | planner |

use std::fmt;

/// The SPIFFE trust domain of kplan identities.
pub const TRUST_DOMAIN: &str = "kplan";

/// What a peer may do; see the README's "Security model".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Reports snapshots of its own cluster (and reads that cluster back).
    Agent,
    /// Reads the inventory, plans and capacity reviews.
    Reader,
    /// A reader that may also propose plans.
    Planner,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Agent => "agent",
            Role::Reader => "reader",
            Role::Planner => "planner",
        })
    }
}

/// A kplan identity, from a client certificate or a bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    /// The agent of this cluster id.
    Cluster(String),
    Reader(String),
    Planner(String),
}

impl Identity {
    pub fn role(&self) -> Role {
        match self {
            Identity::Cluster(_) => Role::Agent,
            Identity::Reader(_) => Role::Reader,
            Identity::Planner(_) => Role::Planner,
        }
    }

    /// The cluster id, or the reader's or planner's name.
    pub fn name(&self) -> &str {
        match self {
            Identity::Cluster(name) | Identity::Reader(name) | Identity::Planner(name) => name,
        }
    }

    /// The path segment of the URI: `cluster`, `reader` or `planner`.
    fn kind(&self) -> &'static str {
        match self {
            Identity::Cluster(_) => "cluster",
            Identity::Reader(_) => "reader",
            Identity::Planner(_) => "planner",
        }
    }

    /// A checked identity: the name must be a valid id.
    pub fn new(role: Role, name: &str) -> Result<Identity, IdentityError> {
        if !is_valid_name(name) {
            return Err(IdentityError::BadName { name: name.to_string() });
        }
        Ok(match role {
            Role::Agent => Identity::Cluster(name.to_string()),
            Role::Reader => Identity::Reader(name.to_string()),
            Role::Planner => Identity::Planner(name.to_string()),
        })
    }

    /// The URI SAN that carries this identity in a certificate.
    pub fn uri(&self) -> String {
        format!("spiffe://{TRUST_DOMAIN}/{}/{}", self.kind(), self.name())
    }

    /// Reads a URI SAN: `Ok(None)` when it is not in kplan's trust domain
    /// (certificates may carry other URIs), an error when it is but is malformed.
    pub fn from_uri(uri: &str) -> Result<Option<Identity>, IdentityError> {
        let Some(path) = uri.strip_prefix("spiffe://").and_then(|rest| rest.strip_prefix(TRUST_DOMAIN)) else {
            return Ok(None);
        };
        let Some(path) = path.strip_prefix('/') else {
            // e.g. spiffe://kplanother/...: another trust domain.
            return Ok(None);
        };
        let bad = || IdentityError::BadUri { uri: uri.to_string() };
        let (kind, name) = path.split_once('/').ok_or_else(bad)?;
        let role = match kind {
            "cluster" => Role::Agent,
            "reader" => Role::Reader,
            "planner" => Role::Planner,
            _ => return Err(bad()),
        };
        Identity::new(role, name).map(Some).map_err(|_| bad())
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.role(), self.name())
    }
}

/// Names of identities follow cluster ids: a DNS subdomain.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("{name:?} is not a valid name (lowercase letters, digits, '-' and '.', at most 253 characters)")]
    BadName { name: String },
    #[error(
        "URI SAN {uri:?} is not a kplan identity (spiffe://kplan/cluster/<id>, spiffe://kplan/reader/<name> \
         or spiffe://kplan/planner/<name>)"
    )]
    BadUri { uri: String },
    #[error("the certificate cannot be parsed: {reason}")]
    Unparsable { reason: String },
    #[error(
        "the certificate names no kplan identity (a URI SAN spiffe://kplan/cluster/<id>, \
         spiffe://kplan/reader/<name> or spiffe://kplan/planner/<name>)"
    )]
    NoIdentity,
    #[error("the certificate names more than one kplan identity ({0})")]
    Ambiguous(String),
}

/// The one kplan identity in a (verified) DER certificate's URI SANs.
pub fn identity_from_certificate(der: &[u8]) -> Result<Identity, IdentityError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|err| IdentityError::Unparsable { reason: err.to_string() })?;
    let sans = cert.subject_alternative_name().map_err(|err| IdentityError::Unparsable { reason: err.to_string() })?;
    let mut found = Vec::new();
    for name in sans.iter().flat_map(|ext| ext.value.general_names.iter()) {
        if let x509_parser::extensions::GeneralName::URI(uri) = name
            && let Some(identity) = Identity::from_uri(uri)?
        {
            found.push(identity);
        }
    }
    match found.len() {
        0 => Err(IdentityError::NoIdentity),
        1 => Ok(found.remove(0)),
        _ => Err(IdentityError::Ambiguous(found.iter().map(Identity::uri).collect::<Vec<_>>().join(", "))),
    }
}

/// Lowercase hex SHA-256 of a bearer token, as written in the token file.
pub fn token_sha256_hex(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.trim().as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip_through_uris() {
        for identity in [
            Identity::Cluster("fra-prod-1".into()),
            Identity::Reader("alice".into()),
            Identity::Planner("capacity.team".into()),
        ] {
            assert_eq!(Identity::from_uri(&identity.uri()), Ok(Some(identity.clone())));
        }
        assert_eq!(Identity::Cluster("a".into()).uri(), "spiffe://kplan/cluster/a");
        assert_eq!(Identity::from_uri("spiffe://example.org/cluster/a"), Ok(None));
        assert_eq!(Identity::from_uri("spiffe://kplanx/cluster/a"), Ok(None));
        assert_eq!(Identity::from_uri("https://kplan/cluster/a"), Ok(None));
        for bad in [
            "spiffe://kplan/cluster/",
            "spiffe://kplan/cluster/A",
            "spiffe://kplan/cluster/a/b",
            "spiffe://kplan/admin/root",
            "spiffe://kplan/cluster",
            "spiffe://kplan/",
        ] {
            assert!(Identity::from_uri(bad).is_err(), "{bad}");
        }
    }
}
