//! The one error type of the checksum database layer.

/// What went wrong talking to, or checking against, a checksum database.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SumdbError {
    /// No such database, path, or record (from `verify_*`: the database has no
    /// record for a module that should have one, so it must not be stored).
    #[error("{0}")]
    NotFound(String),
    /// The database signs a different hash than the one at hand.
    #[error(
        "checksum mismatch for {module}@{version}: checksum database has {expected}, upstream served {got}"
    )]
    Mismatch {
        module: String,
        version: String,
        expected: String,
        got: String,
    },
    /// Malformed configuration, or a database answer that fails its signature,
    /// its tree proof or its syntax (never fails open).
    #[error("{0}")]
    Invalid(String),
    /// The store failed (only from [`crate::verify_store`]; the proxy falls
    /// back to the database when storage fails).
    #[error("storage: {0}")]
    Storage(String),
    /// The database could not be reached (fails open only when configured).
    #[error("checksum database unavailable: {0}")]
    Unavailable(String),
}

/// The formats' own refusals (notes, records, tiles, tree math) are
/// invalid answers.
impl From<sparta_core::CoreError> for SumdbError {
    fn from(e: sparta_core::CoreError) -> Self {
        SumdbError::Invalid(e.to_string())
    }
}
