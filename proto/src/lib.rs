//! kplan's gRPC protocol, package `kplan.v1`, generated at build time from
//! `proto/kplan/v1/*.proto`, and the one place that converts wire types to and
//! from the domain types of `kplan-model`.

pub mod convert;

/// Generated messages, clients and servers of package `kplan.v1`.
#[allow(clippy::all, missing_debug_implementations)]
pub mod v1 {
    tonic::include_proto!("kplan.v1");
}

/// The encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("kplan_descriptor");
