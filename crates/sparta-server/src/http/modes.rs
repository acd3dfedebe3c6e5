//! Download modes other than `sync`, applied before any fetch: a redirect,
//! a presigned URL of a stored zip, or stored answers only (with a
//! background fetch on a miss for `async`).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sparta_core::ProxyRequest;
use sparta_core::download::Action;

use crate::AppState;
use crate::error::ProxyError;

pub(super) async fn apply(
    state: &AppState,
    request: ProxyRequest,
    headers: &HeaderMap,
    head: bool,
    action: Action,
) -> Result<Response, ProxyError> {
    match action {
        Action::Serve => super::proxy(state, request, headers, head).await,
        Action::Redirect(url) => {
            let Ok(location) = HeaderValue::from_str(&url) else {
                return Err(ProxyError::Invalid("not a redirectable path".into()));
            };
            state.proxy.count_redirect("redirect");
            Ok(found(location, HeaderValue::from_static("no-store")))
        }
        Action::PresignedZip => presigned(state, request, headers, head).await,
        Action::StoredOnly {
            status,
            fetch_later,
        } => {
            let module = request.module().clone();
            match super::cached::proxy(state, request.clone(), headers, head).await {
                Err(ProxyError::NotFound { .. }) => {
                    let reason = if fetch_later && state.proxy.fetch_in_background(request) {
                        format!(
                            "{module} is fetched in the background (--download-mode async): not stored yet"
                        )
                    } else if fetch_later {
                        format!("{module} is not stored yet (--download-mode async)")
                    } else {
                        format!(
                            "{module} is not stored, and --download-mode none forbids fetching it"
                        )
                    };
                    Err(ProxyError::NotFound { status, reason })
                }
                other => other,
            }
        }
    }
}

/// A `302` to `location`.
fn found(location: HeaderValue, cache_control: HeaderValue) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    r.headers_mut().insert(header::LOCATION, location);
    r.headers_mut().insert(header::CACHE_CONTROL, cache_control);
    r
}

/// A zip of a `presigned` module: a `302` to a presigned URL of the stored
/// object. A `HEAD` or a conditional `GET` whose ETag matches is answered
/// here from a head call on storage (no bytes either way, and a URL signed
/// for GET would refuse a HEAD).
async fn presigned(
    state: &AppState,
    request: ProxyRequest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, ProxyError> {
    let ProxyRequest::Zip(module, version) = &request else {
        return super::proxy(state, request, headers, head).await;
    };
    let etag = crate::cache::immutable_etag(&sparta_core::key::version_file(
        module,
        version,
        sparta_core::FileKind::Zip,
    ));
    if head || super::etag_matches(headers, &etag) {
        return super::proxy(state, request, headers, head).await;
    }
    let Some(url) = state.proxy.presigned_zip(module, version).await? else {
        return super::proxy(state, request, headers, head).await;
    };
    let location = HeaderValue::from_str(url.as_str())
        .map_err(|_| ProxyError::Storage("the store signed a URL that is not a header".into()))?;
    state.proxy.count_redirect("presigned");
    Ok(found(
        location,
        presigned_cache_control(state.proxy.presign_ttl()),
    ))
}

/// A redirect to a URL that expires must not outlive it in any cache: half
/// its lifetime, so a cached answer still leaves time to follow it, and
/// `private`, because the URL is a credential of its own.
fn presigned_cache_control(ttl: std::time::Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("private, max-age={}", ttl.as_secs() / 2))
        .expect("digits are a header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_redirects_are_cached_for_half_the_url_lifetime() {
        let secs = std::time::Duration::from_secs;
        assert_eq!(presigned_cache_control(secs(300)), "private, max-age=150");
        assert_eq!(presigned_cache_control(secs(1)), "private, max-age=0");
    }
}
