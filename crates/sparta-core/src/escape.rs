//! The `!` case escaping of module paths and versions (golang.org/x/mod/module EscapePath).

use crate::CoreError;

/// Escapes every uppercase letter `X` as `!x`. Fails on a `!` in the input.
pub fn escape(s: &str) -> Result<String, CoreError> {
    let _ = s;
    todo!()
}

/// Reverses [`escape`]: `!x` -> `X`. Fails on raw uppercase, `!` not followed
/// by a lowercase ASCII letter, or a trailing `!`.
pub fn unescape(s: &str) -> Result<String, CoreError> {
    let _ = s;
    todo!()
}
