//! The on-disk form of every stored value: a small header with a schema
//! version and a CRC-32 of the payload, then the payload (JSON).
//!
//! ```text
//! offset 0  2 bytes  magic "KP"
//! offset 2  4 bytes  schema version, big endian
//! offset 6  4 bytes  CRC-32 (IEEE) of the payload, big endian
//! offset 10 ...      payload: serde_json
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// The schema this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

const MAGIC: &[u8; 2] = b"KP";
const HEADER_LEN: usize = 10;

pub(crate) fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    let payload = serde_json::to_vec(value).map_err(|source| StoreError::Encode { what, source })?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&SCHEMA_VERSION.to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
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
    if version != SCHEMA_VERSION {
        return Err(StoreError::UnsupportedSchema { found: version, supported: SCHEMA_VERSION });
    }
    let expected = u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
    let payload = &bytes[HEADER_LEN..];
    let actual = crc32fast::hash(payload);
    if actual != expected {
        return Err(corrupt(format!("checksum mismatch (stored {expected:08x}, computed {actual:08x})")));
    }
    serde_json::from_slice(payload).map_err(|e| corrupt(format!("undecodable payload: {e}")))
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
    fn refuses_unknown_schema() {
        let mut bytes = encode("test", &1u32).expect("encodes");
        bytes[5] = 9;
        assert!(matches!(decode::<u32>("t", b"k", &bytes), Err(StoreError::UnsupportedSchema { found: 9, .. })));
    }
}
