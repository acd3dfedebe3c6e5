//! The one error type of the core.

/// Why a path, version, zip or setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// A module path that `module.CheckPath` would refuse.
    #[error("invalid module path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    /// A version that is not canonical semver, or does not fit the module path.
    #[error("invalid version {version:?}: {reason}")]
    InvalidVersion { version: String, reason: String },
    /// A request path that is not part of the GOPROXY protocol.
    #[error("not a proxy request: {0}")]
    InvalidRequest(String),
    /// A module zip that breaks the module zip rules.
    #[error("invalid module zip: {0}")]
    InvalidZip(String),
    /// A GOPROXY list that cannot be parsed.
    #[error("invalid proxy list: {0}")]
    InvalidProxyList(String),
    /// A checksum database note, key, record, tile or tree head that fails
    /// its syntax, signature or tree math.
    #[error("{0}")]
    InvalidSumdb(String),
}
