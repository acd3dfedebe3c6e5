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
pub mod reqid;
pub mod serve;
pub mod service;
pub mod source;
pub mod tls;
pub mod version;
pub mod warm;
pub mod workers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use error::ProxyError;
pub use metrics::{Metrics, RouteKind};
pub use serve::ServeLimits;
pub use service::{Coordination, Proxy, ServiceConfig};
pub use source::{Origins, Source, SourceError, Sources};
pub use workers::ConnWorkers;

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

/// The main address's one handler.
pub fn app(state: Arc<AppState>) -> serve::App {
    serve::App::new(move |request, peer| Box::pin(http::handle(state.clone(), request, peer)))
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight
/// requests finish for at most `grace`. Connections are served on
/// `workers` when given, else on the caller's runtime.
pub async fn serve(
    listener: TcpListener,
    workers: Option<Arc<ConnWorkers>>,
    state: Arc<AppState>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let conns = state.metrics.connections.clone();
    let listener = serve::Listener {
        tcp: listener,
        name: "main",
        tls: None,
        workers,
    };
    serve::run(listener, app(state), limits, conns, shutdown, grace).await
}

/// [`serve`] over TLS: handshakes in each connection's task, the
/// certificate reloaded when its files change, HTTP/2 offered over ALPN.
pub async fn serve_tls(
    listener: TcpListener,
    workers: Option<Arc<ConnWorkers>>,
    cert: Arc<tls::ReloadingCert>,
    state: Arc<AppState>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let _watch = cert.watch();
    let conns = state.metrics.connections.clone();
    let listener = serve::Listener {
        tcp: listener,
        name: "main",
        tls: Some(tls::acceptor(cert)?),
        workers,
    };
    serve::run(listener, app(state), limits, conns, shutdown, grace).await
}

/// The admin address: probes and `/metrics`, no access checks, with the
/// same limits as the main address but a cap of its own (a flood there
/// cannot starve the probes).
pub async fn serve_admin(
    listener: TcpListener,
    state: Arc<AppState>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let conns = state.metrics.connections.clone();
    let app =
        serve::App::new(move |request, peer| Box::pin(http::admin(state.clone(), request, peer)));
    let listener = serve::Listener {
        tcp: listener,
        name: "admin",
        tls: None,
        workers: None,
    };
    serve::run(
        listener,
        app,
        limits,
        conns,
        shutdown,
        Duration::from_secs(5),
    )
    .await
}
