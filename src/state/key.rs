//! Cache keys: serialised structs hashed whole with SHA-256.
//!
//! A key lists everything its entry depends on, and nothing else (no mtimes, no absolute paths). Adding
//! an input means adding a field, which changes every key: old entries then simply never match.

use serde::Serialize;

use super::Digest;
use crate::config::{Config, GalaxyInfo, PathFilter};
use crate::parse::Limits;
use crate::sources::Snapshot;

/// The parser's output format. Bump it when [`crate::parse::parse_file`] would give other results for
/// the same bytes, so cached parse results are recomputed.
pub const PARSER_FORMAT: u32 = 4;

/// What the parse keys of a build depend on besides the files' contents, as one number: the parser
/// format and the limits. The parse cache records it, so that its keys are recomputed when it changes.
pub fn parser_stamp(limits: &Limits) -> u32 {
    let digest = hash(&(PARSER_FORMAT, limits));
    u32::from_str_radix(digest.get(..8).unwrap_or_default(), 16).unwrap_or(PARSER_FORMAT)
}

/// Hashes a key struct.
pub fn hash<K: Serialize>(key: &K) -> String {
    digest(key).hex()
}

/// Hashes a key struct, as the bytes of its digest (the keys the state keeps per rule file).
pub fn digest<K: Serialize>(key: &K) -> Digest {
    // Serialising plain structs of strings and numbers cannot fail.
    Digest::of(&serde_json::to_vec(key).unwrap_or_default())
}

/// What a parsed record depends on.
#[derive(Debug, Serialize)]
pub struct ParseKey<'a> {
    pub parser: u32,
    /// Hex SHA-256 of the file's bytes.
    pub content: &'a str,
    /// The limits it was parsed within.
    pub limits: &'a Limits,
}

impl<'a> ParseKey<'a> {
    pub fn new(content: &'a str, limits: &'a Limits) -> Self {
        ParseKey {
            parser: PARSER_FORMAT,
            content,
            limits,
        }
    }
}

/// The [`ParseKey`] hash of a file whose bytes hash to `content`.
pub fn parse_key(content: &Digest, limits: &Limits) -> Digest {
    digest(&ParseKey::new(&content.hex(), limits))
}

/// What the list of a source's rule files and its history walk depend on.
#[derive(Debug, Serialize)]
pub struct FilterKey<'a> {
    pub prefix: Option<&'a str>,
    pub include: &'a [String],
    pub exclude: &'a [String],
}

impl<'a> FilterKey<'a> {
    pub fn new(filter: &'a PathFilter) -> Self {
        FilterKey {
            prefix: filter.prefix.as_deref(),
            include: &filter.include,
            exclude: &filter.exclude,
        }
    }
}

/// What a whole build's output depends on.
#[derive(Debug, Serialize)]
pub struct BuildKey<'a> {
    /// The tool version: another version may emit differently.
    pub tool: &'static str,
    pub format: u32,
    pub galaxy: GalaxyKey<'a>,
    pub filters: bool,
    pub strict: bool,
    pub provenance: bool,
    pub ref_style: &'static str,
    /// Values carry their own `version` (left out when off, so that keys made before it stay valid).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub value_versions: bool,
    /// Checksum of the ATT&CK cluster files used, in a fixed order.
    pub attack: Option<&'a str>,
    pub sources: Vec<SourceKey<'a>>,
}

/// The galaxy fields, as they go into a [`BuildKey`].
#[derive(Debug, Serialize)]
pub struct GalaxyKey<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub uuid: String,
    pub namespace: &'a str,
    pub icon: &'a str,
    pub category: &'a str,
    pub description: &'a str,
    pub cluster_description: &'a str,
    pub authors: &'a [String],
    pub source: &'a str,
}

impl<'a> GalaxyKey<'a> {
    fn new(g: &'a GalaxyInfo) -> Self {
        GalaxyKey {
            kind: &g.kind,
            name: &g.name,
            uuid: g.uuid.to_string(),
            namespace: &g.namespace,
            icon: &g.icon,
            category: &g.category,
            description: &g.description,
            cluster_description: &g.cluster_description,
            authors: &g.authors,
            source: &g.source,
        }
    }
}

/// One source, as it goes into a [`BuildKey`].
#[derive(Debug, Serialize)]
pub struct SourceKey<'a> {
    pub name: &'a str,
    /// Redacted location.
    pub location: &'a str,
    pub commit: String,
    pub branch: Option<&'a str>,
    pub filter: FilterKey<'a>,
    /// How links are made (template or forge and remote), as text.
    pub web: Option<String>,
    pub priority: i32,
    pub rules: &'a crate::config::RuleFilter,
}

impl<'a> BuildKey<'a> {
    pub fn new(config: &'a Config, snapshots: &'a [Snapshot], attack: Option<&'a str>) -> Self {
        BuildKey {
            tool: env!("CARGO_PKG_VERSION"),
            format: super::FORMAT,
            galaxy: GalaxyKey::new(&config.galaxy),
            filters: config.filters,
            strict: config.strict,
            provenance: config.provenance,
            ref_style: config.ref_style.name(),
            value_versions: config.value_versions,
            attack,
            sources: snapshots
                .iter()
                .zip(&config.sources)
                .map(|(s, c)| SourceKey {
                    name: &s.name,
                    location: &s.location,
                    commit: s.commit.to_string(),
                    branch: s.branch.as_deref(),
                    filter: FilterKey::new(&s.filter),
                    web: s.web.as_ref().map(|w| w.describe()),
                    priority: c.priority,
                    rules: &c.rules,
                })
                .collect(),
        }
    }
}
