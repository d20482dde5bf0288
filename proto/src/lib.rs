//! kplan's gRPC protocol, package `kplan.v1`, generated at build time from
//! `proto/kplan/v1/*.proto`, and the one place that converts wire types to and
//! from the domain types of `kplan-model`; [`tls`] is the client side of the
//! transport security (TLS, client certificates, bearer tokens) shared by the
//! CLI and the agent.

pub mod convert;
pub mod identity;
pub mod tls;

/// Generated messages, clients and servers of package `kplan.v1`.
#[allow(clippy::all, missing_debug_implementations)]
pub mod v1 {
    tonic::include_proto!("kplan.v1");
}

/// The encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("kplan_descriptor");
