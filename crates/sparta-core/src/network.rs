//! Network modes, and the answers computed from stored versions when no
//! source may be (offline) or can be (fallback) asked.
//!
//! `strict` is the ordinary proxy: every miss goes to a source. `offline`
//! never contacts a source: list and `@latest` come from the versions the
//! store holds. `fallback` asks the sources and, when they fail (not when
//! they answer not-found), answers from the store as offline would.

use std::str::FromStr;

use crate::{FileKind, Version};

/// How the proxy may use the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NetworkMode {
    /// Misses are fetched; source failures are errors (today's behaviour).
    #[default]
    Strict,
    /// No source is ever contacted; what is not stored is not found.
    Offline,
    /// Misses are fetched; on a source failure the store answers.
    Fallback,
}

impl NetworkMode {
    /// Every mode, for metrics.
    pub const ALL: [NetworkMode; 3] = [
        NetworkMode::Strict,
        NetworkMode::Offline,
        NetworkMode::Fallback,
    ];

    /// The name used by the flag, `/readyz` and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Strict => "strict",
            NetworkMode::Offline => "offline",
            NetworkMode::Fallback => "fallback",
        }
    }
}

impl FromStr for NetworkMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "strict" => Ok(NetworkMode::Strict),
            "offline" => Ok(NetworkMode::Offline),
            "fallback" => Ok(NetworkMode::Fallback),
            other => Err(format!(
                "unknown network mode {other:?}: expected strict, offline or fallback"
            )),
        }
    }
}

impl std::fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The versions of one module the store holds, read from the names of its
/// `@v/` objects (relative names such as `v1.2.0.mod`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredVersions {
    /// Versions whose `.mod` is stored: enough for the go command's list.
    with_mod: Vec<Version>,
    /// Versions whose `.info` is stored: what `@latest` can answer with.
    with_info: Vec<Version>,
}

impl StoredVersions {
    /// From object names under `<escaped module>/@v/`; other names (the
    /// persisted list, zips, anything unparsable) are ignored.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> StoredVersions {
        let mut stored = StoredVersions::default();
        for name in names {
            let Some((escaped, ext)) = name.rsplit_once('.') else {
                continue;
            };
            let kind = match ext {
                "mod" => FileKind::Mod,
                "info" => FileKind::Info,
                _ => continue,
            };
            let Ok(version) = Version::from_escaped(escaped) else {
                continue;
            };
            match kind {
                FileKind::Mod => stored.with_mod.push(version),
                _ => stored.with_info.push(version),
            }
        }
        stored.with_mod.sort_by(crate::version::compare);
        stored.with_mod.dedup();
        stored.with_info.sort_by(crate::version::compare);
        stored.with_info.dedup();
        stored
    }

    /// Whether nothing usable is stored.
    pub fn is_empty(&self) -> bool {
        self.with_mod.is_empty() && self.with_info.is_empty()
    }

    /// The `@v/list` body: tagged (non-pseudo) versions with a stored
    /// `.mod`, in semver order, one per line, as the go command expects.
    pub fn list_body(&self) -> String {
        let mut body = String::new();
        for v in self.with_mod.iter().filter(|v| !v.is_pseudo()) {
            body.push_str(v.as_str());
            body.push('\n');
        }
        body
    }

    /// The version `@latest` answers with: the highest release, else the
    /// highest prerelease, else the highest pseudo-version (the go
    /// command's preference), among versions with a stored `.info`.
    pub fn latest(&self) -> Option<&Version> {
        let rev = || self.with_info.iter().rev();
        rev()
            .find(|v| !v.is_pseudo() && !v.is_prerelease())
            .or_else(|| rev().find(|v| !v.is_pseudo()))
            .or_else(|| rev().next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for mode in NetworkMode::ALL {
            assert_eq!(mode.as_str().parse::<NetworkMode>(), Ok(mode));
        }
        assert!("online".parse::<NetworkMode>().is_err());
        assert_eq!(NetworkMode::default(), NetworkMode::Strict);
    }

    #[test]
    fn list_has_tagged_versions_with_a_mod_in_semver_order() {
        let stored = StoredVersions::from_names([
            "v1.10.0.mod",
            "v1.2.0.mod",
            "v1.2.0.info",
            "v1.2.0.zip",
            "v1.9.0-!r!c1.mod",
            "v0.0.0-20200101000000-abcdefabcdef.mod",
            "v2.0.0.info",
            "list",
            "garbage.mod",
        ]);
        assert_eq!(stored.list_body(), "v1.2.0\nv1.9.0-RC1\nv1.10.0\n");
        assert!(!stored.is_empty());
        assert!(StoredVersions::from_names(["list", "v1.0.0.zip"]).is_empty());
    }

    #[test]
    fn latest_prefers_releases_then_prereleases_then_pseudo() {
        let latest = |names: &[&str]| {
            StoredVersions::from_names(names.iter().copied())
                .latest()
                .map(|v| v.as_str().to_owned())
        };
        assert_eq!(
            latest(&["v1.0.0.info", "v1.1.0-rc1.info", "v1.0.1.mod"]).as_deref(),
            Some("v1.0.0")
        );
        assert_eq!(
            latest(&[
                "v1.1.0-rc1.info",
                "v1.1.0-rc2.info",
                "v1.2.0-0.20200101000000-abcdefabcdef.info"
            ])
            .as_deref(),
            Some("v1.1.0-rc2")
        );
        assert_eq!(
            latest(&[
                "v0.0.0-20200101000000-abcdefabcdef.info",
                "v0.0.0-20210101000000-abcdefabcdef.info"
            ])
            .as_deref(),
            Some("v0.0.0-20210101000000-abcdefabcdef")
        );
        assert_eq!(latest(&["v1.0.0.mod"]), None);
    }
}
