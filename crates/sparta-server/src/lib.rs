//! Sparta's HTTP service: the router, the memory cache, singleflight and
//! metrics, on top of the storage and upstream crates.

pub mod cache;
pub mod error;
pub mod flight;
pub mod http;
pub mod metrics;
pub mod service;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tracing::{info, warn};

pub use error::ProxyError;
pub use metrics::Metrics;
pub use service::{Coordination, Proxy, ServiceConfig};

use crate::http::RouteKind;

/// Everything a request handler can reach.
pub struct AppState {
    pub proxy: Proxy,
    pub metrics: Metrics,
    /// Mount prefix without a trailing slash, e.g. `/go`, or empty.
    pub path_prefix: String,
}

/// Builds the router: one fallback handler behind the observing layer.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .fallback(http::handle)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), observe))
        .with_state(state)
}

/// Counts, times and logs every request in one place.
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let uri = request.uri().clone();
    let m = &state.metrics;
    m.http_in_flight.inc();
    let response = next.run(request).await;
    m.http_in_flight.dec();
    let elapsed = started.elapsed();
    let route = response
        .extensions()
        .get::<RouteKind>()
        .copied()
        .unwrap_or(RouteKind::Other);
    let status = response.status();
    m.http_requests
        .with_label_values(&[route.label(), method_label(&method), status.as_str()])
        .inc();
    m.http_duration
        .with_label_values(&[route.label()])
        .observe(elapsed.as_secs_f64());
    let bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if method != axum::http::Method::HEAD {
        m.http_response_bytes
            .with_label_values(&[route.label()])
            .inc_by(bytes);
    }
    if status.is_server_error() {
        warn!(method = %method, path = uri.path(), status = status.as_u16(), latency_us = elapsed.as_micros() as u64, "request");
    } else {
        info!(method = %method, path = uri.path(), status = status.as_u16(), latency_us = elapsed.as_micros() as u64, "request");
    }
    response
}

fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        _ => "OTHER",
    }
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight
/// requests finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let app = router(state);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Without TCP_NODELAY a body written after its headers waits for the
    // client's delayed ACK: about 40 ms per response on a reused connection.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let server = server.into_future();
    tokio::pin!(server);
    let mut stop_rx = stop_rx;
    tokio::select! {
        result = &mut server => return result,
        _ = stop_rx.wait_for(|stopped| *stopped) => {}
    }
    info!(
        grace_secs = grace.as_secs_f64(),
        "shutting down, finishing in-flight requests"
    );
    match tokio::time::timeout(grace, server).await {
        Ok(result) => result,
        Err(_) => {
            warn!("grace period over, dropping remaining requests");
            Ok(())
        }
    }
}
