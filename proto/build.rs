//! Generates the kplan.v1 messages, clients and servers, plus a file descriptor
//! set for server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY-free: build scripts are single-threaded; tonic-prost-build reads PROTOC.
    if std::env::var_os("PROTOC").is_none() {
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("PROTOC", protoc);
        }
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "kplan/v1/inventory.proto",
        "kplan/v1/query.proto",
        "kplan/v1/planner.proto",
        "kplan/v1/capacity.proto",
        "kplan/v1/watch.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("kplan_descriptor.bin"))
        // Boxed: a snapshot stays small to move around when it carries no RBAC.
        .boxed(".kplan.v1.ClusterSnapshot.isolation")
        .compile_protos(&protos, &["."])?;
    Ok(())
}
