//! Hashes: the two digests the tool uses and their hex form, shared by the state, emit and relate stages.
//!
//! SHA-256 names content (rule files, cache keys, release manifests); BLAKE3 checksums the files the
//! tool itself writes and re-reads (state, outputs), which a run hashes tens of megabytes of.

use sha2::{Digest, Sha256};

/// Hex BLAKE3 of `bytes`: the integrity checksum of state and output files, which every run computes
/// over tens of megabytes (BLAKE3 is several times faster than SHA-256 here). Rule contents and cache
/// keys use SHA-256 ([`sha256_hex`]).
pub fn checksum(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// [`checksum`] of a file's bytes, read in pieces (an output file can be hundreds of megabytes).
pub fn file_checksum(path: &std::path::Path) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(std::fs::File::open(path)?)?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
