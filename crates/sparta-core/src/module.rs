//! Module paths (golang.org/x/mod/module CheckPath, SplitPathVersion, CheckPathMajor).

use crate::{CoreError, Version};

/// A module path that passed `module.CheckPath`; keeps its escaped form too.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModulePath {
    path: String,
    escaped: String,
}

impl ModulePath {
    /// Parses an unescaped module path such as `github.com/Azure/x/v2`.
    pub fn parse(path: &str) -> Result<Self, CoreError> {
        let _ = path;
        todo!()
    }

    /// Parses an escaped module path such as `github.com/!azure/x/v2`.
    pub fn from_escaped(escaped: &str) -> Result<Self, CoreError> {
        let _ = escaped;
        todo!()
    }

    /// The module path as written in go.mod.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The `!`-escaped path, as used in URLs and storage keys.
    pub fn escaped(&self) -> &str {
        &self.escaped
    }

    /// Checks that `version` fits this path's major version suffix
    /// (`module.CheckPathMajor`), including the `+incompatible` rules.
    pub fn check_version(&self, version: &Version) -> Result<(), CoreError> {
        let _ = version;
        todo!()
    }
}

impl std::fmt::Display for ModulePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path)
    }
}
