//! The snapshot history a capacity review reads.

use std::collections::BTreeMap;

use kplan_model::capacity::HistoryPoint;

use crate::{Store, StoreError};

/// Every stored snapshot of every cluster, oldest first per cluster.
pub fn load_history(store: &dyn Store) -> Result<BTreeMap<String, Vec<HistoryPoint>>, StoreError> {
    let mut history = BTreeMap::new();
    for cluster in store.list_clusters()? {
        let points = store
            .history(&cluster.cluster_id)?
            .into_iter()
            .map(|(info, snapshot)| HistoryPoint { stored_at_unix: info.stored_at_unix, snapshot })
            .collect();
        history.insert(cluster.cluster_id, points);
    }
    Ok(history)
}
