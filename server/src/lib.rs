//! kplan-server: the durable inventory store, the planner and the gRPC API.
//!
//! - [`api`]: gRPC services (the only module that sees protobuf types)
//! - [`store`]: the [`store::Store`] trait and its sled implementation
//! - [`planner`]: pure planning: blocks, model, solve, validate, explain
//! - [`policy`]: loading and checking policy files
//! - [`capacity`]: quarterly capacity reviews over the snapshot history (pure)
//! - [`plans`]: propose and store, shared by the planner service and the embedded CLI
//! - [`validation`]: checks on snapshots before they are stored
//! - [`metrics`]: Prometheus metrics and the HTTP probe endpoints
//! - [`tls`]: identities in certificates (the SAN scheme), bearer tokens, TLS files
//! - [`config`], [`telemetry`]: the binary's configuration and logging

pub mod admin;
pub mod api;
pub mod capacity;
pub mod config;
pub mod metrics;
pub mod planner;
pub mod plans;
pub mod policy;
pub mod store;
pub mod telemetry;
#[cfg(test)]
mod test_support;
pub mod tls;
pub mod validation;
