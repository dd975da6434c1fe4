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

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The integrity checksum of state and output files, computed in pieces: XXH3-128, in hex.
///
/// twox-hash picks AVX2 at run time where the CPU has it (xxhash-rust, used before, only what the
/// binary was compiled for: SSE2 in a portable build); the checksums are the same.
#[derive(Clone, Default)]
pub struct Checksum(twox_hash::XxHash3_128);

impl Checksum {
    pub fn new() -> Checksum {
        Checksum::default()
    }

    pub fn update(&mut self, bytes: &[u8]) -> &mut Checksum {
        self.0.write(bytes);
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
                    self.0.write(piece);
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
        hex128(self.0.finish_128())
    }
}

/// A writer that checksums what it passes on to `W`: a file is checksummed as it is written, not
/// held whole to be checksummed first.
#[derive(Debug)]
pub struct Summed<W> {
    inner: W,
    sum: Checksum,
}

impl<W: std::io::Write> Summed<W> {
    pub fn new(inner: W) -> Summed<W> {
        Summed {
            inner,
            sum: Checksum::new(),
        }
    }

    /// The writer and the checksum of everything written through it.
    pub fn finish(self) -> (W, String) {
        (self.inner, self.sum.hex())
    }
}

impl<W: std::io::Write> std::io::Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sum.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
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
    hex128(twox_hash::XxHash3_128::oneshot(bytes))
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

/// Fixed-size bytes (a digest, a git object id) that serde writes as one byte string: postcard then
/// encodes and decodes them as a length and one copy, where an array goes element by element (ten
/// times the instructions, for the three 32-byte hashes each value has in the state).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bytes<const N: usize>(pub [u8; N]);

/// Byte order, as the arrays' own, but decided by the first eight bytes read as one big-endian
/// number wherever they differ (hashes and ids almost always do): the state's maps of 100,000 ids
/// compare keys tens of times per look-up, and an array compare is a call to `memcmp`.
impl<const N: usize> Bytes<N> {
    /// The first eight bytes (zero-padded) as a big-endian number: ids order as their prefixes do,
    /// as far as those differ.
    pub fn prefix(&self) -> u64 {
        prefix(&self.0)
    }
}

/// The first eight bytes of `bytes` (zero-padded) as a big-endian number: byte strings order as
/// their prefixes do, as far as those differ (a shorter string pads with the smallest byte).
pub fn prefix(bytes: &[u8]) -> u64 {
    let mut p = [0u8; 8];
    let n = bytes.len().min(8);
    p[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(p)
}

impl<const N: usize> Ord for Bytes<N> {
    fn cmp(&self, other: &Bytes<N>) -> std::cmp::Ordering {
        self.prefix()
            .cmp(&other.prefix())
            .then_with(|| self.0.cmp(&other.0))
    }
}

/// Sorts `items` by an id of each, in the ids' own order, keeping items with equal ids in their
/// order (a stable sort). What is sorted is (id prefix, index) pairs
/// (16 bytes, compared as numbers), not the items, and ids are compared whole only where their
/// prefixes are equal: sorting 100k (digest, index) pairs directly took ten times the instructions.
pub fn sort_by_id<T: Copy, const N: usize>(items: &mut Vec<T>, id: impl Fn(&T) -> &Bytes<N>) {
    let mut order: Vec<(u64, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, t)| (id(t).prefix(), i))
        .collect();
    order.sort_unstable_by(|&(pa, a), &(pb, b)| {
        pa.cmp(&pb)
            .then_with(|| id(&items[a]).0.cmp(&id(&items[b]).0))
            .then(a.cmp(&b))
    });
    *items = order.into_iter().map(|(_, i)| items[i]).collect();
}

impl<const N: usize> PartialOrd for Bytes<N> {
    fn partial_cmp(&self, other: &Bytes<N>) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<const N: usize> Default for Bytes<N> {
    fn default() -> Bytes<N> {
        Bytes([0; N])
    }
}

impl<const N: usize> std::fmt::Debug for Bytes<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl<const N: usize> Serialize for Bytes<N> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de, const N: usize> Deserialize<'de> for Bytes<N> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Bytes<N>, D::Error> {
        struct Visit<const N: usize>;
        impl<'de, const N: usize> serde::de::Visitor<'de> for Visit<N> {
            type Value = Bytes<N>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{N} bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes<N>, E> {
                <[u8; N]>::try_from(v)
                    .map(Bytes)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
            // A text format writes bytes as a list of numbers.
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Bytes<N>, A::Error> {
                let mut out = [0; N];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<u8>()?.is_some() {
                    return Err(serde::de::Error::invalid_length(N + 1, &self));
                }
                Ok(Bytes(out))
            }
        }
        deserializer.deserialize_bytes(Visit::<N>)
    }
}

/// A git object id (SHA-1) as its bytes: 20 bytes where its hex text takes a 40-byte string and an
/// allocation, for each of a source's files.
pub type GitId = Bytes<20>;

/// The [`GitId`] of `oid` (a longer id, from a SHA-256 repository, keeps its first 20 bytes: ids are
/// only compared within one repository).
pub fn git_id(oid: git2::Oid) -> GitId {
    let mut id = [0u8; 20];
    let bytes = oid.as_bytes();
    let n = bytes.len().min(20);
    id[..n].copy_from_slice(&bytes[..n]);
    Bytes(id)
}

/// A SHA-256 digest as its 32 bytes: a rule file's content hash or a parse key, as the state keeps
/// them for every rule file (copied, compared and saved as bytes; hex only where a person reads it).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Digest(pub Bytes<32>);

impl Digest {
    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Bytes(Sha256::digest(bytes).into()))
    }

    /// Its bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0.0
    }

    /// Its 64 hex digits.
    pub fn hex(&self) -> String {
        hex(self.bytes())
    }

    /// Its 64 hex digits, in `buf`: for look-ups by the hex form without an allocation.
    pub fn hex_in<'b>(&self, buf: &'b mut [u8; 64]) -> &'b str {
        hex_into(self.bytes(), buf)
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.hex_in(&mut [0; 64]))
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Digest::of(bytes).hex()
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
    fn the_checksum_is_xxh3_128() {
        // Reference values from the xxHash project's own implementation (Python's `xxhash`), so that
        // state and output files written by earlier versions still verify. The long input takes
        // the vectorised path, in one call and in pieces.
        let long: Vec<u8> = (0..40).flat_map(|_| 0..=255u8).collect();
        for (bytes, want) in [
            (&b""[..], "99aa06d3014798d86001c324468d497f"),
            (b"sigma-galaxy", "6f1f9985850592009f90f8b0042a994b"),
            (&long, "1cb22534d0d96975c03d2231ab9348f3"),
        ] {
            assert_eq!(checksum(bytes), want);
            let mut pieces = Checksum::new();
            bytes.chunks(77).for_each(|p| {
                pieces.update(p);
            });
            assert_eq!(pieces.hex(), want);
        }
    }

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
        let mut written = Summed::new(Vec::new());
        for piece in bytes.chunks(999) {
            std::io::Write::write_all(&mut written, piece).expect("write");
        }
        let (copy, sum) = written.finish();
        assert_eq!((copy == bytes, sum), (true, whole));
    }

    #[test]
    fn a_digest_is_sha256_and_shows_as_its_hex() {
        let d = Digest::of(b"abc");
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!((d.hex(), d.to_string()), (hex.to_string(), hex.to_string()));
        assert_eq!(d.hex(), sha256_hex(b"abc"));
        assert!(Digest::of(b"abd") != d);
    }

    #[test]
    fn fixed_bytes_are_one_byte_string_in_postcard_and_a_list_in_json() {
        let b = Bytes([9u8; 20]);
        let encoded = postcard::to_stdvec(&b).expect("encode");
        assert_eq!(encoded.len(), 21, "a length byte and the bytes");
        assert_eq!(
            postcard::from_bytes::<Bytes<20>>(&encoded).expect("decode"),
            b
        );
        let json = serde_json::to_string(&b).expect("json");
        assert_eq!(serde_json::from_str::<Bytes<20>>(&json).expect("json"), b);
        assert!(
            postcard::from_bytes::<Bytes<32>>(&encoded).is_err(),
            "wrong length"
        );
        let d = Digest::of(b"x");
        let back: Digest =
            postcard::from_bytes(&postcard::to_stdvec(&d).expect("encode")).expect("decode");
        assert_eq!(back, d);
    }

    proptest::proptest! {
        #[test]
        fn fixed_bytes_order_as_their_arrays(a: [u8; 20], b: [u8; 20], shared in 0usize..20) {
            // Often equal in a prefix, as ids in one map are not.
            let mut b = b;
            b[..shared].copy_from_slice(&a[..shared]);
            proptest::prop_assert_eq!(Bytes(a).cmp(&Bytes(b)), a.cmp(&b));
            let (da, db) = (Digest::of(&a), Digest::of(&b));
            proptest::prop_assert_eq!(da.cmp(&db), da.bytes().cmp(db.bytes()));
        }

        #[test]
        fn sorting_by_id_is_sorting_by_the_ids(ids in proptest::collection::vec(
            // Few distinct bytes: equal prefixes and equal ids are common.
            proptest::array::uniform12(0u8..3), 0..200
        )) {
            let mut items: Vec<(Bytes<12>, usize)> =
                ids.into_iter().enumerate().map(|(i, id)| (Bytes(id), i)).collect();
            let mut want = items.clone();
            want.sort_by_key(|(id, _)| id.0);
            sort_by_id(&mut items, |(id, _)| id);
            // Stable, as `sort_by` is: equal ids keep their order.
            proptest::prop_assert_eq!(items, want);
        }
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
