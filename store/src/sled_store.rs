//! [`Store`] on sled 0.34. Longer than 900 lines with its tests: the crash
//! and damage tests sit beside the code they protect.
//!
//! Trees:
//! - `meta`: `schema_version` → u32, `write_seq` → u64 (big endian; see [`super::manifest`])
//! - `clusters`: cluster id → [`ClusterRecord`] (newest generation and its summary)
//! - `snapshots`: cluster id, NUL, generation (u64 big endian) → [`StoredSnapshot`]
//! - `plans`: plan id → [`Plan`]
//! - `plan_watch`: plan id → [`PlanWatch`] (lifecycle and health; a plan without one is `proposed`)
//!
//! A snapshot, its cluster record and the write sequence number are written in
//! one transaction, then the database is flushed and the manifest updated; only
//! then does `put_snapshot` return.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use kplan_model::watch::PlanWatch;
use kplan_model::{ClusterSnapshot, ClusterSummary, Plan};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::envelope::{SCHEMA_VERSION, decode, display_key, encode, readable};
use super::manifest::{self, MANIFEST_FILE};
use super::{GenerationInfo, PlanInfo, PutOutcome, Store, StoreError};

/// What a verified store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreContents {
    pub n_clusters: u64,
    pub n_snapshots: u64,
    pub n_plans: u64,
    /// Plans' lifecycle and health records.
    #[serde(default)]
    pub n_plan_watches: u64,
}

impl StoreContents {
    /// Every value checked.
    pub fn n_records(&self) -> u64 {
        self.n_clusters + self.n_snapshots + self.n_plans + self.n_plan_watches
    }
}

/// The trees that hold records (`meta` holds only the schema version).
/// (A backup names a record's tree by its position here: new trees go last.)
pub(crate) const RECORD_TREES: [&str; 4] = ["clusters", "snapshots", "plans", "plan_watch"];

/// What to do about damaged files, said in every refusal to open.
const RESTORE_HINT: &str = "restore the last backup into an empty directory (kplan-server restore FILE)";

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

/// [`StoredSnapshot`] as it is written: the same JSON, without a copy of the snapshot.
#[derive(Serialize)]
struct StoredSnapshotRef<'a> {
    stored_at_unix: i64,
    snapshot: &'a ClusterSnapshot,
}

#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    meta: sled::Tree,
    clusters: sled::Tree,
    snapshots: sled::Tree,
    plans: sled::Tree,
    plan_watch: sled::Tree,
    dir: PathBuf,
    /// The write sequence number the manifest holds (updated under this lock).
    manifest_seq: Arc<Mutex<u64>>,
    /// Group commit ([`SledStore::durable_through`]): the highest write known
    /// flushed and recorded in the manifest, and whether a flush is running.
    commit: Arc<(Mutex<CommitState>, Condvar)>,
}

#[derive(Debug, Default)]
struct CommitState {
    durable: u64,
    flushing: bool,
    /// Callers waiting for a flush, and flushes made (for the tests).
    waiting: usize,
    flushes: u64,
}

const WRITE_SEQ: &str = "write_seq";

/// How much of the snapshots one open reads while the store is checked at
/// start ([`SledStore::open_with_cache`]).
const VERIFY_SLICE_BYTES: u64 = 32 << 20;

/// How far a check of every value has come.
#[derive(Default)]
struct VerifyProgress {
    contents: StoreContents,
    /// Cluster id → (newest generation, number of generations) seen in `snapshots`.
    seen: BTreeMap<String, (u64, u64)>,
    /// The last snapshot key checked, when the check stopped at the end of a slice.
    next_key: Option<Vec<u8>>,
}

/// Hands heap memory freed since the last call back to the system. glibc keeps
/// what small allocations freed in its arenas (reused by the process, but
/// still counted against a pod's memory limit); after the check at start that
/// is the pages sled read.
#[allow(unsafe_code)]
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only walks glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The page cache of stores opened by the CLI and the tools (sled's default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: u64 = 128 << 20;

fn read_seq(bytes: Option<&[u8]>) -> Result<u64, StoreError> {
    match bytes {
        None => Ok(0),
        Some(bytes) => <[u8; 8]>::try_from(bytes).map(u64::from_be_bytes).map_err(|_| StoreError::Corrupt {
            tree: "meta",
            key: WRITE_SEQ.into(),
            reason: format!("{} bytes where 8 were expected", bytes.len()),
        }),
    }
}

/// Bumps the write sequence number inside a transaction; returns the new number.
fn bump_seq(meta: &TransactionalTree) -> Result<u64, ConflictableTransactionError<StoreError>> {
    let seq = read_seq(meta.get(WRITE_SEQ)?.as_deref()).map_err(ConflictableTransactionError::Abort)? + 1;
    meta.insert(WRITE_SEQ, &seq.to_be_bytes())?;
    Ok(seq)
}

fn transaction_error(err: TransactionError<StoreError>) -> StoreError {
    match err {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
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

/// sled could not take the lock on its files: another process (or, just
/// after a close, this one) holds them.
fn is_lock_error(io: &std::io::Error) -> bool {
    io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock")
}

/// Why sled could not open or read the files, in words an operator can act on.
fn open_error(path: &str, err: StoreError) -> StoreError {
    let reason = match err {
        StoreError::Sled(sled::Error::Io(io)) if is_lock_error(&io) => {
            return StoreError::Locked { path: path.to_string() };
        }
        StoreError::Sled(sled::Error::Io(io)) if io.kind() == std::io::ErrorKind::NotFound => {
            format!("a database file is missing ({io}); {RESTORE_HINT}")
        }
        StoreError::Sled(sled::Error::Io(io)) => format!("reading the database files: {io}"),
        StoreError::Sled(sled::Error::Corruption { at, .. }) => match at {
            Some(at) => format!("the database files are damaged (sled found corrupt data at {at:?}); {RESTORE_HINT}"),
            None => format!("the database files are damaged (sled found corrupt data); {RESTORE_HINT}"),
        },
        StoreError::Sled(sled::Error::Unsupported(why) | sled::Error::ReportableBug(why)) => {
            format!("the database files are damaged or not a kplan store (sled: {why}); {RESTORE_HINT}")
        }
        StoreError::Sled(other) => format!("sled: {other}"),
        other => return other,
    };
    StoreError::Open { path: path.to_string(), reason }
}

/// Runs `f`, turning a panic inside it (sled 0.34 panics on some damaged
/// files instead of returning an error) into [`StoreError::Open`].
///
/// While `f` runs, panics on this thread are not printed by the panic hook:
/// the refusal carries the message instead. Panics on other threads still reach
/// the previous hook.
fn without_panics<T>(path: &str, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    type Hook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;
    static HOOK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = HOOK.lock().unwrap_or_else(PoisonError::into_inner);
    let previous: Arc<Hook> = Arc::new(std::panic::take_hook());
    let this_thread = std::thread::current().id();
    let forward = previous.clone();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != this_thread {
            forward(info);
        }
    }));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(Box::new(move |info| previous(info)));
    result.unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_string());
        let message = message.lines().next().unwrap_or_default().to_string();
        Err(StoreError::Open {
            path: path.to_string(),
            reason: format!("the database files are damaged (sled failed reading them: {message}); {RESTORE_HINT}"),
        })
    })
}

/// Removes sled's interrupted page-cache snapshots (`snap.<lsn>.generating`)
/// from `dir`. sled 0.34 writes a snapshot to `snap.<lsn>.generating`, syncs
/// it and renames it to `snap.<lsn>`; a process killed before the rename
/// leaves the `.generating` file, and the next open reads it as the newest
/// snapshot, finds it short or its checksum wrong, and refuses the whole
/// database as corrupt (spacejam/sled#1527, #1533). Such a file holds
/// nothing of its own: a snapshot only caches what the log holds, and the
/// last complete snapshot and the log are kept, so removing it loses nothing
/// stored.
fn remove_interrupted_snapshots(dir: &Path) -> Result<(), StoreError> {
    let failed = |what: String, err: std::io::Error| StoreError::Open {
        path: dir.display().to_string(),
        reason: format!("{what}: {err}"),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(failed("listing the directory".to_string(), err)),
    };
    for entry in entries {
        let entry = entry.map_err(|err| failed("listing the directory".to_string(), err))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let path = entry.path();
            let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&path)
                .map_err(|err| failed(format!("removing the interrupted sled snapshot {}", path.display()), err))?;
            tracing::warn!(
                file = %path.display(),
                bytes,
                "removed an interrupted sled snapshot (the process stopped while writing it); the log and the last complete snapshot are kept"
            );
        }
    }
    Ok(())
}

impl SledStore {
    /// Opens (or creates) the store in `dir` and verifies its schema version,
    /// every stored value's checksum and the records' consistency. Damaged
    /// files give [`StoreError::Open`] (never a panic), a damaged value
    /// [`StoreError::Corrupt`], another schema [`StoreError::UnsupportedSchema`].
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// [`SledStore::open`] with a page cache of `cache_bytes` (the server's
    /// `store_cache_mib`).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        Self::open_checked_in_slices(dir, cache_bytes, VERIFY_SLICE_BYTES)
    }

    /// [`SledStore::open_with_cache`], reading at most `slice_bytes` of
    /// snapshots per open while it checks them. sled 0.34 keeps every page a
    /// scan has read in memory until the database is closed, whatever its
    /// cache capacity (spacejam/sled#1410): one scan of a store with 150,000
    /// XL snapshots (211 MiB of values) left 188 MiB resident with a 16 MiB
    /// cache. So the snapshots are checked a slice at a time, the database
    /// closed after each slice (freeing what it read), and the freed memory
    /// handed back to the system before the store is opened for use: the
    /// start needs memory for one slice, not for the whole history.
    fn open_checked_in_slices(dir: &Path, cache_bytes: u64, slice_bytes: u64) -> Result<Self, StoreError> {
        let path = dir.display().to_string();
        without_panics(&path, || {
            let mut check = VerifyProgress::default();
            let mut store = Self::open_sled(dir, cache_bytes)?;
            let writes = read_seq(store.meta.get(WRITE_SEQ)?.as_deref())?;
            let mut sliced = false;
            while !store.verify_snapshots(&mut check, slice_bytes)? {
                drop(store);
                sliced = true;
                store = Self::reopen_sled(dir, cache_bytes)?;
                // Another process wrote between two slices (sled's lock is
                // let go while closed): what was counted is out of date.
                if read_seq(store.meta.get(WRITE_SEQ)?.as_deref())? != writes {
                    return Err(StoreError::Locked { path: dir.display().to_string() });
                }
            }
            store.verify_records(check)?;
            // A store that fits in one slice stays open as it is.
            if sliced {
                drop(store);
                release_freed_memory();
                store = Self::reopen_sled(dir, cache_bytes)?;
            }
            Ok(store)
        })
        .map_err(|err| open_error(&path, err))
    }

    /// [`SledStore::open_sled`] just after this process closed the store: sled
    /// lets go of its files a moment after the database is dropped (its
    /// background threads hold them), so the lock may still be held by us.
    /// Unlike [`SledStore::open_sled`] it leaves sled's snapshot files alone:
    /// while the lock is let go, a `.generating` one may be another process's.
    fn reopen_sled(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        Self::open_sled_waiting(dir, cache_bytes, std::time::Duration::from_secs(10))
    }

    /// [`SledStore::open_sled_as_is`], tried again while the files are locked,
    /// for at most `wait`.
    fn open_sled_waiting(dir: &Path, cache_bytes: u64, wait: std::time::Duration) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match Self::open_sled_as_is(dir, cache_bytes) {
                Err(StoreError::Sled(sled::Error::Io(io)))
                    if is_lock_error(&io) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                opened => return opened,
            }
        }
    }

    /// Opens without reading every value (for tools that only write).
    pub fn open_unverified(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.display().to_string();
        without_panics(&path, || Self::open_sled(dir, DEFAULT_CACHE_BYTES)).map_err(|err| open_error(&path, err))
    }

    /// Waits up to a second for the lock: a store this process has just
    /// closed (a tool that opens, writes, closes and opens again) is let go a
    /// moment after the drop. Another process's lock is reported after it.
    fn open_sled(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        remove_interrupted_snapshots(dir)?;
        Self::open_sled_waiting(dir, cache_bytes, std::time::Duration::from_secs(1))
    }

    /// [`SledStore::open_sled`] without removing interrupted snapshot files first.
    fn open_sled_as_is(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir).cache_capacity(cache_bytes).open()?;
        let meta = db.open_tree("meta")?;
        let store = SledStore {
            clusters: db.open_tree("clusters")?,
            snapshots: db.open_tree("snapshots")?,
            plans: db.open_tree("plans")?,
            plan_watch: db.open_tree("plan_watch")?,
            dir: dir.to_path_buf(),
            manifest_seq: Arc::new(Mutex::new(0)),
            commit: Arc::default(),
            meta,
            db,
        };
        // Before anything is written: a store that lost acknowledged writes is left as it is.
        store.check_manifest()?;
        let meta = &store.meta;
        let db = &store.db;
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
                if !readable(found) {
                    return Err(StoreError::UnsupportedSchema { found, supported: SCHEMA_VERSION });
                }
                if found < SCHEMA_VERSION {
                    // Its values stay as they are (still read); new ones are
                    // written in this schema, so an older build must refuse it.
                    meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
                    db.flush()?;
                    let seq = read_seq(meta.get(WRITE_SEQ)?.as_deref())?;
                    store.record_acknowledged(seq)?;
                    tracing::info!(from = found, to = SCHEMA_VERSION, path = %dir.display(), "store schema upgraded");
                }
            }
        }
        Ok(store)
    }

    /// Compares the store's write sequence number with the manifest's (see
    /// [`super::manifest`]); creates the manifest of a new or older store.
    fn check_manifest(&self) -> Result<(), StoreError> {
        let refuse = |reason: String| StoreError::Open { path: self.dir.display().to_string(), reason };
        let stored_seq = read_seq(self.meta.get(WRITE_SEQ)?.as_deref())?;
        match manifest::read(&self.dir).map_err(|why| refuse(format!("{why}; {RESTORE_HINT}")))? {
            Some(manifest) if !readable(manifest.schema_version) => {
                Err(StoreError::UnsupportedSchema { found: manifest.schema_version, supported: SCHEMA_VERSION })
            }
            Some(manifest) if manifest.write_seq > stored_seq => Err(refuse(format!(
                "the database files lost acknowledged writes: they hold writes up to number {stored_seq}, \
                 {MANIFEST_FILE} records {} acknowledged (damaged or truncated files: sled reads a damaged \
                 log as its end); {RESTORE_HINT}",
                manifest.write_seq
            ))),
            Some(_) => {
                *self.manifest_seq.lock().unwrap_or_else(PoisonError::into_inner) = stored_seq;
                Ok(())
            }
            None if stored_seq > 0 => Err(refuse(format!(
                "{MANIFEST_FILE} is missing, the database files record {stored_seq} writes (copy the whole \
                 directory, or restore a backup); {RESTORE_HINT}"
            ))),
            // A new store, or one written before the manifest existed.
            None => self.record_acknowledged(stored_seq),
        }
    }

    /// Returns once write `seq` (committed in memory by the caller) is on
    /// disk and recorded in the manifest. Group commit: one caller at a time
    /// flushes everything committed so far and records the newest write
    /// number; callers whose writes that flush covered return without a flush
    /// of their own, the others wait for the next one. So concurrent writers
    /// share their flushes, and still none returns before its write is durable.
    fn durable_through(&self, seq: u64) -> Result<(), StoreError> {
        let (lock, flushed) = &*self.commit;
        let mut state = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if state.durable >= seq {
                return Ok(());
            }
            if state.flushing {
                state.waiting += 1;
                state = flushed.wait(state).unwrap_or_else(PoisonError::into_inner);
                state.waiting -= 1;
                continue;
            }
            state.flushing = true;
            drop(state);
            // Every write numbered up to `newest` is committed in memory, so
            // the flush below makes it durable.
            // (No early return before `flushing` is cleared below.)
            let result = (|| -> Result<u64, StoreError> {
                let newest = read_seq(self.meta.get(WRITE_SEQ)?.as_deref())?;
                self.db.flush()?;
                self.record_acknowledged(newest)?;
                Ok(newest)
            })();
            state = lock.lock().unwrap_or_else(PoisonError::into_inner);
            state.flushing = false;
            state.flushes += 1;
            flushed.notify_all();
            state.durable = state.durable.max(result?);
        }
    }

    /// Updates the manifest after a flushed write numbered `seq`.
    fn record_acknowledged(&self, seq: u64) -> Result<(), StoreError> {
        let mut manifest_seq = self.manifest_seq.lock().unwrap_or_else(PoisonError::into_inner);
        if seq < *manifest_seq {
            return Ok(());
        }
        manifest::write(&self.dir, seq).map_err(|e| StoreError::Open {
            path: self.dir.display().to_string(),
            reason: format!("writing {MANIFEST_FILE}: {e}"),
        })?;
        *manifest_seq = seq;
        Ok(())
    }

    /// Reads and checks every stored value (header, schema version, checksum,
    /// payload) and that the records agree: every key matches its value, every
    /// cluster record's newest generation and generation count match the stored
    /// snapshots, and no snapshot lacks its cluster record.
    pub fn verify(&self) -> Result<StoreContents, StoreError> {
        let mut check = VerifyProgress::default();
        self.verify_snapshots(&mut check, u64::MAX)?;
        self.verify_records(check)
    }

    /// Checks the snapshots after `check.next_key`, until about `slice_bytes`
    /// of values are read; true when none is left.
    fn verify_snapshots(&self, check: &mut VerifyProgress, slice_bytes: u64) -> Result<bool, StoreError> {
        let from = match check.next_key.take() {
            Some(key) => std::ops::Bound::Excluded(key),
            None => std::ops::Bound::Unbounded,
        };
        let mut read = 0u64;
        for entry in self.snapshots.range::<Vec<u8>, _>((from, std::ops::Bound::Unbounded)) {
            let (key, value) = entry?;
            let stored: StoredSnapshot = decode("snapshots", &key, &value)?;
            let snapshot = &stored.snapshot;
            if key.as_ref() != snapshot_key(&snapshot.cluster_id, snapshot.generation).as_slice() {
                return Err(StoreError::Corrupt {
                    tree: "snapshots",
                    key: super::envelope::display_key(&key),
                    reason: format!(
                        "the key does not match the content ({}/{})",
                        snapshot.cluster_id, snapshot.generation
                    ),
                });
            }
            let slot = check.seen.entry(snapshot.cluster_id.clone()).or_default();
            *slot = (slot.0.max(snapshot.generation), slot.1 + 1);
            check.contents.n_snapshots += 1;
            read += value.len() as u64;
            if read >= slice_bytes {
                check.next_key = Some(key.to_vec());
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The rest of [`SledStore::verify`] once every snapshot is checked: the
    /// cluster records against what the snapshots showed, plans and their records.
    fn verify_records(&self, check: VerifyProgress) -> Result<StoreContents, StoreError> {
        let VerifyProgress { mut contents, mut seen, .. } = check;
        let inconsistent = |tree: &'static str, key: String, reason: String| StoreError::Corrupt { tree, key, reason };
        for entry in self.clusters.iter() {
            let (key, value) = entry?;
            let record: ClusterRecord = decode("clusters", &key, &value)?;
            let cluster_id = String::from_utf8_lossy(&key).into_owned();
            let problem = if record.summary.cluster_id != cluster_id {
                Some(format!("the key does not match the record's cluster {:?}", record.summary.cluster_id))
            } else {
                match seen.remove(&cluster_id) {
                    None => Some("no snapshot of this cluster is stored".to_string()),
                    Some((newest, _)) if newest != record.latest_generation => Some(format!(
                        "the record names generation {} as the newest, the newest stored is {newest}",
                        record.latest_generation
                    )),
                    Some((_, n)) if n != record.n_generations => {
                        Some(format!("the record counts {} generations, {n} are stored", record.n_generations))
                    }
                    Some(_) => None,
                }
            };
            if let Some(reason) = problem {
                return Err(inconsistent("clusters", cluster_id, reason));
            }
            contents.n_clusters += 1;
        }
        if let Some((cluster_id, _)) = seen.into_iter().next() {
            return Err(inconsistent("snapshots", cluster_id, "snapshots stored without a cluster record".into()));
        }
        for entry in self.plans.iter() {
            let (key, value) = entry?;
            let plan: Plan = decode("plans", &key, &value)?;
            if key.as_ref() != plan.id.as_bytes() {
                return Err(inconsistent(
                    "plans",
                    String::from_utf8_lossy(&key).into_owned(),
                    format!("the key does not match the plan id {:?}", plan.id),
                ));
            }
            contents.n_plans += 1;
        }
        for entry in self.plan_watch.iter() {
            let (key, value) = entry?;
            decode::<PlanWatch>("plan_watch", &key, &value)?;
            contents.n_plan_watches += 1;
        }
        Ok(contents)
    }

    fn tree(&self, name: &str) -> Option<&sled::Tree> {
        match name {
            "clusters" => Some(&self.clusters),
            "snapshots" => Some(&self.snapshots),
            "plans" => Some(&self.plans),
            "plan_watch" => Some(&self.plan_watch),
            _ => None,
        }
    }

    /// Every stored record as it is on disk (envelope included): tree, key, value.
    /// For backups: call on a store no one writes to (an exclusive [`SledStore::open`]).
    pub(crate) fn raw_records(
        &self,
    ) -> impl Iterator<Item = Result<(&'static str, sled::IVec, sled::IVec), StoreError>> {
        [
            ("clusters", &self.clusters),
            ("snapshots", &self.snapshots),
            ("plans", &self.plans),
            ("plan_watch", &self.plan_watch),
        ]
        .into_iter()
        .flat_map(|(name, tree)| tree.iter().map(move |entry| Ok(entry.map(|(key, value)| (name, key, value))?)))
    }

    /// Checks one raw record the way [`SledStore::verify`] checks a stored one
    /// (envelope and payload; not the agreement between records).
    pub(crate) fn check_raw_record(tree: &str, key: &[u8], value: &[u8]) -> Result<&'static str, StoreError> {
        match tree {
            "clusters" => decode::<ClusterRecord>("clusters", key, value).map(|_| "clusters"),
            "snapshots" => decode::<StoredSnapshot>("snapshots", key, value).map(|_| "snapshots"),
            "plans" => decode::<Plan>("plans", key, value).map(|_| "plans"),
            "plan_watch" => decode::<PlanWatch>("plan_watch", key, value).map(|_| "plan_watch"),
            other => Err(StoreError::Corrupt {
                tree: "backup",
                key: String::from_utf8_lossy(key).into_owned(),
                reason: format!("unknown tree {:?}", other.chars().take(64).collect::<String>()),
            }),
        }
    }

    /// Writes a raw record (already checked with [`SledStore::check_raw_record`]); not flushed.
    pub(crate) fn insert_raw_record(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let tree = self.tree(tree).ok_or_else(|| StoreError::Corrupt {
            tree: "backup",
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "unknown tree".into(),
        })?;
        tree.insert(key, value)?;
        Ok(())
    }

    /// Counts the raw records written as one write, flushes, and updates the manifest.
    pub(crate) fn finish_raw_records(&self) -> Result<(), StoreError> {
        let seq = self.meta.transaction(bump_seq).map_err(transaction_error)?;
        self.durable_through(seq)
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

    fn encoded_snapshot(&self, cluster_id: &str, generation: u64) -> Result<Option<EncodedSnapshot>, StoreError> {
        let key = snapshot_key(cluster_id, generation);
        Ok(self.snapshots.get(&key)?.map(|bytes| EncodedSnapshot { bytes: bytes.to_vec(), key }))
    }
}

/// A stored snapshot as it is on disk, not yet decoded
/// ([`Store::snapshots_at_encoded`]): decoding (decompression, JSON) is
/// most of the cost of a read, and needs none of the store's locks.
#[derive(Clone)]
pub struct EncodedSnapshot {
    key: Vec<u8>,
    bytes: Vec<u8>,
}

impl EncodedSnapshot {
    pub fn decode(&self) -> Result<ClusterSnapshot, StoreError> {
        decode::<StoredSnapshot>("snapshots", &self.key, &self.bytes).map(|stored| stored.snapshot)
    }
}

impl std::fmt::Debug for EncodedSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncodedSnapshot({}, {} bytes)", display_key(&self.key), self.bytes.len())
    }
}

impl Store for SledStore {
    fn put_snapshot(&self, snapshot: &ClusterSnapshot, now_unix: i64) -> Result<PutOutcome, StoreError> {
        let cluster_id = snapshot.cluster_id.as_str();
        let generation = snapshot.generation;
        let stored = StoredSnapshotRef { stored_at_unix: now_unix, snapshot };
        let snapshot_bytes = encode("snapshot", &stored)?;
        let key = snapshot_key(cluster_id, generation);

        let result = (&self.clusters, &self.snapshots, &self.meta).transaction(|(clusters, snapshots, meta)| {
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
                        Ok((PutOutcome::Replayed, 0))
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
            let seq = bump_seq(meta)?;
            Ok((PutOutcome::Created, seq))
        });
        let (outcome, seq_of_put) = match result {
            Ok(outcome) => outcome,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(StoreError::Sled(e)),
        };
        if outcome == PutOutcome::Created {
            self.durable_through(seq_of_put)?;
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
                self.encoded_snapshot(&cluster_id, record.latest_generation)?.ok_or_else(|| StoreError::Corrupt {
                    tree: "snapshots",
                    key: format!("{cluster_id}/{}", record.latest_generation),
                    reason: "the cluster record names a generation that is not stored".into(),
                })?;
            out.push(stored.decode()?);
        }
        Ok(out)
    }

    fn snapshots_at_encoded(&self, refs: &[kplan_model::InventoryRef]) -> Result<Vec<EncodedSnapshot>, StoreError> {
        let mut out = Vec::with_capacity(refs.len());
        for input in refs {
            out.extend(self.encoded_snapshot(&input.cluster_id, input.generation)?);
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
        let mut last_seq = 0;
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
                last_seq = (&self.clusters, &self.snapshots, &self.meta)
                    .transaction(|(clusters, snapshots, meta)| {
                        snapshots.apply_batch(&batch)?;
                        clusters.insert(cluster_id.as_bytes(), record_bytes.as_slice())?;
                        bump_seq(meta)
                    })
                    .map_err(transaction_error)?;
                removed += n_removed_here;
            }
        }
        if removed > 0 {
            self.durable_through(last_seq)?;
        }
        Ok(removed)
    }

    fn put_plan(&self, plan: &Plan) -> Result<(), StoreError> {
        let plan_bytes = encode("plan", plan)?;
        let seq = (&self.plans, &self.meta)
            .transaction(|(plans, meta)| {
                plans.insert(plan.id.as_bytes(), plan_bytes.as_slice())?;
                bump_seq(meta)
            })
            .map_err(transaction_error)?;
        self.durable_through(seq)
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

    fn get_plan_watch(&self, plan_id: &str) -> Result<Option<PlanWatch>, StoreError> {
        self.plan_watch
            .get(plan_id.as_bytes())?
            .map(|bytes| decode("plan_watch", plan_id.as_bytes(), &bytes))
            .transpose()
    }

    fn put_plan_watches(&self, records: &[(String, PlanWatch)]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let encoded = records
            .iter()
            .map(|(id, record)| encode("plan watch", record).map(|bytes| (id.as_bytes(), bytes)))
            .collect::<Result<Vec<_>, _>>()?;
        let seq = (&self.plan_watch, &self.meta)
            .transaction(|(plan_watch, meta)| {
                for (id, bytes) in &encoded {
                    plan_watch.insert(*id, bytes.as_slice())?;
                }
                bump_seq(meta)
            })
            .map_err(transaction_error)?;
        self.durable_through(seq)
    }

    fn list_plan_watches(&self) -> Result<Vec<(String, PlanWatch)>, StoreError> {
        self.plan_watch
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                let record: PlanWatch = decode("plan_watch", &key, &value)?;
                Ok((String::from_utf8_lossy(&key).into_owned(), record))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn snapshot(cluster_id: &str, generation: u64, n_nodes: usize) -> ClusterSnapshot {
        let nodes = (0..n_nodes).map(|i| kplan_model::test_support::worker(&format!("node-{i}"))).collect();
        kplan_model::test_support::snapshot(cluster_id, generation, 1_700_000_000 + generation as i64, nodes)
    }

    #[test]
    fn a_store_of_schema_1_is_read_and_upgraded_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seq = {
            let store = SledStore::open(dir.path()).expect("opens");
            store.put_snapshot(&snapshot("a", 5, 40), 10).expect("stores");
            // Every value rewritten as a schema 1 build wrote it: the JSON after the header.
            for (is_record, tree) in [(true, &store.clusters), (false, &store.snapshots)] {
                for entry in tree.iter() {
                    let (key, value) = entry.expect("reads");
                    let json = match is_record {
                        true => serde_json::to_vec(&decode::<ClusterRecord>("t", &key, &value).expect("decodes")),
                        false => serde_json::to_vec(&decode::<StoredSnapshot>("t", &key, &value).expect("decodes")),
                    }
                    .expect("json");
                    let mut v1 = b"KP".to_vec();
                    v1.extend_from_slice(&1u32.to_be_bytes());
                    v1.extend_from_slice(&crc32fast::hash(&json).to_be_bytes());
                    v1.extend_from_slice(&json);
                    tree.insert(key, v1).expect("writes");
                }
            }
            store.meta.insert("schema_version", &1u32.to_be_bytes()).expect("writes");
            store.db.flush().expect("flushes");
            read_seq(store.meta.get(WRITE_SEQ).expect("reads").as_deref()).expect("seq")
        };
        manifest::write_manifest(dir.path(), &manifest::Manifest { schema_version: 1, write_seq: seq })
            .expect("writes");

        let store = SledStore::open(dir.path()).expect("a schema 1 store opens");
        assert_eq!(store.get_cluster("a", None).expect("reads").expect("stored").1, snapshot("a", 5, 40));
        store.put_snapshot(&snapshot("a", 6, 40), 11).expect("stores beside schema 1 values");
        assert_eq!(store.list_generations("a").expect("lists").len(), 2);
        let schema = store.meta.get("schema_version").expect("reads").expect("there");
        assert_eq!(u32::from_be_bytes(schema.as_ref().try_into().expect("4 bytes")), SCHEMA_VERSION);
        assert_eq!(manifest::read(dir.path()).expect("reads").expect("there").schema_version, SCHEMA_VERSION);

        // A store of a schema newer than this build's is refused, not misread.
        store.meta.insert("schema_version", &(SCHEMA_VERSION + 1).to_be_bytes()).expect("writes");
        store.db.flush().expect("flushes");
        drop(store);
        let refused = SledStore::open(dir.path()).expect_err("refused");
        assert!(
            matches!(refused, StoreError::UnsupportedSchema { found, .. } if found == SCHEMA_VERSION + 1),
            "{refused}"
        );
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

    /// Group commit: writers that committed while a flush was running share
    /// the next one (one flush for all of them), and each returns only once
    /// its write is flushed and in the manifest.
    #[test]
    fn concurrent_writes_share_one_flush() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("opens");
        store.put_snapshot(&snapshot("warm", 1, 1), 1).expect("stores");
        let (lock, flushed) = &*store.commit;
        // Hold the flush, as a running leader would.
        let before = {
            let mut state = lock.lock().unwrap();
            state.flushing = true;
            state.flushes
        };
        let writers = 8;
        std::thread::scope(|scope| {
            for w in 0..writers {
                let store = &store;
                scope.spawn(move || store.put_snapshot(&snapshot(&format!("c{w}"), 1, 1), 2).expect("stores"));
            }
            // Every writer has committed and waits for a flush.
            while lock.lock().unwrap().waiting < writers {
                std::thread::yield_now();
            }
            let mut state = lock.lock().unwrap();
            state.flushing = false;
            flushed.notify_all();
        });
        let state = lock.lock().unwrap();
        assert_eq!(state.flushes - before, 1, "one flush for {writers} writers");
        let newest = read_seq(store.meta.get(WRITE_SEQ).unwrap().as_deref()).unwrap();
        assert_eq!(state.durable, newest);
        assert_eq!(*store.manifest_seq.lock().unwrap(), newest, "the manifest records every write");
        drop(state);
        drop(store);
        let reopened = SledStore::open(dir.path()).expect("reopens");
        assert_eq!(reopened.list_clusters().expect("lists").len(), writers + 1);
    }

    /// A process killed while sled wrote a page-cache snapshot leaves
    /// `snap.<lsn>.generating`; sled alone then refuses the whole database
    /// as corrupt. The store opens it, with every acknowledged write.
    #[test]
    fn an_interrupted_sled_snapshot_does_not_make_the_store_unopenable() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = SledStore::open(dir.path()).expect("opens");
            store.put_snapshot(&snapshot("a", 1, 3), 1).expect("stores");
        }
        // What sled leaves when killed between writing and renaming a snapshot.
        std::fs::write(dir.path().join("snap.FFFFFFFFFFFFFFF0.generating"), b"partial").expect("writes");
        let sled_alone = sled::Config::new().path(dir.path()).open();
        assert!(matches!(sled_alone, Err(sled::Error::Corruption { .. })), "sled 0.34 refuses it: {sled_alone:?}");
        drop(sled_alone);
        let store = SledStore::open(dir.path()).expect("the store opens");
        let (_, stored) = store.get_cluster("a", None).expect("reads").expect("kept");
        assert_eq!(stored.nodes.len(), 3);
        assert!(!dir.path().join("snap.FFFFFFFFFFFFFFF0.generating").exists());
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

    /// The check at start reads the snapshots a slice per open: what it
    /// finds does not depend on where the slices end.
    #[test]
    fn the_check_at_start_in_slices_counts_everything_and_finds_damage_in_any_slice() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = SledStore::open(dir.path()).expect("opens");
            for cluster in ["a", "b", "c"] {
                for generation in 1..=4 {
                    store.put_snapshot(&snapshot(cluster, generation, 1), 1).expect("stores");
                }
            }
        }
        let whole = SledStore::open(dir.path()).expect("opens").verify().expect("verifies");
        assert_eq!((whole.n_clusters, whole.n_snapshots), (3, 12));
        // Resumed after every value: each counted once.
        let store = SledStore::open(dir.path()).expect("opens");
        let (mut check, mut slices) = (VerifyProgress::default(), 1);
        while !store.verify_snapshots(&mut check, 1).expect("verifies") {
            slices += 1;
        }
        assert_eq!(slices, 13, "twelve values, and an empty slice after the last");
        let sliced = store.verify_records(check).expect("verifies");
        assert_eq!((sliced.n_clusters, sliced.n_snapshots), (3, 12));
        drop(store);
        // One value per slice: a reopen after each, and the store opens as before.
        let store = SledStore::open_checked_in_slices(dir.path(), DEFAULT_CACHE_BYTES, 1).expect("opens");
        assert_eq!(store.list_generations("c").expect("lists").len(), 4);

        // A record that disagrees with snapshots counted over several slices.
        let mut record: ClusterRecord =
            decode("clusters", b"b", &store.clusters.get("b").expect("reads").expect("stored")).expect("decodes");
        record.n_generations = 3;
        store.clusters.insert("b", encode("cluster", &record).expect("encodes")).expect("inserts");
        store.db.flush().expect("flushes");
        drop(store);
        let err = SledStore::open_checked_in_slices(dir.path(), DEFAULT_CACHE_BYTES, 1).expect_err("refused");
        assert!(err.to_string().contains("the record counts 3 generations, 4 are stored"), "{err}");

        // A damaged value in a slice in the middle.
        let store = SledStore::open_unverified(dir.path()).expect("opens");
        record.n_generations = 4;
        store.clusters.insert("b", encode("cluster", &record).expect("encodes")).expect("inserts");
        let mut bytes =
            encode("snapshot", &StoredSnapshot { stored_at_unix: 2, snapshot: snapshot("b", 2, 1) }).expect("encodes");
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        store.snapshots.insert(snapshot_key("b", 2), bytes).expect("inserts");
        store.db.flush().expect("flushes");
        drop(store);
        let err = SledStore::open_checked_in_slices(dir.path(), DEFAULT_CACHE_BYTES, 1).expect_err("refused");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(err.to_string().contains("b/2"), "the damaged value is named: {err}");
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

    /// A plan's lifecycle is stored beside it, several plans in one write, and
    /// is there after a reopen; a plan without a record has none (proposed).
    #[test]
    fn plan_watches_round_trip_and_survive_reopen() {
        use kplan_model::watch::{PlanLifecycle, PlanState};
        let dir = tempfile::tempdir().expect("tempdir");
        let approved = PlanWatch {
            lifecycle: PlanLifecycle {
                state: PlanState::Approved,
                changed_by: "planner:alice".into(),
                changed_at_unix: 7,
                superseded_by: String::new(),
            },
            ..Default::default()
        };
        let superseded = PlanWatch {
            lifecycle: PlanLifecycle {
                state: PlanState::Superseded,
                changed_by: "planner:alice".into(),
                changed_at_unix: 7,
                superseded_by: "plan-2".into(),
            },
            ..Default::default()
        };
        {
            let store = SledStore::open(dir.path()).expect("opens");
            assert_eq!(store.get_plan_watch("plan-2").expect("reads"), None);
            store
                .put_plan_watches(&[("plan-2".into(), approved.clone()), ("plan-1".into(), superseded.clone())])
                .expect("stores");
        }
        let store = SledStore::open(dir.path()).expect("reopens");
        assert_eq!(store.get_plan_watch("plan-2").expect("reads"), Some(approved));
        assert_eq!(store.list_plan_watches().expect("lists").len(), 2);
        assert_eq!(store.verify().expect("verifies").n_plan_watches, 2);
    }
}

/// Damaged files: every flipped byte and truncation in every file of a store
/// is refused at open with a clear reason, or (where sled ignores the byte) the
/// store opens with every acknowledged snapshot intact. Never a panic.
#[cfg(test)]
mod corruption_tests {
    use super::*;

    fn fill(dir: &Path) -> Vec<(GenerationInfo, ClusterSnapshot)> {
        let store = SledStore::open(dir).expect("opens");
        for generation in 1..=20u64 {
            // generation 10 is large enough for sled to keep it in blobs/, even
            // compressed: its nodes carry labels that do not compress
            let n_nodes = if generation == 10 { 2500 } else { 3 };
            let mut snapshot = super::tests::snapshot("a", generation, n_nodes);
            snapshot.nodes[0].name = format!("n{generation}");
            let mut state = 0x9e37_79b9_7f4a_7c15_u64;
            for node in snapshot.nodes.iter_mut().filter(|_| generation == 10) {
                // xorshift: the same labels every run
                for key in ["serial", "asset", "rack", "lease"] {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    node.labels
                        .insert(format!("example.com/{key}"), format!("{state:016x}{:016x}", state.rotate_left(29)));
                }
            }
            store.put_snapshot(&snapshot, generation as i64).expect("stores");
        }
        store.history("a").expect("reads")
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).expect("lists") {
            let path = entry.expect("entry").path();
            if path.is_dir() { out.extend(files(&path)) } else { out.push(path) }
        }
        out.sort();
        out
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("lists") {
            let path = entry.expect("entry").path();
            let target = to.join(path.file_name().expect("name"));
            if path.is_dir() {
                copy_dir(&path, &target);
            } else {
                std::fs::copy(&path, &target).expect("copies");
            }
        }
    }

    #[test]
    fn flipped_bytes_and_truncations_are_refused_or_harmless() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let original = fill(&data);
        let files = files(&data);
        let names: Vec<String> =
            files.iter().map(|f| f.strip_prefix(&data).expect("inside").display().to_string()).collect();
        assert!(names.iter().any(|n| n.starts_with("blobs/")), "a blob was written: {names:?}");
        let (mut n_refused, mut n_intact) = (0, 0);
        for (file, name) in files.iter().zip(&names) {
            let bytes = std::fs::read(file).expect("reads");
            let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
            for idx in (0..bytes.len()).step_by((bytes.len() / 60).max(1)) {
                let mut flipped = bytes.clone();
                flipped[idx] ^= 0x10;
                cases.push((format!("{name}: byte {idx} flipped"), flipped));
            }
            for len in [0, bytes.len() / 3, bytes.len() / 2, bytes.len().saturating_sub(1)] {
                cases.push((format!("{name}: truncated to {len}"), bytes[..len].to_vec()));
            }
            for (case_idx, (what, content)) in cases.into_iter().enumerate() {
                let copy = dir.path().join(format!("case-{case_idx}"));
                copy_dir(&data, &copy);
                std::fs::write(copy.join(file.strip_prefix(&data).expect("inside")), &content).expect("writes");
                let opened = std::panic::catch_unwind(|| SledStore::open(&copy))
                    .unwrap_or_else(|_| panic!("{what}: opening panicked"));
                match opened {
                    Ok(store) => {
                        assert_eq!(store.history("a").expect("reads"), original, "{what}: opened with other data");
                        n_intact += 1;
                    }
                    Err(err) => {
                        let message = err.to_string();
                        assert!(
                            message.contains("cannot be opened") || message.contains("corrupt record"),
                            "{what}: unclear refusal: {message}"
                        );
                        assert!(!message.contains('\n'), "{what}: one line: {message}");
                        n_refused += 1;
                    }
                }
                std::fs::remove_dir_all(&copy).expect("cleans up");
            }
        }
        assert!(n_refused > 10 * n_intact, "refused {n_refused}, intact {n_intact}");
    }

    #[test]
    fn a_lost_database_or_manifest_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        fill(&data);
        let copy = dir.path().join("no-db");
        copy_dir(&data, &copy);
        std::fs::remove_file(copy.join("db")).expect("removes");
        let err = SledStore::open(&copy).expect_err("refused");
        assert!(err.to_string().contains("lost acknowledged writes"), "{err}");
        assert!(err.to_string().contains("they hold writes up to number 0, kplan-manifest records 20"), "{err}");
        let copy = dir.path().join("no-manifest");
        copy_dir(&data, &copy);
        std::fs::remove_file(copy.join(MANIFEST_FILE)).expect("removes");
        let err = SledStore::open(&copy).expect_err("refused");
        assert!(err.to_string().contains("kplan-manifest is missing"), "{err}");
        // the refusals changed nothing: the original still opens, intact
        assert_eq!(SledStore::open(&data).expect("opens").history("a").expect("reads").len(), 20);
    }

    #[test]
    fn a_panic_inside_open_becomes_an_error() {
        let err = without_panics("/somewhere", || -> Result<(), StoreError> { panic!("index out of bounds") })
            .expect_err("caught");
        assert_eq!(
            err.to_string(),
            format!(
                "store at /somewhere cannot be opened: the database files are damaged (sled failed reading them: \
                 index out of bounds); {RESTORE_HINT}"
            )
        );
        // the hook is restored and still works for later panics
        assert!(std::panic::catch_unwind(|| panic!("later")).is_err());
    }
}
