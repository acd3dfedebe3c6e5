//! Unix time as a UTC calendar date and RFC 3339 text, without a date
//! library: .info times, pseudo-version stamps, log and audit lines all
//! need only this.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC calendar time, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Civil {
    /// The UTC calendar time of Unix time `t` (seconds; before 1970 too).
    pub fn from_unix(t: i64) -> Civil {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400) as u32;
        // Days to civil date (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        Civil {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }

    /// `2024-01-02T03:04:05` (no zone: callers add a fraction and `Z`).
    pub fn push_rfc3339(&self, out: &mut String) {
        push_padded(out, self.year.clamp(0, 9999) as u64, 4);
        out.push('-');
        push_padded(out, u64::from(self.month), 2);
        out.push('-');
        push_padded(out, u64::from(self.day), 2);
        out.push('T');
        push_padded(out, u64::from(self.hour), 2);
        out.push(':');
        push_padded(out, u64::from(self.minute), 2);
        out.push(':');
        push_padded(out, u64::from(self.second), 2);
    }
}

/// `t` as RFC 3339 UTC with `digits` (0 to 9) fractional digits:
/// `2025-12-01T08:30:00.123Z` for 3.
pub fn push_rfc3339(out: &mut String, t: SystemTime, digits: u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Civil::from_unix(d.as_secs() as i64).push_rfc3339(out);
    push_fraction(out, d.subsec_nanos(), digits);
}

/// Writes times for a stream of lines, remembering the last second's text:
/// lines come many a second, and only the fraction differs between them.
#[derive(Default)]
pub struct Clock {
    second: Option<u64>,
    /// `2025-12-01T08:30:00` of `second`.
    prefix: String,
}

impl Clock {
    /// What [`push_rfc3339`] writes for `t` and `digits`.
    pub fn push(&mut self, out: &mut String, t: SystemTime, digits: u32) {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        if self.second != Some(d.as_secs()) {
            self.prefix.clear();
            Civil::from_unix(d.as_secs() as i64).push_rfc3339(&mut self.prefix);
            self.second = Some(d.as_secs());
        }
        out.push_str(&self.prefix);
        push_fraction(out, d.subsec_nanos(), digits);
    }
}

/// `.123Z` (for 3 digits) of `nanos`; just `Z` for none.
fn push_fraction(out: &mut String, nanos: u32, digits: u32) {
    if digits > 0 {
        let digits = digits.min(9);
        out.push('.');
        push_padded(
            out,
            u64::from(nanos / 10u32.pow(9 - digits)),
            digits as usize,
        );
    }
    out.push('Z');
}

/// `n` in decimal, left-padded with zeros to `width`. Through `itoa`:
/// these run several times per log and audit line.
pub fn push_padded(out: &mut String, n: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn text(t: i64) -> String {
        let mut s = String::new();
        Civil::from_unix(t).push_rfc3339(&mut s);
        s
    }

    #[test]
    fn known_dates() {
        assert_eq!(text(0), "1970-01-01T00:00:00");
        assert_eq!(text(1_704_164_645), "2024-01-02T03:04:05");
        assert_eq!(text(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(text(4_107_542_399), "2100-02-28T23:59:59");
        assert_eq!(text(-1), "1969-12-31T23:59:59");
    }

    #[test]
    fn fractions_are_cut_not_rounded() {
        let t = UNIX_EPOCH + Duration::new(1_704_164_645, 123_456_789);
        for (digits, want) in [
            (0, "2024-01-02T03:04:05Z"),
            (3, "2024-01-02T03:04:05.123Z"),
            (6, "2024-01-02T03:04:05.123456Z"),
            (9, "2024-01-02T03:04:05.123456789Z"),
        ] {
            let mut s = String::new();
            push_rfc3339(&mut s, t, digits);
            assert_eq!(s, want);
        }
    }

    #[test]
    fn a_clock_writes_what_push_rfc3339_does() {
        // One clock across seconds, minutes and a day: each as if alone.
        let mut clock = Clock::default();
        for ms in [
            1_764_577_800_123u64,
            1_764_577_800_999,
            1_764_577_801_000,
            1_764_633_599_999,
            1_764_633_600_000,
            1_764_633_600_007,
        ] {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            for digits in [0, 3, 6] {
                let (mut a, mut b) = (String::new(), String::new());
                clock.push(&mut a, t, digits);
                push_rfc3339(&mut b, t, digits);
                assert_eq!(a, b);
            }
        }
        let mut s = String::new();
        clock.push(
            &mut s,
            UNIX_EPOCH + Duration::from_millis(1_764_633_600_007),
            3,
        );
        assert_eq!(s, "2025-12-02T00:00:00.007Z");
    }

    #[test]
    fn padding() {
        let mut s = String::new();
        push_padded(&mut s, 7, 3);
        push_padded(&mut s, 12345, 2);
        push_padded(&mut s, 0, 1);
        assert_eq!(s, "007123450");
    }
}
