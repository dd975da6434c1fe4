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
    reader_checksum(std::fs::File::open(path)?)
}

/// [`checksum`] of everything `reader` gives, read in pieces.
pub fn reader_checksum(reader: impl std::io::Read) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(reader)?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut buf = vec![0; 2 * bytes.len()];
    hex_into(bytes, &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

/// Lower-case hex of `bytes`, written into `buf` (twice as long; any more is left out): for look-ups
/// that need the text but not an allocation.
pub fn hex_into<'b>(bytes: &[u8], buf: &'b mut [u8]) -> &'b str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let n = bytes.len().min(buf.len() / 2);
    for (i, b) in bytes[..n].iter().enumerate() {
        buf[2 * i] = DIGITS[usize::from(b >> 4)];
        buf[2 * i + 1] = DIGITS[usize::from(b & 15)];
    }
    std::str::from_utf8(&buf[..2 * n]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_hex_is_git_s_hex() {
        let mut buf = [0u8; 40];
        for text in [
            "0000000000000000000000000000000000000000",
            "ffffffffffffffffffffffffffffffffffffffff",
            "0123456789abcdef0123456789abcdef01234567",
        ] {
            let oid = git2::Oid::from_str(text).expect("oid");
            assert_eq!(hex_into(oid.as_bytes(), &mut buf), oid.to_string());
            assert_eq!(hex(oid.as_bytes()), oid.to_string());
        }
    }
}
