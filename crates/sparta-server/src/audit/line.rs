//! One audit line: the record's fields as a JSON object, written by hand
//! (the fields are few and fixed, and it runs for every audited request).

use std::net::IpAddr;
use std::time::SystemTime;

use sparta_access::Principal;
use sparta_core::civil::{Clock, push_padded};
use sparta_core::jsontext::{push_str as push_json_str, push_str_body as push_json_str_body};

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
    pub file: Option<&'static str>,
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

    /// Appends the JSON line, newline included, to `out`: a thread's audit
    /// buffer, with that thread's clock.
    pub fn write_to(&self, out: &mut String, clock: &mut Clock) {
        out.push_str("{\"time\":\"");
        clock.push(out, self.time, 3);
        out.push('"');
        if let Some(id) = self.request_id {
            out.push_str(",\"request_id\":");
            push_plain(out, id);
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
        push_plain(out, self.method);
        out.push_str(",\"path\":");
        push_json_str(out, self.path);
        for (key, value) in [
            (",\"module\":", self.module),
            (",\"version\":", self.version),
        ] {
            if let Some(v) = value {
                out.push_str(key);
                push_json_str(out, v);
            }
        }
        if let Some(f) = self.file {
            out.push_str(",\"file\":");
            push_plain(out, f);
        }
        out.push_str(",\"status\":");
        push_u64(out, u64::from(self.status));
        out.push_str(",\"bytes\":");
        push_u64(out, self.bytes);
        if let Some(t) = self.tier {
            out.push_str(",\"tier\":");
            push_plain(out, t);
        }
        out.push_str(",\"decision\":");
        push_plain(out, self.decision);
        out.push_str("}\n");
    }
}

/// A string that needs no escaping, quoted: a request id (checked where it
/// is made), a method (an HTTP token), or one of our own words.
fn push_plain(out: &mut String, s: &str) {
    debug_assert!(
        s.bytes()
            .all(|b| b > 0x20 && b != b'"' && b != b'\\' && b < 0x7f),
        "{s}"
    );
    out.push('"');
    out.push_str(s);
    out.push('"');
}

fn push_u64(out: &mut String, n: u64) {
    push_padded(out, n, 1);
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

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
    fn times_are_rfc3339_with_milliseconds() {
        // The same text a stream of lines gets from one clock (the clock
        // itself is tested in sparta_core::civil).
        let mut t = String::new();
        Entry {
            time: UNIX_EPOCH + std::time::Duration::from_millis(1_764_633_600_007),
            ..entry(0, "/x")
        }
        .write_to(&mut t, &mut Clock::default());
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["time"], "2025-12-02T00:00:00.007Z");
    }
}
