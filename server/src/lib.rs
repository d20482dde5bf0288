//! kplan-server: the durable inventory store, the planner and the gRPC API.
//!
//! - [`api`]: gRPC services (the only module that sees protobuf types)
//! - [`store`]: the [`store::Store`] trait and its sled implementation
//! - [`planner`]: pure planning: blocks, model, solve, validate, explain
//! - [`policy`]: loading and checking policy files
//! - [`validation`]: checks on snapshots before they are stored
//! - [`config`], [`telemetry`]: the binary's configuration and logging

pub mod api;
pub mod config;
pub mod store;
pub mod telemetry;
pub mod validation;
