//! The backup file format: every record of the store as it is on disk (its
//! envelope, with schema version and checksum, included), each with its own
//! CRC-32, and a trailer with the record count and a CRC-32 of the whole file.
//!
//! ```text
//! header   8 bytes  magic "KPBACKUP"
//!          4 bytes  format version (1), big endian
//!          4 bytes  store schema version, big endian
//! record   1 byte   'R'
//!          1 byte   tree: 0 clusters, 1 snapshots, 2 plans
//!          4 bytes  key length, then the key
//!          4 bytes  value length, then the value (a store envelope)
//!          4 bytes  CRC-32 of the record's bytes from the tree byte to the value's end
//! trailer  1 byte   'E'
//!          8 bytes  number of records, big endian
//!          4 bytes  CRC-32 of every byte of the file before this field
//! ```
//!
//! A reader checks each record's CRC, the record count and the file's CRC, and
//! refuses anything after the trailer: a truncated or altered file is refused.

use std::io::{Read, Write};

use super::envelope::{SCHEMA_VERSION, readable};
use super::sled_store::RECORD_TREES;

const MAGIC: &[u8; 8] = b"KPBACKUP";
/// The backup format this build writes and reads.
pub const BACKUP_FORMAT_VERSION: u32 = 1;
const RECORD_TAG: u8 = b'R';
const END_TAG: u8 = b'E';
/// Longest key accepted when reading (keys are cluster ids, plan ids and a generation).
const MAX_KEY_LEN: u32 = 64 * 1024;
/// Longest value accepted when reading: 1 GiB (a snapshot is at most a message's size, as JSON).
const MAX_VALUE_LEN: u32 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum BackupFormatError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("at byte {offset}: {reason}")]
    Invalid { offset: u64, reason: String },
}

/// One record of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub tree: &'static str,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Writes a backup: header on creation, then records, then [`BackupWriter::finish`].
#[derive(Debug)]
pub struct BackupWriter<W: Write> {
    out: W,
    file_crc: crc32fast::Hasher,
    n_records: u64,
}

impl<W: Write> BackupWriter<W> {
    pub fn new(out: W) -> Result<Self, BackupFormatError> {
        let mut writer = BackupWriter { out, file_crc: crc32fast::Hasher::new(), n_records: 0 };
        writer.put(MAGIC)?;
        writer.put(&BACKUP_FORMAT_VERSION.to_be_bytes())?;
        writer.put(&SCHEMA_VERSION.to_be_bytes())?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), BackupFormatError> {
        self.file_crc.update(bytes);
        self.out.write_all(bytes)?;
        Ok(())
    }

    pub fn record(&mut self, tree: &str, key: &[u8], value: &[u8]) -> Result<(), BackupFormatError> {
        let invalid = |reason: String| BackupFormatError::Invalid { offset: 0, reason };
        let tree_idx = RECORD_TREES
            .iter()
            .position(|name| *name == tree)
            .ok_or_else(|| invalid(format!("unknown tree {tree:?}")))? as u8;
        let key_len = u32::try_from(key.len()).ok().filter(|n| *n <= MAX_KEY_LEN);
        let key_len = key_len.ok_or_else(|| invalid(format!("a key of {} bytes", key.len())))?;
        let value_len = u32::try_from(value.len()).ok().filter(|n| *n <= MAX_VALUE_LEN);
        let value_len = value_len.ok_or_else(|| invalid(format!("a value of {} bytes", value.len())))?;
        let mut record_crc = crc32fast::Hasher::new();
        for part in [&[tree_idx][..], &key_len.to_be_bytes(), key, &value_len.to_be_bytes(), value] {
            record_crc.update(part);
        }
        self.put(&[RECORD_TAG, tree_idx])?;
        self.put(&key_len.to_be_bytes())?;
        self.put(key)?;
        self.put(&value_len.to_be_bytes())?;
        self.put(value)?;
        self.put(&record_crc.finalize().to_be_bytes())?;
        self.n_records += 1;
        Ok(())
    }

    /// Writes the trailer; returns the output and the number of records.
    pub fn finish(mut self) -> Result<(W, u64), BackupFormatError> {
        self.put(&[END_TAG])?;
        self.put(&self.n_records.to_be_bytes())?;
        let crc = self.file_crc.clone().finalize();
        self.out.write_all(&crc.to_be_bytes())?;
        self.out.flush()?;
        Ok((self.out, self.n_records))
    }
}

/// Reads and checks a backup record by record.
#[derive(Debug)]
pub struct BackupReader<R: Read> {
    input: R,
    offset: u64,
    file_crc: crc32fast::Hasher,
    n_records: u64,
    done: bool,
    /// The store schema version the backup was written with.
    pub schema_version: u32,
}

impl<R: Read> BackupReader<R> {
    /// Reads and checks the header.
    pub fn new(input: R) -> Result<Self, BackupFormatError> {
        let mut reader = BackupReader {
            input,
            offset: 0,
            file_crc: crc32fast::Hasher::new(),
            n_records: 0,
            done: false,
            schema_version: 0,
        };
        let mut magic = [0u8; 8];
        reader.take(&mut magic, "the header")?;
        if &magic != MAGIC {
            return Err(reader.invalid(0, "not a kplan backup (bad magic)".into()));
        }
        let format = reader.take_u32("the header")?;
        if format != BACKUP_FORMAT_VERSION {
            return Err(reader.invalid(
                8,
                format!("backup format {format} is not supported (this build reads {BACKUP_FORMAT_VERSION})"),
            ));
        }
        reader.schema_version = reader.take_u32("the header")?;
        if !readable(reader.schema_version) {
            return Err(reader.invalid(
                12,
                format!(
                    "store schema version {} is not supported (this build reads version {SCHEMA_VERSION})",
                    reader.schema_version
                ),
            ));
        }
        Ok(reader)
    }

    fn invalid(&self, offset: u64, reason: String) -> BackupFormatError {
        BackupFormatError::Invalid { offset, reason }
    }

    fn take_unhashed(&mut self, buf: &mut [u8], what: &str) -> Result<(), BackupFormatError> {
        self.input.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                self.invalid(self.offset, format!("the file ends inside {what} (truncated)"))
            }
            _ => BackupFormatError::Io(e),
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn take(&mut self, buf: &mut [u8], what: &str) -> Result<(), BackupFormatError> {
        self.take_unhashed(buf, what)?;
        self.file_crc.update(buf);
        Ok(())
    }

    fn take_u32(&mut self, what: &str) -> Result<u32, BackupFormatError> {
        let mut buf = [0u8; 4];
        self.take(&mut buf, what)?;
        Ok(u32::from_be_bytes(buf))
    }

    fn take_vec(&mut self, len: u32, what: &str) -> Result<Vec<u8>, BackupFormatError> {
        // Read in steps so a damaged length cannot make us allocate more than the file holds.
        let mut out = Vec::with_capacity((len as usize).min(1 << 20));
        let mut left = len as usize;
        let mut chunk = vec![0u8; left.min(1 << 20)];
        while left > 0 {
            let step = left.min(chunk.len());
            self.take(&mut chunk[..step], what)?;
            out.extend_from_slice(&chunk[..step]);
            left -= step;
        }
        Ok(out)
    }

    /// The next record (checked), or `None` after a valid trailer.
    pub fn next_record(&mut self) -> Result<Option<RawRecord>, BackupFormatError> {
        if self.done {
            return Ok(None);
        }
        let start = self.offset;
        let mut tag = [0u8; 1];
        self.take(&mut tag, "a record")?;
        match tag[0] {
            RECORD_TAG => {}
            END_TAG => {
                let mut count = [0u8; 8];
                self.take(&mut count, "the trailer")?;
                let expected_crc = self.file_crc.clone().finalize();
                let mut crc = [0u8; 4];
                self.take_unhashed(&mut crc, "the trailer")?;
                let count = u64::from_be_bytes(count);
                if count != self.n_records {
                    return Err(self.invalid(
                        start,
                        format!("the trailer counts {count} records, the file holds {}", self.n_records),
                    ));
                }
                if u32::from_be_bytes(crc) != expected_crc {
                    return Err(self.invalid(start, "the file's checksum does not match".into()));
                }
                let mut extra = [0u8; 1];
                if self.input.read(&mut extra)? != 0 {
                    return Err(self.invalid(self.offset, "bytes after the trailer".into()));
                }
                self.done = true;
                return Ok(None);
            }
            other => {
                return Err(self.invalid(start, format!("expected a record or the trailer, found byte {other:#04x}")));
            }
        }
        let mut tree_idx = [0u8; 1];
        self.take(&mut tree_idx, "a record")?;
        let tree = *RECORD_TREES
            .get(tree_idx[0] as usize)
            .ok_or_else(|| self.invalid(start, format!("unknown tree {}", tree_idx[0])))?;
        let key_len = self.take_u32("a record")?;
        if key_len > MAX_KEY_LEN {
            return Err(self.invalid(start, format!("a key of {key_len} bytes (at most {MAX_KEY_LEN})")));
        }
        let key = self.take_vec(key_len, "a record's key")?;
        let value_len = self.take_u32("a record")?;
        if value_len > MAX_VALUE_LEN {
            return Err(self.invalid(start, format!("a value of {value_len} bytes (at most {MAX_VALUE_LEN})")));
        }
        let value = self.take_vec(value_len, "a record's value")?;
        let stored_crc = self.take_u32("a record's checksum")?;
        let mut record_crc = crc32fast::Hasher::new();
        for part in [&tree_idx[..], &key_len.to_be_bytes(), &key, &value_len.to_be_bytes(), &value] {
            record_crc.update(part);
        }
        if record_crc.finalize() != stored_crc {
            return Err(self.invalid(
                start,
                format!(
                    "record {} ({tree}/{}) fails its checksum",
                    self.n_records + 1,
                    super::envelope::display_key(&key)
                ),
            ));
        }
        self.n_records += 1;
        Ok(Some(RawRecord { tree, key, value }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut writer = BackupWriter::new(Vec::new()).expect("header");
        writer.record("clusters", b"a", b"value-a").expect("record");
        writer.record("snapshots", b"a\0\0\0\0\0\0\0\0\x01", b"snapshot bytes").expect("record");
        writer.record("plans", b"plan-1", b"").expect("record");
        let (bytes, n) = writer.finish().expect("trailer");
        assert_eq!(n, 3);
        bytes
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<RawRecord>, BackupFormatError> {
        let mut reader = BackupReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(record) = reader.next_record()? {
            out.push(record);
        }
        Ok(out)
    }

    #[test]
    fn round_trips() {
        let records = read_all(&sample()).expect("reads");
        assert_eq!(records.len(), 3);
        assert_eq!(records[0], RawRecord { tree: "clusters", key: b"a".to_vec(), value: b"value-a".to_vec() });
        assert_eq!(records[2].tree, "plans");
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let bytes = sample();
        for idx in 0..bytes.len() {
            for bit in [0x01, 0x80] {
                let mut flipped = bytes.clone();
                flipped[idx] ^= bit;
                assert!(read_all(&flipped).is_err(), "flip {bit:#x} at {idx} undetected");
            }
        }
        for len in 0..bytes.len() {
            let err = read_all(&bytes[..len]).expect_err("truncation is detected");
            assert!(err.to_string().contains("truncated") || len < 16, "{len}: {err}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read_all(&longer).expect_err("extra bytes").to_string().contains("after the trailer"));
    }

    #[test]
    fn a_damaged_length_does_not_allocate_the_claimed_size() {
        let mut bytes = sample();
        // the first record's value length (after magic 8, versions 8, tag, tree, key len 4, key 1)
        let at = 16 + 2 + 4 + 1;
        bytes[at..at + 4].copy_from_slice(&(MAX_VALUE_LEN).to_be_bytes());
        let err = read_all(&bytes).expect_err("refused");
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
