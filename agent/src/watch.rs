//! Watching the Kubernetes API: one kube-runtime watcher per kind feeds the
//! shared [`ClusterView`].
//!
//! - Nodes: the lean view of [`lean::LeanNode`] (capacity and node info live
//!   in `status`; the image list and conditions are skipped while parsing).
//! - Namespaces and DaemonSets: metadata only (`PartialObjectMeta`): the label
//!   contract reads nothing else of them, and the API server sends less.
//! - Pods: the lean view of [`lean::LeanPod`] (requests, phase, owners; the
//!   rest is skipped while parsing), all namespaces, with the field selector
//!   `status.phase!=Succeeded,status.phase!=Failed` (finished pods ask for
//!   nothing; the API server sends a DELETED event when a pod finishes). Each
//!   pod is reduced to its contribution at once and dropped (see
//!   [`ClusterView`]); at most one list page of pods is in memory.
//! - PersistentVolumeClaims (all namespaces), PersistentVolumes and
//!   StorageClasses (`storage.k8s.io/v1`): whole objects, few and small;
//!   the view keeps their `spec` and `status` and drops the rest of their
//!   metadata (`managedFields` above all). Pods' claims are resolved through
//!   them at every snapshot.
//! - ClusterRoles, ClusterRoleBindings, Roles, RoleBindings (all namespaces),
//!   NetworkPolicies, RuntimeClasses, ValidatingAdmissionPolicies and their
//!   bindings: whole objects, each converted at once to what a snapshot
//!   carries (the tenant isolation analysis, issue 14). Secrets are never
//!   watched.
//! - Gatekeeper constraints: listed, not watched ([`GATEKEEPER_POLL`]), their
//!   kinds read from the ConstraintTemplates through the dynamic API.
//! - PodDisruptionBudgets (`policy/v1`, all namespaces): their spec; what
//!   they select is matched against the pods' template labels at every
//!   snapshot (moves in parts, issue 17).
//!
//! Lists are paginated (`limit`, default 500) and read from etcd (the default
//! `MostRecent` semantic): a `resourceVersion=0` list would come from the API
//! server's cache, which ignores `limit` on older servers and would put every
//! pod of the cluster in memory at once.
//!
//! Failures: kube-runtime's watcher resumes from the last resourceVersion
//! after a dropped connection, relists after 410 Gone, and every error goes
//! through `default_backoff` (client-go's: 0.8 s doubling to 30 s, jittered,
//! reset after 2 minutes without error). Errors are logged and the watcher
//! keeps going; no API error ends the agent. The view is "synced" once every
//! watcher has completed its first list.
//!
//! A refused volume or isolation kind: an agent upgraded before its
//! ClusterRole (the ClusterRole of an older release grants no
//! PersistentVolumeClaims, PersistentVolumes, StorageClasses, RBAC objects,
//! NetworkPolicies, RuntimeClasses or admission policies) gets 403 Forbidden
//! on their lists forever, and an API server without one of their API groups
//! (ValidatingAdmissionPolicy v1 before Kubernetes 1.30) answers 404.
//! Waiting for them, as for the other kinds, would stop all reporting (and
//! readiness) over data that only refines the snapshot, so for these
//! [optional](Kind::is_optional) kinds a 403 or 404 on a list marks the kind
//! refused in the view ([`ClusterView::list_refused`]): it counts as synced,
//! snapshots are reported without it (pods' claims keep only what the other
//! kinds tell; the planner says which volume checks it could not make), and
//! one warning names the missing permission. The watcher keeps retrying with
//! its backoff (at most every 30 s), so fixing the ClusterRole takes effect
//! without a restart: the next successful list restores the volumes and is
//! logged. A 403 on nodes, namespaces, pods or DaemonSets is still waited
//! out: a snapshot without them would be wrong, not just less complete.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::collect::CollectOptions;
use crate::collect::rbac::IsolationObject;
use crate::view::{ClusterView, Kind};
use lean::{LeanNode, LeanPod};

pub mod lean;

/// Terminated pods hold no resources; the API server filters them out.
pub const POD_FIELD_SELECTOR: &str = "status.phase!=Succeeded,status.phase!=Failed";

/// The shared view and its change signal: a counter that grows whenever
/// something that matters for the snapshot changed (and when a kind completes
/// its first list). Cloning shares both.
#[derive(Debug, Clone)]
pub struct ViewHandle {
    view: Arc<Mutex<ClusterView>>,
    changes: watch::Sender<u64>,
}

impl ViewHandle {
    pub fn new(options: CollectOptions) -> Self {
        ViewHandle { view: Arc::new(Mutex::new(ClusterView::new(options))), changes: watch::Sender::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, ClusterView> {
        // Updates are small and do not panic; if one did, the view is still
        // the best there is.
        self.view.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the view (briefly: watchers wait meanwhile).
    pub fn read<R>(&self, f: impl FnOnce(&ClusterView) -> R) -> R {
        f(&self.lock())
    }

    /// Updates the view; `f` says whether something that matters changed.
    pub fn update(&self, f: impl FnOnce(&mut ClusterView) -> bool) -> bool {
        let changed = f(&mut self.lock());
        if changed {
            self.changes.send_modify(|n| *n += 1);
        }
        changed
    }

    /// A receiver of the change counter.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn is_synced(&self) -> bool {
        self.read(ClusterView::is_synced)
    }

    /// Resolves once every kind has completed its first list.
    pub async fn wait_synced(&self) {
        let mut changes = self.subscribe();
        loop {
            if self.is_synced() {
                return;
            }
            // The sender lives in `self`: it cannot be dropped while we wait.
            let _ = changes.changed().await;
        }
    }
}

/// How the watchers list and watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Objects per list page.
    pub page_size: u32,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions { page_size: 500 }
    }
}

/// Starts the watchers, one per [`Kind`], on `tasks`. They run until aborted.
pub fn spawn_watchers(client: Client, handle: &ViewHandle, options: &WatchOptions, tasks: &mut JoinSet<()>) {
    let config = watcher::Config::default().page_size(options.page_size);
    tasks.spawn(watch_kind(
        Kind::Nodes,
        Api::<LeanNode>::all(client.clone()),
        config.clone(),
        handle.clone(),
        |view, node| view.apply_node(&node.into_node()),
        |view, node| view.delete_node(node.metadata.name.as_deref().unwrap_or_default()),
    ));
    tasks.spawn(watch_kind(
        Kind::Namespaces,
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        config.clone(),
        handle.clone(),
        |view, namespace| view.apply_namespace(&namespace.metadata),
        |view, namespace| view.delete_namespace(namespace.metadata.name.as_deref().unwrap_or_default()),
    ));
    tasks.spawn(watch_kind(
        Kind::Pods,
        Api::<LeanPod>::all(client.clone()),
        config.clone().fields(POD_FIELD_SELECTOR),
        handle.clone(),
        |view, pod| view.apply_pod(&pod.into_pod()),
        |view, pod| view.delete_pod(&pod.metadata),
    ));
    tasks.spawn(watch_kind(
        Kind::DaemonSets,
        Api::<PartialObjectMeta<DaemonSet>>::all(client.clone()),
        config.clone(),
        handle.clone(),
        |view, daemon_set| view.apply_daemon_set(&daemon_set.metadata),
        |view, daemon_set| view.delete_daemon_set(&daemon_set.metadata),
    ));
    tasks.spawn(watch_kind(
        Kind::PersistentVolumeClaims,
        Api::<PersistentVolumeClaim>::all(client.clone()),
        config.clone(),
        handle.clone(),
        |view, claim| view.apply_claim(&claim),
        |view, claim| view.delete_claim(&claim.metadata),
    ));
    tasks.spawn(watch_kind(
        Kind::PersistentVolumes,
        Api::<PersistentVolume>::all(client.clone()),
        config.clone(),
        handle.clone(),
        |view, volume| view.apply_volume(&volume),
        |view, volume| view.delete_volume(volume.metadata.name.as_deref().unwrap_or_default()),
    ));
    tasks.spawn(watch_kind(
        Kind::StorageClasses,
        Api::<StorageClass>::all(client.clone()),
        config.clone(),
        handle.clone(),
        |view, class| view.apply_storage_class(&class),
        |view, class| view.delete_storage_class(class.metadata.name.as_deref().unwrap_or_default()),
    ));
    tasks.spawn(watch_kind(
        Kind::ClusterRoles,
        Api::<ClusterRole>::all(client.clone()),
        config.clone(),
        handle.clone(),
        |view, role| view.apply_isolation(IsolationObject::ClusterRole(role)),
        |view, role| view.delete_isolation(Kind::ClusterRoles, &role.metadata),
    ));
    tasks.spawn(watch_kind(
        Kind::ClusterRoleBindings,
        Api::<ClusterRoleBinding>::all(client.clone()),
        config.clone(),
        handle.clone(),
        |view, binding| view.apply_isolation(IsolationObject::ClusterRoleBinding(binding)),
        |view, binding| view.delete_isolation(Kind::ClusterRoleBindings, &binding.metadata),
    ));
    tasks.spawn(watch_kind(
        Kind::Roles,
        Api::<Role>::all(client.clone()),
        config.clone(),
        handle.clone(),
        |view, role| view.apply_isolation(IsolationObject::Role(role)),
        |view, role| view.delete_isolation(Kind::Roles, &role.metadata),
    ));
    tasks.spawn(watch_kind(
        Kind::RoleBindings,
        Api::<RoleBinding>::all(client.clone()),
        config.clone(),
        handle.clone(),
        |view, binding| view.apply_isolation(IsolationObject::RoleBinding(binding)),
        |view, binding| view.delete_isolation(Kind::RoleBindings, &binding.metadata),
    ));
    tasks.spawn(watch_kind(
        Kind::NetworkPolicies,
        Api::<NetworkPolicy>::all(client.clone()),
        config.clone(),
        handle.clone(),
        |view, policy| view.apply_isolation(IsolationObject::NetworkPolicy(policy)),
        |view, policy| view.delete_isolation(Kind::NetworkPolicies, &policy.metadata),
    ));
    tasks.spawn(watch_budgets(client.clone(), config.clone(), handle.clone()));
    tasks.spawn(watch_kind(
        Kind::ValidatingAdmissionPolicies,
        Api::<ValidatingAdmissionPolicy>::all(client.clone()),
        config.clone(),
        handle.clone(),
        |view, policy| view.apply_isolation(IsolationObject::ValidatingAdmissionPolicy(policy)),
        |view, policy| view.delete_isolation(Kind::ValidatingAdmissionPolicies, &policy.metadata),
    ));
    tasks.spawn(watch_kind(
        Kind::ValidatingAdmissionPolicyBindings,
        Api::<ValidatingAdmissionPolicyBinding>::all(client.clone()),
        config.clone(),
        handle.clone(),
        |view, binding| view.apply_isolation(IsolationObject::ValidatingAdmissionPolicyBinding(binding)),
        |view, binding| view.delete_isolation(Kind::ValidatingAdmissionPolicyBindings, &binding.metadata),
    ));
    tasks.spawn(poll_gatekeeper(client.clone(), handle.clone(), options.page_size, GATEKEEPER_POLL));
    tasks.spawn(watch_kind(
        Kind::RuntimeClasses,
        Api::<RuntimeClass>::all(client),
        config,
        handle.clone(),
        |view, class| view.apply_isolation(IsolationObject::RuntimeClass(class)),
        |view, class| view.delete_isolation(Kind::RuntimeClasses, &class.metadata),
    ));
}

/// PodDisruptionBudgets: `policy/v1` since Kubernetes 1.21, `policy/v1beta1`
/// before it (removed in 1.25; the fields read are the same). Discovery says
/// which the API server serves; when it cannot tell, `policy/v1`.
async fn watch_budgets(client: Client, config: watcher::Config, handle: ViewHandle) {
    let serves_v1 = match client.list_api_group_resources("policy/v1").await {
        Ok(list) => list.resources.iter().any(|r| r.name == "poddisruptionbudgets"),
        Err(kube::Error::Api(status)) if status.code == 404 => false,
        Err(_) => true,
    };
    if serves_v1 {
        watch_kind(
            Kind::DisruptionBudgets,
            Api::<PodDisruptionBudget>::all(client),
            config,
            handle,
            |view, budget| view.apply_budget(&budget),
            |view, budget| view.delete_budget(&budget.metadata),
        )
        .await;
    } else {
        info!(kind = %Kind::DisruptionBudgets, version = "policy/v1beta1", "the api server predates policy/v1");
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("policy", "v1beta1", "PodDisruptionBudget"));
        watch_kind(
            Kind::DisruptionBudgets,
            Api::<DynamicObject>::all_with(client, &resource),
            config,
            handle,
            |view, object| {
                // The v1beta1 object in the v1 type: the same fields (its
                // apiVersion and kind, which k8s-openapi checks, left out).
                let budget = serde_json::to_value(&object).and_then(|mut value| {
                    if let Some(map) = value.as_object_mut() {
                        map.remove("apiVersion");
                        map.remove("kind");
                    }
                    serde_json::from_value::<PodDisruptionBudget>(value)
                });
                match budget {
                    Ok(budget) => view.apply_budget(&budget),
                    Err(error) => {
                        warn!(kind = %Kind::DisruptionBudgets, error = %error, "cannot read a policy/v1beta1 budget");
                        false
                    }
                }
            },
            |view, object| view.delete_budget(&object.metadata),
        )
        .await;
    }
}

/// How often the Gatekeeper constraints are listed again.
pub const GATEKEEPER_POLL: Duration = Duration::from_secs(60);

/// Gatekeeper constraints: their kinds are defined at run time by
/// ConstraintTemplates (`templates.gatekeeper.sh/v1`), so they are listed,
/// not watched: every `interval`, the templates, then each kind they define
/// (`constraints.gatekeeper.sh/v1beta1`, plural the lower-cased kind), as one
/// list of [`Kind::GatekeeperConstraints`]. A cluster without Gatekeeper
/// (404 on the templates) has none; a 403 marks the kind refused, as for a
/// watched optional kind.
async fn poll_gatekeeper(client: Client, handle: ViewHandle, page_size: u32, interval: Duration) {
    let kind = Kind::GatekeeperConstraints;
    let mut n_lists = 0u64;
    loop {
        match list_constraints(&client, page_size).await {
            Ok(constraints) => {
                let n_objects = constraints.len();
                handle.update(|view| {
                    view.begin_list(kind);
                    false
                });
                handle.update(|view| {
                    for constraint in constraints {
                        view.apply_isolation(IsolationObject::GatekeeperConstraint(constraint));
                    }
                    false
                });
                let (was_refused, changed) = handle_end_list(&handle, kind);
                n_lists += 1;
                if was_refused || n_lists == 1 {
                    info!(kind = %kind, n_objects, "constraints listed");
                } else {
                    debug!(kind = %kind, n_objects, changed, n_lists, "constraints listed again");
                }
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                if mark_refused(&handle, kind) {
                    warn!(
                        kind = %kind, code = 403u16, message = %status.message,
                        "the kubernetes api refuses to list gatekeeper constraint templates or constraints: reporting \
                         snapshots without them; grant list on them (deploy/kubernetes/agent/clusterrole.yaml)"
                    );
                }
            }
            Err(error) => warn!(kind = %kind, error = %error, "listing gatekeeper constraints failed; retrying"),
        }
        tokio::time::sleep(interval).await;
    }
}

/// Every Gatekeeper constraint of the cluster; none when Gatekeeper's
/// templates are not served (404). A kind whose CRD is not served yet is
/// skipped, and so, with a warning, is one whose list fails otherwise; a 403
/// fails the whole list (the kind is then refused).
async fn list_constraints(
    client: &Client,
    page_size: u32,
) -> Result<Vec<crate::collect::rbac::GatekeeperConstraint>, kube::Error> {
    let templates = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("templates.gatekeeper.sh", "v1", "ConstraintTemplate"),
        "constrainttemplates",
    );
    let templates = match list_all(client, &templates, page_size).await {
        Ok(items) => items,
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut kinds: Vec<String> = templates
        .iter()
        .filter_map(|t| t.data.pointer("/spec/crd/spec/names/kind").and_then(|k| k.as_str()))
        .map(str::to_string)
        .collect();
    kinds.sort();
    kinds.dedup();
    let mut constraints = Vec::new();
    for kind in kinds {
        let gvk = GroupVersionKind::gvk(crate::collect::rbac::GATEKEEPER_CONSTRAINTS_GROUP, "v1beta1", &kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, &kind.to_ascii_lowercase());
        let list = match list_all(client, &resource, page_size).await {
            Ok(items) => items,
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(kube::Error::Api(status)) if status.code == 403 => return Err(kube::Error::Api(status)),
            Err(error) => {
                // One broken constraint kind does not hide the others (nor hold up reporting).
                warn!(kind, error = %error, "cannot list this gatekeeper constraint kind; left out until the next list");
                continue;
            }
        };
        for object in list {
            let read = serde_json::to_value(&object)
                .and_then(serde_json::from_value::<crate::collect::rbac::GatekeeperConstraint>);
            match read {
                Ok(mut constraint) => {
                    constraint.kind = kind.clone();
                    constraints.push(constraint);
                }
                Err(error) => warn!(kind, error = %error, "cannot read a gatekeeper constraint"),
            }
        }
    }
    Ok(constraints)
}

/// Every object of a dynamic resource, page by page.
async fn list_all(client: &Client, resource: &ApiResource, page_size: u32) -> Result<Vec<DynamicObject>, kube::Error> {
    let api = Api::<DynamicObject>::all_with(client.clone(), resource);
    let mut items = Vec::new();
    let mut params = ListParams::default().limit(page_size);
    loop {
        let page = api.list(&params).await?;
        items.extend(page.items);
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(items),
        }
    }
}

/// One kind's watch loop: events into the view, errors into the log.
async fn watch_kind<K>(
    kind: Kind,
    api: Api<K>,
    config: watcher::Config,
    handle: ViewHandle,
    apply: fn(&mut ClusterView, K) -> bool,
    delete: fn(&mut ClusterView, &K) -> bool,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let stream = watcher::watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut list_started = Instant::now();
    let mut n_listed = 0usize;
    let mut n_lists = 0u64;
    let mut n_errors = 0u64;
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => {
                list_started = Instant::now();
                n_listed = 0;
                handle.update(|view| {
                    view.begin_list(kind);
                    false
                });
            }
            Ok(Event::InitApply(object)) => {
                n_listed += 1;
                handle.update(|view| {
                    apply(view, object);
                    // Notified once, at the end of the list.
                    false
                });
            }
            Ok(Event::InitDone) => {
                let (was_refused, changed) = handle_end_list(&handle, kind);
                n_lists += 1;
                let duration_ms = list_started.elapsed().as_millis() as u64;
                if was_refused {
                    info!(kind = %kind, n_objects = n_listed, duration_ms, "listed after being refused; reporting it again");
                } else if n_lists == 1 {
                    info!(kind = %kind, n_objects = n_listed, duration_ms, "initial list done");
                } else {
                    info!(kind = %kind, n_objects = n_listed, duration_ms, changed, n_lists, "relisted");
                }
            }
            Ok(Event::Apply(object)) => {
                let name = object.meta().name.clone().unwrap_or_default();
                let changed = handle.update(|view| apply(view, object));
                debug!(kind = %kind, name, changed, "applied");
            }
            Ok(Event::Delete(object)) => {
                let changed = handle.update(|view| delete(view, &object));
                debug!(kind = %kind, name = object.meta().name.as_deref().unwrap_or_default(), changed, "deleted");
            }
            Err(error) => {
                n_errors += 1;
                let code = error_code(&error);
                if kind.is_optional()
                    && matches!(error, watcher::Error::InitialListFailed(_))
                    && matches!(code, Some(403 | 404))
                {
                    // See the module documentation: report without this kind, keep retrying.
                    if mark_refused(&handle, kind) {
                        if code == Some(404) {
                            // ValidatingAdmissionPolicies before Kubernetes 1.30, an API group turned off.
                            warn!(
                                kind = %kind, code, error = %error,
                                "the kubernetes api does not serve this kind: reporting snapshots without it until \
                                 it does; retrying with backoff"
                            );
                        } else {
                            warn!(
                                kind = %kind, code, error = %error,
                                "the kubernetes api refuses to list this kind: reporting snapshots without it (pods' \
                                 volumes unresolved, or tenant isolation unknown) until it allows it; grant get, \
                                 list and watch on it (deploy/kubernetes/agent/clusterrole.yaml); retrying with \
                                 backoff"
                            );
                        }
                    } else {
                        debug!(kind = %kind, code, n_errors, "list still refused; retrying with backoff");
                    }
                    continue;
                }
                warn!(kind = %kind, code, n_errors, error = %error, "watch failed; retrying with backoff");
            }
        }
    }
}

/// Marks `kind` refused in the view: whether it was not refused before.
fn mark_refused(handle: &ViewHandle, kind: Kind) -> bool {
    let mut newly = false;
    handle.update(|view| {
        newly = !view.is_refused(kind);
        view.list_refused(kind)
    });
    newly
}

/// Ends a list of `kind`: whether the kind was refused before it, and
/// whether the view changed.
fn handle_end_list(handle: &ViewHandle, kind: Kind) -> (bool, bool) {
    let mut was_refused = false;
    let changed = handle.update(|view| {
        was_refused = view.is_refused(kind);
        view.end_list(kind)
    });
    (was_refused, changed)
}

/// The HTTP status code of a watcher error, when the API server sent one.
pub fn error_code(error: &watcher::Error) -> Option<u16> {
    match error {
        watcher::Error::InitialListFailed(error)
        | watcher::Error::WatchStartFailed(error)
        | watcher::Error::WatchFailed(error) => match error {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        },
        watcher::Error::WatchError(status) => Some(status.code),
        watcher::Error::NoResourceVersion => None,
    }
}

#[cfg(test)]
mod tests;
