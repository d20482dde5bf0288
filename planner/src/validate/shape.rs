//! The plan as a whole: blocks once each, the inventory it names.

use super::*;

pub(super) fn check_plan_shape(index: &Index<'_>, plan: &Plan, out: &mut Vec<Violation>) {
    let plan_level =
        |rule, detail: String| Violation { datacenter: String::new(), security_tier: String::new(), rule, detail };
    for problem in &index.problems {
        out.push(plan_level(Rule::Structure, problem.clone()));
    }
    let mut seen: BTreeSet<BlockKey> = BTreeSet::new();
    for block in &plan.blocks {
        let key = (block.datacenter.clone(), block.security_tier.clone());
        let violation = |rule, detail: String| Violation {
            datacenter: block.datacenter.clone(),
            security_tier: block.security_tier.clone(),
            rule,
            detail,
        };
        if !seen.insert(key.clone()) {
            out.push(violation(Rule::Structure, "the block appears more than once in the plan".to_string()));
        } else if !index.blocks.contains_key(&key) {
            out.push(violation(
                Rule::Structure,
                "the inventory has no node and no namespace in this block".to_string(),
            ));
        }
    }
    for ((datacenter, tier), members) in &index.blocks {
        if seen.contains(&(datacenter.clone(), tier.clone())) {
            continue;
        }
        let violation = |rule, detail: String| Violation {
            datacenter: datacenter.clone(),
            security_tier: tier.clone(),
            rule,
            detail,
        };
        if !members.nodes.is_empty() {
            out.push(violation(
                Rule::NodeAccounting,
                format!("the plan has no block for {} node(s) of this block", members.nodes.len()),
            ));
        }
        if !members.namespaces.is_empty() {
            out.push(violation(
                Rule::NamespaceAccounting,
                format!("the plan has no block for {} namespace(s) of this block", members.namespaces.len()),
            ));
        }
    }
    // Target names: unique across the plan, never an existing cluster's id.
    let mut targets: BTreeMap<&str, &BlockPlan> = BTreeMap::new();
    for block in &plan.blocks {
        for target in &block.target_clusters {
            let violation = |rule, detail: String| Violation {
                datacenter: block.datacenter.clone(),
                security_tier: block.security_tier.clone(),
                rule,
                detail,
            };
            if index.clusters.contains_key(target.name.as_str()) {
                out.push(violation(
                    Rule::Structure,
                    format!("target {} has the name of an existing source cluster", target.name),
                ));
            }
            match targets.get(target.name.as_str()) {
                Some(other) if !std::ptr::eq(*other, block) => {
                    let rule =
                        if other.security_tier != block.security_tier { Rule::TierSeparation } else { Rule::Structure };
                    out.push(violation(
                        rule,
                        format!(
                            "target {} is also a target of block {}/{}",
                            target.name, other.datacenter, other.security_tier
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    targets.insert(target.name.as_str(), block);
                }
            }
        }
    }
}
