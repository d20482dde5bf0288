//! The watchers against the fake API server (kube-rs's mock-service pattern),
//! replaying the shipped real objects (the bank example's kubectl export and
//! fixtures/k8s). The oracle is the batch collector: after every step the
//! agent's snapshot must equal `collect()` over the fake's current objects.
//! Time is paused (tokio's test clock), so backoffs cost nothing.

use std::time::Duration;

use kplan_model::ClusterSnapshot;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::*;
use crate::collect::{CollectOptions, collect, parse_documents};
use crate::fake_api::{ApiResource, FakeApi, Fault, Verb};

const BANK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/bank/clusters/fra-prod-payments.json");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/k8s");

fn options() -> CollectOptions {
    CollectOptions {
        cluster_id: "fra-prod-payments".into(),
        security_tier: Some("prod".into()),
        datacenter: Some("fra".into()),
        zone: Some("fra-default".into()),
        ..CollectOptions::default()
    }
}

fn load_file(fake: &FakeApi, path: &str) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path}: {error}"));
    fake.load(&parse_documents(&text, path).expect("parses"));
}

fn bank_fake() -> FakeApi {
    let fake = FakeApi::new();
    load_file(&fake, BANK);
    fake
}

struct Agent {
    fake: FakeApi,
    handle: ViewHandle,
    tasks: JoinSet<()>,
}

impl Agent {
    fn start(fake: &FakeApi, page_size: u32) -> Agent {
        let handle = ViewHandle::new(options());
        let mut tasks = JoinSet::new();
        spawn_watchers(fake.client(), &handle, &WatchOptions { page_size }, &mut tasks);
        Agent { fake: fake.clone(), handle, tasks }
    }

    /// What the batch collector makes of the fake's current objects.
    fn expected(&self) -> ClusterSnapshot {
        let objects = parse_documents(&self.fake.export(), "fake").expect("export parses");
        collect(objects, &CollectOptions { generation: Some(1), ..options() }).expect("collects")
    }

    fn snapshot(&self) -> Result<ClusterSnapshot, crate::view::ViewError> {
        self.handle.read(|view| view.snapshot(1, 0))
    }

    /// Waits (on the paused clock) until the agent's snapshot is the collector's.
    async fn converges(&mut self, step: &str) {
        let expected = self.expected();
        for _ in 0..6000 {
            if self.snapshot().as_ref() == Ok(&expected) {
                assert!(self.tasks.try_join_next().is_none(), "{step}: a watcher ended");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let got = self.snapshot();
        match &got {
            Ok(got) => {
                let nodes = got.nodes.iter().zip(&expected.nodes).find(|(a, b)| a != b);
                let namespaces = got.namespaces.iter().zip(&expected.namespaces).find(|(a, b)| a != b);
                panic!(
                    "{step}: no convergence in 600 s: {} vs {} nodes, {} vs {} namespaces; first differences: \
                     {nodes:#?} {namespaces:#?}; facts {:?} vs {:?}",
                    got.nodes.len(),
                    expected.nodes.len(),
                    got.namespaces.len(),
                    expected.namespaces.len(),
                    got.facts,
                    expected.facts
                )
            }
            Err(error) => panic!("{step}: no convergence in 600 s: {error}"),
        }
    }

    fn n_requests(&self, resource: ApiResource, verb: Verb) -> usize {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.path() == resource.path() && r.is_watch() == (verb == Verb::Watch))
            .count()
    }

    /// Complete lists (first pages) of a resource.
    fn n_lists(&self, resource: ApiResource) -> usize {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.path() == resource.path() && !r.is_watch() && r.query("continue").is_none())
            .count()
    }

    /// Waits (on the paused clock) until `condition` holds.
    async fn until(&self, what: &str, condition: impl Fn(&Agent) -> bool) {
        for _ in 0..6000 {
            if condition(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("not within 600 s: {what}");
    }

    async fn watching(&self) {
        for _ in 0..6000 {
            if ApiResource::ALL.into_iter().all(|resource| self.fake.n_watchers(resource) > 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the watchers did not all start watching");
    }
}

fn object(fake: &FakeApi, resource: ApiResource, name: &str) -> Value {
    fake.objects(resource)
        .into_iter()
        .find(|object| object["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in the fake"))
}

fn first_name(fake: &FakeApi, resource: ApiResource, filter: impl Fn(&Value) -> bool) -> String {
    fake.objects(resource)
        .into_iter()
        .find(|object| filter(object))
        .map(|object| object["metadata"]["name"].as_str().unwrap().to_string())
        .expect("an object")
}

#[tokio::test(start_paused = true)]
async fn initial_list_gives_the_collectors_snapshot_read_only_and_lean() {
    let fake = bank_fake();
    load_file(&fake, &format!("{FIXTURES}/openshift-gcp-4.4-nodelist.derived.json"));
    load_file(&fake, &format!("{FIXTURES}/sonobuoy-kind-1.21-namespaces.json"));
    let mut agent = Agent::start(&fake, 500);
    agent.handle.wait_synced().await;
    agent.converges("initial list").await;
    let snapshot = agent.snapshot().expect("snapshot");
    assert_eq!(snapshot.nodes.len(), 20 + 6);
    assert_eq!(snapshot.facts.cni, "calico");
    assert!(snapshot.namespaces.iter().any(|ns| ns.requests.pods > 0));

    let requests = fake.requests();
    assert!(requests.iter().all(|r| r.method == "GET"), "the agent only reads: {requests:#?}");
    for request in &requests {
        let metadata_only = request.accept.contains("as=PartialObjectMetadata");
        let expect_metadata_only =
            [ApiResource::Namespaces.path(), ApiResource::DaemonSets.path()].contains(&request.path());
        assert_eq!(metadata_only, expect_metadata_only, "{request:?}");
        if request.path() == ApiResource::Pods.path() {
            assert_eq!(request.query("fieldSelector").as_deref(), Some(POD_FIELD_SELECTOR), "{request:?}");
        }
        // Lists are paged; discovery (which PodDisruptionBudget API) is not a list.
        if !request.is_watch() && request.path() != "/apis/policy/v1" {
            assert_eq!(request.query("limit").as_deref(), Some("500"), "{request:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn watch_events_move_the_snapshot_and_only_real_changes_count() {
    let fake = bank_fake();
    let mut agent = Agent::start(&fake, 500);
    agent.converges("initial list").await;
    agent.watching().await;

    // A node label, a namespace's security tier, a new DaemonSet.
    let node_name = first_name(&fake, ApiResource::Nodes, |_| true);
    let mut node = object(&fake, ApiResource::Nodes, &node_name);
    node["metadata"]["labels"]["topology.kubernetes.io/zone"] = json!("fra-prod-z");
    fake.apply(node);
    let namespace_name = first_name(&fake, ApiResource::Namespaces, |ns| ns["metadata"]["name"] != "kube-system");
    let mut namespace = object(&fake, ApiResource::Namespaces, &namespace_name);
    namespace["metadata"]["labels"]["kplan.io/security-tier"] = json!("dev");
    fake.apply(namespace);
    fake.apply(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "cilium", "namespace": "kube-system"},
        "spec": {"selector": {}, "template": {}}
    }));
    agent.converges("node label, namespace tier, daemonset").await;
    assert_eq!(agent.snapshot().unwrap().facts.cni, "calico+cilium");

    // Pods: one grows, one finishes, one goes, one arrives.
    let pods = fake.objects(ApiResource::Pods);
    let mut grown = pods[0].clone();
    grown["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("3");
    fake.apply(grown);
    let mut finished = pods[1].clone();
    finished["status"]["phase"] = json!("Succeeded");
    fake.apply(finished);
    let gone = &pods[2]["metadata"];
    assert!(fake.delete(ApiResource::Pods, gone["namespace"].as_str(), gone["name"].as_str().unwrap()));
    let mut new = pods[3].clone();
    new["metadata"]["name"] = json!("arrived-0");
    fake.apply(new);
    agent.converges("pod changes").await;

    // A status-only change counts for nothing; the change after it counts once.
    let changes = agent.handle.subscribe();
    let before = *changes.borrow();
    let mut heartbeat = fake.objects(ApiResource::Pods)[5].clone();
    heartbeat["status"]["podIP"] = json!("10.99.0.1");
    fake.apply(heartbeat);
    let mut moved = fake.objects(ApiResource::Pods)[6].clone();
    moved["spec"]["containers"][0]["resources"]["requests"]["memory"] = json!("3Gi");
    fake.apply(moved);
    agent.converges("one real change").await;
    assert_eq!(*changes.borrow(), before + 1);

    // A namespace and all its pods go; a node goes.
    let doomed = pods[10]["metadata"]["namespace"].as_str().unwrap().to_string();
    for pod in fake.objects(ApiResource::Pods) {
        if pod["metadata"]["namespace"] == doomed.as_str() {
            fake.delete(ApiResource::Pods, Some(&doomed), pod["metadata"]["name"].as_str().unwrap());
        }
    }
    fake.delete(ApiResource::Namespaces, None, &doomed);
    fake.delete(ApiResource::Nodes, None, &node_name);
    agent.converges("deletions").await;
    assert_eq!(agent.n_lists(ApiResource::Pods), 1, "no relist was needed");
}

#[tokio::test(start_paused = true)]
async fn gone_mid_watch_relists_and_catches_up_on_lost_events() {
    let fake = bank_fake();
    let mut agent = Agent::start(&fake, 500);
    agent.converges("initial list").await;
    agent.watching().await;
    // Changes whose events are lost (compaction), then 410 Gone on every watch.
    let node_name = first_name(&fake, ApiResource::Nodes, |_| true);
    let mut node = object(&fake, ApiResource::Nodes, &node_name);
    node["metadata"]["labels"]["kplan.io/firewall-zone"] = json!("lost-event-zone");
    fake.apply_silently(node);
    let mut pod = fake.objects(ApiResource::Pods)[0].clone();
    pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("5");
    fake.apply_silently(pod);
    fake.expire_watches();
    agent.converges("after 410 gone").await;
    agent.until("every kind relisted", |agent| ApiResource::ALL.into_iter().all(|r| agent.n_lists(r) == 2)).await;
    // Watching again: events flow.
    agent.watching().await;
    let mut node = object(&fake, ApiResource::Nodes, &node_name);
    node["metadata"]["labels"]["kplan.io/firewall-zone"] = json!("after-relist");
    fake.apply(node);
    agent.converges("events after the relist").await;
}

/// 403, 429, 500 and a reset connection, on the initial list and on watch
/// (re)starts: the agent waits them out with backoff and converges.
#[tokio::test(start_paused = true)]
async fn api_failures_are_waited_out() {
    for fault in [Fault::Status(403), Fault::Status(429), Fault::Status(500), Fault::ConnectionReset] {
        let fake = bank_fake();
        fake.fail(ApiResource::Pods, Verb::List, fault, 3);
        fake.fail(ApiResource::Nodes, Verb::List, fault, 1);
        let mut agent = Agent::start(&fake, 500);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!agent.handle.is_synced(), "{fault:?}: synced despite failing lists");
        agent.converges(&format!("{fault:?} on list")).await;
        assert_eq!(agent.n_requests(ApiResource::Pods, Verb::List), 4, "{fault:?}: three failures, one success");
        agent.watching().await;

        // The nodes watch drops (connection reset mid-stream); restarting it
        // fails twice; a change made meanwhile still arrives.
        fake.fail(ApiResource::Nodes, Verb::Watch, fault, 2);
        let watches_before = agent.n_requests(ApiResource::Nodes, Verb::Watch);
        fake.reset_watches(ApiResource::Nodes);
        let node_name = first_name(&fake, ApiResource::Nodes, |_| true);
        let mut node = object(&fake, ApiResource::Nodes, &node_name);
        node["metadata"]["labels"]["kplan.io/datacenter"] = json!(format!("dc-{}", watches_before));
        fake.apply(node);
        agent.converges(&format!("{fault:?} on watch")).await;
        assert!(agent.n_requests(ApiResource::Nodes, Verb::Watch) >= watches_before + 3, "{fault:?}");
        assert_eq!(agent.n_lists(ApiResource::Nodes), 2, "{fault:?}: one failed list, one good, no relist");
        agent.tasks.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn paginated_lists_are_followed_to_the_end() {
    let fake = bank_fake();
    let n_pods = fake.objects(ApiResource::Pods).len();
    let mut agent = Agent::start(&fake, 7);
    agent.converges("paginated").await;
    let pod_pages: Vec<_> =
        fake.requests().into_iter().filter(|r| r.path() == ApiResource::Pods.path() && !r.is_watch()).collect();
    assert_eq!(pod_pages.len(), n_pods.div_ceil(7), "{n_pods} pods in pages of 7");
    assert!(pod_pages.iter().skip(1).all(|r| r.query("continue").is_some()));
    assert!(pod_pages.iter().all(|r| r.query("limit").as_deref() == Some("7")));
    // A relist whose fourth page fails starts over, and still ends right.
    fake.fail_after(ApiResource::Pods, Verb::List, 3, Fault::Status(500), 1);
    let mut pod = fake.objects(ApiResource::Pods)[0].clone();
    pod["metadata"]["name"] = json!("added-while-gone");
    fake.apply_silently(pod);
    fake.expire_watches();
    agent.converges("paginated relist").await;
    assert_eq!(agent.n_lists(ApiResource::Pods), 3, "first list, the failed relist, the good one");
}

/// A pod of `vault` mounting the claim `data-vault-0`.
fn vault_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "vault-0", "namespace": "vault"},
        "spec": {"containers": [{"name": "vault", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-vault-0"}}]}
    })
}

fn vault_claim() -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-vault-0", "namespace": "vault",
                     "managedFields": [{"manager": "kubectl", "operation": "Update"}]},
        "spec": {"volumeName": "pv-vault", "storageClassName": "local-nvme", "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "10Gi"}}}
    })
}

fn vault_volume() -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "pv-vault"},
        "spec": {"capacity": {"storage": "20Gi"}, "storageClassName": "local-nvme", "accessModes": ["ReadWriteOnce"],
                 "local": {"path": "/mnt/nvme0"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": ["db-1"]}]}]}}}
    })
}

fn local_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "local-nvme"}, "provisioner": "kubernetes.io/no-provisioner"
    })
}

/// The `vault` pod group's one volume in the agent's snapshot.
fn vault_volume_of(agent: &Agent) -> kplan_model::scheduling::PodVolume {
    let snapshot = agent.snapshot().expect("snapshot");
    let vault = snapshot.namespaces.iter().find(|ns| ns.name == "vault").expect("vault namespace");
    assert_eq!(vault.pod_groups.len(), 1, "{:?}", vault.pod_groups);
    let [volume] = vault.pod_groups[0].volumes.as_slice() else { panic!("{:?}", vault.pod_groups[0].volumes) };
    volume.clone()
}

#[tokio::test(start_paused = true)]
async fn claims_volumes_and_classes_are_watched_and_resolved_at_every_snapshot() {
    let fake = bank_fake();
    fake.apply(vault_pod());
    let mut agent = Agent::start(&fake, 500);
    agent.converges("the pod without its claim").await;
    assert_eq!(vault_volume_of(&agent).volume, "", "nothing known but the claim's name");
    agent.watching().await;

    // The claim, its volume and class arrive after the pod.
    fake.apply(local_class());
    fake.apply(vault_volume());
    fake.apply(vault_claim());
    agent.converges("claim, volume and class").await;
    let volume = vault_volume_of(&agent);
    assert_eq!((volume.volume.as_str(), volume.driver.as_str()), ("pv-vault", "kubernetes.io/local"));
    assert_eq!(volume.size_bytes, 20 << 30);
    assert!(volume.node_affinity.is_some());

    // The volume goes, then the claim.
    assert!(fake.delete(ApiResource::PersistentVolumes, None, "pv-vault"));
    agent.converges("volume deleted").await;
    let volume = vault_volume_of(&agent);
    // Bound to a volume no longer known: no driver (the plan says which checks it could not make).
    assert_eq!((volume.driver.as_str(), volume.size_bytes), ("", 10 << 30));
    assert!(volume.node_affinity.is_none());
    assert!(fake.delete(ApiResource::PersistentVolumeClaims, Some("vault"), "data-vault-0"));
    agent.converges("claim deleted").await;
    assert_eq!(vault_volume_of(&agent).storage_class, "");
    for resource in [ApiResource::PersistentVolumeClaims, ApiResource::PersistentVolumes, ApiResource::StorageClasses] {
        assert_eq!(agent.n_lists(resource), 1, "{resource:?}: watched, not relisted");
    }
}

/// An agent whose ClusterRole predates the volume kinds: 403 on their lists.
/// It reports without them at once (and stays ready) instead of waiting
/// forever, and picks them up when the lists are allowed again.
#[tokio::test(start_paused = true)]
async fn a_forbidden_volume_kind_is_reported_without_and_picked_up_once_allowed() {
    let fake = bank_fake();
    for object in [vault_pod(), vault_claim(), vault_volume(), local_class()] {
        fake.apply(object);
    }
    fake.fail(ApiResource::PersistentVolumeClaims, Verb::List, Fault::Status(403), 4);
    let mut agent = Agent::start(&fake, 500);
    agent.handle.wait_synced().await;
    assert!(agent.handle.read(|view| view.is_refused(Kind::PersistentVolumeClaims)));
    let volume = vault_volume_of(&agent);
    assert_eq!((volume.claim.as_str(), volume.volume.as_str()), ("data-vault-0", ""), "claims unknown: name only");
    assert!(agent.n_requests(ApiResource::PersistentVolumeClaims, Verb::List) < 5, "still being refused");

    // The ClusterRole is fixed: the fifth list succeeds; nothing restarts.
    agent.converges("claims allowed again").await;
    assert!(agent.handle.read(|view| view.refused_kinds().is_empty()));
    assert_eq!(vault_volume_of(&agent).volume, "pv-vault");
    assert_eq!(agent.n_requests(ApiResource::PersistentVolumeClaims, Verb::List), 5);

    // A 403 on pods is still waited out (see api_failures_are_waited_out).
    let fake = bank_fake();
    fake.fail(ApiResource::Pods, Verb::List, Fault::Status(403), 3);
    let agent = Agent::start(&fake, 500);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!agent.handle.is_synced());
    agent.handle.wait_synced().await;
}

/// A ValidatingAdmissionPolicy and its binding are watched like the other
/// isolation kinds and reach the snapshot; a cluster without Gatekeeper (its
/// templates answer 404) has no constraints and is synced.
#[tokio::test(start_paused = true)]
async fn admission_policies_reach_the_snapshot_and_gatekeeper_absent_is_synced() {
    let fake = bank_fake();
    fake.apply(serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "no-privileged", "resourceVersion": "7"},
        "spec": {"validations": [{"expression": "true"}]}
    }));
    fake.apply(serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "no-privileged-everywhere", "resourceVersion": "8"},
        "spec": {"policyName": "no-privileged", "validationActions": ["Deny"]}
    }));
    let mut agent = Agent::start(&fake, 500);
    agent.handle.wait_synced().await;
    agent.converges("initial list").await;
    assert!(agent.handle.read(|view| view.refused_kinds().is_empty()));
    let snapshot = agent.snapshot().expect("snapshot");
    let policies: Vec<(&str, &str, &str)> = snapshot
        .isolation
        .admission_policies
        .iter()
        .map(|p| (p.kind.as_str(), p.name.as_str(), p.policy.as_str()))
        .collect();
    assert_eq!(
        policies,
        [
            ("ValidatingAdmissionPolicy", "no-privileged", ""),
            ("ValidatingAdmissionPolicyBinding", "no-privileged-everywhere", "no-privileged")
        ]
    );
}
