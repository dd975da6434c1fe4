//! Hashes: the digests the tool uses and their hex form, shared by the state, emit and relate stages.
//!
//! SHA-256 names content (rule files, cache keys, release manifests) and BLAKE3 the formatted text of
//! values; a [`Checksum`] (XXH3-128) checks the files the tool itself writes and re-reads (state,
//! outputs), of which a run hashes hundreds of megabytes at 100k rules.
//!
//! The checksum guards against accident, not against an adversary: a file cut short, edited by hand,
//! replaced by another build or left by an older version. Whoever can write the state folder can
//! write anything there, checksum included, so a cryptographic hash would buy nothing and cost a
//! fifth of an incremental build's instructions (BLAKE3 did, at 100k rules).

use sha2::{Digest, Sha256};

/// The integrity checksum of state and output files, computed in pieces: XXH3-128, in hex.
#[derive(Clone, Default)]
pub struct Checksum(xxhash_rust::xxh3::Xxh3Default);

impl Checksum {
    pub fn new() -> Checksum {
        Checksum::default()
    }

    pub fn update(&mut self, bytes: &[u8]) -> &mut Checksum {
        self.0.update(bytes);
        self
    }

    /// Everything `reader` gives, hashed straight from its buffer (no second copy).
    pub fn update_reader(
        &mut self,
        mut reader: impl std::io::BufRead,
    ) -> std::io::Result<&mut Checksum> {
        loop {
            let n = match reader.fill_buf() {
                Ok([]) => return Ok(self),
                Ok(piece) => {
                    self.0.update(piece);
                    piece.len()
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
                Err(e) => return Err(e),
            };
            reader.consume(n);
        }
    }

    /// The checksum of what was given so far, as 32 hex digits.
    pub fn hex(&self) -> String {
        hex128(self.0.digest128())
    }
}

impl std::fmt::Debug for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Checksum").field(&self.hex()).finish()
    }
}

/// The [`Checksum`] of `bytes`: the integrity checksum of state and output files. Rule contents and
/// cache keys use SHA-256 ([`sha256_hex`]).
pub fn checksum(bytes: &[u8]) -> String {
    hex128(xxhash_rust::xxh3::xxh3_128(bytes))
}

/// A 128-bit checksum as 32 hex digits.
fn hex128(sum: u128) -> String {
    format!("{sum:032x}")
}

/// [`checksum`] of a file's bytes, read in pieces (an output file can be hundreds of megabytes).
pub fn file_checksum(path: &std::path::Path) -> std::io::Result<String> {
    reader_checksum(std::fs::File::open(path)?)
}

/// [`checksum`] of everything `reader` gives, read in pieces of 256 KiB.
pub fn reader_checksum(reader: impl std::io::Read) -> std::io::Result<String> {
    let reader = std::io::BufReader::with_capacity(256 * 1024, reader);
    Ok(Checksum::new().update_reader(reader)?.hex())
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
    fn a_checksum_in_pieces_is_the_checksum_of_the_whole() {
        let bytes: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = checksum(&bytes);
        assert_eq!(whole.len(), 32);
        let mut pieces = Checksum::new();
        for piece in bytes.chunks(1000) {
            pieces.update(piece);
        }
        assert_eq!(pieces.hex(), whole);
        assert_eq!(reader_checksum(&bytes[..]).expect("read"), whole);
        assert_ne!(checksum(&bytes[1..]), whole);
    }

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
