//! `kubectl get -o json|yaml` output: any text through `parse_documents`, and
//! whatever parses through the collector (`collect`) and snapshot validation.
#![no_main]

use kplan_collect::{CollectOptions, collect, parse_documents};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(objects) = parse_documents(text, "fuzz.json") else {
        return;
    };
    let options = CollectOptions {
        cluster_id: "fuzz-cluster".into(),
        generation: Some(1),
        datacenter: Some("fra".into()),
        zone: Some("fra-a".into()),
        security_tier: Some("prod".into()),
        ..Default::default()
    };
    if let Ok(snapshot) = collect(objects, &options) {
        let problems = kplan_store::validation::check_snapshot(&snapshot);
        assert!(problems.len() <= kplan_store::validation::MAX_REPORTED_PROBLEMS + 1);
    }
});
