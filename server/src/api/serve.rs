//! The gRPC server as a whole: TLS, limits, authentication, and the gate that
//! keeps the kplan services shut until the store is verified.
//!
//! A request passes, outermost first:
//!
//! 1. the TLS handshake (with a timeout) with the current certificate
//!    ([`crate::tls_reload`]: changed files are reloaded without a restart),
//!    then tonic: the HTTP/2 connection (keepalive PINGs), the per-request timeout;
//! 2. [`AuthLayer`]: who the caller is and whether it may call the method;
//! 3. load shedding over a server-wide concurrency limit: a request beyond
//!    `max_concurrent_requests` is refused at once with RESOURCE_EXHAUSTED
//!    (clients retry with backoff; nothing queues without bound);
//! 4. the store gate: `kplan.v1` calls answer UNAVAILABLE until the store has
//!    been opened and verified ([`ReadyHandle::ready`]); health answers
//!    NOT_SERVING until then, reflection works from the start.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tower::ServiceExt;

use super::ApiState;
use super::auth::{AuthLayer, Authenticator};
use crate::metrics::Metrics;
use crate::tls::TransportSecurity;
use crate::tls_reload::{AcceptOptions, SharedServerConfig, SharedTokens, TlsReloader};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Limits and timeouts of the gRPC server (from the configuration).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub request_timeout: Duration,
    /// Server-wide; beyond it, RESOURCE_EXHAUSTED.
    pub max_concurrent_requests: usize,
    pub tls_handshake_timeout: Duration,
    /// How often the TLS and token files are checked for changes.
    pub tls_reload_interval: Duration,
    pub http2_keepalive_interval: Duration,
    pub http2_keepalive_timeout: Duration,
    pub tcp_keepalive: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("tls: the server certificate and key do not make a TLS configuration: {0}")]
    Tls(String),
    #[error("building the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("serving gRPC: {0}")]
    Serve(#[source] tonic::transport::Error),
}

/// The kplan services, once the store is verified.
type KplanSlot = Arc<OnceLock<Routes>>;

/// A gRPC server ready to bind: health (NOT_SERVING) and reflection, the TLS
/// configuration already checked.
#[derive(Debug)]
pub struct GrpcServer {
    security: TransportSecurity,
    options: ServeOptions,
    /// The rustls configuration of the files, built (and so checked) before binding.
    tls: Option<SharedServerConfig>,
    metrics: Option<Arc<Metrics>>,
    base: Routes,
    slot: KplanSlot,
    health: tonic_health::server::HealthReporter,
}

/// Opens the gate once the store is verified.
#[derive(Debug, Clone)]
pub struct ReadyHandle {
    slot: KplanSlot,
    health: tonic_health::server::HealthReporter,
}

impl GrpcServer {
    /// Builds everything that does not need the store. Call before binding: a
    /// key that does not match its certificate is a configuration error.
    pub async fn new(security: TransportSecurity, options: ServeOptions) -> Result<GrpcServer, ServeError> {
        let tls = match &security {
            TransportSecurity::MutualTls { material, tokens, .. } => Some(SharedServerConfig::new(
                crate::tls_reload::build_server_config(material, tokens.is_some()).map_err(ServeError::Tls)?,
            )),
            TransportSecurity::InsecurePlaintext => None,
        };
        let (health, base) = super::health_and_reflection().await?;
        Ok(GrpcServer { security, options, tls, metrics: None, base, slot: Arc::new(OnceLock::new()), health })
    }

    /// Where the TLS metrics go (certificate expiry, reloads).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> GrpcServer {
        self.metrics = Some(metrics);
        self
    }

    pub fn ready_handle(&self) -> ReadyHandle {
        ReadyHandle { slot: self.slot.clone(), health: self.health.clone() }
    }

    /// Serves on `listener` until `shutdown` resolves; in-flight calls finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let options = &self.options;
        let builder = Server::builder()
            .timeout(options.request_timeout)
            .http2_keepalive_interval(Some(options.http2_keepalive_interval))
            .http2_keepalive_timeout(Some(options.http2_keepalive_timeout));
        let limit = options.max_concurrent_requests;
        let (tokens, tls) = match (&self.security, self.tls) {
            (TransportSecurity::MutualTls { material, tokens, paths }, Some(tls)) => {
                let tokens = tokens.clone().map(SharedTokens::new);
                let reloader =
                    TlsReloader::new(paths.clone(), material, tls.clone(), tokens.clone(), self.metrics.clone());
                (Some(tokens), Some((tls, reloader)))
            }
            _ => (None, None),
        };
        let authenticator = match tokens {
            Some(tokens) => Authenticator::MutualTls { tokens },
            None => Authenticator::InsecurePlaintext,
        };
        let router = builder
            .layer(AuthLayer::new(authenticator))
            .layer(tower::util::MapErrLayer::new(move |err: BoxError| overloaded_to_status(err, limit)))
            .layer(tower::load_shed::LoadShedLayer::new())
            .layer(tower::limit::ConcurrencyLimitLayer::new(limit))
            .layer(StoreGateLayer { slot: self.slot.clone() })
            .add_routes(self.base);
        match tls {
            Some((tls, reloader)) => {
                // Stops polling when serving ends (the handle is aborted on drop).
                let _reloading = AbortOnDrop(reloader.spawn(options.tls_reload_interval));
                let accept = AcceptOptions {
                    handshake_timeout: options.tls_handshake_timeout,
                    tcp_keepalive: options.tcp_keepalive,
                };
                let incoming = crate::tls_reload::tls_incoming(listener, tls, accept);
                router.serve_with_incoming_shutdown(incoming, shutdown).await.map_err(ServeError::Serve)
            }
            None => {
                let incoming =
                    TcpIncoming::from(listener).with_nodelay(Some(true)).with_keepalive(Some(options.tcp_keepalive));
                router.serve_with_incoming_shutdown(incoming, shutdown).await.map_err(ServeError::Serve)
            }
        }
    }
}

impl ReadyHandle {
    /// Installs the kplan services over the verified store and marks them SERVING.
    pub async fn ready(&self, state: ApiState) {
        let _ = self.slot.set(super::kplan_routes(state).prepare());
        super::set_serving(&self.health).await;
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Load shedding's refusal as a gRPC status.
fn overloaded_to_status(err: BoxError, limit: usize) -> BoxError {
    if err.is::<tower::load_shed::error::Overloaded>() {
        Box::new(Status::resource_exhausted(format!(
            "server busy: {limit} requests in flight (max_concurrent_requests); retry with backoff"
        )))
    } else {
        err
    }
}

/// Routes `kplan.v1` calls to the services once they exist; UNAVAILABLE before.
#[derive(Debug, Clone)]
struct StoreGateLayer {
    slot: KplanSlot,
}

impl<S> tower::Layer<S> for StoreGateLayer {
    type Service = StoreGate<S>;

    fn layer(&self, inner: S) -> StoreGate<S> {
        StoreGate { inner, slot: self.slot.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct StoreGate<S> {
    inner: S,
    slot: KplanSlot,
}

impl<S> tower::Service<http::Request<Body>> for StoreGate<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = futures::future::BoxFuture<'static, Result<http::Response<Body>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(|never| match never {})
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path().starts_with("/kplan.v1.") {
            let Some(routes) = self.slot.get().cloned() else {
                let status = Status::unavailable("the store is being opened and verified; retry shortly");
                return Box::pin(std::future::ready(Err(Box::new(status) as BoxError)));
            };
            return Box::pin(async move { routes.oneshot(request).await.map_err(|never| match never {}) });
        }
        let future = self.inner.call(request);
        Box::pin(async move { future.await.map_err(|never| match never {}) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn load_shedding_refuses_with_resource_exhausted() {
        use tower::{Service, ServiceBuilder};
        let (release, released) = tokio::sync::watch::channel(false);
        let slow = tower::service_fn(move |_: ()| {
            let mut released = released.clone();
            async move {
                let _ = released.wait_for(|r| *r).await;
                Ok::<_, BoxError>("done")
            }
        });
        let mut service = ServiceBuilder::new()
            .layer(tower::util::MapErrLayer::new(|err: BoxError| overloaded_to_status(err, 1)))
            .layer(tower::load_shed::LoadShedLayer::new())
            .layer(tower::limit::ConcurrencyLimitLayer::new(1))
            .service(slow);
        let first = service.ready().await.expect("ready").call(());
        let mut second_service = service.clone();
        let err = second_service.ready().await.expect("ready").call(()).await.expect_err("shed");
        let status = err.downcast::<Status>().expect("a status");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("max_concurrent_requests"), "{status:?}");
        // (tonic clones the service per request and drops the clone after it.)
        drop(second_service);
        release.send(true).expect("send");
        assert_eq!(first.await.expect("first finishes"), "done");
        // The slot is free again.
        assert_eq!(service.ready().await.expect("ready").call(()).await.expect("served"), "done");
    }

    #[tokio::test]
    async fn health_is_not_serving_and_kplan_calls_wait_until_the_store_is_ready() {
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::health_client::HealthClient;
        let options = ServeOptions {
            request_timeout: Duration::from_secs(10),
            max_concurrent_requests: 8,
            tls_handshake_timeout: Duration::from_secs(5),
            tls_reload_interval: Duration::from_secs(5),
            http2_keepalive_interval: Duration::from_secs(30),
            http2_keepalive_timeout: Duration::from_secs(20),
            tcp_keepalive: Duration::from_secs(60),
        };
        let grpc = GrpcServer::new(TransportSecurity::InsecurePlaintext, options).await.expect("builds");
        let ready = grpc.ready_handle();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(grpc.serve(listener, async move {
            let _ = stopped.await;
        }));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("url")
            .connect()
            .await
            .expect("connects");
        let mut health = HealthClient::new(channel.clone());
        let mut query = kplan_proto::v1::query_service_client::QueryServiceClient::new(channel);
        let check = |service: &str| tonic_health::pb::HealthCheckRequest { service: service.to_string() };

        let status = health.check(check("")).await.expect("health answers").into_inner().status;
        assert_eq!(status, ServingStatus::NotServing as i32);
        let status = health.check(check("kplan.v1.InventoryService")).await.expect("known").into_inner().status;
        assert_eq!(status, ServingStatus::NotServing as i32);
        let refused = query.list_clusters(kplan_proto::v1::ListClustersRequest::default()).await.expect_err("shut");
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");

        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn kplan_store::Store> = Arc::new(kplan_store::SledStore::open(dir.path()).expect("store"));
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let default_policy = Arc::new(kplan_model::Policy::default());
        let watcher = crate::watch::Watcher::new(
            store.clone(),
            default_policy.clone(),
            metrics.clone(),
            crate::watch::WatchSettings {
                stale_after_seconds: 3600,
                wave_stall_seconds: 86_400,
                recheck_interval: Duration::from_secs(1),
            },
        );
        ready
            .ready(ApiState {
                store,
                default_policy,
                metrics,
                watcher,
                max_message_bytes: 1 << 20,
                validation_limits: Default::default(),
            })
            .await;
        let status = health.check(check("")).await.expect("health answers").into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32);
        let clusters = query.list_clusters(kplan_proto::v1::ListClustersRequest::default()).await.expect("served");
        assert!(clusters.into_inner().clusters.is_empty());

        stop.send(()).expect("stop");
        serving.await.expect("joins").expect("served cleanly");
    }
}
