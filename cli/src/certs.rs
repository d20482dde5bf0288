//! `kplan certs`: a CA, certificates and bearer tokens for a quick start with
//! mutual TLS (rcgen, ECDSA P-256). Production may use any PKI that puts the
//! identity in a URI SAN (see the README's "Security model").
//!
//! Files are created, never overwritten: private keys and tokens with mode
//! 0600 from the start (no window in which they are readable by others),
//! certificates 0644 (they are public).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Subcommand};
use kplan_model::time::{now_unix, utc_readable};
use kplan_proto::identity::{Identity, Role, token_sha256_hex};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a CA: ca.crt (0644) and ca.key (0600); with --server-host, also the server's certificate.
    #[command(after_help = "Examples:\n  \
kplan certs init --out kplan-ca\n  \
kplan certs init --out kplan-ca --server-host kplan.example.com --server-host 10.0.0.5\n\n\
Keep ca.key offline if you can: it signs every identity.")]
    Init(InitArgs),
    /// Issue a certificate signed by the CA: an agent's (--cluster), a reader's, a planner's or the server's.
    #[command(after_help = "Examples:\n  \
kplan certs issue --ca-dir kplan-ca --cluster fra-prod-1 --out certs/     # certs/fra-prod-1.crt, .key\n  \
kplan certs issue --ca-dir kplan-ca --reader alice --days 90              # ./reader-alice.crt, .key\n  \
kplan certs issue --ca-dir kplan-ca --server-host kplan.example.com      # ./server.crt, .key\n\n\
The identity is a URI SAN: spiffe://kplan/cluster/<id>, spiffe://kplan/reader/<name>,\n\
spiffe://kplan/planner/<name>. Servers get DNS/IP SANs.")]
    Issue(IssueArgs),
    /// Make a bearer token for a reader or planner: the token into FILE (0600), the server's line on stdout.
    #[command(after_help = "Example:\n  \
kplan certs token --reader dashboards --out dashboards.token >> /etc/kplan/tokens\n\n\
The server's token_file keeps only the SHA-256 of the token; the token itself stays in FILE.")]
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to write ca.crt and ca.key into (created if missing).
    #[arg(long, value_name = "DIR", default_value = "kplan-ca")]
    out: PathBuf,
    /// Validity of the CA in days.
    #[arg(long, value_name = "DAYS", default_value_t = 3650)]
    days: u32,
    /// Also issue the server's certificate (server.crt, server.key; 365 days) for this DNS name or IP address.
    #[arg(long = "server-host", value_name = "HOST")]
    server_hosts: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("identity").required(true).args(["cluster", "reader", "planner", "server_hosts"])))]
pub struct IssueArgs {
    /// Directory holding the CA's ca.crt and ca.key (from `kplan certs init`).
    #[arg(long, value_name = "DIR", default_value = "kplan-ca")]
    ca_dir: PathBuf,
    /// An agent's certificate: it may report for this cluster id only.
    #[arg(long, value_name = "ID")]
    cluster: Option<String>,
    /// A reader's certificate: queries, plans, capacity reviews.
    #[arg(long, value_name = "NAME")]
    reader: Option<String>,
    /// A planner's certificate: a reader that may also propose plans.
    #[arg(long, value_name = "NAME")]
    planner: Option<String>,
    /// The server's certificate, for this DNS name or IP address (repeat for several).
    #[arg(long = "server-host", value_name = "HOST")]
    server_hosts: Vec<String>,
    /// Directory to write the certificate and key into (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Validity in days.
    #[arg(long, value_name = "DAYS", default_value_t = 365)]
    days: u32,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("identity").required(true).args(["reader", "planner"])))]
pub struct TokenArgs {
    #[arg(long, value_name = "NAME")]
    reader: Option<String>,
    #[arg(long, value_name = "NAME")]
    planner: Option<String>,
    /// File to write the token into (mode 0600; must not exist).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub fn run(command: &CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Init(args) => init(args),
        CertsCommand::Issue(args) => issue(args),
        CertsCommand::Token(args) => token(args),
    }
}

const CERTIFICATE_MODE: u32 = 0o644;
const SECRET_MODE: u32 = 0o600;

/// What a leaf certificate is for.
enum Subject {
    Client(Identity),
    Server(Vec<String>),
}

impl Subject {
    fn file_stem(&self) -> String {
        match self {
            Subject::Client(Identity::Cluster(id)) => id.clone(),
            Subject::Client(Identity::Reader(name)) => format!("reader-{name}"),
            Subject::Client(Identity::Planner(name)) => format!("planner-{name}"),
            Subject::Server(_) => "server".to_string(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Subject::Client(identity) => format!("{identity}, {}", identity.uri()),
            Subject::Server(hosts) => format!("server {}", hosts.join(", ")),
        }
    }
}

fn init(args: &InitArgs) -> anyhow::Result<()> {
    let mut files = vec![(args.out.join("ca.crt"), CERTIFICATE_MODE), (args.out.join("ca.key"), SECRET_MODE)];
    let server = (!args.server_hosts.is_empty()).then(|| Subject::Server(args.server_hosts.clone()));
    if server.is_some() {
        files.push((args.out.join("server.crt"), CERTIFICATE_MODE));
        files.push((args.out.join("server.key"), SECRET_MODE));
    }
    check_absent(&files)?;
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let (params, not_after) = ca_params(args.days)?;
    let ca_cert = params.self_signed(&ca_key).context("signing the CA certificate")?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    write_new(&files[0].0, ca_cert.pem().as_bytes(), CERTIFICATE_MODE)?;
    write_new(&files[1].0, ca_key.serialize_pem().as_bytes(), SECRET_MODE)?;
    println!("{}", written(&files[0].0, "CA certificate", CERTIFICATE_MODE, Some(("kplan CA", not_after))));
    println!("{}", written(&files[1].0, "CA private key", SECRET_MODE, None));
    if let Some(server) = server {
        let issuer = Issuer::new(params, ca_key);
        issue_to(&issuer, &server, &args.out, 365)?;
    }
    Ok(())
}

fn issue(args: &IssueArgs) -> anyhow::Result<()> {
    let subject = match (&args.cluster, &args.reader, &args.planner) {
        (Some(id), _, _) => Subject::Client(Identity::new(Role::Agent, id).context("--cluster")?),
        (_, Some(name), _) => Subject::Client(Identity::new(Role::Reader, name).context("--reader")?),
        (_, _, Some(name)) => Subject::Client(Identity::new(Role::Planner, name).context("--planner")?),
        _ => Subject::Server(args.server_hosts.clone()),
    };
    let ca_crt = args.ca_dir.join("ca.crt");
    let ca_key = args.ca_dir.join("ca.key");
    let ca_pem = std::fs::read_to_string(&ca_crt).with_context(|| {
        format!("reading the CA certificate {} (make one with `kplan certs init`)", ca_crt.display())
    })?;
    let key_pem =
        std::fs::read_to_string(&ca_key).with_context(|| format!("reading the CA key {}", ca_key.display()))?;
    let key = KeyPair::from_pem(&key_pem).with_context(|| format!("{}: not a PEM private key", ca_key.display()))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, key)
        .with_context(|| format!("{}: not a PEM CA certificate", ca_crt.display()))?;
    issue_to(&issuer, &subject, &args.out, args.days)
}

fn issue_to(issuer: &Issuer<'_, KeyPair>, subject: &Subject, out: &Path, days: u32) -> anyhow::Result<()> {
    let stem = subject.file_stem();
    let cert_path = out.join(format!("{stem}.crt"));
    let key_path = out.join(format!("{stem}.key"));
    check_absent(&[(cert_path.clone(), CERTIFICATE_MODE), (key_path.clone(), SECRET_MODE)])?;
    let key = KeyPair::generate().context("generating a key")?;
    let (params, not_after) = leaf_params(subject, days)?;
    let cert = params.signed_by(&key, issuer).context("signing the certificate")?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_new(&key_path, key.serialize_pem().as_bytes(), SECRET_MODE)?;
    write_new(&cert_path, cert.pem().as_bytes(), CERTIFICATE_MODE)?;
    println!("{}", written(&cert_path, "certificate", CERTIFICATE_MODE, Some((&subject.describe(), not_after))));
    println!("{}", written(&key_path, "private key", SECRET_MODE, None));
    Ok(())
}

fn token(args: &TokenArgs) -> anyhow::Result<()> {
    use rand::RngCore;
    let identity = match (&args.reader, &args.planner) {
        (Some(name), _) => Identity::new(Role::Reader, name).context("--reader")?,
        (_, Some(name)) => Identity::new(Role::Planner, name).context("--planner")?,
        _ => bail!("give --reader NAME or --planner NAME"),
    };
    check_absent(&[(args.out.clone(), SECRET_MODE)])?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_new(&args.out, format!("{token}\n").as_bytes(), SECRET_MODE)?;
    eprintln!("{}", written(&args.out, "bearer token", SECRET_MODE, None));
    eprintln!("add this line to the server's token_file (it holds the token's SHA-256, not the token):");
    println!("{} {} {}", identity.role(), identity.name(), token_sha256_hex(&token));
    Ok(())
}

/// From five minutes ago (clock skew) to `days` from now.
fn validity(params: &mut CertificateParams, days: u32) -> anyhow::Result<i64> {
    if days == 0 {
        bail!("--days must be at least 1");
    }
    let now = now_unix();
    let not_after = now + i64::from(days) * 86_400;
    params.not_before = time::OffsetDateTime::from_unix_timestamp(now - 300).context("the current time")?;
    params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).context("--days is too large")?;
    Ok(not_after)
}

fn random_serial() -> SerialNumber {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] &= 0x7f; // a positive INTEGER
    SerialNumber::from_slice(&bytes)
}

fn ca_params(days: u32) -> anyhow::Result<(CertificateParams, i64)> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "kplan CA");
    name.push(DnType::OrganizationName, "kplan");
    params.distinguished_name = name;
    // Signs leaf certificates only, no intermediate CAs.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(random_serial());
    let not_after = validity(&mut params, days)?;
    Ok((params, not_after))
}

fn leaf_params(subject: &Subject, days: u32) -> anyhow::Result<(CertificateParams, i64)> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    match subject {
        Subject::Client(identity) => {
            name.push(DnType::CommonName, identity.name());
            name.push(DnType::OrganizationalUnitName, identity.role().to_string());
            params.subject_alt_names =
                vec![SanType::URI(identity.uri().try_into().context("the identity is not an ASCII URI")?)];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        Subject::Server(hosts) => {
            name.push(DnType::CommonName, hosts.first().map_or("kplan-server", String::as_str));
            for host in hosts {
                params.subject_alt_names.push(match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(
                        host.as_str().try_into().with_context(|| format!("--server-host {host:?}: not a DNS name"))?,
                    ),
                });
            }
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
    }
    params.distinguished_name = name;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    let not_after = validity(&mut params, days)?;
    Ok((params, not_after))
}

fn check_absent(files: &[(PathBuf, u32)]) -> anyhow::Result<()> {
    let existing: Vec<String> =
        files.iter().filter(|(p, _)| p.exists()).map(|(p, _)| p.display().to_string()).collect();
    if !existing.is_empty() {
        bail!(
            "{} already exist(s): kplan never overwrites keys and certificates; move them away or choose another --out",
            existing.join(", ")
        );
    }
    Ok(())
}

/// Creates `path` with `mode` (never replacing a file) and writes `contents`.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents).with_context(|| format!("writing {}", path.display()))?;
    file.sync_all().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn written(path: &Path, what: &str, mode: u32, subject: Option<(&str, i64)>) -> String {
    let mut line = format!("wrote {}  {what}  {mode:04o}", path.display());
    if let Some((subject, not_after)) = subject {
        line.push_str(&format!("  {subject}; valid until {}", utc_readable(not_after)));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_issue_and_tokens_write_owner_only_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_dir = dir.path().join("ca");
        init(&InitArgs { out: ca_dir.clone(), days: 30, server_hosts: vec!["localhost".into(), "127.0.0.1".into()] })
            .expect("init");
        let issue_args = |cluster: &str| IssueArgs {
            ca_dir: ca_dir.clone(),
            cluster: Some(cluster.into()),
            reader: None,
            planner: None,
            server_hosts: vec![],
            out: dir.path().join("out"),
            days: 1,
        };
        issue(&issue_args("fra-prod-1")).expect("issue");
        let err = issue(&issue_args("fra-prod-1")).expect_err("never overwrites");
        assert!(err.to_string().contains("already exist"), "{err}");
        assert!(issue(&issue_args("Not_Valid")).is_err());

        let cert = std::fs::read(dir.path().join("out/fra-prod-1.crt")).expect("cert");
        let der = {
            use rustls_pki_types::pem::PemObject;
            rustls_pki_types::CertificateDer::from_pem_slice(&cert).expect("a PEM certificate")
        };
        assert_eq!(kplan_proto::identity::identity_from_certificate(&der), Ok(Identity::Cluster("fra-prod-1".into())));

        token(&TokenArgs { reader: Some("alice".into()), planner: None, out: dir.path().join("alice.token") })
            .expect("token");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &str| std::fs::metadata(dir.path().join(p)).expect("exists").permissions().mode() & 0o777;
            assert_eq!(mode("ca/ca.key"), 0o600);
            assert_eq!(mode("ca/server.key"), 0o600);
            assert_eq!(mode("out/fra-prod-1.key"), 0o600);
            assert_eq!(mode("alice.token"), 0o600);
            assert_eq!(mode("ca/ca.crt") & 0o600, 0o600);
        }
    }
}
