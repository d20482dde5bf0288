//! kplan-server: the daemon. The gRPC API over the store (`kplan-store`) and the
//! planner (`kplan-planner`), its authentication, configuration and telemetry.
//!
//! - [`api`]: gRPC services (the only module that sees protobuf types)
//! - [`metrics`]: Prometheus metrics and the HTTP probe endpoints
//! - [`tls`]: identities in certificates (the SAN scheme), bearer tokens, TLS files
//! - [`tls_reload`]: TLS termination with the current certificate, reloading changed TLS and token files
//! - [`watch`]: the watch over approved plans (lifecycle, re-validation off the ingest path, progress)
//! - [`config`], [`telemetry`]: the binary's configuration and logging

pub mod api;
pub mod config;
pub mod metrics;
pub mod telemetry;
pub mod tls;
pub mod tls_reload;
pub mod watch;
