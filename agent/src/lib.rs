//! kplan's cluster agent: reads nodes, namespaces, pods and DaemonSets from the
//! Kubernetes API (read-only) and reports cluster snapshots to kplan-server.
//!
//! - [`collect`]: Kubernetes objects to a snapshot, by the label contract (pure);
//!   also used by `kplan import`.
// Later: `pub mod watch;` (kube-runtime watchers), `pub mod report;` (gRPC
// client), `pub mod config;` (the agent's configuration).

pub mod collect;
