//! One audit line: the record's fields as a JSON object, written by hand
//! (the fields are few and fixed, and it runs for every audited request).

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use sparta_access::Principal;

/// One audit record, written as one JSON object per line.
#[derive(Debug)]
pub struct Entry<'a> {
    pub time: SystemTime,
    pub request_id: Option<&'a str>,
    /// `user:NAME`, `token:NAME`, or absent when authentication is off or failed.
    pub principal: Option<&'a Principal>,
    pub client: Option<IpAddr>,
    pub method: &'a str,
    pub path: &'a str,
    pub module: Option<&'a str>,
    pub version: Option<&'a str>,
    pub file: Option<&'a str>,
    pub status: u16,
    pub bytes: u64,
    /// memory, storage, upstream, or joined (waited on another request's fetch).
    pub tier: Option<&'static str>,
    /// allowed, or why the request was refused.
    pub decision: &'static str,
}

impl Entry<'_> {
    /// The JSON line, newline included.
    pub fn line(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out, &mut Clock::default());
        out
    }

    /// Appends the JSON line, newline included, to `out`. The writer thread
    /// calls it with one buffer and one clock for every line.
    pub fn write_to(&self, out: &mut String, clock: &mut Clock) {
        out.push_str("{\"time\":\"");
        clock.push(out, self.time);
        out.push('"');
        if let Some(id) = self.request_id {
            out.push_str(",\"request_id\":");
            push_json_str(out, id);
        }
        if let Some(p) = self.principal {
            let (kind, name) = match p {
                Principal::User(n) => ("user:", n),
                Principal::Token(n) => ("token:", n),
            };
            out.push_str(",\"principal\":\"");
            out.push_str(kind);
            push_json_str_body(out, name);
            out.push('"');
        }
        if let Some(c) = self.client {
            out.push_str(",\"client\":\"");
            push_ip(out, c);
            out.push('"');
        }
        out.push_str(",\"method\":");
        push_json_str(out, self.method);
        out.push_str(",\"path\":");
        push_json_str(out, self.path);
        for (key, value) in [
            (",\"module\":", self.module),
            (",\"version\":", self.version),
            (",\"file\":", self.file),
        ] {
            if let Some(v) = value {
                out.push_str(key);
                push_json_str(out, v);
            }
        }
        out.push_str(",\"status\":");
        push_u64(out, u64::from(self.status));
        out.push_str(",\"bytes\":");
        push_u64(out, self.bytes);
        if let Some(t) = self.tier {
            out.push_str(",\"tier\":");
            push_json_str(out, t);
        }
        out.push_str(",\"decision\":");
        push_json_str(out, self.decision);
        out.push_str("}\n");
    }
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    push_json_str_body(out, s);
    out.push('"');
}

/// `s` escaped as JSON string content: quotes, backslashes and control
/// characters; the rest (UTF-8 included) as it is, in runs.
fn push_json_str_body(out: &mut String, s: &str) {
    // Paths, names and ids almost never need escaping: find that out a
    // chunk at a time (no early exit, so the check vectorises).
    if s.as_bytes().chunks(16).all(|c| {
        !c.iter().fold(false, |any, &b| {
            any | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    }) {
        out.push_str(s);
        return;
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

fn push_u64(out: &mut String, n: u64) {
    push_padded(out, n, 1);
}

use sparta_core::civil::push_padded;

fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_u64(out, u64::from(o));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

/// Writes times, remembering the last second's text: lines come many a
/// second, and only the milliseconds differ between them.
#[derive(Default)]
pub struct Clock {
    second: Option<u64>,
    /// `2025-12-01T08:30:00.` of `second`.
    prefix: String,
}

impl Clock {
    /// `t` as RFC 3339 UTC with milliseconds: `2025-12-01T08:30:00.123Z`.
    pub fn push(&mut self, out: &mut String, t: SystemTime) {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        if self.second != Some(d.as_secs()) {
            self.prefix.clear();
            push_rfc3339_second(&mut self.prefix, d.as_secs());
            self.second = Some(d.as_secs());
        }
        out.push_str(&self.prefix);
        push_padded(out, u64::from(d.subsec_millis()), 3);
        out.push('Z');
    }
}

/// `t` as RFC 3339 UTC with milliseconds: `2025-12-01T08:30:00.123Z`.
#[cfg(test)]
fn push_rfc3339(out: &mut String, t: SystemTime) {
    Clock::default().push(out, t);
}

/// The whole second `secs` as RFC 3339 UTC, up to and with the `.`.
fn push_rfc3339_second(out: &mut String, secs: u64) {
    sparta_core::civil::Civil::from_unix(secs as i64).push_rfc3339(out);
    out.push('.');
}

#[cfg(test)]
mod tests {
    use super::*;

    static ALICE: std::sync::LazyLock<Principal> =
        std::sync::LazyLock::new(|| Principal::User("".into()));

    fn entry(n: usize, path: &str) -> Entry<'_> {
        Entry {
            time: SystemTime::now(),
            request_id: None,
            principal: Some(&ALICE),
            client: Some([127, 0, 0, 1].into()),
            method: "GET",
            path,
            module: Some("example.com/m"),
            version: Some("v1.0.0"),
            file: Some("info"),
            status: 200,
            bytes: n as u64,
            tier: Some("memory"),
            decision: "allowed",
        }
    }

    #[test]
    fn lines_are_json_with_every_field() {
        let bob = Principal::Token("ci \"bot\"\\\u{1}é".into());
        let e = Entry {
            time: UNIX_EPOCH + std::time::Duration::from_millis(1_764_577_800_123),
            request_id: Some("01ABC"),
            principal: Some(&bob),
            client: Some("2001:db8::1".parse().unwrap()),
            method: "HEAD",
            path: "/example.com/!m/@v/v1.0.0.zip\n",
            module: Some("example.com/M"),
            version: Some("v1.0.0"),
            file: Some("zip"),
            status: 404,
            bytes: u64::MAX,
            tier: None,
            decision: "allowed",
        };
        let line = e.line();
        assert!(
            line.ends_with("}\n") && line.matches('\n').count() == 1,
            "{line}"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "time": "2025-12-01T08:30:00.123Z",
                "request_id": "01ABC",
                "principal": "token:ci \"bot\"\\\u{1}é",
                "client": "2001:db8::1",
                "method": "HEAD",
                "path": "/example.com/!m/@v/v1.0.0.zip\n",
                "module": "example.com/M",
                "version": "v1.0.0",
                "file": "zip",
                "status": 404,
                "bytes": u64::MAX,
                "decision": "allowed",
            })
        );
        // Absent fields are left out, as before.
        let mut e = entry(0, "/x");
        e.principal = None;
        e.client = None;
        e.module = None;
        e.version = None;
        e.file = None;
        e.tier = None;
        let v: serde_json::Value = serde_json::from_str(&e.line()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 6, "{keys:?}");
        let v: serde_json::Value = serde_json::from_str(&entry(7, "/y").line()).unwrap();
        assert_eq!(v["client"], "127.0.0.1");
        assert_eq!(v["principal"], "user:");
        assert_eq!(v["bytes"], 7);
        assert_eq!(v["tier"], "memory");
    }

    #[test]
    fn times_are_rfc3339() {
        let mut t = String::new();
        push_rfc3339(&mut t, SystemTime::now());
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z'));
        // One clock across seconds, minutes and a day: each as if alone.
        let mut clock = Clock::default();
        for ms in [
            1_764_577_800_123u64,
            1_764_577_800_999,
            1_764_577_801_000,
            1_764_633_599_999,
            1_764_633_600_000,
        ] {
            let t = UNIX_EPOCH + std::time::Duration::from_millis(ms);
            let (mut a, mut b) = (String::new(), String::new());
            clock.push(&mut a, t);
            push_rfc3339(&mut b, t);
            assert_eq!(a, b);
        }
        let mut t = String::new();
        clock.push(
            &mut t,
            UNIX_EPOCH + std::time::Duration::from_millis(1_764_633_600_007),
        );
        assert_eq!(t, "2025-12-02T00:00:00.007Z");
    }
}
