//! A bundle's manifest: every file it carries with its size, sha256 and, for
//! module files, the `h1:` the checksum database signs. Pure: no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest's name inside the tar; it is the first entry.
pub const MANIFEST: &str = "sparta-bundle/manifest.json";
/// The manifest format this build writes and reads.
pub const FORMAT: u32 = 1;

/// The manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// When the bundle was written, RFC 3339.
    pub created: String,
    /// Every file, by storage key (the tar entry's name).
    pub files: BTreeMap<String, FileEntry>,
}

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub size: u64,
    pub sha256: String,
    /// `h1:` of a `.zip` or `.mod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h1: Option<String>,
}

/// What a storage key is, for ordering and checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// `_sparta/sumdb/<name>/lookup/...`: proven first, they carry the signed trees.
    Lookup,
    /// `_sparta/sumdb/<name>/tile/...`.
    Tile,
    /// `<module>/@v/<version>.info|.mod|.zip`.
    Module,
}

/// Which part of a bundle `key` belongs to; `None` for keys a bundle never carries.
pub fn part_of(key: &str) -> Option<Part> {
    if let Some(rest) = key.strip_prefix("_sparta/sumdb/") {
        let (_name, rel) = rest.split_once('/')?;
        return if rel.starts_with("lookup/") {
            Some(Part::Lookup)
        } else if rel.starts_with("tile/") {
            Some(Part::Tile)
        } else {
            None
        };
    }
    if key.starts_with("_sparta/") || key.contains("..") || key.starts_with('/') {
        return None;
    }
    let (_, file) = key.rsplit_once("/@v/")?;
    [".info", ".mod", ".zip"]
        .iter()
        .any(|ext| file.ends_with(ext))
        .then_some(Part::Module)
}

/// `(database name, path under /sumdb/<name>/)` of a stored sumdb file.
pub fn sumdb_rel(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix("_sparta/sumdb/")?.split_once('/')
}

/// The order files go into a bundle: lookups, tiles, then module files,
/// each group by key, so an importer can prove the checksum-database files
/// before the module files that need them.
pub fn ordered<'a>(keys: impl IntoIterator<Item = &'a String>) -> Vec<&'a String> {
    let mut keys: Vec<(Part, &String)> = keys
        .into_iter()
        .filter_map(|k| part_of(k).map(|p| (p, k)))
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_into_parts() {
        let keys: Vec<String> = [
            "example.com/a/@v/v1.0.0.zip",
            "_sparta/sumdb/sum.example/tile/8/0/000",
            "example.com/a/@v/v1.0.0.info",
            "_sparta/sumdb/sum.example/lookup/example.com/a@v1.0.0",
            "_sparta/lease/abc",
            "example.com/a/@v/list",
            "../etc/@v/v1.0.0.mod",
        ]
        .map(String::from)
        .to_vec();
        let got: Vec<&str> = ordered(&keys).into_iter().map(String::as_str).collect();
        assert_eq!(
            got,
            [
                "_sparta/sumdb/sum.example/lookup/example.com/a@v1.0.0",
                "_sparta/sumdb/sum.example/tile/8/0/000",
                "example.com/a/@v/v1.0.0.info",
                "example.com/a/@v/v1.0.0.zip",
            ]
        );
        assert_eq!(
            sumdb_rel("_sparta/sumdb/sum.example/tile/8/0/000"),
            Some(("sum.example", "tile/8/0/000"))
        );
    }

    #[test]
    fn manifest_round_trips() {
        let mut m = Manifest {
            format: FORMAT,
            created: "2026-01-01T00:00:00Z".into(),
            files: BTreeMap::new(),
        };
        m.files.insert(
            "example.com/a/@v/v1.0.0.mod".into(),
            FileEntry {
                size: 3,
                sha256: "ab".into(),
                h1: Some("h1:x=".into()),
            },
        );
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(serde_json::from_slice::<Manifest>(&json).unwrap(), m);
    }
}
