//! Sparta's HTTP service: the router, the memory cache, singleflight and
//! metrics, on top of the storage and upstream crates.

pub mod cache;
pub mod error;
pub mod flight;
pub mod http;
pub mod metrics;
pub mod service;
pub mod source;
pub mod version;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tracing::{info, warn};

pub use error::ProxyError;
pub use metrics::{Metrics, RouteKind};
pub use service::{Coordination, Proxy, ServiceConfig};
pub use source::{Origins, Source, SourceError, Sources};

/// Everything a request handler can reach.
pub struct AppState {
    pub proxy: Proxy,
    pub metrics: Metrics,
    /// Mount prefix without a trailing slash, e.g. `/go`, or empty.
    pub path_prefix: String,
}

/// Builds the router: one fallback handler sees every request.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(http::handle).with_state(state)
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
