//! Operator commands on a store no server is running on: [`backup`] and
//! [`restore`] (`kplan-server backup --out FILE`, `kplan-server restore FILE`).
//!
//! A backup opens the store exclusively (sled's lock: a running server makes it
//! refuse with a clear message) and verifies it whole, so what it exports is
//! consistent; it writes the file next to its destination and renames it into
//! place only once complete and synced. The format (`store::backup`) carries a
//! CRC-32 per record and one over the whole file.
//!
//! A restore reads the backup twice: first to check every record (checksums,
//! envelopes, payloads) without writing anything, then to write the records into
//! a fresh store beside the target, which is verified whole (as the server
//! verifies at start) before it is renamed into place. A non-empty target is
//! refused unless asked to replace it; even then it is moved aside, never deleted.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use crate::backup::{BackupFormatError, BackupReader, BackupWriter};
use crate::{SledStore, StoreContents, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("no store at {}: the directory does not exist or holds no sled database", path.display())]
    NoStore { path: PathBuf },
    #[error("backup {}: {source}", path.display())]
    Format { path: PathBuf, source: BackupFormatError },
    #[error("backup {}: record {record_idx}: {source}", path.display())]
    Record { path: PathBuf, record_idx: u64, source: StoreError },
    #[error("backup {}: the restored store does not verify: {source}", path.display())]
    Inconsistent { path: PathBuf, source: StoreError },
    #[error(
        "{} is not empty: restore into an empty or new directory, or ask to replace it (its contents are moved aside)",
        path.display()
    )]
    TargetNotEmpty { path: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`backup`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub path: PathBuf,
    pub contents: StoreContents,
    pub bytes: u64,
}

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSummary {
    pub data_dir: PathBuf,
    pub contents: StoreContents,
    /// Where the target's previous contents were moved, when it was replaced.
    pub moved_aside: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Replace a non-empty target directory; its contents are moved to
    /// `<data_dir>.before-restore-<unix time>` beside it.
    pub replace_existing: bool,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> AdminError {
    let path = path.to_path_buf();
    move |source| AdminError::Io { what, path, source }
}

/// A sibling path of `path`: `<parent>/<prefix><name><suffix>`.
fn sibling(path: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "kplan".to_string());
    path.with_file_name(format!("{prefix}{name}{suffix}"))
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), AdminError> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    File::open(dir).and_then(|d| d.sync_all()).map_err(io("syncing directory", dir))
}

fn holds_store(dir: &Path) -> bool {
    dir.join("db").is_file() && dir.join("conf").is_file()
}

/// Writes a consistent, checksummed export of the store in `data_dir` to `out`
/// (through a temporary file beside it, renamed into place once synced).
pub fn backup(data_dir: &Path, out: &Path) -> Result<BackupSummary, AdminError> {
    if !holds_store(data_dir) {
        return Err(AdminError::NoStore { path: data_dir.to_path_buf() });
    }
    let store = SledStore::open(data_dir)?;
    let contents = store.verify()?;
    let temp = sibling(out, ".", &format!(".tmp-{}", unique_suffix()));
    let written = (|| {
        let file = File::create_new(&temp).map_err(io("creating", &temp))?;
        let format = |source| AdminError::Format { path: temp.clone(), source };
        let mut writer = BackupWriter::new(BufWriter::new(file)).map_err(format)?;
        for record in store.raw_records() {
            let (tree, key, value) = record?;
            writer.record(tree, &key, &value).map_err(format)?;
        }
        let (buffered, _) = writer.finish().map_err(format)?;
        let file = buffered.into_inner().map_err(|e| io("writing", &temp)(e.into_error()))?;
        file.sync_all().map_err(io("syncing", &temp))?;
        let bytes = file.metadata().map_err(io("reading", &temp))?.len();
        fs::rename(&temp, out).map_err(io("renaming the backup to", out))?;
        sync_dir(out.parent().unwrap_or(Path::new(".")))?;
        Ok(bytes)
    })();
    match written {
        Ok(bytes) => Ok(BackupSummary { path: out.to_path_buf(), contents, bytes }),
        Err(err) => {
            let _ = fs::remove_file(&temp);
            Err(err)
        }
    }
}

/// Reads every record of the backup at `file`, checked; calls `each` with each.
fn read_backup(
    file: &Path,
    mut each: impl FnMut(&str, &[u8], &[u8]) -> Result<(), AdminError>,
) -> Result<u64, AdminError> {
    let input = File::open(file).map_err(io("opening backup", file))?;
    let format = |source| AdminError::Format { path: file.to_path_buf(), source };
    let mut reader = BackupReader::new(BufReader::new(input)).map_err(format)?;
    let mut n_records = 0;
    while let Some(record) = reader.next_record().map_err(format)? {
        n_records += 1;
        SledStore::check_raw_record(record.tree, &record.key, &record.value).map_err(|source| AdminError::Record {
            path: file.to_path_buf(),
            record_idx: n_records,
            source,
        })?;
        each(record.tree, &record.key, &record.value)?;
    }
    Ok(n_records)
}

/// Refuses a target a running server (or another tool) holds: sled locks its `db` file.
fn check_not_in_use(data_dir: &Path) -> Result<(), AdminError> {
    let db = data_dir.join("db");
    let Ok(file) = File::open(&db) else {
        return Ok(());
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(())
        }
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked { path: data_dir.display().to_string() }.into()),
        Err(fs::TryLockError::Error(source)) => Err(io("locking", &db)(source)),
    }
}

/// Restores the backup at `file` into `data_dir` (see the module docs).
pub fn restore(file: &Path, data_dir: &Path, options: RestoreOptions) -> Result<RestoreSummary, AdminError> {
    // 1. Check every record before anything is written.
    read_backup(file, |_, _, _| Ok(()))?;

    // 2. The target: new, empty, or (when asked) replaced.
    let target_is_empty = match fs::read_dir(data_dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(io("reading", data_dir)(e)),
    };
    if !target_is_empty {
        if !options.replace_existing {
            return Err(AdminError::TargetNotEmpty { path: data_dir.to_path_buf() });
        }
        check_not_in_use(data_dir)?;
    }
    if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io("creating", parent))?;
    }

    // 3. Write a fresh store beside the target and verify it whole.
    let staging = sibling(data_dir, ".", &format!(".restore-{}", unique_suffix()));
    let staged = (|| {
        let store = SledStore::open_unverified(&staging)?;
        read_backup(file, |tree, key, value| Ok(store.insert_raw_record(tree, key, value)?))?;
        store.finish_raw_records()?;
        drop(store);
        let verified = SledStore::open(&staging)
            .map_err(|source| AdminError::Inconsistent { path: file.to_path_buf(), source })?;
        Ok(verified.verify()?)
    })();
    let contents = match staged {
        Ok(contents) => contents,
        Err(err) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(err);
        }
    };

    // 4. Into place: the previous contents moved aside, never deleted.
    let mut moved_aside = None;
    if data_dir.exists() {
        if target_is_empty {
            fs::remove_dir(data_dir).map_err(io("removing the empty directory", data_dir))?;
        } else {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let aside = sibling(data_dir, "", &format!(".before-restore-{now}"));
            fs::rename(data_dir, &aside).map_err(io("moving aside", data_dir))?;
            moved_aside = Some(aside);
        }
    }
    fs::rename(&staging, data_dir).map_err(io("moving the restored store to", data_dir))?;
    sync_dir(data_dir.parent().unwrap_or(Path::new(".")))?;
    Ok(RestoreSummary { data_dir: data_dir.to_path_buf(), contents, moved_aside })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use kplan_model::{ClusterSnapshot, Plan};

    fn snapshot(cluster_id: &str, generation: u64) -> ClusterSnapshot {
        kplan_model::test_support::snapshot(
            cluster_id,
            generation,
            1_700_000_000,
            vec![kplan_model::test_support::worker(&format!("node-{generation}"))],
        )
    }

    fn filled_store(dir: &Path) {
        let store = SledStore::open(dir).expect("opens");
        for generation in 1..=3 {
            store.put_snapshot(&snapshot("fra-1", generation), 10 + generation as i64).expect("stores");
        }
        store.put_snapshot(&snapshot("lon-1", 9), 20).expect("stores");
        store.put_plan(&Plan { id: "plan-1".into(), created_at_unix: 5, ..Default::default() }).expect("stores");
        let approved = kplan_model::watch::PlanWatch {
            lifecycle: kplan_model::watch::PlanLifecycle {
                state: kplan_model::watch::PlanState::Approved,
                changed_by: "planner:alice".into(),
                changed_at_unix: 6,
                superseded_by: String::new(),
            },
            ..Default::default()
        };
        store.put_plan_watches(&[("plan-1".into(), approved)]).expect("stores");
    }

    #[test]
    fn backup_then_restore_gives_the_same_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        filled_store(&data);
        let out = dir.path().join("kplan.backup");
        let summary = backup(&data, &out).expect("backs up");
        assert_eq!(summary.contents, StoreContents { n_clusters: 2, n_snapshots: 4, n_plans: 1, n_plan_watches: 1 });
        assert_eq!(summary.bytes, fs::metadata(&out).expect("exists").len());
        // no temporary file is left beside it
        assert_eq!(fs::read_dir(dir.path()).expect("lists").count(), 2);

        let restored = dir.path().join("restored");
        let summary = restore(&out, &restored, RestoreOptions::default()).expect("restores");
        assert_eq!(summary.contents.n_snapshots, 4);
        assert_eq!(summary.moved_aside, None);
        let (a, b) = (SledStore::open(&data).expect("opens"), SledStore::open(&restored).expect("opens"));
        assert_eq!(a.list_clusters().expect("lists"), b.list_clusters().expect("lists"));
        assert_eq!(a.history("fra-1").expect("reads"), b.history("fra-1").expect("reads"));
        assert_eq!(a.get_plan("plan-1").expect("reads"), b.get_plan("plan-1").expect("reads"));
        let approval = b.get_plan_watch("plan-1").expect("reads").expect("the approval is restored");
        assert_eq!(approval.lifecycle.changed_by, "planner:alice");
        // the restored store takes new reports
        b.put_snapshot(&snapshot("fra-1", 4), 30).expect("stores");
    }

    #[test]
    fn a_running_store_and_a_missing_store_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        filled_store(&data);
        let open = SledStore::open(&data).expect("opens");
        let err = backup(&data, &dir.path().join("b")).expect_err("locked");
        assert!(err.to_string().contains("locked by another process"), "{err}");
        drop(open);
        let err = backup(&dir.path().join("nothing"), &dir.path().join("b")).expect_err("no store");
        assert!(err.to_string().starts_with("no store at"), "{err}");
    }

    #[test]
    fn restore_refuses_a_non_empty_target_unless_asked_and_keeps_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        filled_store(&data);
        let out = dir.path().join("kplan.backup");
        backup(&data, &out).expect("backs up");
        let err = restore(&out, &data, RestoreOptions::default()).expect_err("not empty");
        assert!(matches!(err, AdminError::TargetNotEmpty { .. }), "{err}");
        // an empty directory is fine
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).expect("mkdir");
        restore(&out, &empty, RestoreOptions::default()).expect("restores into an empty dir");
        // replacing moves the old contents aside
        let summary = restore(&out, &data, RestoreOptions { replace_existing: true }).expect("replaces");
        let aside = summary.moved_aside.expect("moved aside");
        assert!(aside.join("db").is_file());
        assert_eq!(SledStore::open(&data).expect("opens").list_generations("fra-1").expect("lists").len(), 3);
    }

    #[test]
    fn restore_checks_every_record_before_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        filled_store(&data);
        let out = dir.path().join("kplan.backup");
        backup(&data, &out).expect("backs up");
        let bytes = fs::read(&out).expect("reads");
        for (idx, len) in [(40, bytes.len()), (bytes.len() / 2, bytes.len()), (0, bytes.len() - 3)] {
            let mut damaged = bytes[..len].to_vec();
            if len == bytes.len() {
                damaged[idx] ^= 0x20;
            }
            let file = dir.path().join("damaged.backup");
            fs::write(&file, &damaged).expect("writes");
            let target = dir.path().join("target");
            let err = restore(&file, &target, RestoreOptions::default()).expect_err("damaged backup refused");
            assert!(matches!(err, AdminError::Format { .. } | AdminError::Record { .. }), "{err}");
            assert!(!target.exists(), "nothing is written for a damaged backup");
        }
        // nothing but the two files and the data dir: no staging directory left behind
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .expect("lists")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into())
            .collect();
        names.sort();
        assert_eq!(names, ["damaged.backup", "data", "kplan.backup"]);
    }
}
