//! HTTP `Range` headers for zips: one byte range, parsed and resolved
//! against a file's size without overflow (fuzzed: fuzz/fuzz_targets/range.rs).

use std::ops::Range;

/// A range that lies beyond the end of a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable {
    pub size: u64,
}

/// A byte range as the client asked for it (one range only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// `bytes=start-` or `bytes=start-end` (end inclusive).
    From { start: u64, end: Option<u64> },
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl RangeRequest {
    /// Parses a `Range` header; `None` for anything but one byte range, in
    /// which case the whole file is served (allowed by RFC 9110).
    pub fn parse(header: &str) -> Option<Self> {
        let spec = header.trim().strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (start, end) = spec.split_once('-')?;
        let (start, end) = (start.trim(), end.trim());
        if start.is_empty() {
            return end.parse().ok().map(RangeRequest::Suffix);
        }
        let start = start.parse().ok()?;
        let end = if end.is_empty() {
            None
        } else {
            let end: u64 = end.parse().ok()?;
            if end < start {
                return None;
            }
            Some(end)
        };
        Some(RangeRequest::From { start, end })
    }

    /// The half-open byte range within a file of `size` bytes.
    pub fn resolve(self, size: u64) -> Result<Range<u64>, Unsatisfiable> {
        match self {
            RangeRequest::From { start, end } if start < size => {
                let end = end.map_or(size, |e| e.saturating_add(1).min(size));
                Ok(start..end)
            }
            RangeRequest::Suffix(n) if n > 0 && size > 0 => Ok(size.saturating_sub(n)..size),
            _ => Err(Unsatisfiable { size }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_resolve() {
        assert_eq!(
            RangeRequest::parse("bytes=0-18446744073709551615")
                .unwrap()
                .resolve(1000)
                .unwrap(),
            0..1000,
            "an end at u64::MAX does not overflow"
        );
        let r = RangeRequest::parse("bytes=0-99").unwrap();
        assert_eq!(r.resolve(1000).unwrap(), 0..100);
        assert_eq!(
            RangeRequest::parse("bytes=990-")
                .unwrap()
                .resolve(1000)
                .unwrap(),
            990..1000
        );
        assert_eq!(
            RangeRequest::parse("bytes=-10")
                .unwrap()
                .resolve(1000)
                .unwrap(),
            990..1000
        );
        assert_eq!(
            RangeRequest::parse("bytes=0-5000")
                .unwrap()
                .resolve(1000)
                .unwrap(),
            0..1000
        );
        assert!(
            RangeRequest::parse("bytes=1000-")
                .unwrap()
                .resolve(1000)
                .is_err()
        );
        assert!(RangeRequest::parse("bytes=5-1").is_none());
        assert!(RangeRequest::parse("bytes=0-1,5-6").is_none());
        assert!(RangeRequest::parse("items=0-1").is_none());
        assert!(
            RangeRequest::parse("bytes=-0")
                .unwrap()
                .resolve(10)
                .is_err()
        );
    }
}
