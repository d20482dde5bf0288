//! What the server does with a report's bytes before storing it: protobuf
//! decoding of `ReportSnapshotRequest`, the wire → domain conversion, and
//! `check_snapshot`. A refusal stays short whatever the input holds.
#![no_main]

use kplan_model::ClusterSnapshot;
use kplan_proto::v1;
use kplan_store::validation::{MAX_REPORTED_PROBLEMS, check_snapshot};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = v1::ReportSnapshotRequest::decode(data) else {
        return;
    };
    let Some(wire) = request.snapshot else {
        return;
    };
    let Ok(snapshot) = ClusterSnapshot::try_from(wire) else {
        return;
    };
    let problems = check_snapshot(&snapshot);
    assert!(problems.len() <= MAX_REPORTED_PROBLEMS + 1, "{} problems", problems.len());
    for problem in &problems {
        assert!(problem.len() < 1024, "a problem of {} bytes", problem.len());
    }
    if problems.is_empty() {
        // What is accepted round-trips through the wire unchanged.
        let again = ClusterSnapshot::try_from(v1::ClusterSnapshot::from(snapshot.clone())).expect("converts back");
        assert_eq!(again, snapshot);
    }
});
