//! [`Store`] on sled 0.34.
//!
//! Trees:
//! - `meta`: `schema_version` → u32 (big endian)
//! - `clusters`: cluster id → [`ClusterRecord`] (newest generation and its summary)
//! - `snapshots`: cluster id, NUL, generation (u64 big endian) → [`StoredSnapshot`]
//! - `plans`: plan id → [`Plan`]
//!
//! A snapshot and its cluster record are written in one transaction, then the
//! database is flushed; only then does `put_snapshot` return.

use std::path::Path;

use kplan_model::{ClusterSnapshot, ClusterSummary, Plan};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::envelope::{SCHEMA_VERSION, decode, encode};
use super::{GenerationInfo, PlanInfo, PutOutcome, Store, StoreError};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClusterRecord {
    latest_generation: u64,
    n_generations: u64,
    summary: ClusterSummary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    stored_at_unix: i64,
    snapshot: ClusterSnapshot,
}

#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    clusters: sled::Tree,
    snapshots: sled::Tree,
    plans: sled::Tree,
}

fn snapshot_key(cluster_id: &str, generation: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(cluster_id.len() + 9);
    key.extend_from_slice(cluster_id.as_bytes());
    key.push(0);
    key.extend_from_slice(&generation.to_be_bytes());
    key
}

fn cluster_prefix(cluster_id: &str) -> Vec<u8> {
    let mut key = cluster_id.as_bytes().to_vec();
    key.push(0);
    key
}

/// Two snapshots carry the same content when they differ at most in when they were collected.
fn same_content(a: &ClusterSnapshot, b: &ClusterSnapshot) -> bool {
    let mut b = b.clone();
    b.collected_at_unix = a.collected_at_unix;
    *a == b
}

impl SledStore {
    /// Opens (or creates) the store in `dir` and verifies its schema version
    /// and every stored value's checksum.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let store = Self::open_unverified(dir)?;
        store.verify()?;
        Ok(store)
    }

    /// Opens without reading every value (for tools that only write).
    pub fn open_unverified(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.display().to_string();
        let db = sled::Config::new().path(dir).open().map_err(|source| match &source {
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") => {
                StoreError::Locked { path: path.clone() }
            }
            _ => StoreError::Open { path: path.clone(), source },
        })?;
        let meta = db.open_tree("meta")?;
        match meta.get("schema_version")? {
            None => {
                meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Some(bytes) => {
                let found =
                    <[u8; 4]>::try_from(bytes.as_ref()).map(u32::from_be_bytes).map_err(|_| StoreError::Corrupt {
                        tree: "meta",
                        key: "schema_version".into(),
                        reason: format!("{} bytes where 4 were expected", bytes.len()),
                    })?;
                if found != SCHEMA_VERSION {
                    return Err(StoreError::UnsupportedSchema { found, supported: SCHEMA_VERSION });
                }
            }
        }
        Ok(SledStore {
            clusters: db.open_tree("clusters")?,
            snapshots: db.open_tree("snapshots")?,
            plans: db.open_tree("plans")?,
            db,
        })
    }

    /// Reads and checks every stored value; returns the number checked.
    pub fn verify(&self) -> Result<u64, StoreError> {
        let mut n_checked = 0;
        for entry in self.clusters.iter() {
            let (key, value) = entry?;
            let _: ClusterRecord = decode("clusters", &key, &value)?;
            n_checked += 1;
        }
        for entry in self.snapshots.iter() {
            let (key, value) = entry?;
            let _: StoredSnapshot = decode("snapshots", &key, &value)?;
            n_checked += 1;
        }
        for entry in self.plans.iter() {
            let (key, value) = entry?;
            let _: Plan = decode("plans", &key, &value)?;
            n_checked += 1;
        }
        Ok(n_checked)
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    fn record(&self, cluster_id: &str) -> Result<Option<ClusterRecord>, StoreError> {
        self.clusters
            .get(cluster_id.as_bytes())?
            .map(|bytes| decode("clusters", cluster_id.as_bytes(), &bytes))
            .transpose()
    }

    fn stored_snapshot(&self, cluster_id: &str, generation: u64) -> Result<Option<StoredSnapshot>, StoreError> {
        let key = snapshot_key(cluster_id, generation);
        self.snapshots.get(&key)?.map(|bytes| decode("snapshots", &key, &bytes)).transpose()
    }
}

impl Store for SledStore {
    fn put_snapshot(&self, snapshot: &ClusterSnapshot, now_unix: i64) -> Result<PutOutcome, StoreError> {
        let cluster_id = snapshot.cluster_id.as_str();
        let generation = snapshot.generation;
        let stored = StoredSnapshot { stored_at_unix: now_unix, snapshot: snapshot.clone() };
        let snapshot_bytes = encode("snapshot", &stored)?;
        let key = snapshot_key(cluster_id, generation);

        let result = (&self.clusters, &self.snapshots).transaction(|(clusters, snapshots)| {
            let previous: Option<ClusterRecord> = clusters
                .get(cluster_id.as_bytes())?
                .map(|bytes| decode("clusters", cluster_id.as_bytes(), &bytes))
                .transpose()
                .map_err(ConflictableTransactionError::Abort)?;
            if let Some(previous) = &previous {
                if generation < previous.latest_generation {
                    return Err(ConflictableTransactionError::Abort(StoreError::StaleGeneration {
                        cluster_id: cluster_id.to_string(),
                        stored: previous.latest_generation,
                        offered: generation,
                    }));
                }
                if generation == previous.latest_generation {
                    let existing = snapshots
                        .get(&key)?
                        .ok_or_else(|| StoreError::Corrupt {
                            tree: "snapshots",
                            key: format!("{cluster_id}/{generation}"),
                            reason: "the cluster record names a generation that is not stored".into(),
                        })
                        .and_then(|bytes| decode::<StoredSnapshot>("snapshots", &key, &bytes))
                        .map_err(ConflictableTransactionError::Abort)?;
                    return if same_content(&existing.snapshot, snapshot) {
                        Ok(PutOutcome::Replayed)
                    } else {
                        Err(ConflictableTransactionError::Abort(StoreError::ConflictingReplay {
                            cluster_id: cluster_id.to_string(),
                            generation,
                        }))
                    };
                }
            }
            let n_generations = previous.map_or(0, |p| p.n_generations) + 1;
            let record = ClusterRecord {
                latest_generation: generation,
                n_generations,
                summary: snapshot.summary(now_unix, n_generations),
            };
            let record_bytes = encode("cluster record", &record).map_err(ConflictableTransactionError::Abort)?;
            snapshots.insert(key.as_slice(), snapshot_bytes.as_slice())?;
            clusters.insert(cluster_id.as_bytes(), record_bytes)?;
            Ok(PutOutcome::Created)
        });
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(StoreError::Sled(e)),
        };
        if outcome == PutOutcome::Created {
            self.db.flush()?;
        }
        Ok(outcome)
    }

    fn list_clusters(&self) -> Result<Vec<ClusterSummary>, StoreError> {
        self.clusters
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                decode::<ClusterRecord>("clusters", &key, &value).map(|r| r.summary)
            })
            .collect()
    }

    fn get_cluster(
        &self,
        cluster_id: &str,
        generation: Option<u64>,
    ) -> Result<Option<(ClusterSummary, ClusterSnapshot)>, StoreError> {
        let Some(record) = self.record(cluster_id)? else {
            return Ok(None);
        };
        let generation = generation.unwrap_or(record.latest_generation);
        let Some(stored) = self.stored_snapshot(cluster_id, generation)? else {
            return Ok(None);
        };
        let summary = if generation == record.latest_generation {
            record.summary
        } else {
            stored.snapshot.summary(stored.stored_at_unix, record.n_generations)
        };
        Ok(Some((summary, stored.snapshot)))
    }

    fn list_generations(&self, cluster_id: &str) -> Result<Vec<GenerationInfo>, StoreError> {
        Ok(self.history(cluster_id)?.into_iter().map(|(info, _)| info).collect())
    }

    fn latest_snapshots(&self) -> Result<Vec<ClusterSnapshot>, StoreError> {
        let mut out = Vec::new();
        for entry in self.clusters.iter() {
            let (key, value) = entry?;
            let record: ClusterRecord = decode("clusters", &key, &value)?;
            let cluster_id = String::from_utf8_lossy(&key).into_owned();
            let stored =
                self.stored_snapshot(&cluster_id, record.latest_generation)?.ok_or_else(|| StoreError::Corrupt {
                    tree: "snapshots",
                    key: format!("{cluster_id}/{}", record.latest_generation),
                    reason: "the cluster record names a generation that is not stored".into(),
                })?;
            out.push(stored.snapshot);
        }
        Ok(out)
    }

    fn history(&self, cluster_id: &str) -> Result<Vec<(GenerationInfo, ClusterSnapshot)>, StoreError> {
        self.snapshots
            .scan_prefix(cluster_prefix(cluster_id))
            .map(|entry| {
                let (key, value) = entry?;
                let stored: StoredSnapshot = decode("snapshots", &key, &value)?;
                let info = GenerationInfo {
                    generation: stored.snapshot.generation,
                    collected_at_unix: stored.snapshot.collected_at_unix,
                    stored_at_unix: stored.stored_at_unix,
                };
                Ok((info, stored.snapshot))
            })
            .collect()
    }

    fn compact_history(&self, now_unix: i64, keep_all_seconds: i64) -> Result<u64, StoreError> {
        let cutoff = now_unix.saturating_sub(keep_all_seconds);
        let mut removed = 0;
        for entry in self.clusters.iter() {
            let (key, value) = entry?;
            let record: ClusterRecord = decode("clusters", &key, &value)?;
            let cluster_id = String::from_utf8_lossy(&key).into_owned();
            // generation -> (day, stored_at) of the snapshots old enough to thin out
            let mut last_of_day: std::collections::BTreeMap<i64, (i64, u64)> = std::collections::BTreeMap::new();
            let mut old: Vec<(u64, i64)> = Vec::new();
            for (info, _) in self.history(&cluster_id)? {
                if info.stored_at_unix < cutoff && info.generation != record.latest_generation {
                    let day = info.stored_at_unix.div_euclid(86_400);
                    old.push((info.generation, day));
                    let slot = last_of_day.entry(day).or_insert((info.stored_at_unix, info.generation));
                    if (info.stored_at_unix, info.generation) >= *slot {
                        *slot = (info.stored_at_unix, info.generation);
                    }
                }
            }
            let mut batch = sled::Batch::default();
            let mut n_removed_here = 0;
            for (generation, day) in old {
                if last_of_day.get(&day).is_some_and(|(_, kept)| *kept != generation) {
                    batch.remove(snapshot_key(&cluster_id, generation));
                    n_removed_here += 1;
                }
            }
            if n_removed_here > 0 {
                // The record's generation count follows the history it describes.
                let mut record = record;
                record.n_generations = record.n_generations.saturating_sub(n_removed_here);
                record.summary.n_generations = record.n_generations;
                let record_bytes = encode("cluster record", &record)?;
                (&self.clusters, &self.snapshots)
                    .transaction(|(clusters, snapshots)| {
                        snapshots.apply_batch(&batch)?;
                        clusters.insert(cluster_id.as_bytes(), record_bytes.as_slice())?;
                        Ok::<(), ConflictableTransactionError<StoreError>>(())
                    })
                    .map_err(|e| match e {
                        TransactionError::Abort(e) => e,
                        TransactionError::Storage(e) => StoreError::Sled(e),
                    })?;
                removed += n_removed_here;
            }
        }
        if removed > 0 {
            self.db.flush()?;
        }
        Ok(removed)
    }

    fn put_plan(&self, plan: &Plan) -> Result<(), StoreError> {
        self.plans.insert(plan.id.as_bytes(), encode("plan", plan)?)?;
        self.db.flush()?;
        Ok(())
    }

    fn get_plan(&self, plan_id: &str) -> Result<Option<Plan>, StoreError> {
        self.plans.get(plan_id.as_bytes())?.map(|bytes| decode("plans", plan_id.as_bytes(), &bytes)).transpose()
    }

    fn list_plans(&self) -> Result<Vec<PlanInfo>, StoreError> {
        let mut plans: Vec<PlanInfo> = self
            .plans
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                let plan: Plan = decode("plans", &key, &value)?;
                Ok(PlanInfo { id: plan.id, created_at_unix: plan.created_at_unix, summary: plan.summary })
            })
            .collect::<Result<_, StoreError>>()?;
        plans.sort_by(|a, b| a.created_at_unix.cmp(&b.created_at_unix).then(a.id.cmp(&b.id)));
        Ok(plans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kplan_model::{ClusterFacts, Node, NodeRole, Resources};

    fn snapshot(cluster_id: &str, generation: u64, n_nodes: usize) -> ClusterSnapshot {
        ClusterSnapshot {
            cluster_id: cluster_id.into(),
            generation,
            collected_at_unix: 1_700_000_000 + generation as i64,
            facts: ClusterFacts { security_tier: "prod".into(), ..Default::default() },
            nodes: (0..n_nodes)
                .map(|i| Node {
                    name: format!("node-{i}"),
                    labels: Default::default(),
                    datacenter: "fra".into(),
                    zone: "fra-a".into(),
                    role: NodeRole::Worker,
                    allocatable: Resources::new(4000, 16 << 30, 110),
                    kubelet_version: "v1.29.0".into(),
                    container_runtime: "containerd://1.7.0".into(),
                    architecture: "amd64".into(),
                    unschedulable: false,
                })
                .collect(),
            namespaces: vec![],
        }
    }

    #[test]
    fn generations_grow_replays_are_idempotent_and_stale_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("opens");
        assert_eq!(store.put_snapshot(&snapshot("a", 5, 2), 10).expect("stores"), PutOutcome::Created);
        // same generation, same content, a different collection time: a replay
        let mut replay = snapshot("a", 5, 2);
        replay.collected_at_unix += 99;
        assert_eq!(store.put_snapshot(&replay, 11).expect("replays"), PutOutcome::Replayed);
        assert_eq!(store.list_generations("a").expect("lists").len(), 1);
        // same generation, different content
        assert!(matches!(
            store.put_snapshot(&snapshot("a", 5, 3), 12),
            Err(StoreError::ConflictingReplay { generation: 5, .. })
        ));
        // older generation
        assert!(matches!(
            store.put_snapshot(&snapshot("a", 4, 2), 13),
            Err(StoreError::StaleGeneration { stored: 5, offered: 4, .. })
        ));
        assert_eq!(store.put_snapshot(&snapshot("a", 7, 3), 14).expect("stores"), PutOutcome::Created);
        let generations: Vec<u64> = store.list_generations("a").expect("lists").iter().map(|g| g.generation).collect();
        assert_eq!(generations, vec![5, 7]);
        let clusters = store.list_clusters().expect("lists");
        assert_eq!(clusters.len(), 1);
        assert_eq!((clusters[0].generation, clusters[0].n_nodes, clusters[0].n_generations), (7, 3, 2));
        let (_, old) = store.get_cluster("a", Some(5)).expect("reads").expect("exists");
        assert_eq!(old.nodes.len(), 2);
    }

    #[test]
    fn cluster_ids_that_prefix_each_other_do_not_mix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("opens");
        store.put_snapshot(&snapshot("ab", 1, 1), 1).expect("stores");
        store.put_snapshot(&snapshot("a", 1, 2), 1).expect("stores");
        assert_eq!(store.history("a").expect("history").len(), 1);
        let latest = store.latest_snapshots().expect("reads");
        assert_eq!(latest.iter().map(|s| s.cluster_id.as_str()).collect::<Vec<_>>(), vec!["a", "ab"]);
    }

    #[test]
    fn survives_reopen_and_detects_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = SledStore::open(dir.path()).expect("opens");
            store.put_snapshot(&snapshot("a", 1, 1), 1).expect("stores");
            // write a corrupt value behind the store's back
            let mut bytes = encode("snapshot", &StoredSnapshot { stored_at_unix: 2, snapshot: snapshot("b", 1, 1) })
                .expect("encodes");
            let last = bytes.len() - 2;
            bytes[last] ^= 0x01;
            store.snapshots.insert(snapshot_key("b", 1), bytes).expect("inserts");
            store.db.flush().expect("flushes");
        }
        let err = SledStore::open(dir.path()).expect_err("corruption is detected");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        let store = SledStore::open_unverified(dir.path()).expect("opens unverified");
        assert_eq!(store.list_clusters().expect("lists")[0].cluster_id, "a");
    }

    #[test]
    fn compaction_keeps_one_per_day_after_a_week_and_always_the_newest() {
        const DAY: i64 = 86_400;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("opens");
        let now = 100 * DAY;
        // Four reports a day for 20 days, the last 2 hours before `now`.
        let mut generation = 0;
        for day in 80..100 {
            for hour in [1, 7, 13, 19] {
                generation += 1;
                store.put_snapshot(&snapshot("a", generation, 1), day * DAY + hour * 3600).expect("stores");
            }
        }
        let removed = store.compact_history(now, 7 * DAY).expect("compacts");
        let left = store.list_generations("a").expect("lists");
        // Days 80..=92 are older than a week (13 days): 3 of 4 removed each.
        assert_eq!(removed, 13 * 3);
        assert_eq!(left.len(), 80 - 39);
        assert_eq!(store.list_clusters().expect("lists")[0].n_generations, left.len() as u64);
        let day_92: Vec<i64> = left.iter().filter(|g| g.stored_at_unix / DAY == 92).map(|g| g.stored_at_unix).collect();
        assert_eq!(day_92, vec![92 * DAY + 19 * 3600], "the day's last report is kept");
        assert_eq!(left.last().map(|g| g.generation), Some(generation));
        // Idempotent, and newer generations are still accepted afterwards.
        assert_eq!(store.compact_history(now, 7 * DAY).expect("compacts"), 0);
        assert_eq!(store.put_snapshot(&snapshot("a", generation + 1, 1), now).expect("stores"), PutOutcome::Created);
        // A cluster that stopped reporting long ago keeps its newest snapshot.
        store.put_snapshot(&snapshot("gone", 1, 1), 10).expect("stores");
        store.compact_history(now, 7 * DAY).expect("compacts");
        assert_eq!(store.list_generations("gone").expect("lists").len(), 1);
    }

    #[test]
    fn plans_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("opens");
        let plan = Plan { id: "plan-1".into(), created_at_unix: 5, ..Default::default() };
        store.put_plan(&plan).expect("stores");
        assert_eq!(store.get_plan("plan-1").expect("reads"), Some(plan));
        assert_eq!(store.list_plans().expect("lists").len(), 1);
        assert_eq!(store.get_plan("nope").expect("reads"), None);
    }
}
