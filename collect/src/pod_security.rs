//! A pod spec against the Pod Security Standards
//! (<https://kubernetes.io/docs/concepts/security/pod-security-standards/>),
//! as Kubernetes' Pod Security admission checks it: the rules of the
//! `baseline` and `restricted` levels the pod breaks, by the check ids of
//! `k8s.io/pod-security-admission` (`hostNamespaces`, `privileged`,
//! `capabilities_baseline`, `runAsNonRoot`, `seccompProfile_restricted`, ...).
//! Containers, init containers and ephemeral containers all count.
//!
//! Read from the pod spec only: AppArmor profiles given by the older
//! annotations (`container.apparmor.security.beta.kubernetes.io/*`) are not
//! checked (the `appArmorProfile` fields are). A Windows pod (`spec.os.name`)
//! is exempt from the restricted rules that do not apply to Windows, as in
//! Kubernetes 1.25+.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EphemeralContainer, PodSpec, SeccompProfile, SecurityContext, Volume,
};
use kplan_model::isolation::PodSecurityViolations;

/// Capabilities the baseline level lets a container add.
const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The sysctls the baseline level allows (Kubernetes 1.33's safe set).
const SAFE_SYSCTLS: [&str; 12] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// SELinux types the baseline level allows (besides none).
const SELINUX_TYPES: [&str; 4] = ["container_t", "container_init_t", "container_kvm_t", "container_engine_t"];

/// One container of any sort: its security context and host ports.
struct AnyContainer<'a> {
    security: Option<&'a SecurityContext>,
    host_ports: bool,
}

fn containers(spec: &PodSpec) -> Vec<AnyContainer<'_>> {
    fn regular(c: &Container) -> AnyContainer<'_> {
        let host_ports = c.ports.iter().flatten().any(|p| p.host_port.is_some_and(|port| port != 0));
        AnyContainer { security: c.security_context.as_ref(), host_ports }
    }
    fn ephemeral(c: &EphemeralContainer) -> AnyContainer<'_> {
        let host_ports = c.ports.iter().flatten().any(|p| p.host_port.is_some_and(|port| port != 0));
        AnyContainer { security: c.security_context.as_ref(), host_ports }
    }
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .map(regular)
        .chain(spec.ephemeral_containers.iter().flatten().map(ephemeral))
        .collect()
}

/// Whether a volume's source is one the restricted level allows.
fn restricted_volume(volume: &Volume) -> bool {
    volume.config_map.is_some()
        || volume.csi.is_some()
        || volume.downward_api.is_some()
        || volume.empty_dir.is_some()
        || volume.ephemeral.is_some()
        || volume.persistent_volume_claim.is_some()
        || volume.projected.is_some()
        || volume.secret.is_some()
}

fn capabilities(security: Option<&SecurityContext>) -> Option<&Capabilities> {
    security.and_then(|s| s.capabilities.as_ref())
}

fn seccomp_type(profile: Option<&SeccompProfile>) -> Option<&str> {
    profile.map(|p| p.type_.as_str())
}

/// The annotations AppArmor profiles were set with before the
/// `appArmorProfile` field (Kubernetes 1.30), one per container.
const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// The rules of each level a pod breaks, sorted: [`violations`] of its spec,
/// and baseline's `appArmorProfile` rule for its annotations, which
/// pod-security-admission reads too: a profile other than `runtime/default`
/// or `localhost/<name>` (such as `unconfined`) breaks it.
pub fn pod_violations(spec: &PodSpec, annotations: Option<&BTreeMap<String, String>>) -> PodSecurityViolations {
    let mut found = violations(spec);
    let unconfined = annotations.into_iter().flatten().any(|(key, value)| {
        key.starts_with(APPARMOR_ANNOTATION_PREFIX)
            && !(value.is_empty() || value == "runtime/default" || value.starts_with("localhost/"))
    });
    if unconfined && !found.baseline.iter().any(|rule| rule == "appArmorProfile") {
        found.baseline.push("appArmorProfile".to_string());
        found.baseline.sort();
    }
    found
}

/// The rules of each level `spec` breaks, sorted.
pub fn violations(spec: &PodSpec) -> PodSecurityViolations {
    let mut baseline: BTreeSet<&str> = BTreeSet::new();
    let mut restricted: BTreeSet<&str> = BTreeSet::new();
    let pod = spec.security_context.as_ref();
    let all = containers(spec);
    let security = || all.iter().map(|c| c.security);

    // ---- baseline
    let host_process = pod.and_then(|p| p.windows_options.as_ref()).and_then(|w| w.host_process) == Some(true)
        || security().flatten().any(|s| s.windows_options.as_ref().and_then(|w| w.host_process) == Some(true));
    if host_process {
        baseline.insert("hostProcess");
    }
    if spec.host_network == Some(true) || spec.host_pid == Some(true) || spec.host_ipc == Some(true) {
        baseline.insert("hostNamespaces");
    }
    if security().flatten().any(|s| s.privileged == Some(true)) {
        baseline.insert("privileged");
    }
    let added = security().filter_map(capabilities).flat_map(|c| c.add.iter().flatten());
    if added.clone().any(|cap| !BASELINE_CAPABILITIES.contains(&cap.as_str())) {
        baseline.insert("capabilities_baseline");
    }
    if spec.volumes.iter().flatten().any(|v| v.host_path.is_some()) {
        baseline.insert("hostPathVolumes");
    }
    if all.iter().any(|c| c.host_ports) {
        baseline.insert("hostPorts");
    }
    let app_armor = pod
        .and_then(|p| p.app_armor_profile.as_ref())
        .into_iter()
        .chain(security().flatten().filter_map(|s| s.app_armor_profile.as_ref()));
    if app_armor.map(|p| p.type_.as_str()).any(|t| t != "RuntimeDefault" && t != "Localhost") {
        baseline.insert("appArmorProfile");
    }
    let se_linux = pod
        .and_then(|p| p.se_linux_options.as_ref())
        .into_iter()
        .chain(security().flatten().filter_map(|s| s.se_linux_options.as_ref()));
    let bad_se_linux = |o: &k8s_openapi::api::core::v1::SELinuxOptions| {
        o.type_.as_deref().is_some_and(|t| !t.is_empty() && !SELINUX_TYPES.contains(&t))
            || o.user.as_deref().is_some_and(|u| !u.is_empty())
            || o.role.as_deref().is_some_and(|r| !r.is_empty())
    };
    if se_linux.into_iter().any(bad_se_linux) {
        baseline.insert("seLinuxOptions");
    }
    if security().flatten().filter_map(|s| s.proc_mount.as_deref()).any(|m| m != "Default") {
        baseline.insert("procMount");
    }
    let pod_seccomp = seccomp_type(pod.and_then(|p| p.seccomp_profile.as_ref()));
    let container_seccomp = || security().map(|s| seccomp_type(s.and_then(|s| s.seccomp_profile.as_ref())));
    if pod_seccomp == Some("Unconfined") || container_seccomp().any(|t| t == Some("Unconfined")) {
        baseline.insert("seccompProfile_baseline");
    }
    if pod.and_then(|p| p.sysctls.as_ref()).into_iter().flatten().any(|s| !SAFE_SYSCTLS.contains(&s.name.as_str())) {
        baseline.insert("sysctls");
    }

    // ---- restricted
    let windows = spec.os.as_ref().is_some_and(|os| os.name == "windows");
    if spec.volumes.iter().flatten().any(|v| !restricted_volume(v)) {
        restricted.insert("restrictedVolumes");
    }
    if !windows && security().any(|s| s.and_then(|s| s.allow_privilege_escalation) != Some(false)) {
        restricted.insert("allowPrivilegeEscalation");
    }
    // runAsNonRoot: explicitly false anywhere, or some container left without
    // it (neither its own nor the pod's).
    let pod_non_root = pod.and_then(|p| p.run_as_non_root);
    let container_non_root = || security().map(|s| s.and_then(|s| s.run_as_non_root));
    if pod_non_root == Some(false)
        || container_non_root().any(|v| v == Some(false) || (v.is_none() && pod_non_root != Some(true)))
    {
        restricted.insert("runAsNonRoot");
    }
    let pod_user = pod.and_then(|p| p.run_as_user);
    if pod_user == Some(0) || security().flatten().any(|s| s.run_as_user == Some(0)) {
        restricted.insert("runAsUser");
    }
    let allowed_seccomp = |t: Option<&str>| matches!(t, Some("RuntimeDefault" | "Localhost"));
    if !windows
        && (pod_seccomp.is_some_and(|t| !allowed_seccomp(Some(t)))
            || container_seccomp()
                .any(|t| if t.is_some() { !allowed_seccomp(t) } else { !allowed_seccomp(pod_seccomp) }))
    {
        restricted.insert("seccompProfile_restricted");
    }
    let drops_all =
        |c: Option<&Capabilities>| c.and_then(|c| c.drop.as_ref()).is_some_and(|d| d.iter().any(|d| d == "ALL"));
    let adds_more = |c: Option<&Capabilities>| {
        c.and_then(|c| c.add.as_ref()).is_some_and(|a| a.iter().any(|a| a != "NET_BIND_SERVICE"))
    };
    if !windows && security().map(capabilities).any(|c| !drops_all(c) || adds_more(c)) {
        restricted.insert("capabilities_restricted");
    }

    PodSecurityViolations {
        baseline: baseline.into_iter().map(str::to_string).collect(),
        restricted: restricted.into_iter().map(str::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: serde_json::Value) -> PodSpec {
        serde_json::from_value(value).expect("pod spec")
    }

    /// Every restricted rule met: the pattern the documentation shows.
    fn restricted_container() -> serde_json::Value {
        serde_json::json!({
            "name": "app",
            "image": "app:1",
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
            }
        })
    }

    #[test]
    fn a_fully_restricted_pod_breaks_nothing() {
        let pod = spec(serde_json::json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [restricted_container()],
            "initContainers": [restricted_container()],
            "volumes": [{"name": "c", "configMap": {"name": "c"}}, {"name": "d", "persistentVolumeClaim": {"claimName": "d"}}]
        }));
        assert_eq!(violations(&pod), PodSecurityViolations::default());
    }

    #[test]
    fn a_host_network_pod_breaks_baseline_host_namespaces() {
        let mut value = serde_json::json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [restricted_container()],
        });
        value["hostNetwork"] = true.into();
        let found = violations(&spec(value));
        assert_eq!(found.baseline, ["hostNamespaces"]);
        assert!(found.restricted.is_empty());
    }

    #[test]
    fn a_pod_without_run_as_non_root_breaks_restricted_only() {
        let found = violations(&spec(serde_json::json!({
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [restricted_container()],
        })));
        assert!(found.baseline.is_empty());
        assert_eq!(found.restricted, ["runAsNonRoot"]);
    }

    #[test]
    fn a_plain_pod_breaks_the_restricted_rules_it_leaves_unset() {
        let found = violations(&spec(serde_json::json!({"containers": [{"name": "app"}]})));
        assert!(found.baseline.is_empty());
        assert_eq!(
            found.restricted,
            ["allowPrivilegeEscalation", "capabilities_restricted", "runAsNonRoot", "seccompProfile_restricted"]
        );
    }

    #[test]
    fn every_baseline_rule_is_named_and_ephemeral_and_init_containers_count() {
        let found = violations(&spec(serde_json::json!({
            "hostPID": true,
            "securityContext": {
                "sysctls": [{"name": "kernel.msgmax", "value": "1"}, {"name": "net.ipv4.tcp_syncookies", "value": "1"}],
                "seLinuxOptions": {"type": "spc_t"},
                "seccompProfile": {"type": "Unconfined"}
            },
            "containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]}],
            "initContainers": [{"name": "b", "securityContext": {"privileged": true, "procMount": "Unmasked"}}],
            "ephemeralContainers": [{"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN", "CHOWN"]}}}],
            "volumes": [{"name": "h", "hostPath": {"path": "/var/run"}}]
        })));
        assert_eq!(
            found.baseline,
            [
                "capabilities_baseline",
                "hostNamespaces",
                "hostPathVolumes",
                "hostPorts",
                "privileged",
                "procMount",
                "seLinuxOptions",
                "seccompProfile_baseline",
                "sysctls"
            ]
        );
        assert!(found.restricted.contains(&"restrictedVolumes".to_string()));
        // Baseline lets a container add CHOWN; restricted only NET_BIND_SERVICE.
        let chown = violations(&spec(serde_json::json!({
            "containers": [{"name": "a", "securityContext": {"capabilities": {"add": ["CHOWN"]}}}]
        })));
        assert!(chown.baseline.is_empty());
        assert!(chown.restricted.contains(&"capabilities_restricted".to_string()));
    }

    #[test]
    fn an_unconfined_app_armor_annotation_breaks_baseline_and_a_runtime_default_one_does_not() {
        let pod = spec(serde_json::json!({"containers": [restricted_container()]}));
        let annotations =
            |value: &str| BTreeMap::from([(format!("{APPARMOR_ANNOTATION_PREFIX}app"), value.to_string())]);
        assert_eq!(pod_violations(&pod, Some(&annotations("unconfined"))).baseline, vec!["appArmorProfile"]);
        for allowed in ["runtime/default", "localhost/k8s-nginx", ""] {
            assert!(pod_violations(&pod, Some(&annotations(allowed))).baseline.is_empty(), "{allowed}");
        }
        // Other annotations are not read.
        let other = BTreeMap::from([("example.com/apparmor".to_string(), "unconfined".to_string())]);
        assert!(pod_violations(&pod, Some(&other)).baseline.is_empty());
    }

    #[test]
    fn a_container_setting_run_as_non_root_false_overrides_the_pod() {
        let mut container = restricted_container();
        container["securityContext"]["runAsNonRoot"] = false.into();
        let found = violations(&spec(serde_json::json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 0, "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
            "containers": [container],
        })));
        assert_eq!(found.restricted, ["runAsNonRoot", "runAsUser"]);
    }
}
