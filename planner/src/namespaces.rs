//! Namespaces when clusters merge: platform namespaces merge, others may collide.
//!
//! A collision is the same namespace name coming from two or more source
//! clusters into one target cluster. Every collision is reported: one namespace
//! keeps the name, the others are renamed to `<name>-<cluster id>`, made a valid
//! DNS-1123 label and unique in the target. Platform namespaces
//! (`policy.platform_namespaces`: `default`, `kube-*`, ...) exist in every cluster
//! and merge into the target's own, so they never collide.
//!
//! Platform add-ons ([`find_addons`]: `ingress-nginx`, `monitoring`, ...) are
//! installed once per target instead of moving; they keep their name, and a
//! tenant namespace of the same name moving into the target collides with them.
//!
//! Pure and deterministic: the same placements give the same renames whatever
//! their order.

use std::collections::{BTreeMap, BTreeSet};

use kplan_model::{AddonOrigin, Namespace, NamespaceRename, Policy, SlaTier};

/// The longest valid DNS-1123 label (a namespace name).
pub const MAX_NAMESPACE_LEN: usize = 63;

/// Where one namespace of a source cluster goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePlacement {
    pub from_cluster: String,
    pub namespace: String,
    pub target_cluster: String,
    pub sla_tier: SlaTier,
    pub pods: u64,
    /// A platform add-on installed on the target: it always keeps its name.
    pub addon: bool,
}

/// Whether `name` matches one of `patterns` exactly, or starts with the part
/// before a trailing `*`.
fn matches_any(name: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|pattern| {
        let pattern = pattern.trim();
        match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => !pattern.is_empty() && name == pattern,
        }
    })
}

/// Whether `name` is a platform namespace: it matches an entry of
/// `policy.platform_namespaces` exactly, or starts with the part before a
/// trailing `*` (`kube-*` matches `kube-system`).
pub fn is_platform_namespace(name: &str, policy: &Policy) -> bool {
    matches_any(name, &policy.platform_namespaces)
}

/// Whether the policy names `name` as a platform add-on (`policy.addon_namespaces`,
/// the same patterns as [`is_platform_namespace`]).
pub fn is_addon_namespace(name: &str, policy: &Policy) -> bool {
    matches_any(name, &policy.addon_namespaces)
}

/// An add-on of one block, as [`find_addons`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundAddon {
    pub name: String,
    pub origin: AddonOrigin,
    /// Indexes into the candidates given to [`find_addons`], in their order.
    pub instances: Vec<usize>,
    /// The largest instance (most cpu requested, then memory, then pods, then
    /// the first candidate): its requests are reserved on the target.
    pub largest: usize,
}

/// What identifies an add-on's workloads: the set of `kind/name` of the
/// namespace's workloads (`pod_groups`; DaemonSets are not recorded there).
/// The inventory records no container images, so images are not compared.
fn workloads(namespace: &Namespace) -> BTreeSet<String> {
    namespace.pod_groups.iter().map(|group| group.workload()).collect()
}

/// The version of an add-on instance: the namespace's `app.kubernetes.io/version`
/// label, else `unknown`.
pub fn addon_version(namespace: &Namespace) -> String {
    match namespace.labels.get("app.kubernetes.io/version") {
        Some(version) if !version.trim().is_empty() => version.trim().to_string(),
        _ => "unknown".to_string(),
    }
}

/// The platform add-ons among the namespaces of one block: `candidates` are its
/// (cluster id, namespace) pairs, platform namespaces excluded, sorted by
/// cluster id then name; `n_clusters` is the number of clusters with nodes or
/// namespaces in the block. Returned sorted by name.
///
/// - **Policy**: a name `policy.addon_namespaces` matches is an add-on; its
///   instances are the namespaces of that name whose workloads are unknown (no
///   pod groups) or share at least one workload (`kind/name`) with the most
///   common workload set among them (ties: the smallest set).
/// - **Detected** (unless `policy.detect_addons` is false): another name is an add-on when the most common non-empty
///   workload set among its namespaces (ties: the smallest) is found, exactly,
///   in at least two clusters and in more than half of the block's clusters;
///   its instances are those namespaces.
///
/// A namespace of an add-on's name that is not an instance is a tenant
/// namespace: it moves, and collides with the add-on in its target.
pub fn find_addons(candidates: &[(&str, &Namespace)], n_clusters: usize, policy: &Policy) -> Vec<FoundAddon> {
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (k, (_, namespace)) in candidates.iter().enumerate() {
        if !is_platform_namespace(&namespace.name, policy) {
            by_name.entry(namespace.name.as_str()).or_default().push(k);
        }
    }
    let mut found = Vec::new();
    for (name, members) in by_name {
        let sets: Vec<BTreeSet<String>> = members.iter().map(|&k| workloads(candidates[k].1)).collect();
        // The most common non-empty workload set (ties: the smallest set).
        let mut counts: BTreeMap<&BTreeSet<String>, usize> = BTreeMap::new();
        for set in sets.iter().filter(|set| !set.is_empty()) {
            *counts.entry(set).or_default() += 1;
        }
        let common = counts.iter().fold(None::<(&BTreeSet<String>, usize)>, |best, (&set, &count)| match best {
            Some((_, best_count)) if best_count >= count => best,
            _ => Some((set, count)),
        });
        let (origin, instances): (AddonOrigin, Vec<usize>) = if is_addon_namespace(name, policy) {
            let instances = members
                .iter()
                .zip(&sets)
                .filter(|(_, set)| set.is_empty() || common.is_none_or(|(common, _)| !common.is_disjoint(set)))
                .map(|(&k, _)| k)
                .collect();
            (AddonOrigin::Policy, instances)
        } else {
            let Some((common, count)) = common.filter(|_| policy.detect_addons) else { continue };
            if count < 2 || 2 * count <= n_clusters {
                continue;
            }
            let instances = members.iter().zip(&sets).filter(|(_, set)| *set == common).map(|(&k, _)| k).collect();
            (AddonOrigin::Detected, instances)
        };
        let Some(&first) = instances.first() else { continue };
        let size = |k: usize| {
            let requests = candidates[k].1.requests;
            (requests.cpu_millis, requests.memory_bytes, requests.pods)
        };
        let largest = instances.iter().copied().fold(first, |best, k| if size(k) > size(best) { k } else { best });
        found.push(FoundAddon { name: name.to_string(), origin, instances, largest });
    }
    found
}

/// Whether `name` is a valid DNS-1123 label: 1 to 63 characters of `a-z`, `0-9`
/// and `-`, starting and ending with a letter or digit.
pub fn is_dns1123_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAMESPACE_LEN
        && bytes.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Lowercases `text` and replaces every character outside `a-z0-9-` by `-`,
/// collapsing runs of `-` and trimming them at both ends.
fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// A valid DNS-1123 label made from `wanted`: sanitised; if longer than 63
/// characters, truncated and suffixed with `-` and 8 hex digits of its CRC-32,
/// so two long names that share a prefix still differ.
fn to_label(wanted: &str) -> String {
    let clean = sanitize(wanted);
    if clean.len() <= MAX_NAMESPACE_LEN {
        return if clean.is_empty() { "ns".to_string() } else { clean };
    }
    let hash = format!("{:08x}", crc32fast::hash(wanted.as_bytes()));
    let mut head = clean[..MAX_NAMESPACE_LEN - hash.len() - 1].to_string();
    while head.ends_with('-') {
        head.pop();
    }
    format!("{head}-{hash}")
}

/// The candidate names for a renamed namespace, in the order they are tried:
/// `<name>-<cluster>`, `<name>-<cluster>-2` ... `-99`; then (should all of those
/// be taken or platform names) `<cluster>-<name>`, `<cluster>-<name>-2` ...;
/// then `ns-<hash>-<n>`, which never runs out.
fn candidate(namespace: &str, cluster_id: &str, attempt: u64) -> String {
    match attempt {
        0 | 1 => to_label(&format!("{namespace}-{cluster_id}")),
        2..=99 => to_label(&format!("{namespace}-{cluster_id}-{attempt}")),
        100 => to_label(&format!("{cluster_id}-{namespace}")),
        101..=199 => to_label(&format!("{cluster_id}-{namespace}-{}", attempt - 99)),
        _ => {
            let hash = crc32fast::hash(format!("{namespace}/{cluster_id}").as_bytes());
            format!("ns-{hash:08x}-{}", attempt - 199)
        }
    }
}

/// Attempts after which a candidate that is a platform namespace name is
/// accepted anyway (uniqueness is never given up).
const PLATFORM_AVOIDANCE_ATTEMPTS: u64 = 10_000;

/// In one target: namespace name -> source cluster -> (add-on, SLA tier, pods).
type NamesInTarget<'a> = BTreeMap<&'a str, BTreeMap<&'a str, (bool, SlaTier, u64)>>;

/// Finds every collision among `placements` and proposes renames.
///
/// Per target cluster, namespaces with the same name from two or more source
/// clusters collide (platform namespaces excluded). One keeps its name: an
/// add-on installed on the target, else the highest SLA tier, then the most pods, then the smallest cluster id. The
/// others get `<name>-<cluster id>`, lowercased and made a valid DNS-1123 label
/// (at most 63 characters: truncated with a stable hash suffix), and unique
/// against every name in the target (the names that stay, including platform
/// namespaces, and the renames already given; `-2`, `-3`, ... are appended on a
/// clash). A rename never produces a platform namespace name.
///
/// Only the renamed namespaces are returned (the one that keeps the name is
/// named in their `collides_with`), sorted by target, name, cluster.
/// Duplicate placements (same cluster, name and target) count once.
pub fn resolve_collisions(placements: &[NamespacePlacement], policy: &Policy) -> Vec<NamespaceRename> {
    let mut by_target: BTreeMap<&str, NamesInTarget<'_>> = BTreeMap::new();
    for placement in placements {
        let entry = by_target
            .entry(placement.target_cluster.as_str())
            .or_default()
            .entry(placement.namespace.as_str())
            .or_default()
            .entry(placement.from_cluster.as_str())
            .or_insert((placement.addon, placement.sla_tier, placement.pods));
        // A duplicate placement counts once; keep the most demanding reading.
        *entry = (entry.0 || placement.addon, entry.1.max(placement.sla_tier), entry.2.max(placement.pods));
    }

    let mut renames = Vec::new();
    for (target, names) in &by_target {
        // Every name that stays in the target as it is.
        let mut taken: BTreeSet<String> = names.keys().map(|name| name.to_string()).collect();
        for (name, clusters) in names {
            if clusters.len() < 2 || is_platform_namespace(name, policy) {
                continue;
            }
            let mut ranked: Vec<(&str, bool, SlaTier, u64)> =
                clusters.iter().map(|(cluster, &(addon, sla, pods))| (*cluster, addon, sla, pods)).collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(b.3.cmp(&a.3)).then(a.0.cmp(b.0)));
            let all_clusters: Vec<&str> = clusters.keys().copied().collect();
            for &(cluster, _, _, _) in &ranked[1..] {
                let mut attempt = 1;
                let new_name = loop {
                    let name_candidate = candidate(name, cluster, attempt);
                    let platform =
                        attempt < PLATFORM_AVOIDANCE_ATTEMPTS && is_platform_namespace(&name_candidate, policy);
                    if !taken.contains(&name_candidate) && !platform {
                        break name_candidate;
                    }
                    attempt += 1;
                };
                taken.insert(new_name.clone());
                renames.push(NamespaceRename {
                    from_cluster: cluster.to_string(),
                    namespace: name.to_string(),
                    new_name,
                    target_cluster: target.to_string(),
                    collides_with: all_clusters
                        .iter()
                        .filter(|other| **other != cluster)
                        .map(|other| other.to_string())
                        .collect(),
                });
            }
        }
    }
    renames.sort_by(|a, b| {
        (&a.target_cluster, &a.namespace, &a.from_cluster).cmp(&(&b.target_cluster, &b.namespace, &b.from_cluster))
    });
    renames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(cluster: &str, namespace: &str, target: &str, sla: SlaTier, pods: u64) -> NamespacePlacement {
        NamespacePlacement {
            from_cluster: cluster.into(),
            namespace: namespace.into(),
            target_cluster: target.into(),
            sla_tier: sla,
            pods,
            addon: false,
        }
    }

    #[test]
    fn platform_namespaces_match_exactly_or_by_prefix() {
        let policy = Policy::default();
        assert!(is_platform_namespace("default", &policy));
        assert!(is_platform_namespace("kube-system", &policy));
        assert!(is_platform_namespace("kube-public", &policy));
        assert!(!is_platform_namespace("payments", &policy));
        assert!(!is_platform_namespace("default-2", &policy));
        assert!(!is_platform_namespace("kubeflow", &policy));
        let custom =
            Policy { platform_namespaces: vec!["istio-system".into(), "cattle-*".into()], ..Policy::default() };
        assert!(is_platform_namespace("cattle-fleet", &custom));
        assert!(!is_platform_namespace("kube-system", &custom));
    }

    #[test]
    fn no_collision_no_rename() {
        let policy = Policy::default();
        let renames = resolve_collisions(
            &[
                place("a", "payments", "fra-prod", SlaTier::Gold, 3),
                place("b", "ledger", "fra-prod", SlaTier::Gold, 3),
                // the same name into another target does not collide
                place("c", "payments", "lon-prod", SlaTier::Gold, 3),
                // platform namespaces merge
                place("a", "kube-system", "fra-prod", SlaTier::Bronze, 10),
                place("b", "kube-system", "fra-prod", SlaTier::Bronze, 10),
                place("b", "default", "fra-prod", SlaTier::Bronze, 0),
                place("c", "default", "fra-prod", SlaTier::Bronze, 0),
            ],
            &policy,
        );
        assert!(renames.is_empty(), "{renames:?}");
    }

    #[test]
    fn highest_sla_keeps_the_name() {
        let policy = Policy::default();
        let renames = resolve_collisions(
            &[
                place("sh-prod-1", "payments", "fra-prod", SlaTier::Silver, 50),
                place("sh-prod-2", "payments", "fra-prod", SlaTier::Gold, 2),
            ],
            &policy,
        );
        assert_eq!(
            renames,
            vec![NamespaceRename {
                from_cluster: "sh-prod-1".into(),
                namespace: "payments".into(),
                new_name: "payments-sh-prod-1".into(),
                target_cluster: "fra-prod".into(),
                collides_with: vec!["sh-prod-2".into()],
            }]
        );
    }

    #[test]
    fn ties_go_to_most_pods_then_smallest_cluster_id() {
        let policy = Policy::default();
        let renames = resolve_collisions(
            &[
                place("c3", "web", "t", SlaTier::Gold, 5),
                place("c1", "web", "t", SlaTier::Gold, 9),
                place("c2", "web", "t", SlaTier::Gold, 9),
            ],
            &policy,
        );
        let renamed: Vec<&str> = renames.iter().map(|r| r.from_cluster.as_str()).collect();
        assert_eq!(renamed, vec!["c2", "c3"], "c1 keeps the name");
        assert_eq!(renames[0].collides_with, vec!["c1".to_string(), "c3".to_string()]);
        // the same result whatever the input order
        let reversed = resolve_collisions(
            &[
                place("c2", "web", "t", SlaTier::Gold, 9),
                place("c1", "web", "t", SlaTier::Gold, 9),
                place("c3", "web", "t", SlaTier::Gold, 5),
            ],
            &policy,
        );
        assert_eq!(renames, reversed);
    }

    #[test]
    fn renames_are_valid_labels() {
        let policy = Policy::default();
        let long_cluster = "Shanghai_PROD.Cluster-Number-0000000000000000000000000000000000000001";
        let renames = resolve_collisions(
            &[
                place("a", "payments", "t", SlaTier::Gold, 9),
                place("Sh_Prod.2", "payments", "t", SlaTier::Gold, 1),
                place(long_cluster, "payments", "t", SlaTier::Gold, 1),
            ],
            &policy,
        );
        assert_eq!(renames.len(), 2);
        let by_cluster: BTreeMap<&str, &str> =
            renames.iter().map(|r| (r.from_cluster.as_str(), r.new_name.as_str())).collect();
        assert_eq!(by_cluster["Sh_Prod.2"], "payments-sh-prod-2");
        let long = by_cluster[long_cluster];
        assert!(is_dns1123_label(long), "{long}");
        assert_eq!(long.len(), MAX_NAMESPACE_LEN);
        assert!(long.starts_with("payments-shanghai-prod-cluster-number-"));
        // stable: the same input gives the same hash
        assert_eq!(to_label(&format!("payments-{long_cluster}")), long);
    }

    #[test]
    fn renames_avoid_names_already_in_the_target() {
        let policy = Policy::default();
        let renames = resolve_collisions(
            &[
                place("a", "web", "t", SlaTier::Gold, 9),
                place("b", "web", "t", SlaTier::Bronze, 1),
                // an existing namespace already has the natural rename
                place("c", "web-b", "t", SlaTier::Bronze, 1),
            ],
            &policy,
        );
        assert_eq!(renames.len(), 1);
        assert_eq!(renames[0].new_name, "web-b-2");
    }

    #[test]
    fn renames_are_unique_among_themselves() {
        // two clusters whose ids sanitise to the same label
        let policy = Policy::default();
        let renames = resolve_collisions(
            &[
                place("keeper", "web", "t", SlaTier::Gold, 9),
                place("x_1", "web", "t", SlaTier::Bronze, 1),
                place("x.1", "web", "t", SlaTier::Bronze, 1),
            ],
            &policy,
        );
        let names: BTreeSet<&str> = renames.iter().map(|r| r.new_name.as_str()).collect();
        assert_eq!(names, BTreeSet::from(["web-x-1", "web-x-1-2"]));
        assert!(renames.iter().all(|r| is_dns1123_label(&r.new_name)));
    }

    #[test]
    fn renames_never_become_platform_namespaces() {
        let policy = Policy { platform_namespaces: vec!["ops-*".into()], ..Policy::default() };
        let renames = resolve_collisions(
            &[place("a", "ops", "t", SlaTier::Gold, 9), place("b", "ops", "t", SlaTier::Gold, 1)],
            &policy,
        );
        // `ops-b` and every `ops-b-<n>` would be platform namespaces.
        assert_eq!(renames.len(), 1);
        assert_eq!(renames[0].new_name, "b-ops");
    }

    fn with_workloads(name: &str, workloads: &[&str], cpu: u64) -> Namespace {
        Namespace {
            name: name.into(),
            labels: BTreeMap::new(),
            security_tier: "prod".into(),
            sla_tier: SlaTier::Bronze,
            requests: kplan_model::Resources::new(cpu, 0, 1),
            pod_groups: workloads
                .iter()
                .map(|w| kplan_model::scheduling::PodGroup {
                    owner_kind: "Deployment".into(),
                    owner_name: w.to_string(),
                    replicas: 1,
                    ..Default::default()
                })
                .collect(),
            applied_prerelease: Vec::new(),
            disruption_budgets: Vec::new(),
        }
    }

    fn found(
        candidates: &[(&str, Namespace)],
        n_clusters: usize,
        policy: &Policy,
    ) -> Vec<(String, AddonOrigin, Vec<usize>, usize)> {
        let refs: Vec<(&str, &Namespace)> = candidates.iter().map(|(c, n)| (*c, n)).collect();
        find_addons(&refs, n_clusters, policy).into_iter().map(|f| (f.name, f.origin, f.instances, f.largest)).collect()
    }

    #[test]
    fn addons_are_detected_in_at_least_two_and_more_than_half_of_the_clusters() {
        let policy = Policy::default();
        let proxy = |cpu| with_workloads("edge", &["envoy"], cpu);
        // 2 of 4: not most of the block.
        assert!(found(&[("a", proxy(1)), ("b", proxy(1))], 4, &policy).is_empty());
        // 2 of 3: detected; the largest instance is sized from.
        assert_eq!(
            found(&[("a", proxy(1)), ("b", proxy(5))], 3, &policy),
            vec![("edge".to_string(), AddonOrigin::Detected, vec![0, 1], 1)]
        );
        // 1 of 1: a single namespace is no add-on.
        assert!(found(&[("a", proxy(1))], 1, &policy).is_empty());
        // different workloads: three tenants.
        let different = [
            ("a", with_workloads("edge", &["envoy"], 1)),
            ("b", with_workloads("edge", &["nginx"], 1)),
            ("c", with_workloads("edge", &["haproxy"], 1)),
        ];
        assert!(found(&different, 3, &policy).is_empty());
        // no workloads known: nothing to compare, nothing detected.
        assert!(
            found(&[("a", with_workloads("edge", &[], 1)), ("b", with_workloads("edge", &[], 1))], 2, &policy)
                .is_empty()
        );
        // detection turned off.
        let off = Policy { detect_addons: false, ..Policy::default() };
        assert!(found(&[("a", proxy(1)), ("b", proxy(5))], 2, &off).is_empty());
        // platform namespaces are never add-ons.
        let system = |cpu| with_workloads("kube-system", &["coredns"], cpu);
        assert!(found(&[("a", system(1)), ("b", system(1))], 2, &policy).is_empty());
    }

    #[test]
    fn policy_addons_keep_instances_that_share_a_workload() {
        let policy = Policy::default();
        assert!(is_addon_namespace("ingress-nginx", &policy));
        assert!(!is_addon_namespace("payments", &policy));
        let candidates = [
            ("a", with_workloads("monitoring", &["prometheus", "grafana"], 1)),
            ("b", with_workloads("monitoring", &["prometheus", "grafana"], 1)),
            // an older stack: shares prometheus
            ("c", with_workloads("monitoring", &["prometheus"], 1)),
            // workloads unknown
            ("d", with_workloads("monitoring", &[], 1)),
            // a tenant's own `monitoring`: shares nothing
            ("e", with_workloads("monitoring", &["team-dashboards"], 1)),
        ];
        assert_eq!(
            found(&candidates, 5, &policy),
            vec![("monitoring".to_string(), AddonOrigin::Policy, vec![0, 1, 2, 3], 0)]
        );
        // A policy add-on in one cluster only is still installed on the target.
        assert_eq!(found(&candidates[..1], 3, &policy).len(), 1);
    }

    #[test]
    fn addons_keep_their_name_against_any_tenant() {
        let policy = Policy::default();
        let mut addon = place("a", "ingress-nginx", "t", SlaTier::Bronze, 1);
        addon.addon = true;
        let renames = resolve_collisions(&[addon, place("b", "ingress-nginx", "t", SlaTier::Gold, 50)], &policy);
        assert_eq!(renames.len(), 1);
        assert_eq!(renames[0].from_cluster, "b");
        assert_eq!(renames[0].new_name, "ingress-nginx-b");
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns1123_label("payments-sh-prod-2"));
        assert!(is_dns1123_label("a"));
        assert!(!is_dns1123_label(""));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("a-"));
        assert!(!is_dns1123_label("A"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_label(&"a".repeat(63)));
    }
}
