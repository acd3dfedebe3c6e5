//! The first thing a request meets: the access decision, and after the
//! answer its audit line. Probes and `/metrics` pass untouched.

use std::net::SocketAddr;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, Request};
use axum::http::{Method, header};
use axum::response::Response;
use sparta_core::escape::unescape;
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
    let request_id = request.headers().get("x-request-id").cloned();
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
    let target = match proxy_path {
        Some(p) if tier.as_ref().is_some_and(audit::by_path) => memory_target(p),
        Some(p) => file_target(p),
        None => None,
    };
    if decision == "allowed" && target.is_none() {
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
    let (module, version, file) = match &target {
        Some((m, v, f)) => (Some(m.as_str()), Some(v.as_str()), Some(*f)),
        None => (None, None, None),
    };
    audit
        .record(&Entry {
            time: SystemTime::now(),
            request_id: request_id.as_ref().and_then(|v| v.to_str().ok()),
            principal: caller.principal.as_ref(),
            client: caller.client,
            method: method.as_str(),
            path: &path,
            module,
            version,
            file,
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
/// [`file_target`] accepts passes (a `%` may hide anything).
fn may_be_file(path: &str) -> bool {
    path.contains('%')
        || (path.contains("/@v/") && [".info", ".mod", ".zip"].iter().any(|e| path.ends_with(e)))
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

/// [`file_target`] of a path the memory cache answered under that very
/// path ([`audit::Tier::MemoryByPath`]), without checking it again: it is
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
            assert!(may_be_file(path), "{path}");
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
    }

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
