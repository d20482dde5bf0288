//! Digests that name what a plan was made from: the policy digest stored in
//! every plan and the plan id (one FNV-1a, 64 bits: a name, not a signature),
//! and the plan's fingerprint (SHA-256 of its inputs and of its content, for
//! audits: `kplan plans show`, `kplan propose --check`).

use kplan_model::policy::SolverPolicy;
use kplan_model::{ClusterSnapshot, Plan, Policy};
use sha2::{Digest, Sha256};

/// 64-bit FNV-1a over a sequence of byte strings.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    pub fn feed(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

/// FNV-1a over the policy's JSON form: a stable digest for `Plan::policy_digest`.
pub fn policy_digest(policy: &Policy) -> String {
    let mut hash = Fnv1a::default();
    hash.feed(serde_json::to_string(policy).unwrap_or_default().as_bytes());
    format!("{:016x}", hash.finish())
}

/// `plan-20261125t193000z-1a2b3c4d`: the UTC time and a digest of what the plan
/// was made from (inventory generations and policy), so ids sort by time and two
/// plans made in one second from different inputs do not collide.
pub fn plan_id(plan: &Plan, now_unix: i64) -> String {
    let mut hash = Fnv1a::default();
    for cluster in &plan.inventory {
        hash.feed(cluster.cluster_id.as_bytes());
        hash.feed(&cluster.generation.to_be_bytes());
    }
    hash.feed(plan.policy_digest.as_bytes());
    for block in &plan.blocks {
        hash.feed(block.datacenter.as_bytes());
        hash.feed(block.security_tier.as_bytes());
    }
    format!("plan-{}-{:08x}", kplan_model::time::utc_compact(now_unix), hash.finish() as u32)
}

/// Gives a freshly proposed plan its creation time and id (the caller's clock:
/// the planner itself reads none).
pub fn stamp(plan: &mut Plan, now_unix: i64) {
    plan.created_at_unix = now_unix;
    plan.id = plan_id(plan, now_unix);
}

/// SHA-256 with every field length-prefixed, so that no two field sequences
/// feed the same bytes.
#[derive(Default)]
struct Fields(Sha256);

impl Fields {
    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }

    fn hex(self) -> String {
        self.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Plain data with string keys: serialising cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// SHA-256 of a snapshot's content: its facts, nodes and namespaces (sorted by
/// name), without the generation and the collection time, so that a cluster
/// reporting the same estate again has the same hash.
pub fn snapshot_content_sha256(snapshot: &ClusterSnapshot) -> String {
    let mut content = snapshot.clone();
    content.generation = 0;
    content.collected_at_unix = 0;
    content.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    content.namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    let mut digest = Fields::default();
    digest.field(&json(&content));
    digest.hex()
}

/// The solver settings that shape a plan, as `key=value` words.
pub fn limits_text(solver: &SolverPolicy) -> String {
    format!(
        "threads={} random_seed={} mip_gap={} composition_max_nodes={} staging_max_nodes={} waves_max_nodes={} \
         staging_max_variables={} waves_max_variables={} time_limit_seconds={} staging_seconds={} waves_seconds={}",
        solver.threads,
        solver.random_seed,
        solver.mip_gap,
        solver.composition_max_nodes,
        solver.staging_max_nodes,
        solver.waves_max_nodes,
        solver.staging_max_variables,
        solver.waves_max_variables,
        solver.time_limit_seconds,
        solver.staging_seconds,
        solver.waves_seconds
    )
}

/// SHA-256 over everything a plan was made from: each snapshot (cluster,
/// generation, content hash), the policy, kplan's and HiGHS's versions, the
/// limits and the options. Same input digest, same plan.
pub fn input_digest(plan: &Plan) -> String {
    let mut digest = Fields::default();
    digest.field(b"kplan-plan-inputs-v1");
    for cluster in &plan.inventory {
        digest
            .field(cluster.cluster_id.as_bytes())
            .field(&cluster.generation.to_be_bytes())
            .field(cluster.content_sha256.as_bytes());
    }
    digest.field(&json(&plan.policy));
    let f = &plan.fingerprint;
    digest
        .field(f.kplan_version.as_bytes())
        .field(f.highs_version.as_bytes())
        .field(f.limits.as_bytes())
        .field(f.options.as_bytes());
    digest.hex()
}

/// SHA-256 over what a plan says: its blocks and summary, without the id, the
/// creation time, the timings and the fingerprint. Two plans with equal content
/// digests export to the same bytes (but for the id and times).
pub fn content_digest(plan: &Plan) -> String {
    let mut blocks = plan.blocks.clone();
    for block in &mut blocks {
        block.solve_seconds = 0.0;
    }
    let mut summary = plan.summary.clone();
    summary.solve_seconds = 0.0;
    let mut digest = Fields::default();
    digest.field(b"kplan-plan-content-v1").field(&json(&blocks)).field(&json(&summary));
    digest.hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_hashes_ignore_generation_time_and_order_but_not_capacity() {
        use kplan_model::test_support::{snapshot as make, worker};
        let snapshot = make("c1", 3, 100, vec![worker("n1"), worker("n2")]);
        let mut again = snapshot.clone();
        again.generation += 1;
        again.collected_at_unix += 60;
        again.nodes.reverse();
        assert_eq!(snapshot_content_sha256(&snapshot), snapshot_content_sha256(&again));
        again.nodes[0].allocatable.cpu_millis += 1;
        assert_ne!(snapshot_content_sha256(&snapshot), snapshot_content_sha256(&again));
    }

    #[test]
    fn content_digests_ignore_id_times_and_fingerprint_only() {
        let mut plan = Plan { blocks: vec![kplan_model::BlockPlan::default()], ..Plan::default() };
        let before = content_digest(&plan);
        plan.id = "plan-x".into();
        plan.created_at_unix = 5;
        plan.summary.solve_seconds = 3.0;
        plan.blocks[0].solve_seconds = 2.0;
        plan.fingerprint.input_digest = "abc".into();
        assert_eq!(before, content_digest(&plan));
        plan.blocks[0].nodes_after = 1;
        assert_ne!(before, content_digest(&plan));
        assert_eq!(before.len(), 64);
    }

    #[test]
    fn ids_differ_with_inputs() {
        let mut plan = Plan::default();
        let a = plan_id(&plan, 10);
        plan.policy_digest = "x".into();
        assert_ne!(a, plan_id(&plan, 10));
        assert!(a.starts_with("plan-19700101t000010z-"));
    }

    #[test]
    fn fnv1a_of_the_empty_string_is_the_offset_basis() {
        assert_eq!(Fnv1a::default().finish(), 0xcbf2_9ce4_8422_2325);
        let mut hash = Fnv1a::default();
        hash.feed(b"a");
        // The published FNV-1a 64 test vector for "a".
        assert_eq!(hash.finish(), 0xaf63_dc4c_8601_ec8c);
    }
}
