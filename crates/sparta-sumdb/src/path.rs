//! The paths a checksum database serves, parsed once; anything else is not
//! found and never fetched.

use sparta_core::{ModulePath, Version};

use crate::tlog::Tile;

/// One request under `/sumdb/<name>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SumdbPath {
    /// `supported`: answered locally.
    Supported,
    /// `latest`: the current signed tree head.
    Latest,
    /// `lookup/<escaped module>@<escaped version>`.
    Lookup(ModulePath, Version),
    /// `tile/H/L/NNN[.p/W]` or `tile/H/data/NNN[.p/W]`.
    Tile(Tile),
}

impl SumdbPath {
    /// Parses a path relative to the database's base URL.
    pub fn parse(path: &str) -> Option<SumdbPath> {
        match path {
            "supported" => return Some(SumdbPath::Supported),
            "latest" => return Some(SumdbPath::Latest),
            _ => {}
        }
        if let Some(modver) = path.strip_prefix("lookup/") {
            let (m, v) = modver.rsplit_once('@')?;
            let module = ModulePath::from_escaped(m).ok()?;
            let version = Version::from_escaped(v).ok()?;
            // Only the canonical spelling, so one record has one storage key.
            if module.escaped() != m || version.escaped() != v {
                return None;
            }
            module.check_version(&version).ok()?;
            return Some(SumdbPath::Lookup(module, version));
        }
        Tile::parse(path).map(SumdbPath::Tile)
    }

    /// Whether the answer never changes (full tiles and lookups).
    pub fn immutable(&self) -> bool {
        match self {
            SumdbPath::Lookup(..) => true,
            SumdbPath::Tile(t) => t.is_full(),
            SumdbPath::Supported | SumdbPath::Latest => false,
        }
    }

    /// The canonical relative path.
    pub fn to_path(&self) -> String {
        match self {
            SumdbPath::Supported => "supported".into(),
            SumdbPath::Latest => "latest".into(),
            SumdbPath::Lookup(m, v) => format!("lookup/{}@{}", m.escaped(), v.escaped()),
            SumdbPath::Tile(t) => t.path(),
        }
    }

    /// Content type as the reference server sends it.
    pub fn content_type(&self) -> &'static str {
        match self {
            SumdbPath::Tile(Tile { level: Some(_), .. }) => OCTET_STREAM,
            _ => TEXT_PLAIN,
        }
    }
}

/// Content type of lookups, `latest` and data tiles.
pub const TEXT_PLAIN: &str = "text/plain; charset=UTF-8";
/// Content type of hash tiles.
pub const OCTET_STREAM: &str = "application/octet-stream";
