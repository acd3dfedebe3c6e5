//! The storage key layout. Keys mirror escaped URL paths, so they are
//! case-safe on any filesystem; Sparta's own objects live under `_sparta/`,
//! which can never be a module path (its first element has no dot).

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

/// `_sparta/lease/github.com/!azure/x/@v/v1.0.0.zip`: the fetch lease for one file.
pub fn lease(module: &ModulePath, version: &Version, kind: FileKind) -> String {
    format!("_sparta/lease/{}", version_file(module, version, kind))
}

/// `_sparta/sumdb/<name>/<path>`: a stored checksum database file.
pub fn sumdb(name: &str, path: &str) -> String {
    format!("_sparta/sumdb/{name}/{path}")
}
