//! `/ui`: a server-rendered page to browse what the store holds, from the
//! catalog's in-memory index (no bucket listing per request). No script:
//! every value is HTML-escaped, and a Content-Security-Policy forbids
//! scripts outright, so an odd module path cannot run anything.

use std::fmt::Write as _;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sparta_catalog::index::{ModuleSummary, VersionEntry, format_time};

use crate::AppState;
use crate::error::ProxyError;

/// Modules per search page.
pub const SEARCH_PAGE: usize = 50;
/// Versions shown on a module page.
pub const MODULE_VERSIONS: usize = 500;
/// Recently stored versions on the front page.
const RECENT: usize = 10;

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
    page: Option<String>,
}

#[derive(Deserialize)]
struct ModuleQuery {
    path: String,
}

/// Escapes text for HTML content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value.
fn qenc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn query<T: serde::de::DeserializeOwned>(uri: &Uri) -> Result<T, ProxyError> {
    Query::<T>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ProxyError::BadQuery(e.body_text()))
}

/// The proxy's own URL as the client reached it, for the GOPROXY line.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{host}{}", state.path_prefix)
}

/// Upstream fetch outcomes since start: (ok, not found, failed).
fn upstream_health(state: &AppState) -> (u64, u64, u64) {
    let m = &state.metrics.upstream_fetches;
    let (mut ok, mut missing, mut failed) = (0, 0, 0);
    for kind in ["info", "mod", "zip", "list", "latest", "query"] {
        ok += m.with_label_values(&[kind, "ok"]).get();
        missing += m.with_label_values(&[kind, "not_found"]).get();
        for outcome in ["refused", "too_large", "timeout", "error", "invalid"] {
            failed += m.with_label_values(&[kind, outcome]).get();
        }
    }
    (ok, missing, failed)
}

/// `GET /ui?q=…&page=…`: search, plus what the proxy holds and does.
pub async fn search(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, ProxyError> {
    let q: SearchQuery = query(uri)?;
    let page = super::catalog::count(q.page.as_deref(), "page", 1, 1_000_000)?;
    let base = base_url(state, headers);
    let (cache_bytes, cache_entries) = state.proxy.cache().usage();
    let health = upstream_health(state);
    let index = state.proxy.catalog().read().await;
    let (hits, total) = index.search(&q.q, (page - 1) * SEARCH_PAGE, SEARCH_PAGE);
    let recent: Vec<(SystemTime, String, String)> = index
        .recent(RECENT)
        .into_iter()
        .map(|(t, p, v)| (t, p.to_owned(), v.to_owned()))
        .collect();
    let (versions, modules) = (index.len(), index.modules());
    drop(index);
    let mut html = head("Sparta: stored modules");
    let _ = write!(
        html,
        "<h1>Stored modules</h1>\n<p class=\"use\">Use this proxy: <code id=\"goproxy\">go env -w GOPROXY={}</code></p>\n",
        esc(&base)
    );
    let _ = writeln!(
        html,
        "<form method=\"get\" action=\"{p}/ui\"><input type=\"search\" name=\"q\" id=\"q\" value=\"{q}\" placeholder=\"module path contains…\" autofocus> <button type=\"submit\">Search</button></form>",
        p = esc(&state.path_prefix),
        q = esc(&q.q)
    );
    let _ = writeln!(
        html,
        "<p id=\"counts\">{total} matching modules · {versions} versions of {modules} modules stored · memory cache: {cache_entries} files, {cache_bytes} bytes · upstream since start: {} ok, {} not found, {} failed</p>",
        health.0, health.1, health.2
    );
    html.push_str(
        "<table id=\"results\"><tr><th>module</th><th>versions</th><th>last stored</th></tr>\n",
    );
    for m in &hits {
        row(&mut html, &state.path_prefix, m);
    }
    html.push_str("</table>\n");
    let pages = total.div_ceil(SEARCH_PAGE).max(1);
    let _ = write!(html, "<p class=\"pages\">page {page} of {pages}");
    if page > 1 {
        let _ = write!(
            html,
            " · <a href=\"{}/ui?q={}&amp;page={}\">previous</a>",
            esc(&state.path_prefix),
            qenc(&q.q),
            page - 1
        );
    }
    if page < pages {
        let _ = write!(
            html,
            " · <a id=\"next\" href=\"{}/ui?q={}&amp;page={}\">next</a>",
            esc(&state.path_prefix),
            qenc(&q.q),
            page + 1
        );
    }
    html.push_str("</p>\n<h2>Recently stored</h2>\n<ul id=\"recent\">\n");
    for (t, p, v) in &recent {
        let _ = writeln!(
            html,
            "<li>{} <a href=\"{}/ui/module?path={}\">{}</a> {}</li>",
            esc(&format_time(*t)),
            esc(&state.path_prefix),
            qenc(p),
            esc(p),
            esc(v)
        );
    }
    html.push_str("</ul>\n");
    Ok(page_response(html))
}

fn row(html: &mut String, prefix: &str, m: &ModuleSummary) {
    let _ = writeln!(
        html,
        "<tr><td><a class=\"module\" href=\"{}/ui/module?path={}\">{}</a></td><td>{}</td><td>{}</td></tr>",
        esc(prefix),
        qenc(&m.path),
        esc(&m.path),
        m.versions,
        esc(&format_time(m.latest))
    );
}

/// `GET /ui/module?path=…`: one module's stored versions.
pub async fn module(state: &AppState, uri: &Uri) -> Result<Response, ProxyError> {
    let q: ModuleQuery = query(uri)?;
    let versions: Vec<(String, VersionEntry)> = {
        let index = state.proxy.catalog().read().await;
        let Some(vs) = index.versions(&q.path) else {
            return Err(ProxyError::NotFound {
                status: 404,
                reason: format!("{} is not stored", q.path),
            });
        };
        let mut vs: Vec<(String, VersionEntry)> =
            vs.iter().map(|(v, e)| (v.clone(), e.clone())).collect();
        vs.sort_by_key(|e| std::cmp::Reverse(e.1.time));
        vs
    };
    let escaped_module = sparta_core::escape::escape(&q.path).unwrap_or_default();
    let mut html = head(&format!("Sparta: {}", q.path));
    let _ = write!(
        html,
        "<p><a href=\"{}/ui\">all modules</a></p>\n<h1 id=\"module\">{}</h1>\n<p>{} stored versions, newest first</p>\n",
        esc(&state.path_prefix),
        esc(&q.path),
        versions.len()
    );
    html.push_str("<table id=\"versions\"><tr><th>version</th><th>first stored</th><th>.info</th><th>.mod</th><th>.zip</th><th>h1:</th><th>in memory</th></tr>\n");
    for (v, e) in versions.iter().take(MODULE_VERSIONS) {
        let escaped_version = sparta_core::escape::escape(v).unwrap_or_default();
        let key = |ext: &str| format!("{escaped_module}/@v/{escaped_version}.{ext}");
        let mut cached = Vec::new();
        for ext in ["info", "mod"] {
            if state.proxy.cache().get(&key(ext)).is_some() {
                cached.push(ext);
            }
        }
        let size = |s: Option<u64>, ext: &str| match s {
            Some(n) => format!(
                "<a href=\"{}/{}\">{n}</a>",
                esc(&state.path_prefix),
                esc(&key(ext))
            ),
            None => "–".into(),
        };
        let _ = writeln!(
            html,
            "<tr><td class=\"version\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            esc(v),
            esc(&format_time(e.time)),
            size(e.info, "info"),
            size(e.gomod, "mod"),
            size(e.zip, "zip"),
            esc(e.h1.as_deref().unwrap_or("")),
            esc(&cached.join(", "))
        );
    }
    html.push_str("</table>\n");
    if versions.len() > MODULE_VERSIONS {
        let _ = writeln!(
            html,
            "<p>and {} older versions (see /catalog)</p>",
            versions.len() - MODULE_VERSIONS
        );
    }
    Ok(page_response(html))
}

fn head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:80em}}table{{border-collapse:collapse}}td,th{{padding:.2em .8em;text-align:left;border-bottom:1px solid #ddd}}code{{background:#f4f4f4;padding:.1em .3em}}input{{width:30em}}</style></head><body>\n",
        esc(title)
    )
}

fn page_response(mut html: String) -> Response {
    html.push_str("</body></html>\n");
    let len = html.len();
    let mut response = (StatusCode::OK, Body::from(html)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // No script of any origin, inline or not: the page needs none.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_open_markup() {
        assert_eq!(
            esc("a<script>alert(\"x\")</script>&'"),
            "a&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
        assert_eq!(qenc("a b/c+d"), "a%20b%2Fc%2Bd");
    }
}
