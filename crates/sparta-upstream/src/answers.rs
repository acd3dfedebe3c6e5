//! Checks on mutable answers before they are served or stored: an upstream
//! that answers a list with anything but versions is failing, not answering.

use sparta_core::Version;

use crate::UpstreamError;

/// Lines a list answer may have (a module with more versions than this is
/// far beyond anything real).
pub const MAX_LIST_LINES: usize = 20_000;

/// A `@v/list` answer: canonical versions, one per line, nothing else.
/// Blank lines and a missing final newline are tolerated, as the go command
/// tolerates them.
pub fn check_list(body: &[u8]) -> Result<(), UpstreamError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| UpstreamError::Failed("upstream list is not UTF-8".into()))?;
    let mut lines = 0usize;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        lines += 1;
        if lines > MAX_LIST_LINES {
            return Err(UpstreamError::Failed(format!(
                "upstream list has more than {MAX_LIST_LINES} versions"
            )));
        }
        match Version::parse(line) {
            Ok(v) if v.as_str() == line => {}
            _ => {
                let shown: String = line.chars().filter(|c| !c.is_control()).take(64).collect();
                return Err(UpstreamError::Failed(format!(
                    "upstream list has a line that is not a canonical version: {shown:?}"
                )));
            }
        }
    }
    Ok(())
}

/// A `@latest` or query answer: a JSON object whose `Version` is canonical.
pub fn check_version_answer(body: &[u8]) -> Result<(), UpstreamError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| UpstreamError::Failed(format!("upstream answer is not JSON: {e}")))?;
    match value.get("Version").and_then(|v| v.as_str()) {
        Some(v) if Version::parse(v).is_ok_and(|p| p.as_str() == v) => Ok(()),
        _ => Err(UpstreamError::Failed(
            "upstream answer names no canonical Version".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_hold_only_canonical_versions() {
        for good in [
            &b""[..],
            b"\n",
            b"v1.0.0\n",
            b"v1.0.0\nv1.2.3-pre\nv2.0.0+incompatible",
            b"v1.0.0\r\nv1.1.0\r\n",
            b"v0.0.0-20200101000000-abcdefabcdef\n",
        ] {
            assert!(
                check_list(good).is_ok(),
                "{:?}",
                String::from_utf8_lossy(good)
            );
        }
        for bad in [
            &b"<html>redirected</html>"[..],
            b"v1.0.0\nlatest\n",
            b"v1.0\n",
            b"1.0.0\n",
            b"v1.0.0 extra\n",
            b"\xff\xfe",
            b"{\"Version\":\"v1.0.0\"}",
        ] {
            assert!(
                check_list(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let huge = "v1.0.0\n".repeat(MAX_LIST_LINES + 1);
        assert!(check_list(huge.as_bytes()).is_err());
    }

    #[test]
    fn version_answers_name_a_canonical_version() {
        assert!(
            check_version_answer(br#"{"Version":"v1.2.3","Time":"2020-01-01T00:00:00Z"}"#).is_ok()
        );
        for bad in [
            &br#"{"Version":"v1.2"}"#[..],
            br#"{"Version":"master"}"#,
            br#"{"version":"v1.2.3"}"#,
            b"v1.2.3",
            b"",
        ] {
            assert!(
                check_version_answer(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
