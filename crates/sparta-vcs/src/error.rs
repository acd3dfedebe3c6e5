//! The one error type of the VCS source, sorted by kind.

/// Why a VCS operation gave no answer. Messages never carry credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VcsError {
    /// No such repository, revision or version: the client may try elsewhere.
    #[error("not found: {0}")]
    NotFound(String),
    /// Refused by policy: a credential the host refused, an address not allowed.
    #[error("refused: {0}")]
    Refused(String),
    /// Over a size limit (repository, zip, go.mod, LICENSE).
    #[error("too large: {0}")]
    TooLarge(String),
    /// An operation ran past its time bound.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Anything else: git failed, the host answered garbage.
    #[error("failed: {0}")]
    Failed(String),
}

impl VcsError {
    /// The `outcome` metric label.
    pub fn label(&self) -> &'static str {
        match self {
            VcsError::NotFound(_) => "not_found",
            VcsError::Refused(_) => "refused",
            VcsError::TooLarge(_) => "too_large",
            VcsError::Timeout(_) => "timeout",
            VcsError::Failed(_) => "failed",
        }
    }
}
