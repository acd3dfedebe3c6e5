//! The one error type of this crate.

/// What can go wrong when reading access settings and credential files.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A setting or a file line that does not parse. The text never holds a
    /// secret: credential lines are named by number, not quoted.
    #[error("{0}")]
    Invalid(String),
    /// A credential file that cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
