//! The collector's one error type.

/// Everything that can go wrong turning Kubernetes objects into a snapshot.
///
/// Messages are lowercase with no trailing period and name, where they can,
/// the source file, the object (`node "worker-1"`, `pod "shop/web-0"`) and the
/// field (`status.allocatable.cpu`). `file` is empty for objects that did not
/// come from a file (the agent's watcher); the message then starts at the object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollectError {
    /// The input holds no document at all.
    #[error("{file}: empty input")]
    Empty { file: String },

    /// Input that starts like JSON (`{` or `[`) but is neither valid JSON nor YAML.
    #[error("{file}: not valid json: {message}")]
    Json { file: String, message: String },

    #[error("{file}: not valid yaml: {message}")]
    Yaml { file: String, message: String },

    /// A document or list item that is not shaped like a Kubernetes object.
    /// `at` is the file and the item's place in it (`nodes.json, items[3]`).
    #[error("{at}: not a kubernetes object: {reason}")]
    NotKubernetes { at: String, reason: String },

    /// A malformed or missing field of a known object.
    #[error("{}{object}: {field}: {message}", prefix(.file))]
    Field {
        file: String,
        /// `node "worker-1"`, or `node at items[3]` when it has no name.
        object: String,
        /// Dotted path, e.g. `spec.containers[1].resources.requests.cpu`.
        field: String,
        message: String,
    },

    #[error(
        "{}namespace {namespace:?}: label {label}: unknown sla tier {value:?} (expected gold, silver or bronze)",
        prefix(.file)
    )]
    UnknownSlaTier { file: String, namespace: String, label: String, value: String },

    /// A node whose datacenter or firewall zone is neither labelled nor defaulted.
    #[error(
        "{}node {node:?} has no {fact}: set one of the node labels {labels}, or give the cluster a default {fact} ({fix})",
        prefix(.file)
    )]
    MissingTopology {
        file: String,
        node: String,
        /// `datacenter` or `firewall zone`.
        fact: &'static str,
        labels: String,
        fix: &'static str,
    },

    #[error(
        "{}namespace {namespace:?} has no security tier: set one of the namespace labels {labels}, or give the cluster a default security tier (--security-tier, or security_tier in the agent config)",
        prefix(.file)
    )]
    MissingSecurityTier { file: String, namespace: String, labels: String },

    /// The same node, namespace or pod twice in the input.
    #[error("duplicate {kind} {name:?}: in {first} and in {second}")]
    Duplicate { kind: &'static str, name: String, first: String, second: String },

    #[error(
        "no generation: no input object has a numeric metadata.resourceVersion; give the generation explicitly (--generation)"
    )]
    NoGeneration,

    #[error("no nodes, namespaces or pods in the input{}", skipped_suffix(.skipped))]
    NothingToCollect {
        /// What was skipped, e.g. `3 Service, 1 Event`; empty when nothing was.
        skipped: String,
    },

    /// A kplan snapshot file given together with other input.
    #[error("{at}: a kplan snapshot cannot be combined with other input ({other})")]
    SnapshotMixed { at: String, other: String },

    #[error("{at}: snapshot is of cluster {found:?}, not {expected:?}")]
    ClusterMismatch { at: String, found: String, expected: String },

    #[error("cluster id is empty")]
    EmptyClusterId,
}

impl CollectError {
    /// Names `file` as the source of an error raised without one (by
    /// [`node_from_k8s`](super::node_from_k8s) and friends, which do not know it).
    pub fn in_file(mut self, source: &str) -> Self {
        match &mut self {
            CollectError::Field { file, .. }
            | CollectError::UnknownSlaTier { file, .. }
            | CollectError::MissingTopology { file, .. }
            | CollectError::MissingSecurityTier { file, .. }
                if file.is_empty() =>
            {
                *file = source.to_string();
            }
            _ => {}
        }
        self
    }

    pub(crate) fn field(object: String, field: impl Into<String>, message: impl ToString) -> Self {
        CollectError::Field { file: String::new(), object, field: field.into(), message: message.to_string() }
    }
}

fn prefix(file: &str) -> String {
    if file.is_empty() { String::new() } else { format!("{file}: ") }
}

fn skipped_suffix(skipped: &str) -> String {
    if skipped.is_empty() { String::new() } else { format!(" (skipped: {skipped})") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_name_file_object_and_field() {
        let error =
            CollectError::field("node \"worker-1\"".into(), "status.allocatable.cpu", "malformed quantity \"4x\"");
        assert_eq!(error.to_string(), "node \"worker-1\": status.allocatable.cpu: malformed quantity \"4x\"");
        assert_eq!(
            error.in_file("nodes.json").to_string(),
            "nodes.json: node \"worker-1\": status.allocatable.cpu: malformed quantity \"4x\""
        );
    }

    #[test]
    fn in_file_keeps_an_existing_file() {
        let error = CollectError::UnknownSlaTier {
            file: "a.yaml".into(),
            namespace: "shop".into(),
            label: "kplan.io/sla-tier".into(),
            value: "platinum".into(),
        };
        assert!(error.in_file("b.yaml").to_string().starts_with("a.yaml: namespace \"shop\""));
    }
}
