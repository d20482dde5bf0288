//! What pods' PersistentVolumeClaims are bound to (issue 17): the claim, its
//! PersistentVolume, StorageClass and driver, size, and the volume's node
//! affinity. A local or hostPath volume keeps its data on one node, and the
//! scheduler's `VolumeBinding` filter keeps its pods there.
//!
//! Pods name their claims ([`pod_claims`], at the pod); a [`VolumeIndex`] of
//! the cluster's claims, volumes and classes completes them when a snapshot
//! is built ([`VolumeIndex::resolve`]), so a claim or volume that changes
//! after its pods is still read right (the agent builds its index from its
//! watch stores at every report; the collector from the whole export).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelector, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kplan_model::quantity::parse_bytes;
use kplan_model::scheduling::{
    HOST_PATH_DRIVER, LOCAL_VOLUME_DRIVER, NodeAffinity, NodeSelectorRequirement, PodGroup, PodVolume,
};

use crate::CollectError;

/// A node selector as kplan records it (`matchExpressions`; `matchFields` are
/// not recorded, so a term made only of them matches no node).
pub fn node_affinity(selector: &NodeSelector) -> NodeAffinity {
    NodeAffinity {
        terms: selector
            .node_selector_terms
            .iter()
            .map(|term| {
                term.match_expressions
                    .iter()
                    .flatten()
                    .map(|r| NodeSelectorRequirement {
                        key: r.key.clone(),
                        operator: r.operator.clone(),
                        values: r.values.clone().unwrap_or_default(),
                    })
                    .collect()
            })
            .collect(),
    }
}

/// The claims a pod mounts, sorted by name, with only `claim` set: its
/// `persistentVolumeClaim` volumes. Generic ephemeral volumes are left out:
/// their claim (`<pod>-<volume>`) lives and dies with the pod, so its data
/// never pins it, and naming it would make every pod a group of its own.
pub fn pod_claims(pod: &Pod) -> Vec<PodVolume> {
    let mut claims: Vec<PodVolume> = pod
        .spec
        .iter()
        .flat_map(|spec| spec.volumes.iter().flatten())
        .filter_map(|volume| volume.persistent_volume_claim.as_ref())
        .map(|claim| PodVolume { claim: claim.claim_name.clone(), ..PodVolume::default() })
        .collect();
    claims.sort();
    claims.dedup();
    claims
}

#[derive(Debug, Clone, Default)]
struct Claim {
    volume: String,
    storage_class: String,
    request_bytes: u64,
}

#[derive(Debug, Clone, Default)]
struct Volume {
    storage_class: String,
    driver: String,
    size_bytes: u64,
    node_affinity: Option<NodeAffinity>,
}

/// One cluster's claims, volumes and storage classes.
#[derive(Debug, Clone, Default)]
pub struct VolumeIndex {
    claims: BTreeMap<(String, String), Claim>,
    volumes: BTreeMap<String, Volume>,
    /// Storage class → provisioner.
    provisioners: BTreeMap<String, String>,
}

impl VolumeIndex {
    pub fn add_claim(&mut self, claim: &PersistentVolumeClaim, object: &str) -> Result<(), CollectError> {
        let spec = claim.spec.as_ref();
        let request = spec
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| {
                parse_bytes(&q.0).map_err(|error| {
                    CollectError::field(object.to_string(), "spec.resources.requests.storage", error.to_string())
                })
            })
            .transpose()?
            .unwrap_or(0);
        let key =
            (claim.metadata.namespace.clone().unwrap_or_default(), claim.metadata.name.clone().unwrap_or_default());
        self.claims.insert(
            key,
            Claim {
                volume: spec.and_then(|s| s.volume_name.clone()).unwrap_or_default(),
                storage_class: spec.and_then(|s| s.storage_class_name.clone()).unwrap_or_default(),
                request_bytes: request,
            },
        );
        Ok(())
    }

    pub fn add_volume(&mut self, volume: &PersistentVolume, object: &str) -> Result<(), CollectError> {
        let spec = volume.spec.as_ref();
        let size = spec
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage"))
            .map(|q| {
                parse_bytes(&q.0).map_err(|error| {
                    CollectError::field(object.to_string(), "spec.capacity.storage", error.to_string())
                })
            })
            .transpose()?
            .unwrap_or(0);
        let driver = match spec {
            Some(s) if s.local.is_some() => LOCAL_VOLUME_DRIVER.to_string(),
            Some(s) if s.host_path.is_some() => HOST_PATH_DRIVER.to_string(),
            Some(s) => s.csi.as_ref().map(|csi| csi.driver.clone()).unwrap_or_default(),
            None => String::new(),
        };
        self.volumes.insert(
            volume.metadata.name.clone().unwrap_or_default(),
            Volume {
                storage_class: spec.and_then(|s| s.storage_class_name.clone()).unwrap_or_default(),
                driver,
                size_bytes: size,
                node_affinity: spec
                    .and_then(|s| s.node_affinity.as_ref())
                    .and_then(|a| a.required.as_ref())
                    .map(node_affinity),
            },
        );
        Ok(())
    }

    pub fn add_class(&mut self, class: &StorageClass) {
        self.provisioners.insert(class.metadata.name.clone().unwrap_or_default(), class.provisioner.clone());
    }

    /// Completes one claim of a pod in `namespace` from the index; a claim
    /// the index does not know keeps only its name.
    pub fn resolve(&self, namespace: &str, volume: &mut PodVolume) {
        let Some(claim) = self.claims.get(&(namespace.to_string(), volume.claim.clone())) else { return };
        let bound = self.volumes.get(&claim.volume);
        volume.volume = claim.volume.clone();
        volume.storage_class =
            bound.map(|v| v.storage_class.clone()).filter(|c| !c.is_empty()).unwrap_or(claim.storage_class.clone());
        // A claim bound to a volume the index lacks (an export with claims but
        // without persistentvolumes) keeps no driver: the plan then says its
        // volume checks were not made, rather than guess from the class.
        volume.driver = match bound {
            Some(v) if !v.driver.is_empty() => v.driver.clone(),
            None if !claim.volume.is_empty() => String::new(),
            _ => self.provisioners.get(&volume.storage_class).cloned().unwrap_or_default(),
        };
        volume.size_bytes = bound.map(|v| v.size_bytes).filter(|s| *s > 0).unwrap_or(claim.request_bytes);
        volume.node_affinity = bound.and_then(|v| v.node_affinity.clone());
    }

    /// [`resolve`](Self::resolve) for every claim of a namespace's groups.
    pub fn resolve_groups(&self, namespace: &str, groups: &mut [PodGroup]) {
        for volume in groups.iter_mut().flat_map(|g| g.volumes.iter_mut()) {
            self.resolve(namespace, volume);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).expect("a valid object")
    }

    #[test]
    fn a_local_volume_pins_its_claim_to_its_node() {
        let pod: Pod = object(serde_json::json!({
            "metadata": {"name": "db-0", "namespace": "payments"},
            "spec": {"containers": [{"name": "pg"}], "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                {"name": "config", "configMap": {"name": "pg"}}
            ]}
        }));
        let mut claims = pod_claims(&pod);
        // The ephemeral claim dies with the pod: not a claim of the group.
        assert_eq!(claims.iter().map(|c| c.claim.as_str()).collect::<Vec<_>>(), ["data-db-0"]);
        let mut index = VolumeIndex::default();
        index
            .add_claim(
                &object(serde_json::json!({
                    "metadata": {"name": "data-db-0", "namespace": "payments"},
                    "spec": {"volumeName": "pv-a", "storageClassName": "local-ssd",
                             "resources": {"requests": {"storage": "100Gi"}}}
                })),
                "claim",
            )
            .expect("reads");
        index
            .add_volume(
                &object(serde_json::json!({
                    "metadata": {"name": "pv-a"},
                    "spec": {"capacity": {"storage": "200Gi"}, "storageClassName": "local-ssd",
                             "local": {"path": "/mnt/disks/a"},
                             "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                                 {"key": "kubernetes.io/hostname", "operator": "In", "values": ["db-host-1"]}]}]}}}
                })),
                "volume",
            )
            .expect("reads");
        index.add_class(&object(serde_json::json!({
            "metadata": {"name": "local-ssd"}, "provisioner": "kubernetes.io/no-provisioner"
        })));
        for claim in &mut claims {
            index.resolve("payments", claim);
        }
        let data = &claims[0];
        assert_eq!((data.volume.as_str(), data.driver.as_str()), ("pv-a", LOCAL_VOLUME_DRIVER));
        assert!(data.is_node_local());
        assert_eq!(data.size_bytes, 200 << 30, "the volume's capacity, not the claim's request");
        let pinned = data.node_affinity.as_ref().expect("pinned");
        let host = |name: &str| [("kubernetes.io/hostname".to_string(), name.to_string())].into_iter().collect();
        assert!(pinned.matches(&host("db-host-1")) && !pinned.matches(&host("db-host-2")));
    }

    #[test]
    fn an_unbound_claim_takes_its_driver_from_its_class_and_bad_sizes_are_named() {
        let mut index = VolumeIndex::default();
        index
            .add_claim(
                &object(serde_json::json!({
                    "metadata": {"name": "logs", "namespace": "web"},
                    "spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "5Gi"}}}
                })),
                "claim",
            )
            .expect("reads");
        index.add_class(&object(serde_json::json!({"metadata": {"name": "fast"}, "provisioner": "ebs.csi.aws.com"})));
        let mut volume = PodVolume { claim: "logs".into(), ..PodVolume::default() };
        index.resolve("web", &mut volume);
        assert_eq!((volume.driver.as_str(), volume.size_bytes), ("ebs.csi.aws.com", 5 << 30));
        assert!(!volume.is_node_local() && volume.node_affinity.is_none());

        let error = index
            .add_volume(
                &object(serde_json::json!({"metadata": {"name": "pv-b"}, "spec": {"capacity": {"storage": "lots"}}})),
                "persistentvolume \"pv-b\"",
            )
            .expect_err("refused");
        let text = error.to_string();
        assert!(text.contains("pv-b") && text.contains("spec.capacity.storage"), "{text}");
    }
}
