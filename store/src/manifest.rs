//! The manifest: a small file beside sled's files that records how many writes
//! the store has acknowledged.
//!
//! sled 0.34 treats a damaged log record as the torn end of its log: it opens
//! the store as it was before that record, without an error, silently losing
//! every later write. Each write therefore also bumps a write sequence number in
//! the `meta` tree (in the same transaction as the data), and once the write is
//! flushed and before it is acknowledged the manifest is replaced (written
//! beside, synced, renamed) with that number. At open, a store whose sequence
//! number is behind its manifest's has lost acknowledged writes and is refused.
//!
//! ```text
//! kplan store manifest
//! schema_version 1
//! write_seq 42
//! crc32 89abcdef
//! ```
//! (`crc32` covers the lines before it.)

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::envelope::SCHEMA_VERSION;

/// The manifest's file name inside the data directory.
pub const MANIFEST_FILE: &str = "kplan-manifest";
const TITLE: &str = "kplan store manifest";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub schema_version: u32,
    pub write_seq: u64,
}

pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST_FILE)
}

fn body(manifest: &Manifest) -> String {
    format!("{TITLE}\nschema_version {}\nwrite_seq {}\n", manifest.schema_version, manifest.write_seq)
}

/// Reads the manifest: `Ok(None)` when there is none, `Err(reason)` when it is damaged.
pub(crate) fn read(dir: &Path) -> Result<Option<Manifest>, String> {
    let path = path(dir);
    let text = match fs::read(&path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| format!("{MANIFEST_FILE} is damaged (not text)"))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {MANIFEST_FILE}: {e}")),
    };
    let damaged = |what: &str| format!("{MANIFEST_FILE} is damaged ({what})");
    let (head, crc_line) = text.trim_end_matches('\n').rsplit_once('\n').ok_or_else(|| damaged("too short"))?;
    let head = format!("{head}\n");
    let crc = crc_line
        .strip_prefix("crc32 ")
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or_else(|| damaged("no checksum line"))?;
    if crc32fast::hash(head.as_bytes()) != crc {
        return Err(damaged("checksum mismatch"));
    }
    let mut lines = head.lines();
    if lines.next() != Some(TITLE) {
        return Err(damaged("no title line"));
    }
    let mut field = |name: &str| {
        lines
            .next()
            .and_then(|line| line.strip_prefix(name))
            .and_then(|value| value.strip_prefix(' '))
            .map(str::to_string)
            .ok_or_else(|| damaged(&format!("no {name} line")))
    };
    let schema_version = field("schema_version")?.parse().map_err(|_| damaged("bad schema_version"))?;
    let write_seq = field("write_seq")?.parse().map_err(|_| damaged("bad write_seq"))?;
    Ok(Some(Manifest { schema_version, write_seq }))
}

/// Replaces the manifest durably: a temporary file beside it, synced, renamed, the directory synced.
pub(crate) fn write(dir: &Path, write_seq: u64) -> std::io::Result<()> {
    write_manifest(dir, &Manifest { schema_version: SCHEMA_VERSION, write_seq })
}

/// [`write`] of any manifest (the tests write older schemas' with it).
pub(crate) fn write_manifest(dir: &Path, manifest: &Manifest) -> std::io::Result<()> {
    let body = body(manifest);
    let text = format!("{body}crc32 {:08x}\n", crc32fast::hash(body.as_bytes()));
    let temp = dir.join(format!("{MANIFEST_FILE}.tmp"));
    let mut file = File::create(&temp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, path(dir))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()), Ok(None));
        write(dir.path(), 42).expect("writes");
        assert_eq!(read(dir.path()), Ok(Some(Manifest { schema_version: SCHEMA_VERSION, write_seq: 42 })));
        let bytes = fs::read(path(dir.path())).expect("reads");
        for idx in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[idx] ^= 0x04;
            fs::write(path(dir.path()), &damaged).expect("writes");
            let read = read(dir.path());
            assert!(
                read.is_err() || read == Ok(Some(Manifest { schema_version: 1, write_seq: 42 })),
                "{idx}: {read:?}"
            );
        }
        fs::write(path(dir.path()), &bytes[..bytes.len() / 2]).expect("writes");
        assert!(read(dir.path()).expect_err("truncated").contains("damaged"));
    }
}
