//! `/catalog` (paged JSON, the shape Athens' catalog answers) and `/index`
//! (NDJSON, the go command's module index format), from the catalog's
//! in-memory index: no bucket listing per request.

use axum::body::Body;
use axum::extract::Query;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ProxyError;

/// Page size when the client names none (Athens' default).
pub const DEFAULT_PAGE: usize = 1000;
/// The go command's index answers at most this many lines per request.
pub const MAX_INDEX_LIMIT: usize = 2000;

#[derive(Deserialize)]
struct CatalogQuery {
    #[serde(default)]
    token: String,
    pagesize: Option<String>,
}

#[derive(Deserialize)]
struct IndexQuery {
    since: Option<String>,
    limit: Option<String>,
}

#[derive(Serialize)]
struct CatalogPage<'a> {
    modules: Vec<CatalogEntry<'a>>,
    next: String,
}

#[derive(Serialize)]
struct CatalogEntry<'a> {
    module: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct IndexLine<'a> {
    path: &'a str,
    version: &'a str,
    timestamp: String,
}

fn query<T: serde::de::DeserializeOwned>(uri: &Uri) -> Result<T, ProxyError> {
    Query::<T>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ProxyError::BadQuery(e.body_text()))
}

/// A positive count from a query parameter, at most `max`.
pub(crate) fn count(
    raw: Option<&str>,
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ProxyError> {
    match raw {
        None | Some("") => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n.min(max)),
            _ => Err(ProxyError::BadQuery(format!(
                "{name} must be a positive number"
            ))),
        },
    }
}

/// `GET /catalog?token=…&pagesize=…`.
pub async fn catalog(state: &AppState, uri: &Uri) -> Result<Response, ProxyError> {
    let q: CatalogQuery = query(uri)?;
    let size = count(
        q.pagesize.as_deref(),
        "pagesize",
        DEFAULT_PAGE,
        sparta_catalog::index::MAX_PAGE,
    )?;
    let index = state.proxy.catalog().read().await;
    let (items, next) = index.catalog_page(&q.token, size);
    let page = CatalogPage {
        modules: items
            .into_iter()
            .map(|(module, version)| CatalogEntry { module, version })
            .collect(),
        next,
    };
    let body = serde_json::to_vec(&page).map_err(|e| ProxyError::Storage(e.to_string()))?;
    drop(index);
    Ok(reply(body, "application/json"))
}

/// `GET /index?since=…&limit=…`.
pub async fn index(state: &AppState, uri: &Uri) -> Result<Response, ProxyError> {
    let q: IndexQuery = query(uri)?;
    let since = match q.since.as_deref() {
        None | Some("") => std::time::UNIX_EPOCH,
        Some(s) => sparta_catalog::index::parse_time(s).ok_or_else(|| {
            ProxyError::BadQuery(
                "since must be an RFC 3339 time in UTC, e.g. 2019-04-10T19:08:52Z".into(),
            )
        })?,
    };
    let limit = count(
        q.limit.as_deref(),
        "limit",
        MAX_INDEX_LIMIT,
        MAX_INDEX_LIMIT,
    )?;
    let index = state.proxy.catalog().read().await;
    let mut body = Vec::new();
    for (time, path, version) in index.since(since, limit) {
        let line = IndexLine {
            path,
            version,
            timestamp: sparta_catalog::index::format_time(time),
        };
        serde_json::to_writer(&mut body, &line).map_err(|e| ProxyError::Storage(e.to_string()))?;
        body.push(b'\n');
    }
    drop(index);
    Ok(reply(body, "application/x-ndjson"))
}

fn reply(body: Vec<u8>, content_type: &'static str) -> Response {
    let len = body.len();
    let mut response = (StatusCode::OK, Body::from(body)).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
