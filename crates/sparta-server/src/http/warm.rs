//! `POST /warm` and `GET /warm` on the admin address: start a background
//! warm of a posted list (go.sum, `go list -m -json` output or
//! `module@version` lines) and see how it goes. Both pass the same access
//! check as proxy requests (addresses, credentials), so opening the admin
//! port does not open a way around it.

use std::net::IpAddr;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::warm::StartError;

/// Largest list accepted in one POST.
const MAX_LIST_BYTES: usize = 16 << 20;
/// Versions fetched at a time by a posted warm.
const CONCURRENCY: usize = 8;

pub(super) async fn warm(state: &AppState, request: Request, peer: IpAddr) -> Response {
    let (_, verdict) = state
        .access
        .admit(Some(peer), request.headers(), None)
        .await;
    if let Err(refusal) = verdict {
        return refusal.into_response();
    }
    if request.method() == Method::GET {
        return match state.warm.status() {
            Some(status) => json(StatusCode::OK, &status),
            None => text(StatusCode::NOT_FOUND, "no warm job has run yet\n".into()),
        };
    }
    if request.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET or POST only\n".into());
    }
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_LIST_BYTES).await else {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a warm list is at most {MAX_LIST_BYTES} bytes\n"),
        );
    };
    let Ok(list) = std::str::from_utf8(&body) else {
        return text(StatusCode::BAD_REQUEST, "the list is not UTF-8\n".into());
    };
    match state.warm.start(&state.proxy, list, CONCURRENCY) {
        Ok(status) => json(StatusCode::ACCEPTED, &status),
        Err(StartError::Invalid(why)) => text(StatusCode::BAD_REQUEST, format!("{why}\n")),
        Err(StartError::Busy) => text(
            StatusCode::CONFLICT,
            "a warm job is still running: see GET /warm\n".into(),
        ),
    }
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut r = (status, Body::from(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn text(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
