//! Commit times as the go command writes them (UTC).

/// (year, month, day, hour, minute, second) of Unix time `t`, UTC.
fn civil(t: i64) -> (i64, u32, u32, u32, u32, u32) {
    let c = sparta_core::civil::Civil::from_unix(t);
    (c.year, c.month, c.day, c.hour, c.minute, c.second)
}

/// `2024-01-02T03:04:05Z`, as the .info Time.
pub(crate) fn rfc3339(t: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `20240102030405`, as in a pseudo-version.
pub(crate) fn pseudo_timestamp(t: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_704_164_645), "2024-01-02T03:04:05Z");
        assert_eq!(pseudo_timestamp(1_704_164_645), "20240102030405");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
