//! Sparta's HTTP service: the router, the memory cache, singleflight and
//! metrics, on top of the storage and upstream crates.

pub mod access;
pub mod audit;
pub mod cache;
pub mod error;
pub mod flight;
pub mod gate;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod service;
pub mod source;
pub mod tls;
pub mod version;
pub mod warm;

use std::future::Future;
use std::net::SocketAddr;
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
    /// Who may ask (open by default).
    pub access: access::Access,
    /// The audit log, when on.
    pub audit: Option<audit::AuditLog>,
    /// `/metrics` is served on the admin address only.
    pub admin_separate: bool,
    /// The background warm started by `POST /warm` on the admin address.
    pub warm: warm::WarmJobs,
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
    // Without TCP_NODELAY a body written after its headers waits for the
    // client's delayed ACK: about 40 ms per response on a reused connection.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    serve_on(listener, router(state), shutdown, grace).await
}

/// [`serve`] over TLS: handshakes off the accept path, the certificate
/// reloaded when its files change.
pub async fn serve_tls(
    listener: TcpListener,
    cert: Arc<tls::ReloadingCert>,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let _watch = cert.watch();
    let listener =
        tls::TlsListener::new(listener, tls::server_config(cert)?, tls::HANDSHAKE_TIMEOUT)?
            .tap_io(|_| {});
    serve_on(listener, router(state), shutdown, grace).await
}

/// The admin address: probes and `/metrics`, no access checks.
pub async fn serve_admin(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().fallback(http::admin).with_state(state);
    serve_on(listener, app, shutdown, Duration::from_secs(5)).await
}

async fn serve_on<L>(
    listener: L,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    for<'a> SocketAddr: axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
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
