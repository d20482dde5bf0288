//! Kubernetes APIs removed by a release, from the upstream deprecation guide
//! (<https://kubernetes.io/docs/reference/using-api/deprecation-guide/>, the
//! "Removed APIs by release" sections for v1.16 through v1.32; v1.33 and v1.34
//! removed no served API). A namespace that moves from a cluster on an older
//! version to a target on a newer one crosses every removal in between: its
//! manifests, Helm charts and operators must use the replacements first, or
//! the target's API server refuses them.

/// One removed group/version/kind and what replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovedApi {
    /// The minor version (of 1.x) that no longer serves it.
    pub removed_in: u64,
    /// `group/version`, e.g. `batch/v1beta1`.
    pub api_version: &'static str,
    pub kind: &'static str,
    /// `group/version` to use instead, or empty when there is none.
    pub replacement: &'static str,
}

const fn api(removed_in: u64, api_version: &'static str, kind: &'static str, replacement: &'static str) -> RemovedApi {
    RemovedApi { removed_in, api_version, kind, replacement }
}

/// Every removal of the guide, by release.
pub const REMOVED_APIS: &[RemovedApi] = &[
    // v1.16
    api(16, "extensions/v1beta1", "DaemonSet", "apps/v1"),
    api(16, "apps/v1beta2", "DaemonSet", "apps/v1"),
    api(16, "extensions/v1beta1", "Deployment", "apps/v1"),
    api(16, "apps/v1beta1", "Deployment", "apps/v1"),
    api(16, "apps/v1beta2", "Deployment", "apps/v1"),
    api(16, "apps/v1beta1", "StatefulSet", "apps/v1"),
    api(16, "apps/v1beta2", "StatefulSet", "apps/v1"),
    api(16, "extensions/v1beta1", "ReplicaSet", "apps/v1"),
    api(16, "apps/v1beta1", "ReplicaSet", "apps/v1"),
    api(16, "apps/v1beta2", "ReplicaSet", "apps/v1"),
    api(16, "extensions/v1beta1", "NetworkPolicy", "networking.k8s.io/v1"),
    api(16, "extensions/v1beta1", "PodSecurityPolicy", "policy/v1beta1"),
    // v1.22
    api(22, "admissionregistration.k8s.io/v1beta1", "MutatingWebhookConfiguration", "admissionregistration.k8s.io/v1"),
    api(
        22,
        "admissionregistration.k8s.io/v1beta1",
        "ValidatingWebhookConfiguration",
        "admissionregistration.k8s.io/v1",
    ),
    api(22, "apiextensions.k8s.io/v1beta1", "CustomResourceDefinition", "apiextensions.k8s.io/v1"),
    api(22, "apiregistration.k8s.io/v1beta1", "APIService", "apiregistration.k8s.io/v1"),
    api(22, "authentication.k8s.io/v1beta1", "TokenReview", "authentication.k8s.io/v1"),
    api(22, "authorization.k8s.io/v1beta1", "SubjectAccessReview", "authorization.k8s.io/v1"),
    api(22, "authorization.k8s.io/v1beta1", "LocalSubjectAccessReview", "authorization.k8s.io/v1"),
    api(22, "authorization.k8s.io/v1beta1", "SelfSubjectAccessReview", "authorization.k8s.io/v1"),
    api(22, "certificates.k8s.io/v1beta1", "CertificateSigningRequest", "certificates.k8s.io/v1"),
    api(22, "coordination.k8s.io/v1beta1", "Lease", "coordination.k8s.io/v1"),
    api(22, "extensions/v1beta1", "Ingress", "networking.k8s.io/v1"),
    api(22, "networking.k8s.io/v1beta1", "Ingress", "networking.k8s.io/v1"),
    api(22, "networking.k8s.io/v1beta1", "IngressClass", "networking.k8s.io/v1"),
    api(22, "rbac.authorization.k8s.io/v1beta1", "ClusterRole", "rbac.authorization.k8s.io/v1"),
    api(22, "rbac.authorization.k8s.io/v1beta1", "ClusterRoleBinding", "rbac.authorization.k8s.io/v1"),
    api(22, "rbac.authorization.k8s.io/v1beta1", "Role", "rbac.authorization.k8s.io/v1"),
    api(22, "rbac.authorization.k8s.io/v1beta1", "RoleBinding", "rbac.authorization.k8s.io/v1"),
    api(22, "scheduling.k8s.io/v1beta1", "PriorityClass", "scheduling.k8s.io/v1"),
    api(22, "storage.k8s.io/v1beta1", "CSIDriver", "storage.k8s.io/v1"),
    api(22, "storage.k8s.io/v1beta1", "CSINode", "storage.k8s.io/v1"),
    api(22, "storage.k8s.io/v1beta1", "StorageClass", "storage.k8s.io/v1"),
    api(22, "storage.k8s.io/v1beta1", "VolumeAttachment", "storage.k8s.io/v1"),
    // v1.25
    api(25, "batch/v1beta1", "CronJob", "batch/v1"),
    api(25, "discovery.k8s.io/v1beta1", "EndpointSlice", "discovery.k8s.io/v1"),
    api(25, "events.k8s.io/v1beta1", "Event", "events.k8s.io/v1"),
    api(25, "autoscaling/v2beta1", "HorizontalPodAutoscaler", "autoscaling/v2"),
    api(25, "policy/v1beta1", "PodDisruptionBudget", "policy/v1"),
    api(25, "policy/v1beta1", "PodSecurityPolicy", ""),
    api(25, "node.k8s.io/v1beta1", "RuntimeClass", "node.k8s.io/v1"),
    // v1.26
    api(26, "flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema", "flowcontrol.apiserver.k8s.io/v1beta3"),
    api(
        26,
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "PriorityLevelConfiguration",
        "flowcontrol.apiserver.k8s.io/v1beta3",
    ),
    api(26, "autoscaling/v2beta2", "HorizontalPodAutoscaler", "autoscaling/v2"),
    // v1.27
    api(27, "storage.k8s.io/v1beta1", "CSIStorageCapacity", "storage.k8s.io/v1"),
    // v1.29
    api(29, "flowcontrol.apiserver.k8s.io/v1beta2", "FlowSchema", "flowcontrol.apiserver.k8s.io/v1"),
    api(29, "flowcontrol.apiserver.k8s.io/v1beta2", "PriorityLevelConfiguration", "flowcontrol.apiserver.k8s.io/v1"),
    // v1.32
    api(32, "flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema", "flowcontrol.apiserver.k8s.io/v1"),
    api(32, "flowcontrol.apiserver.k8s.io/v1beta3", "PriorityLevelConfiguration", "flowcontrol.apiserver.k8s.io/v1"),
];

/// The removals a workload crosses moving from 1.`from` to 1.`to` (none when
/// `to <= from`), in release order.
pub fn removed_between(from: u64, to: u64) -> Vec<RemovedApi> {
    REMOVED_APIS.iter().copied().filter(|api| api.removed_in > from && api.removed_in <= to).collect()
}

/// `in 1.25: batch/v1beta1 CronJob (use batch/v1), ...; in 1.26: ...`.
pub fn describe(removed: &[RemovedApi]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut releases: Vec<u64> = removed.iter().map(|api| api.removed_in).collect();
    releases.dedup();
    for release in releases {
        let kinds: Vec<String> = removed
            .iter()
            .filter(|api| api.removed_in == release)
            .map(|api| {
                if api.replacement.is_empty() {
                    format!("{} {} (no replacement)", api.api_version, api.kind)
                } else {
                    format!("{} {} (use {})", api.api_version, api.kind, api.replacement)
                }
            })
            .collect();
        parts.push(format!("in 1.{release}: {}", kinds.join(", ")));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_1_23_to_1_28_move_crosses_the_1_25_and_1_26_removals() {
        let removed = removed_between(23, 28);
        let releases: std::collections::BTreeSet<u64> = removed.iter().map(|api| api.removed_in).collect();
        assert_eq!(releases.into_iter().collect::<Vec<_>>(), vec![25, 26, 27]);
        let text = describe(&removed);
        assert!(text.contains("in 1.25: batch/v1beta1 CronJob (use batch/v1)"), "{text}");
        assert!(text.contains("policy/v1beta1 PodDisruptionBudget (use policy/v1)"), "{text}");
        assert!(text.contains("policy/v1beta1 PodSecurityPolicy (no replacement)"), "{text}");
        assert!(text.contains("in 1.26: ") && text.contains("autoscaling/v2beta2 HorizontalPodAutoscaler"), "{text}");
        assert!(!text.contains("1.22"), "{text}");
    }

    #[test]
    fn a_1_27_to_1_28_move_crosses_none_and_neither_does_a_downgrade() {
        assert!(removed_between(27, 28).is_empty());
        assert!(removed_between(28, 23).is_empty());
        assert!(removed_between(28, 28).is_empty());
    }

    #[test]
    fn the_table_is_in_release_order() {
        assert!(REMOVED_APIS.windows(2).all(|w| w[0].removed_in <= w[1].removed_in));
    }
}
