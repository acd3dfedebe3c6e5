//! What a request's audit line says: its facts, borrowed from the request
//! where they can be, turned into text in the request's thread buffer.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::SystemTime;

use axum::http::Method;
use sparta_access::Principal;
use sparta_core::escape::unescape;
use sparta_core::{InfoVersion, ProxyRequest};

use super::line::Entry;
use crate::reqid::RequestId;
use sparta_core::civil::Clock;

/// One audited request or refusal.
#[derive(Debug)]
pub struct Record<'a> {
    pub time: SystemTime,
    pub request_id: Option<&'a RequestId>,
    /// Absent when authentication is off or failed.
    pub principal: Option<&'a Principal>,
    pub client: Option<IpAddr>,
    pub method: &'a Method,
    /// The request's path as it came.
    pub path: &'a str,
    pub target: Target<'a>,
    pub status: u16,
    pub bytes: u64,
    /// memory, storage, upstream, or joined (waited on another request's fetch).
    pub tier: Option<&'static str>,
    /// allowed, or why the request was refused.
    pub decision: &'static str,
}

/// The module file a record is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// Not a module file (a refusal of some other path).
    None,
    File {
        /// Borrowed from the request's path when there is nothing to unescape.
        module: Cow<'a, str>,
        version: Cow<'a, str>,
        file: &'static str,
    },
}

impl<'a> Target<'a> {
    /// The target of the proxy path `proxy_path`; `by_path` when the memory
    /// cache answered under that very path ([`super::Tier::MemoryByPath`]),
    /// which makes it a storage key and spares the full parse. `None` when
    /// it names no module file.
    pub fn of(proxy_path: &'a str, by_path: bool) -> Target<'a> {
        let found = if by_path {
            memory_target(proxy_path)
        } else {
            parsed_target(proxy_path)
        };
        match found {
            Some((module, version, file)) => Target::File {
                module,
                version,
                file,
            },
            None => Target::None,
        }
    }

    /// Whether the record names a module file.
    pub fn is_some(&self) -> bool {
        !matches!(self, Target::None)
    }
}

impl Record<'_> {
    /// Appends the record's JSON line to `out`.
    pub fn write_to(&self, out: &mut String, clock: &mut Clock) {
        let (module, version, file) = match &self.target {
            Target::None => (None, None, None),
            Target::File {
                module,
                version,
                file,
            } => (Some(module.as_ref()), Some(version.as_ref()), Some(*file)),
        };
        Entry {
            time: self.time,
            request_id: self.request_id.map(RequestId::as_str),
            principal: self.principal,
            client: self.client,
            method: self.method.as_str(),
            path: self.path,
            module,
            version,
            file,
            status: self.status,
            bytes: self.bytes,
            tier: self.tier,
            decision: self.decision,
        }
        .write_to(out, clock);
    }
}

/// (module, version, file) of an `.info`, `.mod` or `.zip` request.
pub fn file_target(path: &str) -> Option<(String, String, &'static str)> {
    match ProxyRequest::parse(path).ok()? {
        ProxyRequest::Info(m, InfoVersion::Canonical(v)) => {
            Some((m.as_str().to_owned(), v.as_str().to_owned(), "info"))
        }
        ProxyRequest::Mod(m, v) => Some((m.as_str().to_owned(), v.as_str().to_owned(), "mod")),
        ProxyRequest::Zip(m, v) => Some((m.as_str().to_owned(), v.as_str().to_owned(), "zip")),
        _ => None,
    }
}

/// [`file_target`] of a path the memory cache answered under that very
/// path ([`super::Tier::MemoryByPath`]), without checking it again: it is
/// then the storage key of a version file, its canonical escaped path
/// (never `%`, never under `_sparta/`), put there after a request for it
/// was parsed. Anything else takes the full parse.
fn memory_target(path: &str) -> Option<Found<'_>> {
    if path.contains('%') || path.starts_with("_sparta/") {
        return parsed_target(path);
    }
    let fast = (|| {
        // Found from the end: a version and its extension are short.
        let at = path.bytes().rposition(|b| b == b'@')?;
        let module = path.get(..at.checked_sub(1)?)?;
        let file = path.get(at - 1..)?.strip_prefix("/@v/")?;
        let (version, ext) = file.rsplit_once('.')?;
        let kind = match ext {
            "info" => "info",
            "mod" => "mod",
            "zip" => "zip",
            _ => return None,
        };
        Some((unescaped(module, true)?, unescaped(version, false)?, kind))
    })();
    debug_assert_eq!(fast, parsed_target(path), "{path}");
    fast.or_else(|| parsed_target(path))
}

/// Module, version and file kind of a request, text borrowed where it can be.
type Found<'a> = (Cow<'a, str>, Cow<'a, str>, &'static str);

/// [`file_target`], in the form [`memory_target`] answers.
fn parsed_target(path: &str) -> Option<Found<'_>> {
    file_target(path).map(|(m, v, f)| (Cow::Owned(m), Cow::Owned(v), f))
}

/// Module and version text of a storage key, borrowed when there is
/// nothing to unescape. A module path never holds `@`: one that does is
/// left to the full parse, so the last `/@v/` found here is the only one.
fn unescaped(s: &str, module: bool) -> Option<Cow<'_, str>> {
    // What no storage key holds, in one pass with no early exit (it
    // vectorises); then `@` and `!`, found by memchr.
    let odd = s
        .bytes()
        .fold(false, |odd, b| odd | b.is_ascii_uppercase() | (b >= 0x80));
    if odd || (module && s.contains('@')) {
        None
    } else if s.contains('!') {
        unescape(s).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(t: Option<Found<'_>>) -> Option<(String, String, &'static str)> {
        t.map(|(m, v, f)| (m.into_owned(), v.into_owned(), f))
    }

    #[test]
    fn the_memory_shortcut_agrees_with_the_parse() {
        for path in [
            "example.com/m/@v/v1.0.0.info",
            "github.com/!azure/!s!d!k/v2/@v/v2.1.0-!r!c.1.mod",
            "example.com/m/@v/v1.0.0+incompatible.zip",
            "gopkg.in/yaml.v3/@v/v3.0.1.info",
            "example.com/m/@v/v1.0.0-0.20240101000000-abcdefabcdef.zip",
        ] {
            let parsed = file_target(path);
            assert!(parsed.is_some(), "{path}");
            assert_eq!(owned(memory_target(path)), parsed, "{path}");
        }
        assert_eq!(
            owned(memory_target("github.com/!azure/x/@v/v1.0.0.info")),
            Some(("github.com/Azure/x".into(), "v1.0.0".into(), "info"))
        );
        // What no storage key looks like falls back to the parse.
        for path in [
            "x/@v/v1.0.0.info%20",
            "_sparta/query/x/@v/master.info",
            "a@b/@v/v1.0.0.info",
            "a/@v/b/@v/v1.0.0.info",
            "@v/v1.0.0.info",
            "a/@v/v1.0.0.txt",
            "a/@v/V1.0.0.info",
        ] {
            assert_eq!(owned(memory_target(path)), file_target(path), "{path}");
        }
        for bad in ["A", "!", "a!", "!1", "é"] {
            assert!(unescape(bad).is_err(), "{bad}");
        }
        // Lists and latest answers are served by path too, and name no file.
        for path in ["example.com/m/@v/list", "example.com/m/@latest"] {
            assert_eq!(memory_target(path), None, "{path}");
            assert_eq!(Target::of(path, true), Target::None);
        }
    }

    #[test]
    fn a_record_by_path_writes_what_the_parse_would() {
        let id = RequestId::parse("abc");
        let user = Principal::User("u".into());
        for (path, module) in [
            (
                "/p/github.com/!azure/x/@v/v1.0.0.info",
                "github.com/Azure/x",
            ),
            ("/p/example.com/x/@v/v1.0.0.mod", "example.com/x"),
        ] {
            let proxy = &path["/p/".len()..];
            let by_path = Target::of(proxy, true);
            let parsed = Target::of(proxy, false);
            assert_eq!(by_path, parsed);
            let line = |target: Target| {
                let r = Record {
                    time: SystemTime::UNIX_EPOCH,
                    request_id: id.as_ref(),
                    principal: Some(&user),
                    client: None,
                    method: &Method::GET,
                    path,
                    target,
                    status: 200,
                    bytes: 3,
                    tier: Some("memory"),
                    decision: "allowed",
                };
                let mut out = String::new();
                r.write_to(&mut out, &mut Clock::default());
                out
            };
            let a = line(by_path);
            assert_eq!(a, line(parsed));
            let v: serde_json::Value = serde_json::from_str(&a).unwrap();
            assert_eq!(v["module"], module);
            assert_eq!(v["request_id"], "abc");
            assert_eq!(v["principal"], "user:u");
        }
    }
}
