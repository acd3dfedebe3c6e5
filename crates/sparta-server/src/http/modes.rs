//! Download modes other than `sync`, applied before any fetch: a redirect,
//! or stored answers only (with a background fetch on a miss for `async`).

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
            let mut r = StatusCode::FOUND.into_response();
            r.headers_mut().insert(header::LOCATION, location);
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(r)
        }
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
