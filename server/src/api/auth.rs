//! Who is calling, and may they: every gRPC call passes [`AuthLayer`] before
//! it reaches a service.
//!
//! 1. Authentication. With mutual TLS the identity comes only from the client
//!    certificate rustls has verified against the client CA bundle (its URI SAN,
//!    see [`crate::tls`]); without a certificate, from a bearer token of the
//!    token file (readers and planners). With `insecure_plaintext` every caller
//!    is [`Peer::Insecure`] and may do everything.
//! 2. Authorisation by method ([`rule`]): agents report; readers query, read
//!    plans and their status and run capacity reviews; planners also propose,
//!    approve and abandon plans; health and
//!    reflection are open to every authenticated peer. A method without a rule
//!    is refused (fail closed).
//! 3. Scope: an agent reports (and reads back) only its own cluster. That needs
//!    the message, so it is checked by [`AgentScopedInventory`] and
//!    [`AgentScopedQuery`] around the services, before anything is stored.
//!
//! Refusals: no or unusable credentials → UNAUTHENTICATED; a role or cluster
//! not allowed → PERMISSION_DENIED. Tokens are never logged.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use kplan_proto::v1;
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Request, Response, Status};
use tracing::{debug, warn};

use super::{InventoryApi, QueryApi};
use crate::tls::{Identity, Role, identity_from_certificate};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The authenticated caller, in the request's extensions for the services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// `insecure_plaintext`: nobody is authenticated, everything is allowed.
    Insecure,
    /// Verified client certificate.
    Certificate(Identity),
    /// Bearer token of the token file.
    Token(Identity),
}

impl Peer {
    fn identity(&self) -> Option<&Identity> {
        match self {
            Peer::Insecure => None,
            Peer::Certificate(identity) | Peer::Token(identity) => Some(identity),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Insecure => f.write_str("unauthenticated plaintext peer"),
            Peer::Certificate(identity) => write!(f, "{identity} (certificate)"),
            Peer::Token(identity) => write!(f, "{identity} (token)"),
        }
    }
}

/// How callers are authenticated.
#[derive(Debug, Clone)]
pub enum Authenticator {
    InsecurePlaintext,
    /// The tokens are read at every request: the token file is reloaded when it changes.
    MutualTls {
        tokens: Option<crate::tls_reload::SharedTokens>,
    },
}

impl Authenticator {
    /// The peer of a request, or UNAUTHENTICATED.
    pub fn authenticate<B>(&self, request: &http::Request<B>) -> Result<Peer, Status> {
        let tokens = match self {
            Authenticator::InsecurePlaintext => return Ok(Peer::Insecure),
            Authenticator::MutualTls { tokens } => tokens,
        };
        let certificates = request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>().and_then(|i| i.peer_certs());
        if let Some(leaf) = certificates.as_ref().and_then(|chain| chain.first()) {
            // rustls verified the chain, the dates and the key usage; only the
            // identity is left to read.
            return identity_from_certificate(leaf.as_ref())
                .map(Peer::Certificate)
                .map_err(|err| Status::unauthenticated(format!("client certificate refused: {err}")));
        }
        let Some(header) = request.headers().get(http::header::AUTHORIZATION) else {
            return Err(Status::unauthenticated(match tokens {
                Some(_) => "no client certificate and no bearer token",
                None => "no client certificate",
            }));
        };
        let Some(tokens) = tokens else {
            return Err(Status::unauthenticated(
                "bearer tokens are not accepted here (no token_file); use a certificate",
            ));
        };
        let tokens = tokens.current();
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| Status::unauthenticated("the authorization header is not `Bearer <token>`"))?;
        tokens.verify(token).map(Peer::Token).ok_or_else(|| Status::unauthenticated("bearer token not recognised"))
    }
}

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Every authenticated peer (health, reflection).
    AnyPeer,
    /// Only these roles. An agent is further limited to its own cluster
    /// where the method names a cluster (see the module's documentation).
    Roles(&'static [Role]),
}

const READERS: &[Role] = &[Role::Reader, Role::Planner];

/// Every kplan method and who may call it. A method missing here is refused.
pub const RULES: &[(&str, Rule)] = &[
    ("/kplan.v1.InventoryService/ReportSnapshot", Rule::Roles(&[Role::Agent])),
    ("/kplan.v1.QueryService/ListClusters", Rule::Roles(READERS)),
    // Agents read their own cluster's newest generation back (to resume after a restart).
    ("/kplan.v1.QueryService/GetCluster", Rule::Roles(&[Role::Agent, Role::Reader, Role::Planner])),
    ("/kplan.v1.QueryService/ListGenerations", Rule::Roles(READERS)),
    ("/kplan.v1.CapacityService/CapacityReview", Rule::Roles(READERS)),
    ("/kplan.v1.PlannerService/ProposePlan", Rule::Roles(&[Role::Planner])),
    ("/kplan.v1.PlannerService/GetPlan", Rule::Roles(READERS)),
    ("/kplan.v1.PlannerService/ListPlans", Rule::Roles(READERS)),
    ("/kplan.v1.WatchService/ApprovePlan", Rule::Roles(&[Role::Planner])),
    ("/kplan.v1.WatchService/AbandonPlan", Rule::Roles(&[Role::Planner])),
    ("/kplan.v1.WatchService/GetPlanStatus", Rule::Roles(READERS)),
    ("/kplan.v1.WatchService/ListPlanLifecycles", Rule::Roles(READERS)),
    ("/kplan.v1.WatchService/WatchPlan", Rule::Roles(READERS)),
];

/// Services open to every authenticated peer.
pub const OPEN_SERVICES: &[&str] =
    &["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

/// The rule of a request path (`/package.Service/Method`), if any.
pub fn rule(path: &str) -> Option<Rule> {
    if let Some((_, rule)) = RULES.iter().find(|(method, _)| *method == path) {
        return Some(*rule);
    }
    let service = path.strip_prefix('/').and_then(|p| p.split_once('/')).map(|(service, _)| service)?;
    OPEN_SERVICES.contains(&service).then_some(Rule::AnyPeer)
}

/// Whether `peer` may call `path` at all (the cluster scope comes later).
pub fn authorize(peer: &Peer, path: &str) -> Result<(), Status> {
    let Some(identity) = peer.identity() else { return Ok(()) };
    match rule(path) {
        Some(Rule::AnyPeer) => Ok(()),
        Some(Rule::Roles(roles)) if roles.contains(&identity.role()) => Ok(()),
        Some(Rule::Roles(roles)) => Err(Status::permission_denied(format!(
            "{identity} may not call {}: it is for {}",
            path.trim_start_matches('/'),
            roles.iter().map(|r| format!("{r}s")).collect::<Vec<_>>().join(" and ")
        ))),
        None => {
            Err(Status::permission_denied(format!("{} is not a method kplan allows", path.trim_start_matches('/'))))
        }
    }
}

/// The tower layer that authenticates and authorises every call, and puts the
/// [`Peer`] in the request's extensions.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(authenticator: Authenticator) -> AuthLayer {
        AuthLayer { authenticator: Arc::new(authenticator) }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService { inner, authenticator: self.authenticator.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

fn remote_addr<B>(request: &http::Request<B>) -> Option<std::net::SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.get_ref().remote_addr())
        .or_else(|| extensions.get::<TcpConnectInfo>().and_then(TcpConnectInfo::remote_addr))
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>>,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_string();
        let outcome = self.authenticator.authenticate(&request).and_then(|peer| {
            authorize(&peer, &path)
                .map(|()| peer.clone())
                .inspect_err(|status| warn!(peer = %peer, method = %path, reason = status.message(), "call refused"))
        });
        match outcome {
            Ok(peer) => {
                debug!(peer = %peer, method = %path, "call authorised");
                request.extensions_mut().insert(peer);
                let future = self.inner.call(request);
                Box::pin(async move { future.await.map_err(Into::into) })
            }
            Err(status) => {
                if status.code() == tonic::Code::Unauthenticated {
                    let remote = remote_addr(&request).map(|a| a.to_string()).unwrap_or_default();
                    warn!(remote = %remote, method = %path, reason = status.message(), "call not authenticated");
                }
                Box::pin(std::future::ready(Err(Box::new(status) as BoxError)))
            }
        }
    }
}

/// Who made a call, as a plan's lifecycle records it: `role:name` of the
/// certificate or token (`planner:alice`), or `anonymous` under `insecure_plaintext`.
pub fn caller<T>(request: &Request<T>) -> String {
    match request.extensions().get::<Peer>() {
        Some(Peer::Certificate(identity)) => format!("{}:{}", identity.role(), identity.name()),
        Some(Peer::Token(identity)) => format!("{}:{} (token)", identity.role(), identity.name()),
        Some(Peer::Insecure) | None => "anonymous".to_string(),
    }
}

/// An agent may only name its own cluster; other peers pass.
fn check_cluster_scope<T>(request: &Request<T>, cluster_id: &str, action: &str) -> Result<(), Status> {
    match request.extensions().get::<Peer>() {
        Some(Peer::Insecure) => Ok(()),
        Some(peer @ (Peer::Certificate(Identity::Cluster(own)) | Peer::Token(Identity::Cluster(own)))) => {
            if own == cluster_id {
                Ok(())
            } else {
                warn!(peer = %peer, claimed_cluster_id = %cluster_id, action, "cluster refused");
                Err(Status::permission_denied(format!(
                    "the agent of cluster {own:?} may not {action} cluster {cluster_id:?}: its certificate names \
                     {own:?}"
                )))
            }
        }
        Some(Peer::Certificate(_) | Peer::Token(_)) => Ok(()),
        // The gate was not in front of the service: refuse rather than trust.
        None => Err(Status::permission_denied("no authenticated peer")),
    }
}

/// InventoryService with the agent's cluster scope.
#[derive(Debug, Clone)]
pub struct AgentScopedInventory(pub InventoryApi);

#[tonic::async_trait]
impl v1::inventory_service_server::InventoryService for AgentScopedInventory {
    async fn report_snapshot(
        &self,
        request: Request<v1::ReportSnapshotRequest>,
    ) -> Result<Response<v1::ReportSnapshotResponse>, Status> {
        let claimed = request.get_ref().snapshot.as_ref().map_or("", |s| s.cluster_id.as_str()).to_string();
        check_cluster_scope(&request, &claimed, "report for")?;
        self.0.report_snapshot(request).await
    }
}

/// QueryService with the agent's cluster scope (agents reach only GetCluster).
#[derive(Debug, Clone)]
pub struct AgentScopedQuery(pub QueryApi);

#[tonic::async_trait]
impl v1::query_service_server::QueryService for AgentScopedQuery {
    async fn list_clusters(
        &self,
        request: Request<v1::ListClustersRequest>,
    ) -> Result<Response<v1::ListClustersResponse>, Status> {
        self.0.list_clusters(request).await
    }

    async fn get_cluster(
        &self,
        request: Request<v1::GetClusterRequest>,
    ) -> Result<Response<v1::GetClusterResponse>, Status> {
        let claimed = request.get_ref().cluster_id.clone();
        check_cluster_scope(&request, &claimed, "read")?;
        self.0.get_cluster(request).await
    }

    async fn list_generations(
        &self,
        request: Request<v1::ListGenerationsRequest>,
    ) -> Result<Response<v1::ListGenerationsResponse>, Status> {
        self.0.list_generations(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::TokenTable;

    fn cluster(id: &str) -> Peer {
        Peer::Certificate(Identity::Cluster(id.into()))
    }

    #[test]
    fn every_kplan_method_has_a_rule() {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(kplan_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
        let mut n_methods = 0;
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    assert!(matches!(rule(&path), Some(Rule::Roles(_))), "{path} has no rule: add it to RULES");
                    n_methods += 1;
                }
            }
        }
        assert_eq!(n_methods, RULES.len(), "RULES names a method the protocol does not have");
    }

    #[test]
    fn roles_and_methods() {
        let reader = Peer::Token(Identity::Reader("alice".into()));
        let planner = Peer::Certificate(Identity::Planner("bob".into()));
        let agent = cluster("fra-prod-1");
        let report = "/kplan.v1.InventoryService/ReportSnapshot";
        let propose = "/kplan.v1.PlannerService/ProposePlan";
        let list = "/kplan.v1.QueryService/ListClusters";
        let health = "/grpc.health.v1.Health/Check";
        let reflection = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
        for (peer, path, allowed) in [
            (&agent, report, true),
            (&agent, list, false),
            (&agent, "/kplan.v1.QueryService/GetCluster", true),
            (&agent, "/kplan.v1.QueryService/ListGenerations", false),
            (&agent, propose, false),
            (&agent, "/kplan.v1.PlannerService/ListPlans", false),
            (&agent, health, true),
            (&reader, report, false),
            (&reader, list, true),
            (&reader, propose, false),
            (&reader, "/kplan.v1.PlannerService/GetPlan", true),
            (&reader, "/kplan.v1.CapacityService/CapacityReview", true),
            (&reader, reflection, true),
            (&planner, report, false),
            (&planner, propose, true),
            (&planner, list, true),
            (&planner, "/kplan.v1.Unknown/Method", false),
            (&planner, "/kplan.v1.WatchService/ApprovePlan", true),
            (&planner, "/kplan.v1.WatchService/AbandonPlan", true),
            (&reader, "/kplan.v1.WatchService/ApprovePlan", false),
            (&reader, "/kplan.v1.WatchService/AbandonPlan", false),
            (&reader, "/kplan.v1.WatchService/GetPlanStatus", true),
            (&reader, "/kplan.v1.WatchService/WatchPlan", true),
            (&agent, "/kplan.v1.WatchService/ApprovePlan", false),
            (&agent, "/kplan.v1.WatchService/WatchPlan", false),
            (&planner, "/grpc.health.v1.Health", false),
            (&Peer::Insecure, report, true),
            (&Peer::Insecure, "/anything/at-all", true),
        ] {
            let outcome = authorize(peer, path);
            assert_eq!(outcome.is_ok(), allowed, "{peer} {path}: {outcome:?}");
            if let Err(status) = outcome {
                assert_eq!(status.code(), tonic::Code::PermissionDenied);
            }
        }
        let status = authorize(&reader, report).expect_err("refused");
        assert!(status.message().contains("reader \"alice\"") && status.message().contains("agents"), "{status:?}");
    }

    /// Who a plan's lifecycle names as having changed it.
    #[test]
    fn callers_are_named_by_role_and_name() {
        let mut request = Request::new(());
        assert_eq!(caller(&request), "anonymous");
        request.extensions_mut().insert(Peer::Certificate(Identity::Planner("bob".into())));
        assert_eq!(caller(&request), "planner:bob");
        request.extensions_mut().insert(Peer::Token(Identity::Planner("carol".into())));
        assert_eq!(caller(&request), "planner:carol (token)");
    }

    #[test]
    fn agents_are_scoped_to_their_cluster() {
        let mut request = Request::new(());
        assert_eq!(
            check_cluster_scope(&request, "a", "report for").expect_err("no peer").code(),
            tonic::Code::PermissionDenied
        );
        request.extensions_mut().insert(cluster("a"));
        assert!(check_cluster_scope(&request, "a", "report for").is_ok());
        let status = check_cluster_scope(&request, "b", "report for").expect_err("other cluster");
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(status.message().contains("\"a\"") && status.message().contains("\"b\""), "{status:?}");
        request.extensions_mut().insert(Peer::Token(Identity::Reader("r".into())));
        assert!(check_cluster_scope(&request, "b", "read").is_ok());
    }

    fn request_with(header: Option<&str>) -> http::Request<()> {
        let mut request = http::Request::builder().uri("/kplan.v1.QueryService/ListClusters");
        if let Some(value) = header {
            request = request.header("authorization", value);
        }
        request.body(()).expect("request")
    }

    #[test]
    fn tokens_authenticate_readers_and_planners() {
        let hash = crate::tls::token_sha256_hex("t0ken");
        let tokens = TokenTable::parse(&format!("planner bob {hash}\n")).expect("parses");
        let auth = Authenticator::MutualTls { tokens: Some(crate::tls_reload::SharedTokens::new(tokens)) };
        assert_eq!(
            auth.authenticate(&request_with(Some("Bearer t0ken"))).ok(),
            Some(Peer::Token(Identity::Planner("bob".into())))
        );
        assert_eq!(
            auth.authenticate(&request_with(Some("bearer t0ken"))).map(|p| p.to_string()).ok().as_deref(),
            Some("planner \"bob\" (token)")
        );
        for bad in [Some("Bearer nope"), Some("Basic t0ken"), Some("t0ken"), None] {
            let status = auth.authenticate(&request_with(bad)).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{bad:?}");
            assert!(!status.message().contains("t0ken"), "the token is never echoed: {status:?}");
        }
        let no_tokens = Authenticator::MutualTls { tokens: None };
        let status = no_tokens.authenticate(&request_with(Some("Bearer t0ken"))).expect_err("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert_eq!(Authenticator::InsecurePlaintext.authenticate(&request_with(None)).ok(), Some(Peer::Insecure));
    }

    #[test]
    fn identities_come_from_the_certificate_san() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![
            rcgen::SanType::URI("spiffe://example.org/other".try_into().expect("uri")),
            rcgen::SanType::URI("spiffe://kplan/cluster/fra-prod-1".try_into().expect("uri")),
            rcgen::SanType::DnsName("fra-prod-1.example.com".try_into().expect("dns")),
        ];
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(identity_from_certificate(cert.der()), Ok(Identity::Cluster("fra-prod-1".into())));

        params.subject_alt_names.push(rcgen::SanType::URI("spiffe://kplan/reader/x".try_into().expect("uri")));
        let cert = params.self_signed(&key).expect("cert");
        assert!(matches!(identity_from_certificate(cert.der()), Err(crate::tls::IdentityError::Ambiguous(_))));

        params.subject_alt_names = vec![rcgen::SanType::DnsName("kplan.example.com".try_into().expect("dns"))];
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(identity_from_certificate(cert.der()), Err(crate::tls::IdentityError::NoIdentity));
        assert!(matches!(identity_from_certificate(b"junk"), Err(crate::tls::IdentityError::Unparsable { .. })));
    }
}
