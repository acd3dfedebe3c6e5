//! GOPROXY list syntax: `https://a,https://b|https://c`.

use crate::CoreError;

/// When to try the next proxy after this one fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallthrough {
    /// `,`: only after a 404 or 410.
    OnNotFound,
    /// `|`: after any error.
    OnAnyError,
}

/// One proxy of the list and how to fall through from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyEntry {
    /// Base URL without a trailing slash, e.g. `https://proxy.example/go`.
    pub url: String,
    /// How to fall through after this entry (the separator that followed it;
    /// `OnNotFound` for the last entry).
    pub fallthrough: Fallthrough,
}

/// Parses a GOPROXY list. `direct` and `off` are refused with a clear reason;
/// entries must be http(s) URLs; the list must not be empty.
pub fn parse(list: &str) -> Result<Vec<ProxyEntry>, CoreError> {
    let _ = list;
    todo!()
}
