//! The firewall flows a target cluster needs between the firewall zones it spans.
//!
//! A target cluster that spans several firewall zones needs flows opened between
//! them; every flow is a firewall change request, so the plan lists exactly the
//! flows it needs. [`FLOW_TABLE`] is the whole rule set (the README documents it,
//! [`flow_table_markdown`] renders it); [`required_flows`] applies it to one
//! target and subtracts what `policy.open_flows` already opens.
//!
//! Only ordered pairs of *distinct* zones produce flows: traffic inside a zone
//! does not cross a firewall.
//!
//! Pure: no IO, deterministic output (sorted, deduplicated).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use kplan_model::policy::{OpenFlow, Policy};
use kplan_model::{FirewallFlow, Protocol};

/// The CNI plugins kplan knows the flows of (normalised names).
pub const KNOWN_CNIS: &[&str] = &["calico", "cilium", "contiv", "flannel", "kube-ovn"];

/// Which ordered pairs `(from, to)` of distinct zones a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowScope {
    /// From every zone to each control-plane zone.
    ToControlPlane,
    /// From each control-plane zone to every zone.
    FromControlPlane,
    /// Between two control-plane zones, both directions.
    BetweenControlPlane,
    /// Between every two zones, both directions.
    AllZones,
}

impl FlowScope {
    pub fn describe(self) -> &'static str {
        match self {
            FlowScope::ToControlPlane => "every zone → each control-plane zone",
            FlowScope::FromControlPlane => "each control-plane zone → every zone",
            FlowScope::BetweenControlPlane => "control-plane zone ↔ control-plane zone",
            FlowScope::AllZones => "every zone ↔ every zone",
        }
    }
}

/// When a rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowCondition {
    Always,
    /// Not for a small site: K3s embeds its datastore in the server.
    NotSmallSite,
    /// The target's CNI is this one (normalised name).
    Cni(&'static str),
    /// The target's CNI is Calico and `policy.calico_encapsulation` is this one.
    CalicoEncapsulation(&'static str),
    /// `policy.nodeport_flows` is true.
    NodePortFlows,
}

impl FlowCondition {
    pub fn describe(self) -> String {
        match self {
            FlowCondition::Always => "always".to_string(),
            FlowCondition::NotSmallSite => "not on a small site (K3s embeds its datastore)".to_string(),
            FlowCondition::Cni(cni) => format!("CNI `{cni}`"),
            FlowCondition::CalicoEncapsulation(encapsulation) => {
                format!("CNI `calico`, `calico_encapsulation = \"{encapsulation}\"`")
            }
            FlowCondition::NodePortFlows => "`nodeport_flows = true`".to_string(),
        }
    }
}

/// The ports of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowPorts {
    /// A port or an inclusive range, e.g. `6443`, `2379-2380`.
    Fixed(&'static str),
    /// `policy.nodeport_range`.
    NodePortRange,
    /// The whole IP protocol (IP-in-IP has no ports).
    None,
}

impl FlowPorts {
    fn resolve(self, policy: &Policy) -> String {
        match self {
            FlowPorts::Fixed(ports) => ports.to_string(),
            FlowPorts::NodePortRange => policy.nodeport_range.trim().to_string(),
            FlowPorts::None => String::new(),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            FlowPorts::Fixed(ports) => ports,
            FlowPorts::NodePortRange => "`nodeport_range` (default 30000-32767)",
            FlowPorts::None => "—",
        }
    }
}

/// One row of the flow table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRule {
    /// The `purpose` of the flows this rule produces.
    pub purpose: &'static str,
    pub protocol: Protocol,
    pub ports: FlowPorts,
    pub scope: FlowScope,
    pub condition: FlowCondition,
}

/// Every flow kplan knows, in the order the README lists them.
///
/// Contiv: its node-to-node overlay is VXLAN on the IANA port, 4789/udp (a
/// choice: Contiv's BGP/L3 mode is not modelled).
pub const FLOW_TABLE: &[FlowRule] = &[
    FlowRule {
        purpose: "api server",
        protocol: Protocol::Tcp,
        ports: FlowPorts::Fixed("6443"),
        scope: FlowScope::ToControlPlane,
        condition: FlowCondition::Always,
    },
    FlowRule {
        purpose: "kubelet",
        protocol: Protocol::Tcp,
        ports: FlowPorts::Fixed("10250"),
        scope: FlowScope::FromControlPlane,
        condition: FlowCondition::Always,
    },
    FlowRule {
        purpose: "etcd",
        protocol: Protocol::Tcp,
        ports: FlowPorts::Fixed("2379-2380"),
        scope: FlowScope::BetweenControlPlane,
        condition: FlowCondition::NotSmallSite,
    },
    FlowRule {
        purpose: "calico bgp",
        protocol: Protocol::Tcp,
        ports: FlowPorts::Fixed("179"),
        scope: FlowScope::AllZones,
        condition: FlowCondition::Cni("calico"),
    },
    FlowRule {
        purpose: "calico ip-in-ip",
        protocol: Protocol::Ipip,
        ports: FlowPorts::None,
        scope: FlowScope::AllZones,
        condition: FlowCondition::CalicoEncapsulation("ipip"),
    },
    FlowRule {
        purpose: "calico vxlan",
        protocol: Protocol::Udp,
        ports: FlowPorts::Fixed("4789"),
        scope: FlowScope::AllZones,
        condition: FlowCondition::CalicoEncapsulation("vxlan"),
    },
    FlowRule {
        purpose: "flannel vxlan",
        protocol: Protocol::Udp,
        ports: FlowPorts::Fixed("8472"),
        scope: FlowScope::AllZones,
        condition: FlowCondition::Cni("flannel"),
    },
    FlowRule {
        purpose: "cilium vxlan",
        protocol: Protocol::Udp,
        ports: FlowPorts::Fixed("8472"),
        scope: FlowScope::AllZones,
        condition: FlowCondition::Cni("cilium"),
    },
    FlowRule {
        purpose: "cilium health",
        protocol: Protocol::Tcp,
        ports: FlowPorts::Fixed("4240"),
        scope: FlowScope::AllZones,
        condition: FlowCondition::Cni("cilium"),
    },
    FlowRule {
        purpose: "kube-ovn geneve",
        protocol: Protocol::Udp,
        ports: FlowPorts::Fixed("6081"),
        scope: FlowScope::AllZones,
        condition: FlowCondition::Cni("kube-ovn"),
    },
    FlowRule {
        purpose: "contiv vxlan",
        protocol: Protocol::Udp,
        ports: FlowPorts::Fixed("4789"),
        scope: FlowScope::AllZones,
        condition: FlowCondition::Cni("contiv"),
    },
    FlowRule {
        purpose: "nodeport",
        protocol: Protocol::Tcp,
        ports: FlowPorts::NodePortRange,
        scope: FlowScope::AllZones,
        condition: FlowCondition::NodePortFlows,
    },
];

/// The flow table (see [`FLOW_TABLE`]).
pub fn flow_table() -> &'static [FlowRule] {
    FLOW_TABLE
}

/// The flow table as a Markdown table, for the README.
pub fn flow_table_markdown() -> String {
    let mut out = String::from("| purpose | protocol | ports | between | when |\n");
    out.push_str("| --- | --- | --- | --- | --- |\n");
    for rule in FLOW_TABLE {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            rule.purpose,
            rule.protocol.as_str(),
            rule.ports.describe(),
            rule.scope.describe(),
            rule.condition.describe(),
        );
    }
    out
}

/// A CNI name as kplan compares it: trimmed, lowercase, `kubeovn`/`kube_ovn` → `kube-ovn`.
pub fn normalize_cni(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    match lower.as_str() {
        "kubeovn" | "kube_ovn" | "kube ovn" => "kube-ovn".to_string(),
        _ => lower,
    }
}

/// Whether kplan knows the flows of this CNI.
pub fn is_known_cni(name: &str) -> bool {
    KNOWN_CNIS.contains(&normalize_cni(name).as_str())
}

/// Parses a port (`6443`) or an inclusive range (`2379-2380`).
pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let text = text.trim();
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (low.trim(), high.trim()),
        None => (text, text),
    };
    let low: u16 = low.parse().ok()?;
    let high: u16 = high.parse().ok()?;
    (low >= 1 && low <= high).then_some((low, high))
}

fn rule_applies(rule: &FlowRule, cni: &str, small_site: bool, policy: &Policy) -> bool {
    match rule.condition {
        FlowCondition::Always => true,
        FlowCondition::NotSmallSite => !small_site,
        FlowCondition::Cni(name) => cni == name,
        FlowCondition::CalicoEncapsulation(encapsulation) => {
            // Anything but `vxlan` means the default, IP-in-IP (check_policy
            // rejects other values before a plan is made).
            let chosen =
                if policy.calico_encapsulation.trim().eq_ignore_ascii_case("vxlan") { "vxlan" } else { "ipip" };
            cni == "calico" && chosen == encapsulation
        }
        FlowCondition::NodePortFlows => policy.nodeport_flows,
    }
}

/// Whether `open` (one entry of `policy.open_flows`, one direction) covers `flow`.
/// An empty protocol or ports in `open` means any; a port range covers a flow
/// whose whole range lies inside it; a flow without ports (IP-in-IP) is covered
/// only by an open flow without ports.
fn covers(open_from: &str, open_to: &str, open: &OpenFlow, flow: &FirewallFlow) -> bool {
    if open_from.trim() != flow.from_zone || open_to.trim() != flow.to_zone {
        return false;
    }
    let protocol = open.protocol.trim();
    if !protocol.is_empty() && !protocol.eq_ignore_ascii_case(flow.protocol.as_str()) {
        return false;
    }
    let open_ports = open.ports.trim();
    if open_ports.is_empty() {
        return true;
    }
    if flow.ports.is_empty() {
        return false;
    }
    match (parse_port_range(open_ports), parse_port_range(&flow.ports)) {
        (Some((open_low, open_high)), Some((low, high))) => open_low <= low && high <= open_high,
        _ => false,
    }
}

/// Whether `policy.open_flows` already opens `flow` (in its direction).
pub fn is_open(flow: &FirewallFlow, open_flows: &[OpenFlow]) -> bool {
    open_flows.iter().any(|open| {
        covers(&open.from_zone, &open.to_zone, open, flow)
            || (open.bidirectional && covers(&open.to_zone, &open.from_zone, open, flow))
    })
}

/// The flows target cluster `target_cluster` needs that are not open yet.
///
/// - `zones`: every firewall zone the target's nodes are in (duplicates ignored);
/// - `control_plane_zones`: the zones of its control-plane nodes (they count as
///   zones of the target too);
/// - `cni`: the target's final CNI (`policy.target_cni` or the block's majority).
///   An empty or unknown CNI contributes no CNI flows; the caller notes that in
///   the block's explanation (`check_policy` already rejects an unknown
///   `target_cni`, so this only happens when no source cluster's CNI was detected);
/// - `small_site`: a K3s single server: no etcd flows (the datastore is embedded),
///   the API server and kubelet flows still apply.
///
/// For every ordered pair of distinct zones the rules of [`FLOW_TABLE`] apply;
/// flows `policy.open_flows` already opens are dropped. The result is sorted and
/// deduplicated (by [`FirewallFlow`]'s order: target, from, to, protocol, ports, purpose).
pub fn required_flows(
    target_cluster: &str,
    zones: &[String],
    control_plane_zones: &[String],
    cni: &str,
    small_site: bool,
    policy: &Policy,
) -> Vec<FirewallFlow> {
    let control_plane: BTreeSet<&str> =
        control_plane_zones.iter().map(|zone| zone.trim()).filter(|zone| !zone.is_empty()).collect();
    let all_zones: BTreeSet<&str> = zones
        .iter()
        .map(|zone| zone.trim())
        .filter(|zone| !zone.is_empty())
        .chain(control_plane.iter().copied())
        .collect();
    let cni = normalize_cni(cni);

    let mut flows = BTreeSet::new();
    for rule in FLOW_TABLE {
        if !rule_applies(rule, &cni, small_site, policy) {
            continue;
        }
        let ports = rule.ports.resolve(policy);
        for &from in &all_zones {
            for &to in &all_zones {
                if from == to {
                    continue;
                }
                let applies = match rule.scope {
                    FlowScope::ToControlPlane => control_plane.contains(to),
                    FlowScope::FromControlPlane => control_plane.contains(from),
                    FlowScope::BetweenControlPlane => control_plane.contains(from) && control_plane.contains(to),
                    FlowScope::AllZones => true,
                };
                if !applies {
                    continue;
                }
                let flow = FirewallFlow {
                    target_cluster: target_cluster.to_string(),
                    from_zone: from.to_string(),
                    to_zone: to.to_string(),
                    protocol: rule.protocol,
                    ports: ports.clone(),
                    purpose: rule.purpose.to_string(),
                };
                if !is_open(&flow, &policy.open_flows) {
                    flows.insert(flow);
                }
            }
        }
    }
    flows.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    fn count(flows: &[FirewallFlow], purpose: &str) -> usize {
        flows.iter().filter(|flow| flow.purpose == purpose).count()
    }

    #[test]
    fn three_control_plane_zones_with_calico_ipip() {
        let policy = Policy::default();
        let all = zones(&["a", "b", "c"]);
        let flows = required_flows("fra-prod", &all, &all, "calico", false, &policy);
        // 3 zones: 6 ordered pairs.
        assert_eq!(count(&flows, "api server"), 6);
        assert_eq!(count(&flows, "kubelet"), 6);
        assert_eq!(count(&flows, "etcd"), 6);
        assert_eq!(count(&flows, "calico bgp"), 6);
        assert_eq!(count(&flows, "calico ip-in-ip"), 6);
        assert_eq!(count(&flows, "calico vxlan"), 0);
        assert_eq!(count(&flows, "nodeport"), 0);
        assert_eq!(flows.len(), 30);
        let ipip = flows.iter().find(|flow| flow.purpose == "calico ip-in-ip").unwrap();
        assert_eq!((ipip.protocol, ipip.ports.as_str()), (Protocol::Ipip, ""));
        let etcd = flows.iter().find(|flow| flow.purpose == "etcd").unwrap();
        assert_eq!((etcd.protocol, etcd.ports.as_str()), (Protocol::Tcp, "2379-2380"));
        let mut sorted = flows.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, flows, "sorted and deduplicated");
    }

    #[test]
    fn worker_only_zone_talks_to_control_plane_zones_only() {
        let policy = Policy::default();
        let flows = required_flows(
            "t",
            &zones(&["cp1", "cp2", "cp3", "w"]),
            &zones(&["cp1", "cp2", "cp3"]),
            "",
            false,
            &policy,
        );
        // api server: every zone to each control-plane zone: 4*3 - 3 = 9 pairs.
        assert_eq!(count(&flows, "api server"), 9);
        assert!(flows.iter().filter(|f| f.purpose == "api server").all(|f| f.to_zone != "w"));
        assert_eq!(count(&flows, "kubelet"), 9);
        assert!(flows.iter().filter(|f| f.purpose == "kubelet").all(|f| f.from_zone != "w"));
        // etcd only between control-plane zones.
        assert_eq!(count(&flows, "etcd"), 6);
        // no CNI: no CNI flows.
        assert_eq!(flows.len(), 24);
    }

    #[test]
    fn small_site_has_no_etcd_but_keeps_api_server() {
        let policy = Policy::default();
        let flows = required_flows("sin-prod", &zones(&["a", "b"]), &zones(&["a"]), "flannel", true, &policy);
        assert_eq!(count(&flows, "etcd"), 0);
        assert_eq!(count(&flows, "api server"), 1);
        assert_eq!(count(&flows, "kubelet"), 1);
        assert_eq!(count(&flows, "flannel vxlan"), 2);
    }

    #[test]
    fn single_zone_needs_nothing() {
        let policy = Policy { nodeport_flows: true, ..Policy::default() };
        let flows = required_flows("t", &zones(&["a", "a"]), &zones(&["a"]), "cilium", false, &policy);
        assert!(flows.is_empty());
    }

    #[test]
    fn each_cni_gets_its_own_ports() {
        let policy = Policy { calico_encapsulation: "vxlan".into(), ..Policy::default() };
        let two = zones(&["a", "b"]);
        let none = zones(&[]);
        let cni_flows = |cni: &str| -> Vec<(String, Protocol, String)> {
            required_flows("t", &two, &none, cni, false, &policy)
                .into_iter()
                .map(|flow| (flow.purpose, flow.protocol, flow.ports))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let row = |purpose: &str, protocol, ports: &str| (purpose.to_string(), protocol, ports.to_string());
        assert_eq!(
            cni_flows("Calico"),
            vec![row("calico bgp", Protocol::Tcp, "179"), row("calico vxlan", Protocol::Udp, "4789")]
        );
        assert_eq!(cni_flows("flannel"), vec![row("flannel vxlan", Protocol::Udp, "8472")]);
        assert_eq!(
            cni_flows("cilium"),
            vec![row("cilium health", Protocol::Tcp, "4240"), row("cilium vxlan", Protocol::Udp, "8472")]
        );
        assert_eq!(cni_flows("kube-ovn"), vec![row("kube-ovn geneve", Protocol::Udp, "6081")]);
        assert_eq!(cni_flows("kubeovn"), vec![row("kube-ovn geneve", Protocol::Udp, "6081")]);
        assert_eq!(cni_flows("contiv"), vec![row("contiv vxlan", Protocol::Udp, "4789")]);
        assert_eq!(cni_flows("weave"), vec![]);
        assert_eq!(cni_flows(""), vec![]);
    }

    #[test]
    fn nodeport_range_comes_from_policy() {
        let policy = Policy { nodeport_flows: true, nodeport_range: "31000-31999".into(), ..Policy::default() };
        let flows = required_flows("t", &zones(&["a", "b"]), &zones(&[]), "", false, &policy);
        assert_eq!(flows.len(), 2);
        assert!(flows.iter().all(|f| f.purpose == "nodeport" && f.ports == "31000-31999"));
    }

    #[test]
    fn open_flows_are_subtracted() {
        let mut policy = Policy::default();
        let all = zones(&["a", "b", "c"]);
        let before = required_flows("t", &all, &all, "calico", false, &policy);
        policy.open_flows = vec![
            // a <-> b: api server and kubelet, both ways.
            OpenFlow {
                from_zone: "a".into(),
                to_zone: "b".into(),
                protocol: "tcp".into(),
                ports: "6443".into(),
                bidirectional: true,
            },
            OpenFlow {
                from_zone: "a".into(),
                to_zone: "b".into(),
                protocol: "TCP".into(),
                ports: "10000-11000".into(),
                bidirectional: true,
            },
            // c -> a: everything, one way.
            OpenFlow { from_zone: "c".into(), to_zone: "a".into(), ..OpenFlow::default() },
            // b -> c: udp only: covers nothing calico-ipip needs.
            OpenFlow { from_zone: "b".into(), to_zone: "c".into(), protocol: "udp".into(), ..OpenFlow::default() },
            // a range that only partly covers etcd's covers nothing.
            OpenFlow {
                from_zone: "a".into(),
                to_zone: "c".into(),
                protocol: "tcp".into(),
                ports: "2379".into(),
                bidirectional: false,
            },
        ];
        let after = required_flows("t", &all, &all, "calico", false, &policy);
        let removed: Vec<_> = before.iter().filter(|flow| !after.contains(flow)).collect();
        let has = |from: &str, to: &str, purpose: &str| {
            removed.iter().any(|f| f.from_zone == from && f.to_zone == to && f.purpose == purpose)
        };
        assert!(has("a", "b", "api server") && has("b", "a", "api server"));
        assert!(has("a", "b", "kubelet") && has("b", "a", "kubelet"));
        // c -> a: all five purposes.
        assert_eq!(removed.iter().filter(|f| f.from_zone == "c" && f.to_zone == "a").count(), 5);
        assert!(!has("a", "c", "etcd"));
        assert!(!has("b", "c", "calico ip-in-ip"));
        assert_eq!(removed.len(), 4 + 5);
        assert!(after.iter().any(|f| f.from_zone == "a" && f.to_zone == "c" && f.purpose == "etcd"));
    }

    #[test]
    fn ipip_is_only_covered_by_portless_open_flows() {
        let flow = FirewallFlow {
            target_cluster: "t".into(),
            from_zone: "a".into(),
            to_zone: "b".into(),
            protocol: Protocol::Ipip,
            ports: String::new(),
            purpose: "calico ip-in-ip".into(),
        };
        let open = |protocol: &str, ports: &str| OpenFlow {
            from_zone: "a".into(),
            to_zone: "b".into(),
            protocol: protocol.into(),
            ports: ports.into(),
            bidirectional: false,
        };
        assert!(is_open(&flow, &[open("ipip", "")]));
        assert!(is_open(&flow, &[open("", "")]));
        assert!(!is_open(&flow, &[open("", "1-65535")]));
        assert!(!is_open(&flow, &[open("tcp", "")]));
    }

    #[test]
    fn port_ranges_parse() {
        assert_eq!(parse_port_range("6443"), Some((6443, 6443)));
        assert_eq!(parse_port_range(" 2379-2380 "), Some((2379, 2380)));
        assert_eq!(parse_port_range("2380-2379"), None);
        assert_eq!(parse_port_range("0"), None);
        assert_eq!(parse_port_range("70000"), None);
        assert_eq!(parse_port_range(""), None);
    }

    #[test]
    fn the_table_renders_every_purpose() {
        let table = flow_table_markdown();
        for rule in flow_table() {
            assert!(table.contains(&format!("`{}`", rule.purpose)));
        }
        assert_eq!(table.lines().count(), FLOW_TABLE.len() + 2);
    }
}
