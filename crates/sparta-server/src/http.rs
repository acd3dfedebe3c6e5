//! HTTP handlers: parse the request once into a typed value, call one
//! service method, turn its answer into a response.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use prometheus::IntGauge;
use sparta_core::download::Action;
use sparta_core::{FileKind, InfoVersion, ProxyRequest};
use sparta_storage::ObjectStream;
use tracing::{Instrument, info, warn};

use crate::AppState;
use crate::audit::TierSlot;
use crate::cache::CachedFile;
use crate::error::ProxyError;
use crate::gate::{self, Before};
use crate::metrics::{Metrics, RouteKind};
use crate::reqid::{self, RequestId};
use crate::service::{Kind, RangeRequest, ZIP};

mod cached;
mod catalog;
mod modes;
mod sumdb;
mod ui;
mod warm;

use crate::cache::{IMMUTABLE, cache_policy, content_headers};

/// The one entry point for every request: gives it an id, counts, times
/// and logs it (every line of the request under its id).
pub async fn handle(state: Arc<AppState>, request: Request, peer: SocketAddr) -> Response {
    let id = RequestId::from_headers(request.headers());
    // The id is a task-local, not a span: every log line reads it from there
    // (a span per request cost more than serving a warm file). An audited
    // request's tier slot travels with it.
    let tier = state.audit.is_some().then(TierSlot::default);
    let mut response = reqid::scope(id.clone(), tier, handle_with_id(state, request, peer)).await;
    response
        .headers_mut()
        .insert(reqid::HEADER, id.header_value());
    response
}

async fn handle_with_id(state: Arc<AppState>, request: Request, peer: SocketAddr) -> Response {
    let started = Instant::now();
    let in_flight = InFlight::enter(&state.metrics);
    let method = request.method().clone();
    let uri = request.uri().clone();
    let span = sparta_trace::request_span(&method, uri.path(), request.headers());
    let before = if state.access.is_open() && state.audit.is_none() {
        Before::Serve(None)
    } else {
        gate::before(&state, &request, peer.ip(), uri.path())
    };
    let (route, response) = match before {
        Before::Serve(audited) => {
            let served = dispatch(&state, request).instrument(span.clone()).await;
            if let Some(caller) = audited {
                let answer = gate::Answer::of(&method, &served.1);
                gate::served(&state, &caller, &method, uri.path(), answer).await;
            }
            served
        }
        // Boxed: only refused requests and first-seen credentials pay for
        // these futures.
        Before::Refused(caller, refusal) => {
            Box::pin(gate::refused(&state, caller, refusal, &method, uri.path())).await
        }
        Before::Slow => {
            Box::pin(gate::guarded(&state, request, peer.ip(), uri.path()).instrument(span.clone()))
                .await
        }
    };
    span.record("http.response.status_code", response.status().as_u16());
    drop(in_flight);
    observe(
        &state.metrics,
        route,
        &method,
        uri.path(),
        &response,
        started.elapsed(),
    );
    response
}

/// Counts a request in flight until dropped, also when the client goes away
/// and the request's future is dropped half-way.
struct InFlight<'a>(&'a IntGauge);

impl<'a> InFlight<'a> {
    fn enter(metrics: &'a Metrics) -> Self {
        metrics.http_in_flight.inc();
        InFlight(&metrics.http_in_flight)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Metrics and the log line of one answered request.
fn observe(
    m: &Metrics,
    route: RouteKind,
    method: &Method,
    path: &str,
    response: &Response,
    elapsed: Duration,
) {
    let series = m.route(route);
    let status = response.status();
    let is_get = *method == Method::GET;
    match status {
        StatusCode::OK if is_get => series.get_ok.inc(),
        StatusCode::NOT_MODIFIED if is_get => series.get_not_modified.inc(),
        _ => m
            .http_requests
            .with_label_values(&[route.label(), method_label(method), status.as_str()])
            .inc(),
    }
    series.duration.observe(elapsed.as_secs_f64());
    if *method != Method::HEAD {
        let bytes = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        series.response_bytes.inc_by(bytes);
    }
    let latency_us = elapsed.as_micros() as u64;
    if status.is_server_error() {
        warn!(method = %method, path, status = status.as_u16(), latency_us, "request");
    } else {
        info!(method = %method, path, status = status.as_u16(), latency_us, "request");
    }
}

fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        _ => "OTHER",
    }
}

pub(crate) async fn dispatch(state: &AppState, request: Request) -> (RouteKind, Response) {
    let path = request.uri().path();
    match path {
        "/healthz" => return (RouteKind::Other, text(StatusCode::OK, "ok\n")),
        "/readyz" => return (RouteKind::Other, Box::pin(readyz(state)).await),
        // With an admin address, metrics are served there only.
        "/metrics" if !state.admin_separate => {
            return (RouteKind::Other, Box::pin(metrics(state)).await);
        }
        "/version" => return (RouteKind::Other, version()),
        _ => {}
    }
    let Some(rest) = path.strip_prefix(state.path_prefix.as_str()) else {
        return (
            RouteKind::Other,
            ProxyError::Invalid("not found".into()).into_response(),
        );
    };
    if rest.is_empty() || rest == "/" {
        return (RouteKind::Other, index(state));
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return (
            RouteKind::Other,
            ProxyError::Invalid("not found".into()).into_response(),
        );
    };
    // Matched before the future is made: a module path never is one of
    // these, and boxing a future on every request costs.
    if matches!(rest, "catalog" | "index" | "ui" | "ui/" | "ui/module") {
        let reply = Box::pin(browse(
            state,
            rest,
            request.method(),
            request.uri(),
            request.headers(),
        ))
        .await;
        return (RouteKind::Other, reply);
    }
    if rest.starts_with("sumdb/") {
        let reply = match Box::pin(sumdb::relay(state, request.method(), rest)).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
        return (RouteKind::Sumdb, reply);
    }
    let read_only = request.method() == Method::GET || request.method() == Method::HEAD;
    if read_only && let Some((route, file)) = memory_hit(state, rest) {
        return (route, small(file, request.headers()));
    }
    let parsed = ProxyRequest::parse(rest);
    let route = match &parsed {
        Ok(ProxyRequest::List(_)) => RouteKind::List,
        Ok(ProxyRequest::Latest(_)) => RouteKind::Latest,
        Ok(ProxyRequest::Info(..)) => RouteKind::Info,
        Ok(ProxyRequest::Mod(..)) => RouteKind::Mod,
        Ok(ProxyRequest::Zip(..)) => RouteKind::Zip,
        Err(_) => RouteKind::Other,
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return (route, ProxyError::MethodNotAllowed.into_response());
    }
    let head = request.method() == Method::HEAD;
    let result = match parsed {
        // Boxed: the service's futures are large, and every request's
        // future is moved several times on its way through the router.
        Ok(req) if cached::fetch_disabled(request.headers()) => {
            Box::pin(cached::proxy(state, req, request.headers(), head)).await
        }
        Ok(req) => match state.proxy.download_action(&req, rest) {
            Action::Serve => Box::pin(proxy(state, req, request.headers(), head)).await,
            action => Box::pin(modes::apply(state, req, request.headers(), head, action)).await,
        },
        Err(e) => Err(ProxyError::from(e)),
    };
    (route, result.unwrap_or_else(IntoResponse::into_response))
}

/// `/catalog`, `/index` and the `/ui` pages.
/// (A module path's first element holds a dot, so these never shadow one.)
async fn browse(
    state: &AppState,
    rest: &str,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Response {
    let answer = match rest {
        _ if !matches!(*method, Method::GET | Method::HEAD) => Err(ProxyError::MethodNotAllowed),
        "catalog" => catalog::catalog(state, uri).await,
        "index" => catalog::index(state, uri).await,
        "ui" | "ui/" => ui::search(state, uri, headers).await,
        _ => ui::module(state, uri).await,
    };
    answer.unwrap_or_else(IntoResponse::into_response)
}

async fn proxy(
    state: &AppState,
    request: ProxyRequest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, ProxyError> {
    let service = &state.proxy;
    match request {
        ProxyRequest::List(m) => Ok(small(service.list(&m).await?, headers)),
        ProxyRequest::Latest(m) => Ok(small(service.latest(&m).await?, headers)),
        ProxyRequest::Info(m, InfoVersion::Query(q)) => {
            Ok(small(service.query(&m, &q).await?, headers))
        }
        ProxyRequest::Info(m, InfoVersion::Canonical(v)) => Ok(small(
            service.small_file(&m, &v, FileKind::Info).await?,
            headers,
        )),
        ProxyRequest::Mod(m, v) => Ok(small(
            service.small_file(&m, &v, FileKind::Mod).await?,
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
                let info = service.zip_info(&m, &v).await?;
                return zip_head(info.size, etag, range, headers);
            }
            let body = service.zip(&m, &v, range).await?;
            Ok(zip_response(body, etag, range.is_some()))
        }
    }
}

/// The hot path: a raw request path that is exactly the key of a cached
/// file. Only validated requests were ever cached under their key, and a
/// path without `%` is its own decoded form, so the parse can be skipped.
fn memory_hit(state: &AppState, rest: &str) -> Option<(RouteKind, Arc<CachedFile>)> {
    if rest.contains('%') || rest.starts_with("_sparta/") {
        return None;
    }
    let (route, kind) = if rest.ends_with(".info") {
        (RouteKind::Info, Kind::Info)
    } else if rest.ends_with(".mod") {
        (RouteKind::Mod, Kind::Mod)
    } else if rest.ends_with("/@v/list") {
        (RouteKind::List, Kind::List)
    } else if rest.ends_with("/@latest") {
        (RouteKind::Latest, Kind::Latest)
    } else {
        return None;
    };
    let file = state.proxy.memory_hit(kind, rest)?;
    // The audit line takes the module and version from the path as it is.
    crate::audit::note_tier(crate::audit::Tier::MemoryByPath);
    Some((route, file))
}

/// Serves a small file from memory, honouring `If-None-Match`.
fn small(file: Arc<CachedFile>, headers: &HeaderMap) -> Response {
    if etag_matches(headers, &file.etag) {
        return not_modified_response(&file.etag, cache_policy(file.ttl));
    }
    let mut response = Response::new(Body::from(file.body.clone()));
    // Copied into a map with room for the request id added on the way out:
    // a clone has none, and growing it costs a reallocation per request.
    let mut headers = HeaderMap::with_capacity(file.headers.len() + 1);
    headers.extend(file.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    *response.headers_mut() = headers;
    response
}

/// A 200 with an in-memory body and its content headers.
fn bytes_response(
    body: bytes::Bytes,
    content_type: &'static str,
    cache_control: HeaderValue,
) -> Response {
    let headers = content_headers(body.len(), content_type, cache_control);
    let mut response = Response::new(Body::from(body));
    *response.headers_mut() = headers;
    response
}

fn zip_response(stream: ObjectStream, etag: HeaderValue, partial: bool) -> Response {
    let body = Body::from_stream(
        stream
            .body
            .map(|chunk| chunk.map_err(std::io::Error::other)),
    );
    zip_answer(body, stream.range, stream.info.size, etag, partial)
}

/// The answer to a HEAD or a conditional GET of a zip, from its size alone:
/// the same status and headers as the GET, no body.
pub(crate) fn zip_head(
    size: u64,
    etag: HeaderValue,
    range: Option<RangeRequest>,
    headers: &HeaderMap,
) -> Result<Response, ProxyError> {
    if etag_matches(headers, &etag) {
        return Ok(not_modified_response(&etag, IMMUTABLE));
    }
    let (bytes, partial) = match range {
        Some(r) => (r.resolve(size)?, true),
        None => (0..size, false),
    };
    Ok(zip_answer(Body::empty(), bytes, size, etag, partial))
}

fn zip_answer(
    body: Body,
    bytes: std::ops::Range<u64>,
    size: u64,
    etag: HeaderValue,
    partial: bool,
) -> Response {
    let len = bytes.end - bytes.start;
    let status = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ZIP));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, IMMUTABLE);
    let content_range = format!(
        "bytes {}-{}/{size}",
        bytes.start,
        bytes.end.saturating_sub(1)
    );
    if partial && let Ok(v) = HeaderValue::from_str(&content_range) {
        h.insert(header::CONTENT_RANGE, v);
    }
    response
}

fn not_modified_response(etag: &HeaderValue, cache_control: HeaderValue) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    response.headers_mut().insert(header::ETAG, etag.clone());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, cache_control);
    response
}

/// `If-None-Match` names this ETag (or `*`).
fn etag_matches(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(value) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let ours = etag.to_str().unwrap_or_default();
    value
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == ours)
}

/// A `Range` applies unless `If-Range` names something other than this ETag.
fn if_range_matches(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    match headers.get(header::IF_RANGE) {
        None => true,
        Some(v) => v.as_bytes() == etag.as_bytes(),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn readyz(state: &AppState) -> Response {
    let check =
        tokio::time::timeout(Duration::from_secs(3), state.proxy.store().check_ready()).await;
    match check {
        Ok(Ok(())) => {
            state.metrics.ready.set(1);
            let mut r = format!("ready\nnetwork: {}\n", state.proxy.network()).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
        Ok(Err(e)) => {
            state.metrics.ready.set(0);
            // The store's message (bucket, endpoint) is for the log only.
            warn!(error = %e, "storage not ready");
            text(StatusCode::SERVICE_UNAVAILABLE, "storage not ready\n")
        }
        Err(_) => {
            state.metrics.ready.set(0);
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage not ready: timed out\n",
            )
        }
    }
}

async fn metrics(state: &AppState) -> Response {
    let cache = state.proxy.cache();
    cache.sync();
    let (bytes, entries) = cache.usage();
    state.metrics.memory_cache_bytes.set(bytes as i64);
    state.metrics.memory_cache_entries.set(entries as i64);
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn index(state: &AppState) -> Response {
    let body = format!(
        "Sparta Go module proxy {}\n\nUse it with:\n\n    go env -w GOPROXY=http://<this host>{}\n\nEndpoints: $module/@v/list, $module/@v/$version.info|.mod|.zip, $module/@latest, /sumdb/<name>/..., /catalog, /index, /ui (browse what is stored), /healthz, /readyz, /metrics\n",
        env!("CARGO_PKG_VERSION"),
        state.path_prefix
    );
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn version() -> Response {
    let mut response = Response::new(Body::from(crate::version::json()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The admin address's one handler: probes, metrics and the warm job.
pub async fn admin(state: Arc<AppState>, request: Request, peer: SocketAddr) -> Response {
    let path = request.uri().path().to_owned();
    match path.as_str() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => Box::pin(readyz(&state)).await,
        "/metrics" => Box::pin(metrics(&state)).await,
        "/warm" => Box::pin(warm::warm(&state, request, peer.ip())).await,
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: the admin address serves /healthz, /readyz, /metrics and /warm\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future_size<F: std::future::Future>(
        _: fn(Arc<AppState>, Request, SocketAddr) -> F,
    ) -> usize {
        std::mem::size_of::<F>()
    }

    /// Each request's future is copied into its box whole; a memory hit
    /// must not pay for the size of the fetch paths (boxed apart).
    #[test]
    fn the_request_future_stays_small() {
        let size = future_size(handle);
        assert!(size <= 3072, "a request's future is {size} bytes");
    }
}
