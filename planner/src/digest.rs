//! Digests that name what a plan was made from: the policy digest stored in
//! every plan and the plan id (one FNV-1a, 64 bits: a name, not a signature).

use kplan_model::{Plan, Policy};

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

#[cfg(test)]
mod tests {
    use super::*;

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
