//! Requests that must not fetch: `Disable-Module-Fetch: true` on proxy
//! paths, `/sumdb/<name>/cached-only/...` for the checksum database.

use axum::http::{HeaderMap, header};
use axum::response::Response;
use sparta_core::{FileKind, InfoVersion, ProxyRequest};

use super::{etag_matches, if_range_matches, small, zip_response};
use crate::AppState;
use crate::error::ProxyError;
use crate::service::RangeRequest;

/// The header pkgsite and the go command's tooling send.
const DISABLE_FETCH: &str = "disable-module-fetch";

/// Whether the client asked for cached answers only.
pub(super) fn fetch_disabled(headers: &HeaderMap) -> bool {
    headers
        .get(DISABLE_FETCH)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
}

/// [`super::proxy`] with every tier but upstream.
pub(super) async fn proxy(
    state: &AppState,
    request: ProxyRequest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, ProxyError> {
    let service = &state.proxy;
    match request {
        ProxyRequest::List(m) => Ok(small(service.cached_list(&m).await?, headers)),
        ProxyRequest::Latest(m) => Ok(small(service.cached_latest(&m).await?, headers)),
        ProxyRequest::Info(m, InfoVersion::Query(q)) => {
            let escaped = sparta_core::request::escape_query(&q);
            Ok(small(service.cached_query(&m, &escaped).await?, headers))
        }
        ProxyRequest::Info(m, InfoVersion::Canonical(v)) => Ok(small(
            service.cached_small_file(&m, &v, FileKind::Info).await?,
            headers,
        )),
        ProxyRequest::Mod(m, v) => Ok(small(
            service.cached_small_file(&m, &v, FileKind::Mod).await?,
            headers,
        )),
        ProxyRequest::Zip(m, v) => {
            let etag = crate::cache::immutable_etag(&sparta_core::key::version_file(
                &m,
                &v,
                FileKind::Zip,
            ));
            let range = headers
                .get(header::RANGE)
                .and_then(|r| r.to_str().ok())
                .and_then(RangeRequest::parse)
                .filter(|_| if_range_matches(headers, &etag));
            if head || etag_matches(headers, &etag) {
                let info = service.cached_zip_info(&m, &v).await?;
                return super::zip_head(info.size, etag, range, headers);
            }
            let body = service.cached_zip(&m, &v, range).await?;
            Ok(zip_response(body, etag, range.is_some()))
        }
    }
}
