//! The first thing a request meets: the access decision, and after the
//! answer its audit line. Probes and `/metrics` pass untouched.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::{Method, header};
use axum::response::Response;
use sparta_core::{InfoVersion, ProxyRequest};

use crate::AppState;
use crate::audit::{self, Entry, TierSlot};
use crate::metrics::RouteKind;

/// Paths that stay open whatever the access settings: Kubernetes probes
/// and scrapes carry no credentials (put /metrics on `--admin-listen` to
/// take it off the public port).
pub fn is_exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Decides, dispatches when allowed, and audits.
pub(crate) async fn guarded(state: &AppState, request: Request) -> (RouteKind, Response) {
    let path = request.uri().path().to_owned();
    if is_exempt(&path) {
        return crate::http::dispatch(state, request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let proxy_path = path
        .strip_prefix(state.path_prefix.as_str())
        .and_then(|r| r.strip_prefix('/'))
        .filter(|r| !r.starts_with("sumdb/"));
    let (caller, verdict) = state
        .access
        .admit(peer, request.headers(), proxy_path)
        .await;
    let Some(audit) = &state.audit else {
        return match verdict {
            Ok(()) => crate::http::dispatch(state, request).await,
            Err(refusal) => (RouteKind::Other, refusal.into_response()),
        };
    };
    let method = request.method().clone();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let target = proxy_path.and_then(file_target);
    let (route, response, decision, tier) = match verdict {
        Err(refusal) => {
            let decision = refusal.label();
            (RouteKind::Other, refusal.into_response(), decision, None)
        }
        Ok(()) => {
            if target.is_none() {
                // Only module files are audited when allowed.
                let (route, response) = crate::http::dispatch(state, request).await;
                return (route, response);
            }
            let slot = TierSlot::default();
            let (route, response) =
                audit::with_tier(Some(slot.clone()), crate::http::dispatch(state, request)).await;
            (route, response, "allowed", Some(audit::tier_label(&slot)))
        }
    };
    let bytes = if method == Method::HEAD {
        0
    } else {
        response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (module, version, file) = match &target {
        Some((m, v, f)) => (Some(m.as_str()), Some(v.as_str()), Some(*f)),
        None => (None, None, None),
    };
    let served_ok = response.status().is_success();
    audit
        .record(&Entry {
            time: audit::now_rfc3339(),
            request_id: request_id.as_deref(),
            principal: caller.principal.as_ref().map(|p| p.describe()),
            client: caller.client.map(|c| c.to_string()),
            method: method.as_str(),
            path: &path,
            module,
            version,
            file,
            status: response.status().as_u16(),
            bytes,
            tier: tier.filter(|_| served_ok),
            decision,
        })
        .await;
    (route, response)
}

/// (module, version, file) of an `.info`, `.mod` or `.zip` request.
fn file_target(path: &str) -> Option<(String, String, &'static str)> {
    match ProxyRequest::parse(path).ok()? {
        ProxyRequest::Info(m, InfoVersion::Canonical(v)) => {
            Some((m.as_str().to_owned(), v.as_str().to_owned(), "info"))
        }
        ProxyRequest::Mod(m, v) => Some((m.as_str().to_owned(), v.as_str().to_owned(), "mod")),
        ProxyRequest::Zip(m, v) => Some((m.as_str().to_owned(), v.as_str().to_owned(), "zip")),
        _ => None,
    }
}
