//! A fake Kubernetes API server, for the agent's tests, the end-to-end tests
//! and the benchmark. Not part of the agent proper.
//!
//! kube-rs's mock-service pattern: [`FakeApi`] is a hand-written
//! `tower::Service` that a `kube::Client` talks to in-process
//! ([`FakeApi::client`]); [`FakeApi::serve`] puts the same service behind a
//! real HTTP listener for processes (`kplan-agent` with a kubeconfig pointing
//! at `http://127.0.0.1:PORT`).
//!
//! What it serves, read-only: list and watch of nodes, namespaces, pods (all
//! namespaces), DaemonSets (all namespaces), PersistentVolumeClaims (all
//! namespaces), PersistentVolumes and StorageClasses, with
//! - real list semantics: `limit` and `continue` pagination, the list's
//!   `resourceVersion`, metadata-only responses
//!   (`Accept: …;as=PartialObjectMetadataList…`);
//! - real watch semantics: events after the requested `resourceVersion`
//!   (history is replayed), `ERROR` events with code 410 when the version is
//!   older than the last [compaction](FakeApi::expire_watches);
//! - injected failures ([`Fault`]): an HTTP status (403, 429, 500, …) or a
//!   reset connection, for the next N matching requests; a reset in the
//!   middle of open watches ([`FakeApi::reset_watches`]).
//!
//! Field and label selectors are ignored (the agent filters terminated pods
//! itself as well). Every request is recorded ([`FakeApi::requests`]); any
//! other method than GET is refused with 405 and recorded, so tests can
//! assert that the agent never writes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::collect::KubeObject;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body of the fake: whole for lists, streaming for watches.
pub type FakeBody = UnsyncBoxBody<Bytes, BoxError>;

/// The resources the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiResource {
    Nodes,
    Namespaces,
    Pods,
    DaemonSets,
    PersistentVolumeClaims,
    PersistentVolumes,
    StorageClasses,
    ClusterRoles,
    ClusterRoleBindings,
    Roles,
    RoleBindings,
    NetworkPolicies,
    RuntimeClasses,
    DisruptionBudgets,
    ValidatingAdmissionPolicies,
    ValidatingAdmissionPolicyBindings,
}

impl ApiResource {
    pub const ALL: [ApiResource; 16] = [
        ApiResource::Nodes,
        ApiResource::Namespaces,
        ApiResource::Pods,
        ApiResource::DaemonSets,
        ApiResource::PersistentVolumeClaims,
        ApiResource::PersistentVolumes,
        ApiResource::StorageClasses,
        ApiResource::ClusterRoles,
        ApiResource::ClusterRoleBindings,
        ApiResource::Roles,
        ApiResource::RoleBindings,
        ApiResource::NetworkPolicies,
        ApiResource::RuntimeClasses,
        ApiResource::DisruptionBudgets,
        ApiResource::ValidatingAdmissionPolicies,
        ApiResource::ValidatingAdmissionPolicyBindings,
    ];

    /// The cluster-wide collection path.
    pub fn path(self) -> &'static str {
        match self {
            ApiResource::Nodes => "/api/v1/nodes",
            ApiResource::Namespaces => "/api/v1/namespaces",
            ApiResource::Pods => "/api/v1/pods",
            ApiResource::DaemonSets => "/apis/apps/v1/daemonsets",
            ApiResource::PersistentVolumeClaims => "/api/v1/persistentvolumeclaims",
            ApiResource::PersistentVolumes => "/api/v1/persistentvolumes",
            ApiResource::StorageClasses => "/apis/storage.k8s.io/v1/storageclasses",
            ApiResource::ClusterRoles => "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            ApiResource::ClusterRoleBindings => "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            ApiResource::Roles => "/apis/rbac.authorization.k8s.io/v1/roles",
            ApiResource::RoleBindings => "/apis/rbac.authorization.k8s.io/v1/rolebindings",
            ApiResource::NetworkPolicies => "/apis/networking.k8s.io/v1/networkpolicies",
            ApiResource::RuntimeClasses => "/apis/node.k8s.io/v1/runtimeclasses",
            ApiResource::DisruptionBudgets => "/apis/policy/v1/poddisruptionbudgets",
            ApiResource::ValidatingAdmissionPolicies => {
                "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies"
            }
            ApiResource::ValidatingAdmissionPolicyBindings => {
                "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"
            }
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            ApiResource::Nodes => "Node",
            ApiResource::Namespaces => "Namespace",
            ApiResource::Pods => "Pod",
            ApiResource::DaemonSets => "DaemonSet",
            ApiResource::PersistentVolumeClaims => "PersistentVolumeClaim",
            ApiResource::PersistentVolumes => "PersistentVolume",
            ApiResource::StorageClasses => "StorageClass",
            ApiResource::ClusterRoles => "ClusterRole",
            ApiResource::ClusterRoleBindings => "ClusterRoleBinding",
            ApiResource::Roles => "Role",
            ApiResource::RoleBindings => "RoleBinding",
            ApiResource::NetworkPolicies => "NetworkPolicy",
            ApiResource::RuntimeClasses => "RuntimeClass",
            ApiResource::DisruptionBudgets => "PodDisruptionBudget",
            ApiResource::ValidatingAdmissionPolicies => "ValidatingAdmissionPolicy",
            ApiResource::ValidatingAdmissionPolicyBindings => "ValidatingAdmissionPolicyBinding",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            ApiResource::DaemonSets => "apps/v1",
            ApiResource::StorageClasses => "storage.k8s.io/v1",
            ApiResource::ClusterRoles
            | ApiResource::ClusterRoleBindings
            | ApiResource::Roles
            | ApiResource::RoleBindings => "rbac.authorization.k8s.io/v1",
            ApiResource::NetworkPolicies => "networking.k8s.io/v1",
            ApiResource::RuntimeClasses => "node.k8s.io/v1",
            ApiResource::DisruptionBudgets => "policy/v1",
            ApiResource::ValidatingAdmissionPolicies | ApiResource::ValidatingAdmissionPolicyBindings => {
                "admissionregistration.k8s.io/v1"
            }
            _ => "v1",
        }
    }

    fn from_path(path: &str) -> Option<ApiResource> {
        ApiResource::ALL.into_iter().find(|resource| resource.path() == path)
    }

    fn from_kind(kind: &str) -> Option<ApiResource> {
        ApiResource::ALL.into_iter().find(|resource| resource.kind() == kind)
    }
}

/// List (with or without `continue`) or watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    List,
    Watch,
}

/// A failure to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and a Kubernetes `Status` body
    /// (403 Forbidden, 429 TooManyRequests with `Retry-After: 1`, 500, …).
    Status(u16),
    /// Fail the request as a reset TCP connection would.
    ConnectionReset,
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, e.g. `/api/v1/pods?limit=500`.
    pub uri: String,
    pub accept: String,
}

impl RecordedRequest {
    pub fn query(&self, key: &str) -> Option<String> {
        query_params(self.uri.split_once('?').map_or("", |(_, query)| query)).remove(key)
    }

    pub fn path(&self) -> &str {
        self.uri.split_once('?').map_or(&self.uri, |(path, _)| path)
    }

    pub fn is_watch(&self) -> bool {
        matches!(self.query("watch").as_deref(), Some("true" | "1"))
    }
}

/// Generated, read-only objects (the benchmark's large cluster): `count`
/// objects, the `index`-th one's JSON given by the function. Listed before
/// the stored objects of the same resource.
type Generator = Arc<dyn Fn(usize) -> Bytes + Send + Sync>;

struct Watcher {
    sender: mpsc::UnboundedSender<Result<Bytes, BoxError>>,
    metadata_only: bool,
}

#[derive(Default)]
struct Collection {
    /// (namespace, name) → the object's JSON, its resourceVersion set.
    objects: BTreeMap<(String, String), Value>,
    generated: Option<(usize, Generator)>,
    /// (revision, event type, object) since the last compaction.
    history: Vec<(u64, &'static str, Arc<Value>)>,
    watchers: Vec<Watcher>,
}

#[derive(Default)]
struct State {
    revision: u64,
    /// Watches from a resourceVersion below this get 410 Gone.
    compacted: u64,
    collections: HashMap<ApiResource, Collection>,
    /// (resource, verb, fault, matching requests to let pass first, times).
    faults: VecDeque<(ApiResource, Verb, Fault, usize, usize)>,
    requests: Vec<RecordedRequest>,
}

/// See the module documentation. Cloning shares the same state.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for FakeApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("FakeApi").field("revision", &state.revision).finish_non_exhaustive()
    }
}

impl FakeApi {
    pub fn new() -> Self {
        let fake = FakeApi::default();
        fake.lock().revision = 1;
        fake
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the state from the others.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A kube client talking to this fake in-process.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.clone(), "default")
    }

    /// Serves the fake over HTTP on `listener` until the task is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let fake = self;
        let service = tower::service_fn(move |request: Request<axum::body::Body>| {
            let fake = fake.clone();
            async move {
                let response = match fake.handle(&request) {
                    Ok(response) => response.map(axum::body::Body::new),
                    Err(_) => Response::builder()
                        .status(StatusCode::SERVICE_UNAVAILABLE)
                        .body(axum::body::Body::from("connection reset"))
                        .unwrap_or_default(),
                };
                Ok::<_, Infallible>(response)
            }
        });
        axum::serve(listener, axum::Router::new().fallback_service(service)).await
    }

    /// Adds or replaces an object (JSON with `kind`, `metadata.name`, and
    /// `metadata.namespace` for pods, DaemonSets and claims): it gets the next
    /// resourceVersion, and open watches see ADDED or MODIFIED.
    pub fn apply(&self, object: Value) {
        self.store(object, true);
    }

    /// As [`apply`](Self::apply), but no event is recorded or sent: a change
    /// a watcher can only learn of by relisting (a lost event).
    pub fn apply_silently(&self, object: Value) {
        self.store(object, false);
    }

    fn store(&self, mut object: Value, announce: bool) {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let resource = ApiResource::from_kind(&kind).unwrap_or_else(|| panic!("fake api: unsupported kind {kind:?}"));
        let key = object_key(&object);
        let mut state = self.lock();
        state.revision += 1;
        let revision = state.revision;
        object["metadata"]["resourceVersion"] = Value::String(revision.to_string());
        let collection = state.collections.entry(resource).or_default();
        let existed = collection.objects.insert(key, object.clone()).is_some();
        if announce {
            let event = if existed { "MODIFIED" } else { "ADDED" };
            collection.announce(revision, event, Arc::new(object));
        }
    }

    /// Deletes an object; open watches see DELETED. False when it did not exist.
    pub fn delete(&self, resource: ApiResource, namespace: Option<&str>, name: &str) -> bool {
        let mut state = self.lock();
        state.revision += 1;
        let revision = state.revision;
        let collection = state.collections.entry(resource).or_default();
        match collection.objects.remove(&(namespace.unwrap_or_default().to_string(), name.to_string())) {
            Some(mut object) => {
                object["metadata"]["resourceVersion"] = Value::String(revision.to_string());
                collection.announce(revision, "DELETED", Arc::new(object));
                true
            }
            None => false,
        }
    }

    /// Loads every Node, Namespace, Pod, DaemonSet, PersistentVolumeClaim,
    /// PersistentVolume, StorageClass and PodDisruptionBudget of parsed kubectl output (other kinds
    /// and kplan snapshots are ignored).
    pub fn load(&self, objects: &[KubeObject]) {
        for object in objects {
            let value = match object {
                KubeObject::Node { node, .. } => serde_json::to_value(node),
                KubeObject::Namespace { namespace, .. } => serde_json::to_value(namespace),
                KubeObject::Pod { pod, .. } => serde_json::to_value(pod),
                KubeObject::DaemonSet { daemon_set, .. } => serde_json::to_value(daemon_set),
                KubeObject::PersistentVolumeClaim { claim, .. } => serde_json::to_value(claim),
                KubeObject::PersistentVolume { volume, .. } => serde_json::to_value(volume),
                KubeObject::StorageClass { class, .. } => serde_json::to_value(class),
                KubeObject::DisruptionBudget { budget, .. } => serde_json::to_value(budget),
                _ => continue,
            };
            self.apply(value.expect("k8s-openapi objects serialise"));
        }
    }

    /// Serves `count` generated objects for `resource` (read-only; see [`Generator`]).
    pub fn generate(
        &self,
        resource: ApiResource,
        count: usize,
        generator: impl Fn(usize) -> Bytes + Send + Sync + 'static,
    ) {
        self.lock().collections.entry(resource).or_default().generated = Some((count, Arc::new(generator)));
    }

    /// The stored objects of a resource (generated ones excluded).
    pub fn objects(&self, resource: ApiResource) -> Vec<Value> {
        self.lock().collections.get(&resource).map(|c| c.objects.values().cloned().collect()).unwrap_or_default()
    }

    /// The stored objects of every resource as one kubectl `List`, for the collector.
    pub fn export(&self) -> String {
        let items: Vec<Value> = ApiResource::ALL.into_iter().flat_map(|resource| self.objects(resource)).collect();
        json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}).to_string()
    }

    /// The next `times` requests of `verb` on `resource` fail with `fault`.
    pub fn fail(&self, resource: ApiResource, verb: Verb, fault: Fault, times: usize) {
        self.fail_after(resource, verb, 0, fault, times);
    }

    /// As [`fail`](Self::fail), after letting `skip` matching requests pass
    /// (a list that fails on its fourth page: `skip` 3).
    pub fn fail_after(&self, resource: ApiResource, verb: Verb, skip: usize, fault: Fault, times: usize) {
        self.lock().faults.push_back((resource, verb, fault, skip, times));
    }

    /// Every open watch receives an ERROR event with code 410 (Gone) and
    /// ends, and history so far is compacted: a watch from an older
    /// resourceVersion gets 410 too. The watcher must relist.
    pub fn expire_watches(&self) {
        let mut state = self.lock();
        state.compacted = state.revision + 1;
        state.revision += 1;
        let status = status_json(410, "Expired", "too old resource version");
        for collection in state.collections.values_mut() {
            collection.history.clear();
            for watcher in collection.watchers.drain(..) {
                let line = format!("{}\n", json!({"type": "ERROR", "object": status}));
                let _ = watcher.sender.send(Ok(Bytes::from(line)));
            }
        }
    }

    /// Open watches of `resource` fail as if the connection was reset.
    pub fn reset_watches(&self, resource: ApiResource) {
        let mut state = self.lock();
        if let Some(collection) = state.collections.get_mut(&resource) {
            for watcher in collection.watchers.drain(..) {
                let _ = watcher.sender.send(Err(connection_reset()));
            }
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Number of open watch streams on `resource`.
    pub fn n_watchers(&self, resource: ApiResource) -> usize {
        let mut state = self.lock();
        let collection = state.collections.entry(resource).or_default();
        collection.watchers.retain(|watcher| !watcher.sender.is_closed());
        collection.watchers.len()
    }

    fn handle<B>(&self, request: &Request<B>) -> Result<Response<FakeBody>, BoxError> {
        let accept = request.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let recorded = RecordedRequest {
            method: request.method().to_string(),
            uri: request.uri().path_and_query().map_or_else(|| request.uri().path().to_string(), ToString::to_string),
            accept: accept.to_string(),
        };
        let mut state = self.lock();
        state.requests.push(recorded.clone());
        if request.method() != Method::GET {
            return Ok(status_response(405, "MethodNotAllowed", "the fake api is read-only"));
        }
        // Discovery of policy/v1: the agent asks which PodDisruptionBudget API
        // the server has (it serves policy/v1, as every server since 1.21).
        if recorded.path() == "/apis/policy/v1" {
            let list = serde_json::json!({
                "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "policy/v1",
                "resources": [{"name": "poddisruptionbudgets", "singularName": "", "namespaced": true,
                               "kind": "PodDisruptionBudget", "verbs": ["get", "list", "watch"]}]
            });
            return Ok(json_response(StatusCode::OK, Bytes::from(list.to_string())));
        }
        let Some(resource) = ApiResource::from_path(recorded.path()) else {
            return Ok(status_response(404, "NotFound", &format!("the fake api does not serve {}", recorded.path())));
        };
        let verb = if recorded.is_watch() { Verb::Watch } else { Verb::List };
        if let Some(fault) = state.take_fault(resource, verb) {
            return match fault {
                Fault::Status(code) => Ok(status_response(code, reason(code), "injected by the fake api")),
                Fault::ConnectionReset => Err(connection_reset()),
            };
        }
        let metadata_only = accept.contains("as=PartialObjectMetadata");
        match verb {
            Verb::List => Ok(state.list(resource, &recorded, metadata_only)),
            Verb::Watch => Ok(state.watch(resource, &recorded, metadata_only)),
        }
    }
}

impl State {
    fn take_fault(&mut self, resource: ApiResource, verb: Verb) -> Option<Fault> {
        let idx = self.faults.iter().position(|(r, v, _, _, times)| *r == resource && *v == verb && *times > 0)?;
        let entry = &mut self.faults[idx];
        if entry.3 > 0 {
            entry.3 -= 1;
            return None;
        }
        entry.4 -= 1;
        let fault = entry.2;
        if entry.4 == 0 {
            self.faults.remove(idx);
        }
        Some(fault)
    }

    fn list(&mut self, resource: ApiResource, request: &RecordedRequest, metadata_only: bool) -> Response<FakeBody> {
        let revision = self.revision;
        let collection = self.collections.entry(resource).or_default();
        let n_generated = collection.generated.as_ref().map_or(0, |(count, _)| *count);
        let total = n_generated + collection.objects.len();
        let limit = request.query("limit").and_then(|limit| limit.parse::<usize>().ok()).filter(|limit| *limit > 0);
        // The continue token is "<list revision>/<offset>".
        let (list_revision, offset) = match request.query("continue") {
            Some(token) => match token.split_once('/').and_then(|(r, o)| Some((r.parse().ok()?, o.parse().ok()?))) {
                Some(parsed) => parsed,
                None => return status_response(400, "BadRequest", "malformed continue token"),
            },
            None => (revision, 0),
        };
        let end = limit.map_or(total, |limit| (offset + limit).min(total));
        let mut body = Vec::with_capacity(256 + (end - offset.min(end)) * 2048);
        let continue_token = if end < total { format!("{list_revision}/{end}") } else { String::new() };
        let list_kind = if metadata_only { "PartialObjectMetadataList" } else { &format!("{}List", resource.kind()) };
        let api_version = if metadata_only { "meta.k8s.io/v1" } else { resource.api_version() };
        body.extend_from_slice(
            format!(
                r#"{{"kind":"{list_kind}","apiVersion":"{api_version}","metadata":{{"resourceVersion":"{list_revision}","continue":"{continue_token}"}},"items":["#
            )
            .as_bytes(),
        );
        let mut first = true;
        let mut push = |bytes: &[u8]| {
            if !first {
                body.push(b',');
            }
            first = false;
            body.extend_from_slice(bytes);
        };
        for idx in offset..end.min(n_generated) {
            let (_, generator) = collection.generated.as_ref().expect("generated collection");
            let object = generator(idx);
            if metadata_only {
                let value: Value = serde_json::from_slice(&object).unwrap_or_default();
                push(metadata_of(&value).to_string().as_bytes());
            } else {
                push(&object);
            }
        }
        if end > n_generated {
            let skip = offset.saturating_sub(n_generated);
            for object in collection.objects.values().skip(skip).take(end - n_generated - skip) {
                let object = if metadata_only { metadata_of(object) } else { object.clone() };
                push(object.to_string().as_bytes());
            }
        }
        body.extend_from_slice(b"]}");
        json_response(StatusCode::OK, Bytes::from(body))
    }

    fn watch(&mut self, resource: ApiResource, request: &RecordedRequest, metadata_only: bool) -> Response<FakeBody> {
        let from: u64 = request.query("resourceVersion").and_then(|rv| rv.parse().ok()).unwrap_or(0);
        if from < self.compacted {
            let status = status_json(410, "Expired", "too old resource version");
            let line = format!("{}\n", json!({"type": "ERROR", "object": status}));
            return json_response(StatusCode::OK, Bytes::from(line));
        }
        let collection = self.collections.entry(resource).or_default();
        let (sender, receiver) = mpsc::unbounded_channel();
        for (revision, event, object) in &collection.history {
            if *revision > from {
                let _ = sender.send(Ok(event_line(event, object, metadata_only)));
            }
        }
        collection.watchers.push(Watcher { sender, metadata_only });
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        })
        .map(|item| item.map(Frame::data));
        let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
        response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

impl Collection {
    fn announce(&mut self, revision: u64, event: &'static str, object: Arc<Value>) {
        self.watchers
            .retain(|watcher| watcher.sender.send(Ok(event_line(event, &object, watcher.metadata_only))).is_ok());
        self.history.push((revision, event, object));
    }
}

impl<B> tower::Service<Request<B>> for FakeApi {
    type Response = Response<FakeBody>;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        std::future::ready(self.handle(&request))
    }
}

fn object_key(object: &Value) -> (String, String) {
    let metadata = &object["metadata"];
    let name = metadata["name"].as_str().unwrap_or_else(|| panic!("fake api: object without a name: {object}"));
    (metadata["namespace"].as_str().unwrap_or_default().to_string(), name.to_string())
}

/// What a metadata-only request returns for an object.
fn metadata_of(object: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]})
}

fn event_line(event: &str, object: &Value, metadata_only: bool) -> Bytes {
    let object = if metadata_only { metadata_of(object) } else { object.clone() };
    Bytes::from(format!("{}\n", json!({"type": event, "object": object})))
}

fn query_params(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while idx < bytes.len() {
        let escaped = (bytes[idx] == b'%' && idx + 2 < bytes.len())
            .then(|| {
                std::str::from_utf8(&bytes[idx + 1..idx + 3]).ok().and_then(|hex| u8::from_str_radix(hex, 16).ok())
            })
            .flatten();
        match (escaped, bytes[idx]) {
            (Some(byte), _) => {
                out.push(byte);
                idx += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                idx += 1;
            }
            (None, byte) => {
                out.push(byte);
                idx += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reason(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        410 => "Expired",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        _ => "Unknown",
    }
}

fn status_json(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code
    })
}

fn status_response(code: u16, reason: &str, message: &str) -> Response<FakeBody> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, Bytes::from(status_json(code, reason, message).to_string()));
    if code == 429 {
        response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn json_response(status: StatusCode, body: Bytes) -> Response<FakeBody> {
    let mut response = Response::new(BodyExt::boxed_unsync(Full::new(body).map_err(|never| match never {})));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn connection_reset() -> BoxError {
    Box::new(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer (injected)"))
}
