//! Sorted maps decoded in bulk (a serde `deserialize_with` helper for the large maps of the state
//! files), hash maps encoded in key order ([`ordered`]), and [`seek`], for looking items of one sorted sequence up in another by walking both.
//!
//! serde decodes a `BTreeMap` one `insert` at a time, each a descent from the root with a key
//! comparison per level. The state files hold maps of 100,000 entries written in key order, so this
//! helper reads the entries into a `Vec` and builds the map with `BTreeMap::from_iter`, which checks
//! the order in one pass (the stable sort finds a single run) and builds the nodes bottom-up. The bytes
//! read are the same as serde's own (a map is a length and its entries): the file format is unchanged,
//! and entries out of order or repeated give the same map `insert` would (the last value of a key wins).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::{Serialize, Serializer};

/// Encodes a hash map in key order (a serde `serialize_with` helper): its bytes then do not depend on
/// the hasher's seed, which differs from run to run, so an unchanged map is written the same.
pub fn ordered<S, K, V, H>(
    map: &std::collections::HashMap<K, V, H>,
    serializer: S,
) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    K: Serialize + Ord,
    V: Serialize,
{
    let mut entries: Vec<(&K, &V)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    serializer.collect_map(entries)
}

/// Advances `cursor`, over items in ascending order of `key_of`, past the items before `key`, and
/// gives the next one when it has that key. Called with keys in ascending order, it looks every one
/// of them up in a single pass over the cursor's items: a walk side by side, not a search from the
/// root (or a hash) per key.
pub fn seek<'c, I, K>(
    cursor: &'c mut std::iter::Peekable<I>,
    key: &K,
    key_of: impl Fn(&I::Item) -> &K,
) -> Option<&'c mut I::Item>
where
    I: Iterator,
    K: Ord + ?Sized,
{
    while cursor.next_if(|item| key_of(item) < key).is_some() {}
    cursor.peek_mut().filter(|item| key_of(item) == key)
}

/// Entries reserved before the first is read at most: a length prefix is only a hint.
const MAX_RESERVE: usize = 1 << 16;

/// Decodes a map written in key order (see the module docs).
pub fn map<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord,
    V: Deserialize<'de>,
{
    entries(deserializer).map(BTreeMap::from_iter)
}

/// Decodes a map as its entries, in the order written (for maps put together before they are built).
pub fn entries<'de, D, K, V>(deserializer: D) -> Result<Vec<(K, V)>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de>,
    V: Deserialize<'de>,
{
    struct Entries<K, V>(PhantomData<(K, V)>);

    impl<'de, K, V> Visitor<'de> for Entries<K, V>
    where
        K: Deserialize<'de>,
        V: Deserialize<'de>,
    {
        type Value = Vec<(K, V)>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(MAX_RESERVE));
            while let Some(entry) = access.next_entry()? {
                entries.push(entry);
            }
            Ok(entries)
        }
    }

    deserializer.deserialize_map(Entries(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Bulk {
        #[serde(deserialize_with = "map")]
        entries: BTreeMap<String, u32>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct OneByOne {
        entries: BTreeMap<String, u32>,
    }

    #[test]
    fn reads_the_bytes_serde_writes() {
        let entries: BTreeMap<String, u32> = (0..1000).map(|i| (format!("k{i:04}"), i)).collect();
        let bytes = postcard::to_stdvec(&OneByOne {
            entries: entries.clone(),
        })
        .expect("encode");
        let bulk: Bulk = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(bulk.entries, entries);
        // And what it reads, serde's own decoder reads the same way.
        let back = postcard::to_stdvec(&bulk).expect("encode");
        assert_eq!(back, bytes);
    }

    #[test]
    fn hash_maps_are_encoded_in_key_order_whatever_their_seed() {
        #[derive(Serialize)]
        struct Hashed(#[serde(serialize_with = "ordered")] foldhash::HashMap<String, u32>);
        let encode = |seed: u64| {
            let mut map = std::collections::HashMap::with_hasher(
                foldhash::fast::SeedableRandomState::with_seed(
                    seed,
                    foldhash::SharedSeed::global_fixed(),
                ),
            );
            map.extend((0..100).map(|i| (format!("k{i:03}"), i)));
            let map: foldhash::HashMap<String, u32> = map.into_iter().collect();
            postcard::to_stdvec(&Hashed(map)).expect("encode")
        };
        let sorted: BTreeMap<String, u32> = (0..100).map(|i| (format!("k{i:03}"), i)).collect();
        let expected = postcard::to_stdvec(&OneByOne { entries: sorted }).expect("encode");
        assert_eq!(encode(1), expected);
        assert_eq!(encode(2), expected);
    }

    #[test]
    fn entries_out_of_order_or_repeated_give_the_map_insert_gives() {
        let json = r#"{"entries": {"b": 1, "a": 2, "b": 3, "c": 4}}"#;
        let bulk: Bulk = serde_json::from_str(json).expect("decode");
        let one: OneByOne = serde_json::from_str(json).expect("decode");
        assert_eq!(bulk.entries, one.entries);
        assert_eq!(bulk.entries["b"], 3);
    }
}
