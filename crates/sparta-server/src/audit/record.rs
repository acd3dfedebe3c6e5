//! What a request hands the audit writer: the line's facts, owned and
//! cheap to make. Turning them into text (unescaping the module path,
//! JSON, the time) is the writer thread's work, off the request's path.

use std::net::IpAddr;
use std::time::SystemTime;

use axum::http::Method;
use sparta_access::Principal;
use sparta_core::escape::unescape;
use sparta_core::{InfoVersion, ProxyRequest};

use super::line::Entry;
use crate::reqid::RequestId;
use sparta_core::civil::Clock;

/// One audited request or refusal, as the writer thread receives it.
#[derive(Debug)]
pub struct Record {
    pub time: SystemTime,
    pub request_id: Option<RequestId>,
    /// Absent when authentication is off or failed.
    pub principal: Option<Principal>,
    pub client: Option<IpAddr>,
    pub method: Method,
    /// The request's path as it came.
    pub path: String,
    pub target: Target,
    pub status: u16,
    pub bytes: u64,
    /// memory, storage, upstream, or joined (waited on another request's fetch).
    pub tier: Option<&'static str>,
    /// allowed, or why the request was refused.
    pub decision: &'static str,
}

/// The module file a record is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Not a module file (a refusal of some other path).
    None,
    /// Parsed on the request's path already.
    Parsed {
        module: String,
        version: String,
        file: &'static str,
    },
    /// `path[start..]` is the storage key the memory cache answered under
    /// ([`super::Tier::MemoryByPath`]): the writer takes module and version
    /// from it ([`memory_target`]).
    ByPath { start: usize },
}

impl Target {
    /// The target of the proxy path `proxy_path` (a suffix of the request's
    /// path) for a request served by the memory cache under that very path
    /// when `by_path`; `None` when it names no module file.
    pub fn of(path: &str, proxy_path: &str, by_path: bool) -> Target {
        if by_path && names_file(proxy_path) {
            return Target::ByPath {
                start: path.len() - proxy_path.len(),
            };
        }
        match file_target(proxy_path) {
            Some((module, version, file)) => Target::Parsed {
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

/// Whether a storage key's last part is an `.info`, `.mod` or `.zip` file:
/// what [`memory_target`] accepts, decided without unescaping.
fn names_file(path: &str) -> bool {
    path.split_once("/@v/")
        .and_then(|(_, file)| file.rsplit_once('.'))
        .is_some_and(|(_, ext)| matches!(ext, "info" | "mod" | "zip"))
}

impl Record {
    /// Appends the record's JSON line to `out`.
    pub fn write_to(&self, out: &mut String, clock: &mut Clock) {
        let owned;
        let (module, version, file) = match &self.target {
            Target::None => (None, None, None),
            Target::Parsed {
                module,
                version,
                file,
            } => (Some(module.as_str()), Some(version.as_str()), Some(*file)),
            Target::ByPath { start } => {
                owned = self.path.get(*start..).and_then(memory_target);
                match &owned {
                    Some((m, v, f)) => (Some(m.as_str()), Some(v.as_str()), Some(*f)),
                    None => (None, None, None),
                }
            }
        };
        Entry {
            time: self.time,
            request_id: self.request_id.as_ref().map(RequestId::as_str),
            principal: self.principal.as_ref(),
            client: self.client,
            method: self.method.as_str(),
            path: &self.path,
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
fn memory_target(path: &str) -> Option<(String, String, &'static str)> {
    if path.contains('%') || path.starts_with("_sparta/") {
        return file_target(path);
    }
    let fast = (|| {
        let (module, file) = path.split_once("/@v/")?;
        let (version, ext) = file.rsplit_once('.')?;
        let kind = match ext {
            "info" => "info",
            "mod" => "mod",
            "zip" => "zip",
            _ => return None,
        };
        Some((unescape(module).ok()?, unescape(version).ok()?, kind))
    })();
    debug_assert_eq!(fast, file_target(path), "{path}");
    fast.or_else(|| file_target(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_shortcut_agrees_with_the_parse() {
        for path in [
            "example.com/m/@v/v1.0.0.info",
            "github.com/!azure/!s!d!k/v2/@v/v2.1.0-!r!c.1.mod",
            "example.com/m/@v/v1.0.0+incompatible.zip",
            "gopkg.in/yaml.v3/@v/v3.0.1.info",
        ] {
            assert!(names_file(path), "{path}");
            let parsed = file_target(path);
            assert!(parsed.is_some(), "{path}");
            assert_eq!(memory_target(path), parsed, "{path}");
        }
        assert_eq!(
            memory_target("github.com/!azure/x/@v/v1.0.0.info"),
            Some(("github.com/Azure/x".into(), "v1.0.0".into(), "info"))
        );
        // What no storage key looks like falls back to the parse.
        for path in ["x/@v/v1.0.0.info%20", "_sparta/query/x/@v/master.info"] {
            assert_eq!(memory_target(path), file_target(path), "{path}");
        }
        for bad in ["A", "!", "a!", "!1", "é"] {
            assert!(unescape(bad).is_err(), "{bad}");
        }
        // Lists and latest answers are served by path too, and name no file.
        for path in ["example.com/m/@v/list", "example.com/m/@latest"] {
            assert!(!names_file(path), "{path}");
            assert_eq!(Target::of(&format!("/{path}"), path, true), Target::None);
        }
    }

    #[test]
    fn a_record_by_path_writes_what_the_parse_would() {
        let path = "/p/github.com/!azure/x/@v/v1.0.0.info".to_owned();
        let proxy = &path["/p/".len()..];
        let by_path = Target::of(&path, proxy, true);
        assert!(matches!(by_path, Target::ByPath { .. }));
        let parsed = Target::of(&path, proxy, false);
        assert!(matches!(parsed, Target::Parsed { .. }));
        let line = |target: Target| {
            let r = Record {
                time: SystemTime::UNIX_EPOCH,
                request_id: RequestId::parse("abc"),
                principal: Some(Principal::User("u".into())),
                client: None,
                method: Method::GET,
                path: path.clone(),
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
        assert_eq!(v["module"], "github.com/Azure/x");
        assert_eq!(v["request_id"], "abc");
        assert_eq!(v["principal"], "user:u");
    }
}
