//! Parsing a GOPROXY request path into a typed request.

use crate::{CoreError, InfoVersion, ModulePath, Version, escape};

/// Longest raw request path considered; longer ones are refused before any
/// decoding, so hostile paths cost little.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest version query (`.info` for a non-canonical version).
pub const MAX_QUERY_LEN: usize = 256;

/// The kind of a per-version file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    Info,
    Mod,
    Zip,
}

impl FileKind {
    /// The file extension without the dot: `info`, `mod`, `zip`.
    pub fn ext(self) -> &'static str {
        match self {
            FileKind::Info => "info",
            FileKind::Mod => "mod",
            FileKind::Zip => "zip",
        }
    }
}

/// One GOPROXY protocol request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProxyRequest {
    /// `$module/@v/list`
    List(ModulePath),
    /// `$module/@latest`
    Latest(ModulePath),
    /// `$module/@v/$version.info`, canonical or a query.
    Info(ModulePath, InfoVersion),
    /// `$module/@v/$version.mod`, canonical only.
    Mod(ModulePath, Version),
    /// `$module/@v/$version.zip`, canonical only.
    Zip(ModulePath, Version),
}

impl ProxyRequest {
    /// Parses a raw, still percent-encoded URL path with the mount prefix and
    /// leading `/` removed, e.g. `github.com/%21azure/x/@v/v1.0.0.zip`.
    pub fn parse(raw_path: &str) -> Result<Self, CoreError> {
        if raw_path.len() > MAX_PATH_LEN {
            return Err(invalid_request("path too long"));
        }
        let path = percent_decode(raw_path)?;
        if let Some(module) = path.strip_suffix("/@v/list") {
            return Ok(ProxyRequest::List(ModulePath::from_escaped(module)?));
        }
        if let Some(module) = path.strip_suffix("/@latest") {
            return Ok(ProxyRequest::Latest(ModulePath::from_escaped(module)?));
        }
        // A module path never contains `@`, so the first `/@v/` ends it.
        let (module, file) = path
            .split_once("/@v/")
            .ok_or_else(|| invalid_request("not a proxy path"))?;
        let module = ModulePath::from_escaped(module)?;
        if file.contains('/') {
            return Err(invalid_request("unexpected path after the version file"));
        }
        let (version, ext) = file
            .rsplit_once('.')
            .ok_or_else(|| invalid_request("missing file extension"))?;
        let kind = match ext {
            "info" => FileKind::Info,
            "mod" => FileKind::Mod,
            "zip" => FileKind::Zip,
            _ => return Err(invalid_request("unknown file extension")),
        };
        let canonical =
            Version::from_escaped(version).and_then(|v| module.check_version(&v).map(|()| v));
        Ok(match (kind, canonical) {
            (FileKind::Mod, Ok(v)) => ProxyRequest::Mod(module, v),
            (FileKind::Zip, Ok(v)) => ProxyRequest::Zip(module, v),
            (FileKind::Info, Ok(v)) => ProxyRequest::Info(module, InfoVersion::Canonical(v)),
            (FileKind::Info, Err(_)) => {
                ProxyRequest::Info(module, InfoVersion::Query(parse_query(version)?))
            }
            (_, Err(e)) => return Err(e),
        })
    }

    /// The module this request is about.
    pub fn module(&self) -> &ModulePath {
        match self {
            ProxyRequest::List(m)
            | ProxyRequest::Latest(m)
            | ProxyRequest::Info(m, _)
            | ProxyRequest::Mod(m, _)
            | ProxyRequest::Zip(m, _) => m,
        }
    }

    /// The escaped URL path of this request relative to a proxy root
    /// (what Sparta asks upstream for), e.g. `github.com/!azure/x/@v/v1.0.0.zip`.
    pub fn upstream_path(&self) -> String {
        let m = self.module().escaped();
        match self {
            ProxyRequest::List(_) => format!("{m}/@v/list"),
            ProxyRequest::Latest(_) => format!("{m}/@latest"),
            ProxyRequest::Info(_, InfoVersion::Canonical(v)) => {
                format!("{m}/@v/{}.info", v.escaped())
            }
            ProxyRequest::Info(_, InfoVersion::Query(q)) => {
                format!("{m}/@v/{}.info", escape_query(q))
            }
            ProxyRequest::Mod(_, v) => format!("{m}/@v/{}.mod", v.escaped()),
            ProxyRequest::Zip(_, v) => format!("{m}/@v/{}.zip", v.escaped()),
        }
    }
}

/// The `!`-escaped form of a query as [`ProxyRequest::parse`] accepted it,
/// e.g. for `key::query` and the upstream URL.
pub fn escape_query(query: &str) -> String {
    // Queries are ASCII without `!` by construction; fall back to the raw
    // string only to stay total for hand-built values.
    escape::escape(query).unwrap_or_else(|_| query.to_owned())
}

fn invalid_request(reason: &str) -> CoreError {
    CoreError::InvalidRequest(reason.to_owned())
}

/// Percent-decodes a URL path: `%XX` needs two hex digits, and the result
/// must be UTF-8 without control characters. `+` stays a `+`.
fn percent_decode(raw: &str) -> Result<String, CoreError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .ok_or_else(|| invalid_request("bad percent-encoding"))?;
            // Two hex digits always fit a byte.
            let decoded =
                u8::from_str_radix(hex, 16).map_err(|_| invalid_request("bad percent-encoding"))?;
            // The go command never encodes a path separator; an encoded one
            // only ever hides a path from checks made before decoding.
            if decoded == b'/' || decoded == b'\\' {
                return Err(invalid_request("encoded path separator"));
            }
            out.push(decoded);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    let s = String::from_utf8(out).map_err(|_| invalid_request("path is not UTF-8"))?;
    if s.chars().any(char::is_control) {
        return Err(invalid_request("control character in path"));
    }
    Ok(s)
}

/// Checks the escaped version part of a non-canonical `.info` request and
/// returns it unescaped. Queries name branches, tags, commits or version
/// prefixes; the character set is kept to what is safe unencoded in a URL
/// path and a storage key.
fn parse_query(escaped: &str) -> Result<String, CoreError> {
    let invalid = |reason: &str| CoreError::InvalidVersion {
        version: escaped.to_owned(),
        reason: reason.to_owned(),
    };
    if escaped.is_empty() {
        return Err(invalid("empty version"));
    }
    if escaped.len() > MAX_QUERY_LEN {
        return Err(invalid("query too long"));
    }
    let query = escape::unescape(escaped).map_err(|_| invalid("invalid escaped version"))?;
    if !query
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+'))
    {
        return Err(invalid("unsupported character in version query"));
    }
    if query.starts_with('.') {
        return Err(invalid("leading dot in version query"));
    }
    // The same element rule `module.UnescapeVersion` applies.
    crate::module::check_file_elem(&query).map_err(|reason| invalid(&reason))?;
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> ProxyRequest {
        ProxyRequest::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn m(s: &str) -> ModulePath {
        ModulePath::parse(s).unwrap()
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn protocol_paths() {
        assert_eq!(
            parse("golang.org/x/mod/@v/list"),
            ProxyRequest::List(m("golang.org/x/mod"))
        );
        assert_eq!(
            parse("golang.org/x/mod/@latest"),
            ProxyRequest::Latest(m("golang.org/x/mod"))
        );
        assert_eq!(
            parse("github.com/%21azure/x/@v/v1.0.0.zip"),
            ProxyRequest::Zip(m("github.com/Azure/x"), v("v1.0.0"))
        );
        assert_eq!(
            parse("github.com/!azure/x/@v/v1.0.0.mod"),
            ProxyRequest::Mod(m("github.com/Azure/x"), v("v1.0.0"))
        );
        assert_eq!(
            parse("github.com/x/y/@v/v2.0.0+incompatible.info"),
            ProxyRequest::Info(
                m("github.com/x/y"),
                InfoVersion::Canonical(v("v2.0.0+incompatible"))
            )
        );
        assert_eq!(
            parse("github.com/x/y/@v/v1.0.0-%21r%21c1.zip"),
            ProxyRequest::Zip(m("github.com/x/y"), v("v1.0.0-RC1"))
        );
        assert_eq!(
            parse("github.com/x/y/v2/@v/v2.0.0-20190510104115-cbcb75029529.mod"),
            ProxyRequest::Mod(
                m("github.com/x/y/v2"),
                v("v2.0.0-20190510104115-cbcb75029529")
            )
        );
        assert_eq!(
            parse("gopkg.in/yaml.v2/@v/v2.4.0.zip"),
            ProxyRequest::Zip(m("gopkg.in/yaml.v2"), v("v2.4.0"))
        );
    }

    #[test]
    fn queries() {
        let q = |s: &str| InfoVersion::Query(s.to_owned());
        let x = m("github.com/x/y");
        assert_eq!(
            parse("github.com/x/y/@v/master.info"),
            ProxyRequest::Info(x.clone(), q("master"))
        );
        assert_eq!(
            parse("github.com/x/y/@v/v1.2.info"),
            ProxyRequest::Info(x.clone(), q("v1.2"))
        );
        assert_eq!(
            parse("github.com/x/y/@v/!main.info"),
            ProxyRequest::Info(x.clone(), q("Main"))
        );
        assert_eq!(
            parse("github.com/x/y/@v/cbcb75029529.info"),
            ProxyRequest::Info(x.clone(), q("cbcb75029529"))
        );
        // A canonical version that does not fit the path is only a query.
        assert_eq!(
            parse("github.com/x/y/@v/v2.0.0.info"),
            ProxyRequest::Info(x.clone(), q("v2.0.0"))
        );
        assert_eq!(
            parse("github.com/x/y/@v/v1.2.3+meta.info"),
            ProxyRequest::Info(x, q("v1.2.3+meta"))
        );
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "/",
            "github.com/x/y",
            "github.com/x/y/@v/",
            "github.com/x/y/@v/.info",
            "github.com/x/y/@v/list/",
            "github.com/x/y/@v/v1.0.0",
            "github.com/x/y/@v/v1.0.0.tar",
            "github.com/x/y/@v/v1.2.mod",
            "github.com/x/y/@v/master.zip",
            "github.com/x/y/@v/v2.0.0.zip",
            "github.com/x/y/v2/@v/v2.0.0+incompatible.zip",
            "github.com/x/y/@v/v1.0.0-RC1.zip",
            "github.com/Azure/x/@v/list",
            "github.com/!Azure/x/@v/list",
            "github.com/!1zure/x/@v/list",
            "github.com/azure!/x/@v/list",
            "github.com/x/y/v1/@v/list",
            "github.com/x/../y/@v/list",
            "github.com/x/%2e%2e/y/@v/list",
            "github.com/x/y/@v/..info",
            "github.com/x/y/@v/...info",
            "github.com/x/y/@v/%2e%2e%2fetc.info",
            "github.com/x/y/@v/a%2fb.info",
            "github.com/x/y/@v/a%00b.info",
            "github.com/x/y%00/@v/list",
            "github.com/x/y/@v/v1.0.0%zip",
            "github.com/x/y/@v/v1.0.0.zi%",
            "github.com/x/y/@v/v1.0.0.zi%g0",
            "github.com/x/y/@v/%ff.info",
            "github.com/x/y/@v/a b.info",
            "github.com/x/y/@v/a%20b.info",
            "github.com/x/y/@v/a%0ab.info",
            "github.com/x/y/@v/!.info",
            "github.com/x/y/@v/nul.info",
            "github.com/x/y/@v/@latest.info",
            "github.com/x/y/@latest/@v/list",
            "github.com/x/y@v1/@v/list",
            "localhost/x/@v/list",
            "_sparta/query/x/@v/list",
        ] {
            assert!(
                ProxyRequest::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        let long_query = format!("github.com/x/y/@v/{}.info", "a".repeat(300));
        assert!(ProxyRequest::parse(&long_query).is_err());
        let long_path = format!("github.com/{}/@v/list", "a/".repeat(5000));
        assert!(matches!(
            ProxyRequest::parse(&long_path),
            Err(CoreError::InvalidRequest(_))
        ));
    }

    #[test]
    fn encoded_separators_are_refused() {
        // The go command never encodes `/`; an encoded one is always hostile.
        for p in [
            "github.com%2fx%2fy/@v/list",
            "github.com/x%2Fy/@v/list",
            "github.com/x/y%5c/@v/list",
        ] {
            assert!(
                matches!(ProxyRequest::parse(p), Err(CoreError::InvalidRequest(_))),
                "{p}"
            );
        }
        assert_eq!(
            parse("github.com/x/y/@v/list"),
            ProxyRequest::List(m("github.com/x/y"))
        );
    }

    #[test]
    fn upstream_paths() {
        for p in [
            "github.com/!azure/x/@v/list",
            "github.com/!azure/x/@latest",
            "github.com/!azure/x/@v/v1.0.0-!r!c1.info",
            "github.com/!azure/x/@v/!main.info",
            "github.com/!azure/x/@v/v1.0.0.mod",
            "github.com/!azure/x/@v/v1.0.0.zip",
        ] {
            assert_eq!(parse(p).upstream_path(), p);
        }
        assert_eq!(
            parse("github.com/%21azure/x/@v/list").upstream_path(),
            "github.com/!azure/x/@v/list"
        );
    }

    fn path_elem() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("@v".to_owned()),
            Just("@latest".to_owned()),
            Just("list".to_owned()),
            Just("..".to_owned()),
            Just("%21".to_owned()),
            "v[0-9]\\.[0-9]\\.[0-9](-[a-zA-Z0-9.!]{1,6})?(\\+incompatible)?\\.(info|mod|zip)",
            "[a-zA-Z0-9.!~_%+-]{1,8}",
            "\\PC{0,6}",
        ]
    }

    fn plausible_path() -> impl Strategy<Value = String> {
        proptest::collection::vec(path_elem(), 1..7).prop_map(|v| v.join("/"))
    }

    fn query() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9][a-zA-Z0-9._~+-]{0,20}"
    }

    proptest! {
        #[test]
        fn never_panics_on_strings(s in "\\PC{0,200}") {
            let _ = ProxyRequest::parse(&s);
        }

        #[test]
        fn never_panics_on_encoded_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let encoded: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
            let _ = ProxyRequest::parse(&encoded);
        }

        #[test]
        fn upstream_path_round_trips(s in plausible_path()) {
            if let Ok(r) = ProxyRequest::parse(&s) {
                let up = r.upstream_path();
                prop_assert_eq!(ProxyRequest::parse(&up).unwrap(), r.clone());
                prop_assert!(!up.chars().any(|c| c.is_ascii_uppercase()));
            }
        }

        #[test]
        fn queries_round_trip(q in query()) {
            let r = ProxyRequest::Info(m("github.com/x/y"), InfoVersion::Query(q.clone()));
            match ProxyRequest::parse(&r.upstream_path()) {
                Ok(ProxyRequest::Info(_, InfoVersion::Query(back))) => prop_assert_eq!(back, q),
                // A query that spells a canonical version parses as one.
                Ok(ProxyRequest::Info(_, InfoVersion::Canonical(v))) => prop_assert_eq!(v.as_str(), q.as_str()),
                // Element rules (Windows names, trailing dot) refuse some queries.
                Ok(other) => prop_assert!(false, "unexpected {:?}", other),
                Err(_) => prop_assert!(crate::module::check_file_elem(&q).is_err()),
            }
        }
    }
}
