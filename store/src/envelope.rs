//! The on-disk form of every stored value: a small header with a schema
//! version and a CRC-32 of the payload, then the payload.
//!
//! ```text
//! offset 0  2 bytes  magic "KP"
//! offset 2  4 bytes  schema version, big endian
//! offset 6  4 bytes  CRC-32 (IEEE) of the payload as stored, big endian
//! offset 10 ...      payload: version 2, one zstd frame of the JSON
//!                    (level 1, with its content size); version 1, the JSON
//! ```
//!
//! Version 2 compresses because ingest spent its time moving bytes: at 64
//! concurrent reports, a fifth of the server's CPU was the kernel copying
//! sled's log writes, and another third malloc and free of 100 KB values
//! (`perf`, BENCHMARKS.md "Ingest"). A 200-node snapshot is about 16 times
//! smaller as zstd level 1, which compresses at about 2 GB/s. Values of
//! version 1 are still read, so a store written before keeps working (its
//! schema number is raised when it is opened, so an older build refuses it
//! instead of misreading it).

use std::cell::RefCell;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// The schema this build writes.
pub const SCHEMA_VERSION: u32 = 2;
/// The oldest schema this build reads: version 1 payloads are plain JSON.
pub const OLDEST_READABLE_SCHEMA: u32 = 1;

const MAGIC: &[u8; 2] = b"KP";
const HEADER_LEN: usize = 10;
/// zstd's fastest level: the payloads are repetitive JSON, level 1 already
/// takes them to a sixteenth and higher levels cost CPU on the ingest path.
const ZSTD_LEVEL: i32 = 1;
/// The largest decompressed payload accepted (a snapshot is at most one
/// gRPC message, far smaller): a damaged size field cannot make us allocate more.
const MAX_PAYLOAD_LEN: u64 = 1 << 30;

/// Whether this build reads values and stores of schema `version`.
pub(crate) fn readable(version: u32) -> bool {
    (OLDEST_READABLE_SCHEMA..=SCHEMA_VERSION).contains(&version)
}

thread_local! {
    /// Each thread's JSON buffer and zstd context, reused: a fresh 100 KB
    /// buffer and compression context per value was malloc's work.
    static SCRATCH: RefCell<(Vec<u8>, Option<zstd::bulk::Compressor<'static>>)> = const { RefCell::new((Vec::new(), None)) };
    /// Each thread's zstd decompression context, reused.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// One zstd frame of at most `capacity` bytes, decompressed with the thread's context.
fn decompress(payload: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let decompressor = match &mut *cell {
            Some(decompressor) => decompressor,
            None => cell.insert(zstd::bulk::Decompressor::new()?),
        };
        decompressor.decompress(payload, capacity)
    })
}

pub(crate) fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    SCRATCH.with(|scratch| {
        let (json, compressor) = &mut *scratch.borrow_mut();
        json.clear();
        serde_json::to_writer(&mut *json, value).map_err(|source| StoreError::Encode { what, source })?;
        let compressor = match compressor {
            Some(compressor) => compressor,
            None => compressor
                .insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|e| StoreError::Compress { what, source: e })?),
        };
        let mut out = vec![0u8; HEADER_LEN + zstd::zstd_safe::compress_bound(json.len())];
        let n = compressor
            .compress_to_buffer(json.as_slice(), &mut out[HEADER_LEN..])
            .map_err(|e| StoreError::Compress { what, source: e })?;
        out.truncate(HEADER_LEN + n);
        let crc = crc32fast::hash(&out[HEADER_LEN..]);
        out[..2].copy_from_slice(MAGIC);
        out[2..6].copy_from_slice(&SCHEMA_VERSION.to_be_bytes());
        out[6..10].copy_from_slice(&crc.to_be_bytes());
        // A buffer grown for one huge value is not kept for the thread's life.
        if json.capacity() > 4 << 20 {
            *json = Vec::new();
        }
        Ok(out)
    })
}

/// A key as an operator reads it: `cluster/generation` for snapshot keys
/// (cluster id, NUL, generation as 8 bytes big endian), else the text.
pub(crate) fn display_key(key: &[u8]) -> String {
    match key.iter().position(|&b| b == 0) {
        Some(nul) if key.len() == nul + 9 => {
            let generation = u64::from_be_bytes(key[nul + 1..].try_into().unwrap_or_default());
            format!("{}/{generation}", String::from_utf8_lossy(&key[..nul]))
        }
        _ => String::from_utf8_lossy(key).replace('\0', "/"),
    }
}

pub(crate) fn decode<T: DeserializeOwned>(tree: &'static str, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { tree, key: display_key(key), reason };
    if bytes.len() < HEADER_LEN || &bytes[..2] != MAGIC {
        return Err(corrupt("missing header".to_string()));
    }
    let version = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    if !readable(version) {
        return Err(StoreError::UnsupportedSchema { found: version, supported: SCHEMA_VERSION });
    }
    let expected = u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
    let payload = &bytes[HEADER_LEN..];
    let actual = crc32fast::hash(payload);
    if actual != expected {
        return Err(corrupt(format!("checksum mismatch (stored {expected:08x}, computed {actual:08x})")));
    }
    if version == 1 {
        return serde_json::from_slice(payload).map_err(|e| corrupt(format!("undecodable payload: {e}")));
    }
    let json = match zstd::zstd_safe::get_frame_content_size(payload) {
        Ok(Some(len)) if len <= MAX_PAYLOAD_LEN => decompress(payload, len as usize),
        Ok(Some(len)) => return Err(corrupt(format!("a payload of {len} bytes is larger than any kplan writes"))),
        Ok(None) | Err(_) => return Err(corrupt("the payload is not a zstd frame with its size".to_string())),
    }
    .map_err(|e| corrupt(format!("undecompressable payload: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| corrupt(format!("undecodable payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_detects_flipped_bytes() {
        let bytes = encode("test", &vec![1u32, 2, 3]).expect("encodes");
        let back: Vec<u32> = decode("t", b"k", &bytes).expect("decodes");
        assert_eq!(back, vec![1, 2, 3]);
        for idx in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[idx] ^= 0x40;
            assert!(decode::<Vec<u32>>("t", b"k", &flipped).is_err(), "flip at {idx} undetected");
        }
        assert!(decode::<Vec<u32>>("t", b"k", &bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn snapshot_keys_read_as_cluster_and_generation() {
        let mut key = b"fra-prod-1\0".to_vec();
        key.extend_from_slice(&7u64.to_be_bytes());
        assert_eq!(display_key(&key), "fra-prod-1/7");
        assert_eq!(display_key(b"plan-1"), "plan-1");
    }

    #[test]
    fn compresses_and_still_reads_version_1_values() {
        let value: Vec<String> = (0..500).map(|i| format!("node-{i}.fra.example.com")).collect();
        let bytes = encode("test", &value).expect("encodes");
        let json = serde_json::to_vec(&value).expect("json");
        assert!(bytes.len() * 4 < json.len(), "{} bytes stored for {} of JSON", bytes.len(), json.len());
        assert_eq!(decode::<Vec<String>>("t", b"k", &bytes).expect("decodes"), value);
        // A value written by a version 1 build: the JSON itself after the header.
        let mut v1 = b"KP".to_vec();
        v1.extend_from_slice(&1u32.to_be_bytes());
        v1.extend_from_slice(&crc32fast::hash(&json).to_be_bytes());
        v1.extend_from_slice(&json);
        assert_eq!(decode::<Vec<String>>("t", b"k", &v1).expect("decodes version 1"), value);
    }

    #[test]
    fn refuses_unknown_schema() {
        let mut bytes = encode("test", &1u32).expect("encodes");
        bytes[5] = 9;
        assert!(matches!(decode::<u32>("t", b"k", &bytes), Err(StoreError::UnsupportedSchema { found: 9, .. })));
    }
}
