//! The firewall flows a target needs, minus those already open.

use super::*;

impl<'a, 'p> BlockCheck<'a, 'p>
where
    'a: 'p,
{
    pub(super) fn check_flows(&mut self) {
        let block = self.block;
        let small = self.is_small_site();
        let index = self.index;
        let targets: BTreeSet<&str> = block.target_clusters.iter().map(|t| t.name.as_str()).collect();
        let mut previous: Option<&FirewallFlow> = None;
        for flow in &block.firewall_flows {
            if let Some(previous) = previous {
                if previous == flow {
                    self.push(Rule::Flows, format!("flow {} is listed twice", flow_text(flow)));
                } else if previous > flow {
                    self.push(Rule::Flows, format!("flow {} is listed out of order", flow_text(flow)));
                }
            }
            previous = Some(flow);
            if !targets.contains(flow.target_cluster.as_str()) {
                self.push(
                    Rule::Flows,
                    format!("flow {} names {:?}, not a target of the block", flow_text(flow), flow.target_cluster),
                );
            }
        }
        for target in &block.target_clusters {
            let zone_of = |cluster: &str, node: &str| index.nodes.get(&(cluster, node)).map(|i| i.node.zone.clone());
            let zones: BTreeSet<String> =
                target.nodes_kept.iter().filter_map(|r| zone_of(&r.cluster_id, &r.node)).collect();
            let control_plane_zones: BTreeSet<String> =
                target.control_plane.iter().filter_map(|cp| zone_of(&cp.cluster_id, &cp.node)).collect();
            let stated_zones: BTreeSet<String> = target.zones.iter().cloned().collect();
            if stated_zones != zones || stated_zones.len() != target.zones.len() {
                self.push(
                    Rule::Structure,
                    format!(
                        "target {} lists zones [{}], its kept nodes are in [{}]",
                        target.name,
                        target.zones.join(", "),
                        zones.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            let zones: Vec<String> = zones.into_iter().collect();
            let control_plane_zones: Vec<String> = control_plane_zones.into_iter().collect();
            let required: BTreeSet<FirewallFlow> =
                required_flows(&target.name, &zones, &control_plane_zones, &target.cni, small, self.policy)
                    .into_iter()
                    .collect();
            let listed: BTreeSet<FirewallFlow> =
                block.firewall_flows.iter().filter(|f| f.target_cluster == target.name).cloned().collect();
            let missing: Vec<String> = required.difference(&listed).map(flow_text).collect();
            let extra: Vec<String> = listed.difference(&required).map(flow_text).collect();
            if !missing.is_empty() {
                self.push(
                    Rule::Flows,
                    format!(
                        "target {} needs {} flow(s) the plan does not list: {}",
                        target.name,
                        missing.len(),
                        short_list(&missing)
                    ),
                );
            }
            if !extra.is_empty() {
                self.push(
                    Rule::Flows,
                    format!(
                        "target {} lists {} flow(s) it does not need or that are already open: {}",
                        target.name,
                        extra.len(),
                        short_list(&extra)
                    ),
                );
            }
        }
    }
}
