//! Plans for people: the summary table, a Markdown report and a Graphviz graph.

use std::fmt::Write as _;

use kplan_model::quantity::{format_bytes, format_cpu};
use kplan_model::{AddonInstall, BlockPlan, BlockStatus, NodeAction, Plan, Resources};
use kplan_planner::isolation::IsolationReport;

use crate::output::table;

fn percent(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn control_plane_cell(block: &BlockPlan) -> String {
    block
        .target_clusters
        .iter()
        .map(|t| {
            let nodes: Vec<String> = t.control_plane.iter().map(|c| format!("{}@{}", c.node, c.zone)).collect();
            if t.small_site { format!("{} {}", t.distribution, nodes.join(",")) } else { nodes.join(",") }
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn resources(r: Resources) -> String {
    format!("{} cpu, {} memory, {} pods", format_cpu(r.cpu_millis), format_bytes(r.memory_bytes), r.pods)
}

/// The ISOLATION cell of a block: the findings of its targets that are shared
/// or have findings (pod-security, admission-policy and runtime-class findings
/// concern single-source targets too) and how many stay open (`45 (2 open)`);
/// `-` when no such target, or when there is no finding and nothing is known
/// of its sources' RBAC and NetworkPolicies (RuntimeClass findings need neither).
fn isolation_cell(block: &BlockPlan, report: &IsolationReport) -> String {
    let targets: Vec<_> = report
        .targets
        .iter()
        .filter(|t| t.source_clusters.len() >= 2 || !t.findings.is_empty())
        .filter(|t| block.target_clusters.iter().any(|b| b.name == t.target_cluster))
        .collect();
    let unknown = |c: &String| report.clusters_without_isolation_inventory.contains(c);
    let findings = targets.iter().map(|t| t.findings.len()).sum::<usize>();
    if targets.is_empty() || (findings == 0 && block.source_clusters.iter().all(unknown)) {
        return "-".into();
    }
    let open = targets.iter().flat_map(|t| &t.findings).filter(|f| f.open).count();
    format!("{findings} ({open} open)")
}

/// The default view of `kplan propose`: one row per block, then the notes.
/// With the plan's isolation report (computed beside the plan, from its
/// snapshots), an ISOLATION column and a summary line.
pub fn plan_table(plan: &Plan, isolation: Option<&IsolationReport>) -> String {
    let rows: Vec<Vec<String>> = plan
        .blocks
        .iter()
        .map(|b| {
            let planned = b.status == BlockStatus::Planned;
            let mut row = vec![
                format!("{}/{}", b.datacenter, b.security_tier),
                if planned { "planned".into() } else { "INFEASIBLE".into() },
                if planned {
                    b.target_clusters.iter().map(|t| t.name.clone()).collect::<Vec<_>>().join(",")
                } else {
                    "-".into()
                },
                if planned { control_plane_cell(b) } else { "-".into() },
                format!("{}→{}", b.nodes_before, b.nodes_after),
                b.source_clusters.len().to_string(),
                if planned { b.firewall_flows.len().to_string() } else { "-".into() },
                if planned { b.waves.len().to_string() } else { "-".into() },
                if planned {
                    b.target_clusters.iter().map(|t| t.addons.len()).sum::<usize>().to_string()
                } else {
                    "-".into()
                },
                if planned { b.namespace_renames.len().to_string() } else { "-".into() },
                if planned { b.preconditions.len().to_string() } else { "-".into() },
                if planned { percent(b.gap) } else { "-".into() },
            ];
            if let Some(report) = isolation {
                row.push(if planned { isolation_cell(b, report) } else { "-".into() });
            }
            row
        })
        .collect();
    let mut headers = vec![
        "BLOCK",
        "STATUS",
        "TARGET",
        "CONTROL PLANE",
        "NODES",
        "SOURCES",
        "FLOWS",
        "WAVES",
        "ADD-ONS",
        "RENAMES",
        "PRECONDITIONS",
        "GAP",
    ];
    if isolation.is_some() {
        headers.push("ISOLATION");
    }
    let mut out = table(&headers, &rows);
    let s = &plan.summary;
    let _ = writeln!(
        out,
        "\nplan {}: {} blocks ({} infeasible), nodes {} → {}, {} control planes retired, {} flows to open, {} waves, solved in {:.1}s",
        if plan.id.is_empty() { "(not stored)" } else { &plan.id },
        s.n_blocks,
        s.n_blocks_infeasible,
        s.nodes_before,
        s.nodes_after,
        s.control_planes_retired,
        s.firewall_flows,
        s.waves,
        s.solve_seconds
    );
    let f = &plan.fingerprint;
    if !f.content_digest.is_empty() {
        let _ = writeln!(out, "inputs sha256 {}, content sha256 {}", f.input_digest, f.content_digest);
    }
    if let Some(report) = isolation {
        let n = report.findings().count();
        let _ = writeln!(
            out,
            "tenant isolation: {n} finding{}, {} open (kplan plans isolation {})",
            if n == 1 { "" } else { "s" },
            report.n_open(),
            if plan.id.is_empty() { "PLAN_ID" } else { &plan.id }
        );
    }
    for block in &plan.blocks {
        // The explanation's lines, then the targets' notes, each once.
        let mut seen = std::collections::BTreeSet::new();
        let notes = block
            .explanation
            .lines()
            .chain(block.target_clusters.iter().map(|t| t.control_plane_note.as_str()))
            .filter(|n| !n.is_empty() && seen.insert(*n));
        for note in notes {
            let _ = writeln!(out, "{}/{}: {}", block.datacenter, block.security_tier, note);
        }
        for target in block.target_clusters.iter().filter(|t| !t.addons.is_empty()) {
            let addons: Vec<String> = target.addons.iter().map(addon_summary).collect();
            let _ = writeln!(
                out,
                "{}/{}: install on {} (once, not moved): {}",
                block.datacenter,
                block.security_tier,
                target.name,
                addons.join(", ")
            );
        }
    }
    out
}

/// `ingress-nginx 1.10.1 (policy, 4 clusters)`.
pub fn addon_summary(addon: &AddonInstall) -> String {
    format!(
        "{} {} ({}, {} cluster{})",
        addon.namespace,
        addon.versions().join("/"),
        addon.origin.as_str(),
        addon.instances.len(),
        if addon.instances.len() == 1 { "" } else { "s" }
    )
}

/// A Markdown report: the summary, then every block in full.
pub fn plan_markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let s = &plan.summary;
    let _ = writeln!(out, "# Consolidation plan {}\n", if plan.id.is_empty() { "(not stored)" } else { &plan.id });
    let _ = writeln!(out, "| figure | value |\n| --- | --- |");
    let _ = writeln!(out, "| blocks | {} ({} infeasible) |", s.n_blocks, s.n_blocks_infeasible);
    let _ = writeln!(out, "| nodes before → after | {} → {} |", s.nodes_before, s.nodes_after);
    let _ = writeln!(out, "| control planes retired | {} |", s.control_planes_retired);
    if !plan.fingerprint.content_digest.is_empty() {
        let _ = writeln!(out, "| inputs (sha256) | `{}` |", plan.fingerprint.input_digest);
        let _ = writeln!(out, "| content (sha256) | `{}` |", plan.fingerprint.content_digest);
    }
    let _ = writeln!(out, "| firewall flows to open | {} |", s.firewall_flows);
    let _ = writeln!(out, "| waves | {} |", s.waves);
    let _ = writeln!(out, "| objective / lower bound | {:.1} / {:.1} |", s.objective, s.lower_bound);
    let _ = writeln!(out, "| policy digest | `{}` |\n", plan.policy_digest);
    for block in &plan.blocks {
        block_markdown(&mut out, block);
    }
    out
}

fn block_markdown(out: &mut String, b: &BlockPlan) {
    let _ = writeln!(out, "## {} / {}\n", b.datacenter, b.security_tier);
    let _ = writeln!(out, "Source clusters: {}.\n", b.source_clusters.join(", "));
    if b.status == BlockStatus::Infeasible {
        let _ = writeln!(out, "**Infeasible.** {}\n", b.explanation);
        return;
    }
    if !b.explanation.is_empty() && !b.target_clusters.iter().any(|t| t.control_plane_note == b.explanation) {
        let _ = writeln!(out, "> {}\n", b.explanation);
    }
    let _ = writeln!(
        out,
        "Nodes {} → {}; objective {:.1}, lower bound {:.1}, gap {}, greedy {:.1}; solver {} in {:.2}s.\n",
        b.nodes_before,
        b.nodes_after,
        b.objective,
        b.lower_bound,
        percent(b.gap),
        b.greedy_objective,
        b.solver_status,
        b.solve_seconds
    );
    for t in &b.target_clusters {
        let _ = writeln!(out, "### Target cluster `{}`\n", t.name);
        let _ = writeln!(
            out,
            "{} {}, CNI {}, zones {}; {} nodes kept; allocatable {}; requested {}.\n",
            if t.distribution.is_empty() { "kubernetes" } else { &t.distribution },
            t.kubernetes_version,
            if t.cni.is_empty() { "-" } else { &t.cni },
            t.zones.join(", "),
            t.nodes_kept.len(),
            resources(t.allocatable),
            resources(t.requested)
        );
        let _ = writeln!(
            out,
            "Control plane{}:\n",
            if t.small_site { " (small site: one lightweight server)" } else { "" }
        );
        for c in &t.control_plane {
            let _ = writeln!(out, "- `{}` ({}), zone `{}`", c.node, c.cluster_id, c.zone);
        }
        if !t.control_plane_note.is_empty() {
            let _ = writeln!(out, "\n> {}", t.control_plane_note);
        }
        out.push('\n');
        if !t.addons.is_empty() {
            let _ = writeln!(
                out,
                "Platform add-ons to install once (not moved, not renamed), before namespaces move in:\n\n| add-on | found by | install in wave | versions seen | source clusters | reserved (largest, from) |\n| --- | --- | --- | --- | --- | --- |"
            );
            for a in &t.addons {
                let clusters: Vec<&str> = a.instances.iter().map(|i| i.cluster_id.as_str()).collect();
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} ({}) |",
                    a.namespace,
                    a.origin.as_str(),
                    a.wave,
                    a.versions().join(", "),
                    clusters.join(", "),
                    resources(a.requests),
                    a.sized_from
                );
            }
            out.push('\n');
        }
    }
    if !b.firewall_flows.is_empty() {
        let _ = writeln!(
            out,
            "### Firewall flows to open\n\n| target | from | to | protocol | ports | purpose |\n| --- | --- | --- | --- | --- | --- |"
        );
        for f in &b.firewall_flows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                f.target_cluster,
                f.from_zone,
                f.to_zone,
                f.protocol.as_str(),
                if f.ports.is_empty() { "-" } else { &f.ports },
                f.purpose
            );
        }
        out.push('\n');
    }
    if !b.preconditions.is_empty() {
        let _ =
            writeln!(out, "### Preconditions\n\n| cluster | before wave | kind | detail |\n| --- | --- | --- | --- |");
        for p in &b.preconditions {
            let kind =
                serde_json::to_value(p.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            let _ = writeln!(out, "| {} | {} | {} | {} |", p.cluster_id, p.before_wave, kind, p.detail);
        }
        out.push('\n');
    }
    if !b.namespace_renames.is_empty() {
        let _ = writeln!(
            out,
            "### Namespace renames\n\n| from cluster | namespace | new name | target | collides with |\n| --- | --- | --- | --- | --- |"
        );
        for r in &b.namespace_renames {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                r.from_cluster,
                r.namespace,
                r.new_name,
                r.target_cluster,
                r.collides_with.join(", ")
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "### Waves\n");
    for w in &b.waves {
        let joined = w.nodes.iter().filter(|n| n.action == NodeAction::DrainAndJoin).count();
        let freed = w.nodes.len() - joined;
        let _ = writeln!(
            out,
            "**Wave {}**: {} nodes joined, {} freed, {} namespaces moved{}.\n",
            w.index,
            joined,
            freed,
            w.namespaces.len(),
            if w.clusters_retired.is_empty() {
                String::new()
            } else {
                format!("; retires {}", w.clusters_retired.join(", "))
            }
        );
        if !w.namespaces.is_empty() {
            let moved: Vec<String> = w
                .namespaces
                .iter()
                .map(|n| {
                    if n.new_name.is_empty() || n.new_name == n.namespace {
                        format!("{}/{} ({})", n.from_cluster, n.namespace, n.sla_tier)
                    } else {
                        format!("{}/{} → {} ({})", n.from_cluster, n.namespace, n.new_name, n.sla_tier)
                    }
                })
                .collect();
            let _ = writeln!(out, "Namespaces: {}.\n", moved.join(", "));
        }
        let _ = writeln!(
            out,
            "| cluster | cpu req/alloc before | after | memory req/alloc before | after |\n| --- | --- | --- | --- | --- |"
        );
        for after in &w.capacity_after {
            let before = w.capacity_before.iter().find(|c| c.cluster == after.cluster);
            let cell = |req: u64, alloc: u64, f: fn(u64) -> String| format!("{}/{}", f(req), f(alloc));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                after.cluster,
                before.map_or("-".into(), |c| cell(c.requested.cpu_millis, c.allocatable.cpu_millis, format_cpu)),
                cell(after.requested.cpu_millis, after.allocatable.cpu_millis, format_cpu),
                before.map_or("-".into(), |c| cell(c.requested.memory_bytes, c.allocatable.memory_bytes, format_bytes)),
                cell(after.requested.memory_bytes, after.allocatable.memory_bytes, format_bytes),
            );
        }
        out.push('\n');
    }
}

fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Graphviz: source clusters → waves → target clusters, one subgraph per block.
pub fn plan_dot(plan: &Plan) -> String {
    let mut out = String::from("digraph plan {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n");
    for (block_idx, b) in plan.blocks.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{block_idx} {{");
        let _ = writeln!(
            out,
            "    label={};",
            dot_id(&format!("{}/{} ({:?})", b.datacenter, b.security_tier, b.status).to_lowercase())
        );
        for source in &b.source_clusters {
            let _ = writeln!(
                out,
                "    {} [label={}, style=rounded];",
                dot_id(&format!("src:{block_idx}:{source}")),
                dot_id(source)
            );
        }
        for t in &b.target_clusters {
            let _ = writeln!(
                out,
                "    {} [label={}, style=bold];",
                dot_id(&format!("dst:{block_idx}:{}", t.name)),
                dot_id(&t.name)
            );
        }
        for w in &b.waves {
            let wave = format!("wave:{block_idx}:{}", w.index);
            let _ = writeln!(
                out,
                "    {} [label={}, shape=ellipse];",
                dot_id(&wave),
                dot_id(&format!("wave {}\\n{} nodes, {} namespaces", w.index, w.nodes.len(), w.namespaces.len()))
            );
            let mut sources: Vec<&str> = w
                .nodes
                .iter()
                .map(|n| n.cluster_id.as_str())
                .chain(w.namespaces.iter().map(|n| n.from_cluster.as_str()))
                .collect();
            sources.sort_unstable();
            sources.dedup();
            for source in sources {
                if b.source_clusters.iter().any(|s| s == source) {
                    let _ = writeln!(out, "    {} -> {};", dot_id(&format!("src:{block_idx}:{source}")), dot_id(&wave));
                }
            }
            let mut targets: Vec<&str> = w
                .nodes
                .iter()
                .filter(|n| n.action == NodeAction::DrainAndJoin)
                .map(|n| n.to_cluster.as_str())
                .chain(w.namespaces.iter().map(|n| n.to_cluster.as_str()))
                .collect();
            targets.sort_unstable();
            targets.dedup();
            for target in targets {
                let _ = writeln!(out, "    {} -> {};", dot_id(&wave), dot_id(&format!("dst:{block_idx}:{target}")));
            }
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kplan_model::{NamespaceMove, NodeMove, TargetCluster, Wave};

    fn plan() -> Plan {
        Plan {
            id: "plan-x".into(),
            blocks: vec![BlockPlan {
                datacenter: "fra".into(),
                security_tier: "prod".into(),
                source_clusters: vec!["a\"b".into()],
                target_clusters: vec![TargetCluster { name: "fra-prod".into(), ..Default::default() }],
                waves: vec![Wave {
                    index: 1,
                    nodes: vec![NodeMove {
                        cluster_id: "a\"b".into(),
                        to_cluster: "fra-prod".into(),
                        ..Default::default()
                    }],
                    namespaces: vec![NamespaceMove {
                        from_cluster: "a\"b".into(),
                        namespace: "payments".into(),
                        new_name: "payments-ab".into(),
                        to_cluster: "fra-prod".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn dot_escapes_and_links_sources_waves_targets() {
        let dot = plan_dot(&plan());
        assert!(dot.contains(r#""src:0:a\"b" -> "wave:0:1";"#), "{dot}");
        assert!(dot.contains(r#""wave:0:1" -> "dst:0:fra-prod";"#), "{dot}");
        assert_eq!(dot.matches('{').count(), dot.matches('}').count());
    }

    #[test]
    fn markdown_shows_renames_in_waves() {
        let md = plan_markdown(&plan());
        assert!(md.contains("a\"b/payments → payments-ab"), "{md}");
        assert!(md.contains("## fra / prod"), "{md}");
    }

    #[test]
    fn the_isolation_column_counts_findings_of_shared_or_flagged_targets_and_the_summary_names_the_plan() {
        use kplan_planner::isolation::{Finding, FindingKind, Severity, TargetIsolation};
        let mut plan = plan();
        plan.blocks[0].status = BlockStatus::Planned;
        plan.blocks[0].source_clusters.push("c".into());
        let finding = |open| Finding {
            kind: FindingKind::RbacWidening,
            severity: Severity::High,
            target_cluster: "fra-prod".into(),
            source_cluster: "c".into(),
            object: "ClusterRoleBinding x".into(),
            subject: "Group team".into(),
            role: "ClusterRole edit".into(),
            rules: Vec::new(),
            namespaces: vec!["payments-ab".into()],
            detail: String::new(),
            closed_by: Vec::new(),
            open,
        };
        let mut report = IsolationReport {
            plan_id: "plan-x".into(),
            targets: vec![TargetIsolation {
                datacenter: "fra".into(),
                security_tier: "prod".into(),
                target_cluster: "fra-prod".into(),
                cni: "calico".into(),
                source_clusters: vec!["a\"b".into(), "c".into()],
                network_policy_enforced: true,
                namespaces: Vec::new(),
                findings: vec![finding(false), finding(true), finding(false)],
            }],
            clusters_without_isolation_inventory: vec!["c".into()],
        };
        assert_eq!(isolation_cell(&plan.blocks[0], &report), "3 (1 open)");
        let table = plan_table(&plan, Some(&report));
        assert!(table.lines().next().is_some_and(|h| h.trim_end().ends_with("ISOLATION")), "{table}");
        assert!(table.contains("3 (1 open)"), "{table}");
        assert!(table.contains("tenant isolation: 3 findings, 1 open (kplan plans isolation plan-x)"), "{table}");
        // Nothing known of any source: the findings there are still counted; none, and no count.
        report.clusters_without_isolation_inventory.push("a\"b".into());
        assert_eq!(isolation_cell(&plan.blocks[0], &report), "3 (1 open)");
        let findings = std::mem::take(&mut report.targets[0].findings);
        assert_eq!(isolation_cell(&plan.blocks[0], &report), "-");
        report.clusters_without_isolation_inventory.clear();
        assert_eq!(isolation_cell(&plan.blocks[0], &report), "0 (0 open)");
        // A target of one source: its own findings (pod-security, admission-policy,
        // runtime-class) are counted; without any, no count.
        report.targets[0].findings = findings;
        report.targets[0].source_clusters.pop();
        assert_eq!(isolation_cell(&plan.blocks[0], &report), "3 (1 open)");
        report.targets[0].findings.clear();
        assert_eq!(isolation_cell(&plan.blocks[0], &report), "-");
        // Without a report, the table is what it was.
        let plain = plan_table(&plan, None);
        assert!(!plain.contains("ISOLATION") && !plain.contains("tenant isolation"), "{plain}");
    }
}

/// Capacity review renderers.
pub mod capacity {
    use std::fmt::Write as _;

    use kplan_model::capacity::{CapacityReview, Resource, ResourceUsage};
    use kplan_model::quantity::{format_bytes, format_cpu};
    use kplan_model::time::utc_readable;

    use crate::output::table;

    pub fn amount(resource: Resource, value: f64) -> String {
        match resource {
            Resource::Cpu => format_cpu(value.round() as u64),
            Resource::Memory => format_bytes(value.round() as u64),
            Resource::Pods => format!("{}", value.round() as u64),
        }
    }

    pub fn short_name(resource: Resource) -> &'static str {
        match resource {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Pods => "pods",
        }
    }

    fn pct(x: f64) -> String {
        if x.is_finite() { format!("{:.1}%", x * 100.0) } else { "-".into() }
    }

    fn signed_pct(x: Option<f64>) -> String {
        x.map_or("-".into(), |x| format!("{:+.1}%", x * 100.0))
    }

    pub fn runs_out(usage: &ResourceUsage) -> String {
        usage.runs_out_in.map_or("not within two years".into(), |q| q.to_string())
    }

    fn rows(review: &CapacityReview) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        for b in &review.blocks {
            for u in &b.resources {
                rows.push(vec![
                    format!("{}/{}", b.datacenter, b.security_tier),
                    b.clusters.len().to_string(),
                    b.n_nodes.to_string(),
                    short_name(u.resource).to_string(),
                    amount(u.resource, u.allocatable),
                    amount(u.resource, u.requested),
                    pct(u.utilisation),
                    pct(u.headroom),
                    signed_pct(u.requested_change),
                    runs_out(u),
                ]);
            }
        }
        rows
    }

    const HEADERS: [&str; 10] = [
        "BLOCK",
        "CLUSTERS",
        "NODES",
        "RESOURCE",
        "ALLOCATABLE",
        "REQUESTED",
        "UTILISATION",
        "HEADROOM",
        "REQ QoQ",
        "RUNS OUT",
    ];

    pub fn review_table(review: &CapacityReview) -> String {
        let mut out = format!("capacity review {} (compared with {})\n\n", review.quarter, review.previous_quarter);
        out.push_str(&table(&HEADERS, &rows(review)));
        for s in &review.stale_clusters {
            let _ = writeln!(
                out,
                "stale: {} last reported {} ({:.1} days ago)",
                s.cluster_id,
                utc_readable(s.last_report_unix),
                s.age_seconds as f64 / 86_400.0
            );
        }
        out
    }

    pub fn review_markdown(review: &CapacityReview) -> String {
        let mut out = format!("# Capacity review {}\n\nCompared with {}.\n\n", review.quarter, review.previous_quarter);
        let _ = writeln!(out, "| {} |\n|{}", HEADERS.join(" | ").to_lowercase(), " --- |".repeat(HEADERS.len()));
        for row in rows(review) {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        if !review.stale_clusters.is_empty() {
            out.push_str("\n## Stale clusters\n\n| cluster | last report | age (days) |\n| --- | --- | --- |\n");
            for s in &review.stale_clusters {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.1} |",
                    s.cluster_id,
                    utc_readable(s.last_report_unix),
                    s.age_seconds as f64 / 86_400.0
                );
            }
        }
        out
    }
}
