//! Issue 7: the server's metrics endpoint exports the documented metrics, and
//! they move when reports arrive or are refused.

mod common;

use common::*;

#[test]
fn server_metrics_move_when_a_report_arrives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    assert!(!server.metrics_addr.is_empty(), "the server logs its metrics address");
    assert_eq!(http_get(&server.metrics_addr, "/healthz").0, 200);
    assert_eq!(http_get(&server.metrics_addr, "/readyz").0, 200);

    let (status, before) = http_get(&server.metrics_addr, "/metrics");
    assert_eq!(status, 200);
    for documented in [
        "kplan_snapshots_received_total",
        "kplan_snapshots_replayed_total",
        "kplan_snapshots_refused_total",
        "kplan_plans_proposed_total",
        "kplan_plan_solve_seconds",
        "kplan_clusters",
        "kplan_store_size_bytes",
    ] {
        // OpenMetrics names a counter's family without `_total`.
        let family = documented.strip_suffix("_total").unwrap_or(documented);
        assert!(before.contains(&format!("# TYPE {family} ")), "{documented} is not exported:\n{before}");
    }
    assert_eq!(metric_value(&before, "kplan_snapshots_received_total"), Some(0.0));
    assert_eq!(metric_value(&before, "kplan_clusters"), Some(0.0));

    let file = fixture("openshift-gcp-4.4-nodelist.derived.json");
    let file = file.to_str().expect("utf-8 path");
    let url = server.url();
    kplan_ok(&["--server", &url, "import", "--cluster", "gcp", "--security-tier", "prod", file]);
    kplan_ok(&["--server", &url, "import", "--cluster", "gcp", "--security-tier", "prod", file]);
    kplan_err(&["--server", &url, "import", "--cluster", "gcp", "--security-tier", "prod", "--generation", "1", file]);

    let (_, after) = http_get(&server.metrics_addr, "/metrics");
    assert!(after.contains("# TYPE kplan_cluster_last_report_age_seconds gauge"), "{after}");
    assert_eq!(metric_value(&after, "kplan_snapshots_received_total"), Some(1.0), "{after}");
    assert_eq!(metric_value(&after, "kplan_snapshots_replayed_total"), Some(1.0), "{after}");
    assert_eq!(
        metric_value(&after, "kplan_snapshots_refused_total{reason=\"stale_generation\"}"),
        Some(1.0),
        "{after}"
    );
    assert_eq!(metric_value(&after, "kplan_clusters"), Some(1.0));
    let age = metric_value(&after, "kplan_cluster_last_report_age_seconds{cluster_id=\"gcp\"}").expect("age of gcp");
    assert!((0.0..60.0).contains(&age), "age {age}");
    assert!(metric_value(&after, "kplan_store_size_bytes").is_some_and(|b| b > 0.0));
}
