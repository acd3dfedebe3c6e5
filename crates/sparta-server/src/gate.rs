//! The first thing a request meets: the access decision, and after the
//! answer its audit line. Probes and `/metrics` pass untouched.

use std::net::IpAddr;
use std::time::SystemTime;

use crate::AppState;
use crate::audit::{self, Record, Target, TierSlot};
use crate::metrics::RouteKind;
use axum::extract::Request;
use axum::http::{Method, header};
use axum::response::Response;

/// Paths that stay open whatever the access settings: Kubernetes probes
/// and scrapes carry no credentials (put /metrics on `--admin-listen` to
/// take it off the public port).
pub fn is_exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Decides, dispatches when allowed, and audits.
pub(crate) async fn guarded(
    state: &AppState,
    request: Request,
    peer: IpAddr,
    path: &str,
) -> (RouteKind, Response) {
    if is_exempt(path) {
        return crate::http::dispatch(state, request).await;
    }
    let proxy_path = path
        .strip_prefix(state.path_prefix.as_str())
        .and_then(|r| r.strip_prefix('/'))
        .filter(|r| !r.starts_with("sumdb/"));
    let (caller, verdict) = state
        .access
        .admit(Some(peer), request.headers(), proxy_path)
        .await;
    let Some(audit) = &state.audit else {
        return match verdict {
            Ok(()) => crate::http::dispatch(state, request).await,
            Err(refusal) => (RouteKind::Other, refusal.into_response()),
        };
    };
    let method = request.method().clone();
    // Guarded requests run in their id's scope (http::handle).
    let request_id = crate::reqid::current();
    let (route, response, decision, tier) = match verdict {
        Err(refusal) => {
            let decision = refusal.label();
            (RouteKind::Other, refusal.into_response(), decision, None)
        }
        // Only module files are audited when allowed.
        Ok(()) if !proxy_path.is_some_and(may_be_file) => {
            return crate::http::dispatch(state, request).await;
        }
        Ok(()) => {
            let slot = TierSlot::default();
            let (route, response) =
                audit::with_tier(Some(slot.clone()), crate::http::dispatch(state, request)).await;
            (route, response, "allowed", Some(slot))
        }
    };
    let status = response.status();
    // Which file: a memory hit's path is a storage key, read without the
    // full parse.
    let target = match proxy_path {
        Some(p) => Target::of(p, tier.as_ref().is_some_and(audit::by_path)),
        None => Target::None,
    };
    if decision == "allowed" && !target.is_some() {
        return (route, response);
    }
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
    audit
        .record(Record {
            time: SystemTime::now(),
            request_id: request_id.as_ref(),
            principal: caller.principal.as_ref(),
            client: caller.client,
            method: &method,
            path,
            target,
            status: status.as_u16(),
            bytes,
            tier: tier
                .as_ref()
                .map(audit::tier_label)
                .filter(|_| status.is_success()),
            decision,
        })
        .await;
    (route, response)
}

/// Whether `path` may name an `.info`, `.mod` or `.zip` file: every path
/// [`audit::file_target`] accepts passes (a `%` may hide anything).
fn may_be_file(path: &str) -> bool {
    path.contains('%')
        || (path.contains("/@v/") && [".info", ".mod", ".zip"].iter().any(|e| path.ends_with(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::file_target;

    #[test]
    fn whatever_parses_as_a_file_may_be_one() {
        for path in [
            "example.com/m/@v/v1.0.0.info",
            "example.com/m/@v/v1.0.0%2Einfo",
            "example.com/m/@v/master.info",
            "example.com/m/@v/list",
            "example.com/m/@latest",
            "example.com/m/@v/v1.0.0.txt",
        ] {
            assert!(file_target(path).is_none() || may_be_file(path), "{path}");
        }
        assert!(!may_be_file("example.com/m/@v/list"));
        assert!(!may_be_file("example.com/m/@latest"));
    }
}
