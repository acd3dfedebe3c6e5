//! The first thing a request meets: the access decision, and after the
//! answer its audit line. Probes and `/metrics` pass untouched.

use std::net::IpAddr;
use std::time::SystemTime;

use crate::AppState;
use crate::access::{Caller, Refusal};
use crate::audit::{AuditLog, Record, Target, Tier};
use crate::metrics::RouteKind;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;

/// Paths that stay open whatever the access settings: Kubernetes probes
/// and scrapes carry no credentials (put /metrics on `--admin-listen` to
/// take it off the public port).
pub fn is_exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// What the gate decided before a request is served.
pub(crate) enum Before {
    /// Serve it; with the caller when its answer is to be audited.
    Serve(Option<Caller>),
    /// Refused: [`refused`] answers and audits it.
    Refused(Caller, Refusal),
    /// Its credential is not among those verified lately, and checking it
    /// takes a blocking thread: [`guarded`] decides, serves and audits.
    Slow,
}

/// Decides on a request without waiting: the common case (no checks, or a
/// credential verified lately) is served by the caller's own future, with
/// no second one boxed around it.
pub(crate) fn before(state: &AppState, request: &Request, peer: IpAddr, path: &str) -> Before {
    if is_exempt(path) {
        return Before::Serve(None);
    }
    let proxy_path = proxy_path(state, path);
    match state
        .access
        .admit_cached(Some(peer), request.headers(), proxy_path)
    {
        None => Before::Slow,
        Some((caller, Ok(()))) => {
            // Only module files are audited when allowed.
            let audited = state.audit.is_some() && proxy_path.is_some_and(may_be_file);
            Before::Serve(audited.then_some(caller))
        }
        Some((caller, Err(refusal))) => Before::Refused(caller, refusal),
    }
}

/// Writes the audit line of a served request, `caller` as [`before`] found
/// it, if the request named a module file.
pub(crate) async fn served(
    state: &AppState,
    caller: &Caller,
    method: &Method,
    path: &str,
    answer: Answer,
) {
    let (Some(audit), Some(proxy_path)) = (&state.audit, proxy_path(state, path)) else {
        return;
    };
    let tier = crate::reqid::noted_tier();
    // Which file: a memory hit's path is a storage key, read without the
    // full parse.
    let target = Target::of(proxy_path, tier.is_some_and(Tier::by_path));
    if !target.is_some() {
        return;
    }
    let tier = tier.map(Tier::label).filter(|_| answer.status.is_success());
    let asked = Asked {
        caller,
        method,
        path,
    };
    write(audit, asked, "allowed", target, answer, tier).await;
}

/// Answers a refused request and audits the refusal.
pub(crate) async fn refused(
    state: &AppState,
    caller: Caller,
    refusal: Refusal,
    method: &Method,
    path: &str,
) -> (RouteKind, Response) {
    let decision = refusal.label();
    let response = refusal.into_response();
    if let Some(audit) = &state.audit {
        let target = match proxy_path(state, path) {
            Some(p) => Target::of(p, false),
            None => Target::None,
        };
        let answer = Answer::of(method, &response);
        let asked = Asked {
            caller: &caller,
            method,
            path,
        };
        write(audit, asked, decision, target, answer, None).await;
    }
    (RouteKind::Other, response)
}

/// Decides (checking a credential on a blocking thread), serves when
/// allowed, and audits.
pub(crate) async fn guarded(
    state: &AppState,
    request: Request,
    peer: IpAddr,
    path: &str,
) -> (RouteKind, Response) {
    let method = request.method().clone();
    let proxy_path = proxy_path(state, path);
    let (caller, verdict) = state
        .access
        .admit(Some(peer), request.headers(), proxy_path)
        .await;
    match verdict {
        Err(refusal) => refused(state, caller, refusal, &method, path).await,
        Ok(()) => {
            let (route, response) = crate::http::dispatch(state, request).await;
            if proxy_path.is_some_and(may_be_file) {
                let answer = Answer::of(&method, &response);
                served(state, &caller, &method, path, answer).await;
            }
            (route, response)
        }
    }
}

/// The proxy path below the mount prefix (no leading `/`), `None` for
/// other paths and the checksum database's.
fn proxy_path<'a>(state: &AppState, path: &'a str) -> Option<&'a str> {
    path.strip_prefix(state.path_prefix.as_str())
        .and_then(|r| r.strip_prefix('/'))
        .filter(|r| !r.starts_with("sumdb/"))
}

/// What an audit line says of the answer (taken before the line is
/// written: a response is not shared across an await).
#[derive(Clone, Copy)]
pub(crate) struct Answer {
    status: StatusCode,
    bytes: u64,
}

impl Answer {
    /// The answer `response` gives to a `method` request.
    pub(crate) fn of(method: &Method, response: &Response) -> Answer {
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
        Answer {
            status: response.status(),
            bytes,
        }
    }
}

/// Who asked for what: the request's facts its audit line repeats.
struct Asked<'a> {
    caller: &'a Caller,
    method: &'a Method,
    path: &'a str,
}

async fn write(
    audit: &AuditLog,
    asked: Asked<'_>,
    decision: &'static str,
    target: Target<'_>,
    answer: Answer,
    tier: Option<&'static str>,
) {
    // Requests run in their id's scope (http::handle).
    let request_id = crate::reqid::current();
    let record = Record {
        time: SystemTime::now(),
        request_id: request_id.as_ref(),
        principal: asked.caller.principal.as_ref(),
        client: asked.caller.client,
        method: asked.method,
        path: asked.path,
        target,
        status: answer.status.as_u16(),
        bytes: answer.bytes,
        tier,
        decision,
    };
    if let Some(record) = audit.record_now(record) {
        // The sink lags and this thread's buffer is full: wait for room
        // (boxed: rare, and the request's future stays small).
        Box::pin(audit.record(record)).await;
    }
}

/// Whether `path` may name an `.info`, `.mod` or `.zip` file: every path
/// [`audit::file_target`] accepts passes (a `%` may hide anything).
fn may_be_file(path: &str) -> bool {
    path.contains('%')
        || ([".info", ".mod", ".zip"].iter().any(|e| path.ends_with(e)) && path.contains("/@v/"))
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
