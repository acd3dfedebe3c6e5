//! The storage key layout. Keys mirror escaped URL paths, so they are
//! case-safe on any filesystem; Sparta's own objects live under `_sparta/`,
//! which can never be a module path (its first element has no dot).

use sha2::{Digest, Sha256};

use crate::hash::hex;
use crate::{FileKind, ModulePath, Version};

/// `github.com/!azure/x/@v/v1.0.0.zip`: an immutable per-version file.
pub fn version_file(module: &ModulePath, version: &Version, kind: FileKind) -> String {
    format!(
        "{}/@v/{}.{}",
        module.escaped(),
        version.escaped(),
        kind.ext()
    )
}

/// `github.com/!azure/x/@v/list`: the last good list answer (overwritten).
pub fn list(module: &ModulePath) -> String {
    format!("{}/@v/list", module.escaped())
}

/// `github.com/!azure/x/@latest`: the last good latest answer (overwritten).
pub fn latest(module: &ModulePath) -> String {
    format!("{}/@latest", module.escaped())
}

/// `_sparta/query/github.com/!azure/x/@v/<escaped query>.info`: the last good
/// answer to a version query (overwritten).
pub fn query(module: &ModulePath, escaped_query: &str) -> String {
    format!(
        "_sparta/query/{}/@v/{}.info",
        module.escaped(),
        escaped_query
    )
}

/// `_sparta/fresh/<answer key>`: when the mutable answer stored under
/// `answer_key` was last fetched, and its hash, shared by every replica so
/// that one of them fetches it per TTL.
pub fn freshness(answer_key: &str) -> String {
    format!("_sparta/fresh/{answer_key}")
}

/// `_sparta/lease/<32 hex digits>`: the fetch lease for one file, named by
/// a digest of its key. Flat, so that on a filesystem a lease costs one file
/// and no directories.
pub fn lease(module: &ModulePath, version: &Version, kind: FileKind) -> String {
    let digest = Sha256::digest(version_file(module, version, kind).as_bytes());
    format!("_sparta/lease/{}", hex(&digest[..16]))
}

/// `_sparta/lease/<32 hex digits>`: the refresh lease for one mutable
/// answer (list, latest, query), named by a digest of the answer's key.
/// Answer keys never equal a version file's key, so the two kinds of lease
/// never share a name.
pub fn answer_lease(answer_key: &str) -> String {
    let digest = Sha256::digest(answer_key.as_bytes());
    format!("_sparta/lease/{}", hex(&digest[..16]))
}

/// `_sparta/sumdb/<name>/<path>`: a stored checksum database file.
pub fn sumdb(name: &str, path: &str) -> String {
    format!("_sparta/sumdb/{name}/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::escape_query;

    #[test]
    fn keys_use_escaped_forms() {
        let m = ModulePath::parse("github.com/Azure/X").unwrap();
        let v = Version::parse("v1.0.0-RC1").unwrap();
        assert_eq!(
            version_file(&m, &v, FileKind::Zip),
            "github.com/!azure/!x/@v/v1.0.0-!r!c1.zip"
        );
        assert_eq!(list(&m), "github.com/!azure/!x/@v/list");
        assert_eq!(latest(&m), "github.com/!azure/!x/@latest");
        assert_eq!(
            freshness(&list(&m)),
            "_sparta/fresh/github.com/!azure/!x/@v/list"
        );
        assert_eq!(
            query(&m, &escape_query("Main")),
            "_sparta/query/github.com/!azure/!x/@v/!main.info"
        );
        let info_lease = lease(&m, &v, FileKind::Info);
        assert!(info_lease.starts_with("_sparta/lease/"));
        assert_eq!(info_lease.len(), "_sparta/lease/".len() + 32);
        assert!(!info_lease["_sparta/lease/".len()..].contains('/'));
        assert_ne!(info_lease, lease(&m, &v, FileKind::Mod));
        let list_lease = answer_lease(&list(&m));
        assert!(list_lease.starts_with("_sparta/lease/"));
        assert_eq!(list_lease.len(), info_lease.len());
        assert_ne!(list_lease, answer_lease(&latest(&m)));
        // Two paths that differ only in case never share a key.
        let lower = ModulePath::parse("github.com/azure/x").unwrap();
        assert_ne!(list(&lower), list(&m));
    }
}
