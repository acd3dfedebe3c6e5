//! Finding the repository of a module path as the go command does: the
//! static map first, then known hosting sites, a `.git` suffix in the path,
//! and otherwise `https://<path>?go-get=1` and its `go-import` meta tags.

use std::time::Duration;

use tracing::Instrument;

use crate::netcheck::resolve_checked;
use crate::{NetPolicy, VcsError, VcsMap};

/// Where a module's code lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RepoRoot {
    /// The module path prefix that names the repository root.
    pub root: String,
    /// The git remote URL.
    pub url: String,
}

/// Largest go-get answer read; meta tags live in the head.
const MAX_GO_GET_BODY: usize = 1 << 20;

/// `module.MatchPrefixPatterns` for one glob: the prefix of `path` with as
/// many elements as `pattern`, if `path.Match` accepts it.
pub(crate) fn match_prefix<'a>(pattern: &str, path: &'a str) -> Option<&'a str> {
    let pattern = pattern.trim_end_matches('/');
    if pattern.is_empty() {
        return None;
    }
    let n = pattern.split('/').count();
    let mut end = 0;
    let mut elems = 0;
    for (i, c) in path.char_indices() {
        if c == '/' {
            elems += 1;
            if elems == n {
                end = i;
                break;
            }
        }
    }
    if elems < n {
        if elems + 1 < n {
            return None;
        }
        end = path.len();
    }
    let prefix = &path[..end];
    let ok = pattern
        .split('/')
        .zip(prefix.split('/'))
        .all(|(p, e)| elem_match(p.as_bytes(), e.as_bytes()));
    ok.then_some(prefix)
}

/// `path.Match` for one element: `*`, `?`, `[...]` classes and `\` escapes.
fn elem_match(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| elem_match(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && elem_match(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(close) = p.iter().position(|&b| b == b']') else {
                return false;
            };
            let Some(&c) = s.first() else { return false };
            let class = &p[1..close];
            let (negate, class) = match class.first() {
                Some(b'^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && elem_match(&p[close + 1..], &s[1..])
        }
        Some(b'\\') if p.len() > 1 => s.first() == Some(&p[1]) && elem_match(&p[2..], &s[1..]),
        Some(&c) => s.first() == Some(&c) && elem_match(&p[1..], &s[1..]),
    }
}

/// Fills a `--vcs-map` template: `{path}` the matched prefix, `{host}` its
/// first element, `{rest}` the prefix without the host.
pub(crate) fn fill_template(template: &str, prefix: &str) -> String {
    let (host, rest) = prefix.split_once('/').unwrap_or((prefix, ""));
    template
        .replace("{path}", prefix)
        .replace("{host}", host)
        .replace("{rest}", rest)
}

/// The static map and the rules that need no network.
pub(crate) fn static_root(path: &str, maps: &[VcsMap], insecure: &[String]) -> Option<RepoRoot> {
    for m in maps {
        if let Some(prefix) = match_prefix(&m.pattern, path) {
            return Some(RepoRoot {
                root: prefix.to_owned(),
                url: fill_template(&m.template, prefix),
            });
        }
    }
    let scheme = if insecure.iter().any(|g| match_prefix(g, path).is_some()) {
        "http"
    } else {
        "https"
    };
    let elems: Vec<&str> = path.split('/').collect();
    // Known hosting sites: the repository is the first three elements.
    if matches!(elems[0], "github.com" | "bitbucket.org") && elems.len() >= 3 {
        let root = elems[..3].join("/");
        return Some(RepoRoot {
            url: format!("https://{root}"),
            root,
        });
    }
    // A `.git` suffix on an element after the host ends the repository path.
    for i in 1..elems.len() {
        if elems[i].len() > 4 && elems[i].ends_with(".git") {
            let root = elems[..=i].join("/");
            return Some(RepoRoot {
                url: format!("{scheme}://{root}"),
                root,
            });
        }
    }
    None
}

/// One `<meta name="go-import" content="prefix vcs url">`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetaImport {
    pub prefix: String,
    pub vcs: String,
    pub url: String,
}

/// The go-import meta tags of a go-get answer, up to `</head>` or `<body>`.
pub(crate) fn parse_meta(html: &str) -> Vec<MetaImport> {
    let lower = html.to_ascii_lowercase();
    let end = [lower.find("</head"), lower.find("<body")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(lower.len());
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = lower[at..end].find("<meta") {
        let start = at + i + 5;
        let close = lower[start..].find('>').map_or(lower.len(), |j| start + j);
        let attrs = parse_attrs(&html[start..close]);
        at = close.min(end);
        let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if get("name") != Some("go-import") {
            continue;
        }
        let Some(content) = get("content") else {
            continue;
        };
        let f: Vec<&str> = content.split_whitespace().collect();
        if let [prefix, vcs, url] = f[..] {
            out.push(MetaImport {
                prefix: prefix.to_owned(),
                vcs: vcs.to_owned(),
                url: url.to_owned(),
            });
        }
        if at >= end {
            break;
        }
    }
    // `mod` entries come first, as the go command sorts them.
    out.sort_by_key(|m| m.vcs != "mod");
    out
}

fn parse_attrs(s: &str) -> Vec<(String, String)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let ns = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
            i += 1;
        }
        let name = s[ns..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vs = i + 1;
                i = vs;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                value = s[vs..i].to_owned();
                i += 1;
            } else {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = s[vs..i].to_owned();
            }
        }
        if !name.is_empty() {
            out.push((name, decode_entities(&value)));
        }
    }
    out
}

fn decode_entities(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Picks the meta tag for `path` (`matchGoImport`): one whose prefix is a
/// path prefix of it; a `mod` entry wins over the others.
pub(crate) fn match_meta(path: &str, metas: &[MetaImport]) -> Result<RepoRoot, VcsError> {
    let mut found: Option<&MetaImport> = None;
    for m in metas {
        let prefix_ok = path == m.prefix || path.starts_with(&format!("{}/", m.prefix));
        if !prefix_ok {
            continue;
        }
        if let Some(prev) = found {
            if prev.vcs == "mod" && m.vcs != "mod" {
                break;
            }
            return Err(VcsError::NotFound(format!(
                "multiple go-import meta tags match {path}"
            )));
        }
        found = Some(m);
    }
    let m =
        found.ok_or_else(|| VcsError::NotFound(format!("no go-import meta tag matches {path}")))?;
    match m.vcs.as_str() {
        "git" => Ok(RepoRoot {
            root: m.prefix.clone(),
            url: m.url.clone(),
        }),
        "mod" => Err(VcsError::NotFound(format!(
            "{path} is served by the module proxy {}, not from a repository",
            m.url
        ))),
        other => Err(VcsError::NotFound(format!(
            "{path} is in a {other} repository; only git is supported"
        ))),
    }
}

/// Fetches `<scheme>://<path>?go-get=1` from a checked address, bounded in
/// size and time, without following redirects.
pub(crate) async fn go_get(
    path: &str,
    insecure: bool,
    policy: NetPolicy,
    timeout: Duration,
) -> Result<Vec<MetaImport>, VcsError> {
    let scheme = if insecure { "http" } else { "https" };
    let url = url::Url::parse(&format!("{scheme}://{path}?go-get=1"))
        .map_err(|e| VcsError::NotFound(format!("{path}: {e}")))?;
    let host = url
        .host_str()
        .ok_or_else(|| VcsError::NotFound(format!("{path}: no host")))?
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs = resolve_checked(&host, port, policy).await?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .resolve_to_addrs(&host, &addrs)
        .no_proxy()
        .build()
        .map_err(|e| VcsError::Failed(format!("discovery client: {e}")))?;
    let span = sparta_trace::client_span("vcs discovery");
    let request = client
        .get(url.clone())
        .headers(span.in_scope(sparta_trace::headers));
    let mut resp = request.send().instrument(span).await.map_err(|e| {
        if e.is_timeout() {
            VcsError::Timeout(format!("go-get request to {host} timed out"))
        } else {
            VcsError::NotFound(format!(
                "go-get request to {host} failed: {}",
                e.without_url()
            ))
        }
    })?;
    if !resp.status().is_success() {
        return Err(VcsError::NotFound(format!(
            "{scheme}://{path}?go-get=1 answered {}",
            resp.status()
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        VcsError::NotFound(format!(
            "reading go-get answer from {host}: {}",
            e.without_url()
        ))
    })? {
        let room = MAX_GO_GET_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_GO_GET_BODY {
            break;
        }
    }
    Ok(parse_meta(&String::from_utf8_lossy(&body)))
}

#[cfg(test)]
#[path = "discovery_tests.rs"]
mod tests;
