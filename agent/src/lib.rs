//! kplan's cluster agent: reads nodes, namespaces, pods, DaemonSets,
//! PersistentVolumeClaims, PersistentVolumes and StorageClasses from the
//! Kubernetes API (read-only) and reports cluster snapshots to kplan-server.
//!
//! - [`collect`]: Kubernetes objects to a snapshot, by the label contract (pure);
//!   also used by `kplan import`.
//! - [`view`]: the cluster as the agent keeps it, updated object by object
//!   (pure); per pod only its contribution to its namespace's demand.
//! - [`watch`]: kube-runtime watchers feeding the view.
//! - [`report`]: debounced and periodic snapshots, delivered over gRPC with
//!   jittered backoff; generations that only grow.
//! - [`health`]: `/healthz` and `/readyz`.
//! - [`config`], [`telemetry`], [`run`]: configuration, logging, and the two
//!   modes (`kplan-agent`, `kplan-agent snapshot --out FILE`).
//! - [`fake_api`]: a fake Kubernetes API server for tests and the benchmark.

/// The collector, a crate of its own (`kplan-collect`) so that the CLI can
/// read kubectl exports without linking a Kubernetes client.
pub use kplan_collect as collect;
pub mod config;
pub mod fake_api;
pub mod health;
pub mod report;
pub mod run;
pub mod telemetry;
pub mod view;
pub mod watch;
