//! Module versions: canonical semantic versions as the go command uses them.

use crate::CoreError;

/// A canonical semantic version (`v1.2.3`, `v1.2.3-pre`, `v2.0.0+incompatible`,
/// pseudo-versions); `semver.Canonical(v) == v` holds for every value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    version: String,
    escaped: String,
}

impl Version {
    /// Parses an unescaped canonical version; refuses `v1.2`, `master`, `v1.2.3+meta`.
    pub fn parse(version: &str) -> Result<Self, CoreError> {
        let _ = version;
        todo!()
    }

    /// Parses a `!`-escaped canonical version.
    pub fn from_escaped(escaped: &str) -> Result<Self, CoreError> {
        let _ = escaped;
        todo!()
    }

    /// The version as the go command writes it.
    pub fn as_str(&self) -> &str {
        &self.version
    }

    /// The `!`-escaped version, as used in URLs and storage keys.
    pub fn escaped(&self) -> &str {
        &self.escaped
    }

    /// The major version, such as `v2`.
    pub fn major(&self) -> &str {
        todo!()
    }

    /// Whether the version has a `+incompatible` suffix.
    pub fn is_incompatible(&self) -> bool {
        self.version.ends_with("+incompatible")
    }

    /// Whether the version is a prerelease (pseudo-versions are).
    pub fn is_prerelease(&self) -> bool {
        todo!()
    }

    /// Whether the version is a pseudo-version (`module.IsPseudoVersion`).
    pub fn is_pseudo(&self) -> bool {
        todo!()
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.version)
    }
}

/// The version part of an `.info` request: a canonical version, or a query
/// (`v1.2`, `master`, a commit hash) that upstream resolves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum InfoVersion {
    Canonical(Version),
    /// An unescaped query; never empty, never contains `/`... see `request`.
    Query(String),
}

/// Compares two canonical versions by semver precedence (`semver.Compare`).
pub fn compare(a: &Version, b: &Version) -> std::cmp::Ordering {
    let _ = (a, b);
    todo!()
}
