//! Self-contained HTML reports (no external assets, no scripts): inline CSS and
//! inline SVG charts, so a report can be mailed, archived and opened offline.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use kplan_model::capacity::{CapacityReview, Resource};
use kplan_model::quantity::{format_bytes, format_cpu};
use kplan_model::time::utc_readable;
use kplan_model::{BlockPlan, BlockStatus, NodeAction, Plan};

use crate::render::capacity::{amount, runs_out, short_name};

/// Escapes text for HTML element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;color:#1d2330;max-width:1200px}\
h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:1px solid #d0d4dc;padding-bottom:.2rem;margin-top:2.2rem}h3{font-size:1.05rem}\
table{border-collapse:collapse;margin:.6rem 0 1.2rem}th,td{border:1px solid #d0d4dc;padding:.25rem .5rem;font-size:.85rem;text-align:left}\
th{background:#f1f3f7}td.num{text-align:right}.infeasible{color:#a31515;font-weight:600}.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4rem .7rem}\
svg{display:block;margin:.5rem 0 1rem}svg text{font-size:11px;fill:#1d2330}.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 1rem;vertical-align:middle}";

const BLUE: &str = "#3b6fd8";
const ORANGE: &str = "#e8892b";
const GREEN: &str = "#2f9e6b";
const GREY: &str = "#9aa3b2";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        esc(title)
    )
}

/// A grouped horizontal bar chart: one row per label, one bar per series.
fn bar_chart(id: &str, title: &str, labels: &[String], series: &[(&str, &str, Vec<f64>)]) -> String {
    let row_height = 14.0 * series.len() as f64 + 10.0;
    let label_width = 150.0;
    let chart_width = 520.0;
    let height = 30.0 + row_height * labels.len() as f64;
    let max = series.iter().flat_map(|(_, _, v)| v.iter().copied()).fold(0.0_f64, f64::max).max(1.0);
    let mut svg = format!(
        "<svg class=\"chart\" id=\"{}\" role=\"img\" aria-label=\"{}\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\" xmlns=\"http://www.w3.org/2000/svg\">\n<title>{}</title>\n",
        esc(id),
        esc(title),
        label_width + chart_width + 60.0,
        label_width + chart_width + 60.0,
        esc(title)
    );
    for (row, label) in labels.iter().enumerate() {
        let y0 = 20.0 + row as f64 * row_height;
        let _ = writeln!(svg, "<text x=\"0\" y=\"{:.1}\">{}</text>", y0 + row_height / 2.0, esc(label));
        for (s, (name, color, values)) in series.iter().enumerate() {
            let value = values.get(row).copied().unwrap_or(0.0);
            let width = (value / max * chart_width).max(0.0);
            let y = y0 + s as f64 * 14.0;
            let _ = writeln!(
                svg,
                "<rect x=\"{label_width}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"12\" fill=\"{color}\"><title>{}: {value}</title></rect><text x=\"{:.1}\" y=\"{:.1}\">{value}</text>",
                esc(name),
                label_width + width + 4.0,
                y + 10.0
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// A line chart of several series over the same x labels.
fn line_chart(
    id: &str,
    title: &str,
    x_labels: &[String],
    series: &[(&str, &str, Vec<f64>)],
    unit: &dyn Fn(f64) -> String,
) -> String {
    let (width, height, left, bottom, top) = (640.0, 240.0, 70.0, 40.0, 20.0);
    let plot_w = width - left - 20.0;
    let plot_h = height - bottom - top;
    let max = series.iter().flat_map(|(_, _, v)| v.iter().copied()).fold(0.0_f64, f64::max).max(1.0);
    let n = x_labels.len().max(1);
    let x_at = |i: usize| left + if n == 1 { plot_w / 2.0 } else { plot_w * i as f64 / (n - 1) as f64 };
    let y_at = |v: f64| top + plot_h - v / max * plot_h;
    let mut svg = format!(
        "<svg class=\"chart\" id=\"{}\" role=\"img\" aria-label=\"{}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" xmlns=\"http://www.w3.org/2000/svg\">\n<title>{}</title>\n",
        esc(id),
        esc(title),
        esc(title)
    );
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{GREY}\"/>",
        top + plot_h,
        left + plot_w,
        top + plot_h
    );
    let _ =
        writeln!(svg, "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{:.1}\" stroke=\"{GREY}\"/>", top + plot_h);
    for tick in 0..=4 {
        let v = max * f64::from(tick) / 4.0;
        let _ = writeln!(svg, "<text x=\"2\" y=\"{:.1}\">{}</text>", y_at(v) + 4.0, esc(&unit(v)));
    }
    for (i, label) in x_labels.iter().enumerate() {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x_at(i),
            height - bottom + 16.0,
            esc(label)
        );
    }
    for (name, color, values) in series {
        let points: Vec<String> =
            values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x_at(i), y_at(*v))).collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline>",
            points.join(" "),
            esc(name)
        );
        for (i, v) in values.iter().enumerate() {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"><title>{}: {}</title></circle>",
                x_at(i),
                y_at(*v),
                esc(name),
                esc(&unit(*v))
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn legend(series: &[(&str, &str)]) -> String {
    let mut out = String::from("<div class=\"legend\">");
    for (name, color) in series {
        let _ = write!(out, "<span style=\"background:{color}\"></span>{}", esc(name));
    }
    out.push_str("</div>\n");
    out
}

/// The zone-to-zone matrix of flows to open: a cell per (from, to) with the count.
fn flow_matrix(block: &BlockPlan) -> String {
    let zones: BTreeSet<&str> =
        block.firewall_flows.iter().flat_map(|f| [f.from_zone.as_str(), f.to_zone.as_str()]).collect();
    if zones.is_empty() {
        return "<p>No firewall flows to open.</p>\n".to_string();
    }
    let mut cells: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for f in &block.firewall_flows {
        let port = if f.ports.is_empty() {
            f.protocol.as_str().to_string()
        } else {
            format!("{}/{}", f.ports, f.protocol.as_str())
        };
        cells.entry((f.from_zone.as_str(), f.to_zone.as_str())).or_default().push(format!("{port} {}", f.purpose));
    }
    let max = cells.values().map(Vec::len).max().unwrap_or(1).max(1);
    let mut out = String::from("<table class=\"flow-matrix\"><tr><th>from \\ to</th>");
    for to in &zones {
        let _ = write!(out, "<th>{}</th>", esc(to));
    }
    out.push_str("</tr>\n");
    for from in &zones {
        let _ = write!(out, "<tr><th>{}</th>", esc(from));
        for to in &zones {
            match cells.get(&(*from, *to)) {
                Some(flows) => {
                    let alpha = 0.15 + 0.6 * flows.len() as f64 / max as f64;
                    let _ = write!(
                        out,
                        "<td class=\"num\" style=\"background:rgba(59,111,216,{alpha:.2})\" title=\"{}\">{}</td>",
                        esc(&flows.join("; ")),
                        flows.len()
                    );
                }
                None if from == to => out.push_str("<td class=\"num\">·</td>"),
                None => out.push_str("<td class=\"num\">0</td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// Per wave: requested and allocatable CPU of the targets and of all sources together, after the wave.
fn wave_capacity_chart(idx: usize, block: &BlockPlan) -> String {
    let targets: BTreeSet<&str> = block.target_clusters.iter().map(|t| t.name.as_str()).collect();
    let mut labels = vec!["start".to_string()];
    let mut series: [Vec<f64>; 4] = Default::default();
    let mut push = |capacities: &[kplan_model::ClusterCapacity]| {
        let mut sums = [0.0; 4];
        for c in capacities {
            let base = if targets.contains(c.cluster.as_str()) { 0 } else { 2 };
            sums[base] += c.allocatable.cpu_millis as f64;
            sums[base + 1] += c.requested.cpu_millis as f64;
        }
        for (s, v) in series.iter_mut().zip(sums) {
            s.push(v);
        }
    };
    if let Some(first) = block.waves.first() {
        push(&first.capacity_before);
    }
    for w in &block.waves {
        labels.push(format!("wave {}", w.index));
        push(&w.capacity_after);
    }
    let [target_alloc, target_req, source_alloc, source_req] = series;
    let chart = line_chart(
        &format!("wave-capacity-{idx}"),
        &format!("{}/{}: cpu allocatable and requested after every wave", block.datacenter, block.security_tier),
        &labels,
        &[
            ("target allocatable", BLUE, target_alloc),
            ("target requested", GREEN, target_req),
            ("sources allocatable", GREY, source_alloc),
            ("sources requested", ORANGE, source_req),
        ],
        &|v| format_cpu(v.round() as u64),
    );
    let key = legend(&[
        ("target allocatable", BLUE),
        ("target requested", GREEN),
        ("sources allocatable", GREY),
        ("sources requested", ORANGE),
    ]);
    format!("{chart}{key}")
}

/// The wave timeline: one row per wave, bars for nodes and namespaces moved.
fn wave_timeline(idx: usize, block: &BlockPlan) -> String {
    let labels: Vec<String> = block
        .waves
        .iter()
        .map(|w| {
            if w.clusters_retired.is_empty() {
                format!("wave {}", w.index)
            } else {
                format!("wave {} (retires {})", w.index, w.clusters_retired.len())
            }
        })
        .collect();
    let joined: Vec<f64> = block
        .waves
        .iter()
        .map(|w| w.nodes.iter().filter(|n| n.action == NodeAction::DrainAndJoin).count() as f64)
        .collect();
    let freed: Vec<f64> =
        block.waves.iter().map(|w| w.nodes.iter().filter(|n| n.action == NodeAction::Free).count() as f64).collect();
    let namespaces: Vec<f64> = block.waves.iter().map(|w| w.namespaces.len() as f64).collect();
    let chart = bar_chart(
        &format!("wave-timeline-{idx}"),
        &format!("{}/{}: wave timeline", block.datacenter, block.security_tier),
        &labels,
        &[("nodes joined", BLUE, joined), ("nodes freed", GREY, freed), ("namespaces moved", ORANGE, namespaces)],
    );
    format!("{chart}{}", legend(&[("nodes joined", BLUE), ("nodes freed", GREY), ("namespaces moved", ORANGE)]))
}

/// `kplan plans export ID --format html`.
/// The plan as one HTML page; with its runbook, a collapsible section per wave
/// of every block (the steps, their commands, checks and rollback).
pub fn plan_report(
    plan: &Plan,
    runbook: Option<&kplan_planner::runbook::Runbook>,
    isolation: Option<&kplan_planner::isolation::IsolationReport>,
) -> String {
    let mut body = String::new();
    let s = &plan.summary;
    let _ = writeln!(body, "<h1>Consolidation plan {}</h1>", esc(&plan.id));
    let _ = writeln!(
        body,
        "<p>Made {} from {} clusters; policy digest <code>{}</code>.</p>",
        esc(&utc_readable(plan.created_at_unix)),
        plan.inventory.len(),
        esc(&plan.policy_digest)
    );
    let _ = writeln!(
        body,
        "<table><tr><th>blocks</th><th>infeasible</th><th>nodes before</th><th>nodes after</th><th>control planes retired</th><th>flows to open</th><th>waves</th></tr>\
<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr></table>",
        s.n_blocks,
        s.n_blocks_infeasible,
        s.nodes_before,
        s.nodes_after,
        s.control_planes_retired,
        s.firewall_flows,
        s.waves
    );
    let labels: Vec<String> = plan.blocks.iter().map(|b| format!("{}/{}", b.datacenter, b.security_tier)).collect();
    body.push_str("<h2>Nodes before and after, per block</h2>\n");
    body.push_str(&bar_chart(
        "nodes-per-block",
        "nodes before and after per block",
        &labels,
        &[
            ("before", GREY, plan.blocks.iter().map(|b| b.nodes_before as f64).collect()),
            ("after", BLUE, plan.blocks.iter().map(|b| b.nodes_after as f64).collect()),
        ],
    ));
    body.push_str(&legend(&[("before", GREY), ("after", BLUE)]));
    body.push_str("<table><tr><th>block</th><th>status</th><th>targets</th><th>control plane</th><th>nodes</th><th>flows</th><th>waves</th><th>renames</th><th>preconditions</th><th>gap</th></tr>\n");
    for b in &plan.blocks {
        let planned = b.status == BlockStatus::Planned;
        let cp: Vec<String> = b
            .target_clusters
            .iter()
            .flat_map(|t| t.control_plane.iter().map(|c| format!("{} ({})", c.node, c.zone)))
            .collect();
        let _ = writeln!(
            body,
            "<tr><td>{}/{}</td><td{}>{}</td><td>{}</td><td>{}</td><td class=\"num\">{} → {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&b.datacenter),
            esc(&b.security_tier),
            if planned { "" } else { " class=\"infeasible\"" },
            if planned { "planned" } else { "infeasible" },
            esc(&b.target_clusters.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")),
            esc(&cp.join(", ")),
            b.nodes_before,
            b.nodes_after,
            b.firewall_flows.len(),
            b.waves.len(),
            b.namespace_renames.len(),
            b.preconditions.len(),
            if planned { format!("{:.2}%", b.gap * 100.0) } else { "-".into() },
        );
    }
    body.push_str("</table>\n");
    for (idx, b) in plan.blocks.iter().enumerate() {
        let _ = writeln!(body, "<h2 id=\"block-{idx}\">{} / {}</h2>", esc(&b.datacenter), esc(&b.security_tier));
        let _ = writeln!(body, "<p>Source clusters: {}.</p>", esc(&b.source_clusters.join(", ")));
        if b.status == BlockStatus::Infeasible {
            let _ = writeln!(body, "<p class=\"infeasible\">Infeasible: {}</p>", esc(&b.explanation));
            continue;
        }
        // A block's note that repeats a target's note is shown once, with the target.
        if !b.explanation.is_empty() && !b.target_clusters.iter().any(|t| t.control_plane_note == b.explanation) {
            let _ = writeln!(body, "<p class=\"note\">{}</p>", esc(&b.explanation));
        }
        for t in &b.target_clusters {
            let _ = writeln!(
                body,
                "<h3>Target {}</h3><p>{} {}, CNI {}, zones {}; {} nodes kept; {} cpu and {} memory allocatable.</p>",
                esc(&t.name),
                esc(if t.distribution.is_empty() { "kubernetes" } else { &t.distribution }),
                esc(&t.kubernetes_version),
                esc(&t.cni),
                esc(&t.zones.join(", ")),
                t.nodes_kept.len(),
                esc(&format_cpu(t.allocatable.cpu_millis)),
                esc(&format_bytes(t.allocatable.memory_bytes))
            );
            if !t.control_plane_note.is_empty() {
                let _ = writeln!(body, "<p class=\"note\">{}</p>", esc(&t.control_plane_note));
            }
            if !t.addons.is_empty() {
                body.push_str("<h4>Platform add-ons to install once (not moved, not renamed)</h4><table><tr><th>add-on</th><th>found by</th><th>install in wave</th><th>versions seen</th><th>source clusters</th><th>reserved cpu</th><th>reserved memory</th><th>sized from</th></tr>\n");
                for a in &t.addons {
                    let clusters: Vec<&str> = a.instances.iter().map(|i| i.cluster_id.as_str()).collect();
                    let _ = writeln!(
                        body,
                        "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                        esc(&a.namespace),
                        a.origin.as_str(),
                        a.wave,
                        esc(&a.versions().join(", ")),
                        esc(&clusters.join(", ")),
                        esc(&format_cpu(a.requests.cpu_millis)),
                        esc(&format_bytes(a.requests.memory_bytes)),
                        esc(&a.sized_from)
                    );
                }
                body.push_str("</table>\n");
            }
        }
        body.push_str("<h3>Capacity and demand at every wave</h3>\n");
        body.push_str(&wave_capacity_chart(idx, b));
        body.push_str("<h3>Wave timeline</h3>\n");
        body.push_str(&wave_timeline(idx, b));
        body.push_str("<h3>Firewall flows to open (zone to zone)</h3>\n");
        body.push_str(&flow_matrix(b));
        if !b.firewall_flows.is_empty() {
            body.push_str("<table><tr><th>from</th><th>to</th><th>protocol</th><th>ports</th><th>purpose</th></tr>\n");
            for f in &b.firewall_flows {
                let _ = writeln!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&f.from_zone),
                    esc(&f.to_zone),
                    f.protocol.as_str(),
                    esc(&f.ports),
                    esc(&f.purpose)
                );
            }
            body.push_str("</table>\n");
        }
        if !b.preconditions.is_empty() {
            body.push_str(
                "<h3>Preconditions</h3><table><tr><th>cluster</th><th>before wave</th><th>detail</th></tr>\n",
            );
            for p in &b.preconditions {
                let _ = writeln!(
                    body,
                    "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                    esc(&p.cluster_id),
                    p.before_wave,
                    esc(&p.detail)
                );
            }
            body.push_str("</table>\n");
        }
        if !b.namespace_renames.is_empty() {
            body.push_str("<h3>Namespace renames</h3><table><tr><th>from cluster</th><th>namespace</th><th>new name</th><th>collides with</th></tr>\n");
            for r in &b.namespace_renames {
                let _ = writeln!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&r.from_cluster),
                    esc(&r.namespace),
                    esc(&r.new_name),
                    esc(&r.collides_with.join(", "))
                );
            }
            body.push_str("</table>\n");
        }
        body.push_str("<h3>Waves</h3><table><tr><th>wave</th><th>nodes joined</th><th>nodes freed</th><th>namespaces</th><th>retired</th></tr>\n");
        for w in &b.waves {
            let joined = w.nodes.iter().filter(|n| n.action == NodeAction::DrainAndJoin).count();
            let namespaces: Vec<String> = w
                .namespaces
                .iter()
                .map(|n| {
                    if n.new_name.is_empty() || n.new_name == n.namespace {
                        format!("{}/{}", n.from_cluster, n.namespace)
                    } else {
                        format!("{}/{} → {}", n.from_cluster, n.namespace, n.new_name)
                    }
                })
                .collect();
            let _ = writeln!(
                body,
                "<tr><td class=\"num\">{}</td><td class=\"num\">{joined}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                w.index,
                w.nodes.len() - joined,
                esc(&namespaces.join(", ")),
                esc(&w.clusters_retired.join(", "))
            );
        }
        body.push_str("</table>\n");
        if let Some(isolation) = isolation {
            isolation_section(&mut body, isolation, b);
        }
        let book = runbook.and_then(|r| {
            r.blocks.iter().find(|rb| rb.datacenter == b.datacenter && rb.security_tier == b.security_tier)
        });
        if let Some(book) = book {
            body.push_str("<h3>Runbook</h3>\n");
            for wave in &book.waves {
                let _ = writeln!(
                    body,
                    "<details><summary>Wave {} ({} step{})</summary>",
                    wave.wave,
                    wave.steps.len(),
                    if wave.steps.len() == 1 { "" } else { "s" }
                );
                for step in &wave.steps {
                    let _ = writeln!(body, "<h4>{}. {}</h4>", step.number, esc(&step.title));
                    if !step.rows.is_empty() {
                        body.push_str("<table><tr>");
                        for column in kplan_planner::runbook::FIREWALL_COLUMNS {
                            let _ = write!(body, "<th>{}</th>", esc(column));
                        }
                        body.push_str("</tr>\n");
                        for row in &step.rows {
                            body.push_str("<tr>");
                            for cell in row {
                                let _ = write!(body, "<td>{}</td>", esc(cell));
                            }
                            body.push_str("</tr>\n");
                        }
                        body.push_str("</table>\n");
                    }
                    for (label, lines) in [("", &step.commands), ("Check", &step.checks), ("Rollback", &step.rollback)]
                    {
                        if lines.is_empty() {
                            continue;
                        }
                        if !label.is_empty() {
                            let _ = writeln!(body, "<p>{label}:</p>");
                        }
                        let _ = writeln!(body, "<pre>{}</pre>", esc(&lines.join("\n")));
                    }
                }
                body.push_str("</details>\n");
            }
        }
    }
    page(&format!("kplan plan {}", plan.id), &body)
}

/// `kplan capacity review -o html`.
pub fn capacity_report(review: &CapacityReview) -> String {
    let mut body = String::new();
    let _ = writeln!(body, "<h1>Capacity review {}</h1>", review.quarter);
    let _ = writeln!(body, "<p>Compared with {}.</p>", review.previous_quarter);
    body.push_str("<table><tr><th>block</th><th>resource</th><th>allocatable</th><th>requested</th><th>utilisation</th><th>headroom</th><th>requested QoQ</th><th>runs out</th></tr>\n");
    for b in &review.blocks {
        for u in &b.resources {
            let _ = writeln!(
                body,
                "<tr><td>{}/{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}%</td><td class=\"num\">{:.1}%</td><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(&b.datacenter),
                esc(&b.security_tier),
                short_name(u.resource),
                esc(&amount(u.resource, u.allocatable)),
                esc(&amount(u.resource, u.requested)),
                u.utilisation * 100.0,
                u.headroom * 100.0,
                u.requested_change.map_or("-".into(), |c| format!("{:+.1}%", c * 100.0)),
                esc(&runs_out(u))
            );
        }
    }
    body.push_str("</table>\n");
    if !review.stale_clusters.is_empty() {
        body.push_str(
            "<h2>Stale clusters</h2><table><tr><th>cluster</th><th>last report</th><th>age (days)</th></tr>\n",
        );
        for s in &review.stale_clusters {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{:.1}</td></tr>",
                esc(&s.cluster_id),
                esc(&utc_readable(s.last_report_unix)),
                s.age_seconds as f64 / 86_400.0
            );
        }
        body.push_str("</table>\n");
    }
    for (idx, b) in review.blocks.iter().enumerate() {
        let _ = writeln!(body, "<h2>{} / {}: trend</h2>", esc(&b.datacenter), esc(&b.security_tier));
        let labels: Vec<String> = b.trend.iter().map(|p| p.quarter.to_string()).collect();
        for resource in [Resource::Cpu, Resource::Memory] {
            let alloc: Vec<f64> = b.trend.iter().map(|p| resource.of(p.allocatable)).collect();
            let req: Vec<f64> = b.trend.iter().map(|p| resource.of(p.requested)).collect();
            body.push_str(&line_chart(
                &format!("trend-{idx}-{}", short_name(resource)),
                &format!("{}/{}: {} per quarter", b.datacenter, b.security_tier, short_name(resource)),
                &labels,
                &[("allocatable", BLUE, alloc), ("requested", ORANGE, req)],
                &|v| amount(resource, v),
            ));
        }
        body.push_str(&legend(&[("allocatable", BLUE), ("requested", ORANGE)]));
    }
    page(&format!("kplan capacity review {}", review.quarter), &body)
}

/// A block's tenant isolation (`kplan plans isolation`): per target, each
/// finding with what it reaches and whether the emitted objects close it.
fn isolation_section(
    body: &mut String,
    report: &kplan_planner::isolation::IsolationReport,
    block: &kplan_model::BlockPlan,
) {
    let targets: Vec<_> = report
        .targets
        .iter()
        .filter(|t| t.datacenter == block.datacenter && t.security_tier == block.security_tier)
        .collect();
    let n_findings: usize = targets.iter().map(|t| t.findings.len()).sum();
    if n_findings == 0 {
        return;
    }
    let n_open: usize = targets.iter().map(|t| t.findings.iter().filter(|f| f.open).count()).sum();
    let _ = writeln!(
        body,
        "<h3>Tenant isolation</h3><p>{n_findings} finding{}, {n_open} open; the objects that close them: \
         <code>kplan plans export {} --format manifests</code>.</p>",
        if n_findings == 1 { "" } else { "s" },
        esc(&report.plan_id)
    );
    for target in targets.iter().filter(|t| t.needs_network_policy_cni()) {
        let _ = writeln!(
            body,
            "<p class=\"infeasible\">{} runs {}, which does not enforce NetworkPolicy: see its cni-migration precondition.</p>",
            esc(&target.target_cluster),
            esc(&target.cni)
        );
    }
    body.push_str("<table><tr><th>target</th><th>finding</th><th>severity</th><th>source</th><th>who</th><th>role</th><th>namespaces reached</th><th>closed by</th></tr>\n");
    for f in targets.iter().flat_map(|t| &t.findings) {
        let who = if f.subject.is_empty() { f.object.clone() } else { format!("{} ({})", f.subject, f.object) };
        let closed = if f.open {
            "<td class=\"infeasible\">open</td>".to_string()
        } else {
            format!("<td class=\"num\">{} objects</td>", f.closed_by.len())
        };
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{closed}</tr>",
            esc(&f.target_cluster),
            f.kind.as_str(),
            f.severity.as_str(),
            esc(&f.source_cluster),
            esc(&who),
            esc(&f.role),
            esc(&f.namespaces.join(", ")),
        );
    }
    body.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn the_isolation_section_lists_each_finding_and_marks_the_open_ones() {
        use kplan_planner::isolation::{Finding, FindingKind, IsolationReport, Severity, TargetIsolation};
        let plan = Plan {
            blocks: vec![BlockPlan {
                datacenter: "fra".into(),
                security_tier: "dev".into(),
                target_clusters: vec![kplan_model::TargetCluster { name: "fra-dev".into(), ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let finding = |kind, open| Finding {
            kind,
            severity: Severity::High,
            target_cluster: "fra-dev".into(),
            source_cluster: "apps".into(),
            object: "ClusterRoleBinding <edit>".into(),
            subject: "Group team".into(),
            role: "ClusterRole edit".into(),
            rules: Vec::new(),
            namespaces: vec!["ci".into(), "data".into()],
            detail: String::new(),
            closed_by: vec!["RoleBinding web/kplan-edit".into()],
            open,
        };
        let report = IsolationReport {
            targets: vec![TargetIsolation {
                datacenter: "fra".into(),
                security_tier: "dev".into(),
                target_cluster: "fra-dev".into(),
                cni: "flannel".into(),
                source_clusters: vec!["apps".into(), "ci".into()],
                network_policy_enforced: false,
                namespaces: Vec::new(),
                findings: vec![finding(FindingKind::RbacWidening, false), finding(FindingKind::NetworkWidening, true)],
            }],
            ..Default::default()
        };
        let html = plan_report(&plan, None, Some(&report));
        assert!(html.contains("<h3>Tenant isolation</h3>"), "{html}");
        assert!(html.contains("2 findings, 1 open"), "{html}");
        assert!(html.contains("ClusterRoleBinding &lt;edit&gt;"), "escaped");
        assert!(html.contains("does not enforce NetworkPolicy"), "{html}");
        assert_eq!(html.matches("class=\"infeasible\">open").count(), 1, "{html}");
    }

    #[test]
    fn reports_are_self_contained_and_escaped() {
        let plan = Plan {
            id: "plan-<x>".into(),
            blocks: vec![BlockPlan {
                datacenter: "fra".into(),
                security_tier: "prod<script>".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let html = plan_report(&plan, None, None);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("<script"), "user text must be escaped");
        assert!(!html.contains("src=") && !html.contains("<link"), "no external assets");
        assert!(html.contains("id=\"nodes-per-block\""));
    }

    #[test]
    fn the_report_has_a_section_per_wave_with_its_runbook() {
        let node = |name: &str| kplan_model::NodeMove {
            cluster_id: "src".into(),
            node: name.into(),
            zone: "a".into(),
            action: NodeAction::DrainAndJoin,
            to_cluster: "fra-prod".into(),
        };
        let plan = Plan {
            id: "plan-1".into(),
            blocks: vec![BlockPlan {
                datacenter: "fra".into(),
                security_tier: "prod".into(),
                target_clusters: vec![kplan_model::TargetCluster {
                    name: "fra-prod".into(),
                    control_plane: vec![kplan_model::ControlPlaneNode {
                        cluster_id: "src".into(),
                        node: "n1".into(),
                        zone: "a".into(),
                    }],
                    ..Default::default()
                }],
                waves: vec![
                    kplan_model::Wave { index: 1, nodes: vec![node("n1")], ..Default::default() },
                    kplan_model::Wave { index: 2, nodes: vec![node("n<2>")], ..Default::default() },
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let book = kplan_planner::runbook::runbook(&plan, &[], None);
        let html = plan_report(&plan, Some(&book), None);
        assert_eq!(html.matches("<details>").count(), 2, "one section per wave");
        // Wave 2: drain the node out of its source, then join it.
        assert!(html.contains("<summary>Wave 2 (2 steps)</summary>"), "{html}");
        assert!(html.contains("n1 joins fra-prod (initialise)"), "{html}");
        assert!(html.contains("n&lt;2&gt;") && !html.contains("n<2>"), "steps, escaped");
    }
}
