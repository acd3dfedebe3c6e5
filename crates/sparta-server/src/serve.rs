//! The accept loop every listener runs (plain, TLS and admin): hyper's
//! connection builder with Sparta's limits, because `axum::serve` has no
//! header-read timeout, no idle timeout and no connection cap.
//!
//! - A connection cap: each connection holds a permit; at the cap the loop
//!   stops accepting and new connections wait in the kernel's accept queue
//!   (they are answered once a permit frees, or time out on the client side).
//! - A header-read timeout: a new connection must deliver its first request
//!   head in time, and a later request must complete its head in time once
//!   its first byte arrived.
//! - An idle timeout: a kept-alive connection with no request in flight is
//!   closed after it.
//! - A request-head size limit: over it hyper answers 431 (HTTP/1) or
//!   refuses the header list (HTTP/2).
//! - A send timeout: an answer whose writes to the client are blocked (the
//!   client stopped reading) this long is cut and the connection closed,
//!   as nginx's `send_timeout`; a slow reader holds a storage stream and a
//!   connection permit, so it must not hold them forever.
//!
//! Both timeouts are watched per connection (a watchdog that sleeps until the
//! next deadline) rather than by hyper's own timer, whose header timeout also
//! runs while a connection idles and would make the idle timeout meaningless.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use futures::future::BoxFuture;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::workers::ConnWorkers;

mod watchdog;

use watchdog::{ConnState, RequestGuard, Tracked, Watched};

/// What answers a listener's requests: one function sees every request
/// and the client's address (a router's matching and its layers of
/// futures, or the address as a request extension, cost more than serving
/// a warm file).
#[derive(Clone)]
pub struct App(Arc<Handler>);

type Handler =
    dyn Fn(axum::extract::Request, SocketAddr) -> BoxFuture<'static, Response> + Send + Sync;

impl App {
    pub fn new(
        handler: impl Fn(axum::extract::Request, SocketAddr) -> BoxFuture<'static, Response>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        App(Arc::new(handler))
    }
}

/// The server's connection limits; see docs/CONTRACTS.md.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Time for a request head to arrive (from connect, or from its first byte).
    pub header_read_timeout: Duration,
    /// A kept-alive connection with nothing in flight is closed after this.
    pub idle_timeout: Duration,
    /// Open connections per listener; more wait in the accept queue.
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes.
    pub max_header_bytes: usize,
    /// Longest a write to the client may stay blocked while answering.
    pub send_timeout: Duration,
}

impl ServeLimits {
    /// How often the watchdog looks at a connection at the least: the
    /// shortest timeout in force (a zero send timeout is off).
    fn shortest_timeout(&self) -> Duration {
        [
            self.header_read_timeout,
            self.idle_timeout,
            self.send_timeout,
        ]
        .into_iter()
        .filter(|t| !t.is_zero())
        .min()
        .unwrap_or(Duration::from_secs(60))
        .max(Duration::from_millis(10))
    }
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_header_bytes: 32 * 1024,
            send_timeout: Duration::from_secs(60),
        }
    }
}

/// hyper refuses a read buffer smaller than this.
pub const MIN_HEADER_BYTES: usize = 8192;

/// Connection metrics, one series per listener (`main`, `admin`).
#[derive(Clone)]
pub struct ConnMetrics {
    open: IntGaugeVec,
    accepted: IntCounterVec,
    closed: IntCounterVec,
}

impl ConnMetrics {
    /// Creates and registers the connection families.
    pub fn register(r: &Registry) -> Self {
        let open = IntGaugeVec::new(
            Opts::new("sparta_connections_open", "Open client connections."),
            &["listener"],
        )
        .expect("valid metric");
        let accepted = IntCounterVec::new(
            Opts::new(
                "sparta_connections_accepted_total",
                "Client connections accepted.",
            ),
            &["listener"],
        )
        .expect("valid metric");
        let closed = IntCounterVec::new(
            Opts::new(
                "sparta_connections_closed_total",
                "Client connections closed, by reason: done, error, header_timeout, idle_timeout, send_timeout, tls_handshake, shutdown.",
            ),
            &["listener", "reason"],
        )
        .expect("valid metric");
        for c in [&accepted, &closed] {
            r.register(Box::new(c.clone())).expect("unique metric");
        }
        r.register(Box::new(open.clone())).expect("unique metric");
        // At zero from the start, so a rate over them exists before the first close.
        for listener in ["main", "admin"] {
            open.with_label_values(&[listener]);
            accepted.with_label_values(&[listener]);
        }
        for reason in ALL_CLOSED {
            closed.with_label_values(&["main", reason.label()]);
        }
        ConnMetrics {
            open,
            accepted,
            closed,
        }
    }
}

/// Why a connection ended: the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    Done,
    Error,
    HeaderTimeout,
    IdleTimeout,
    SendTimeout,
    TlsHandshake,
    Shutdown,
}

const ALL_CLOSED: [Closed; 7] = [
    Closed::Done,
    Closed::Error,
    Closed::HeaderTimeout,
    Closed::IdleTimeout,
    Closed::SendTimeout,
    Closed::TlsHandshake,
    Closed::Shutdown,
];

impl Closed {
    fn label(self) -> &'static str {
        match self {
            Closed::Done => "done",
            Closed::Error => "error",
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::SendTimeout => "send_timeout",
            Closed::TlsHandshake => "tls_handshake",
            Closed::Shutdown => "shutdown",
        }
    }
}

/// One listener: its socket, its name in metrics, and TLS when on.
pub struct Listener {
    pub tcp: TcpListener,
    /// `main` or `admin`.
    pub name: &'static str,
    pub tls: Option<TlsAcceptor>,
    /// Serve connections on these threads, not on the shared runtime.
    pub workers: Option<Arc<ConnWorkers>>,
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting, asks every connection to finish its in-flight requests, and
/// waits for them for at most `grace`.
pub async fn run(
    listener: Listener,
    app: App,
    limits: ServeLimits,
    metrics: ConnMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> io::Result<()> {
    let limits = Arc::new(limits);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Off: the watchdog below times heads; hyper's timer would also
        // close kept-alive connections after this long.
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone; all are gone when recv sees None.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let name = listener.name;
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.tcp.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, retry.
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Without TCP_NODELAY a body written after its headers waits for the
        // client's delayed ACK: about 40 ms per response on a reused connection.
        let _ = tcp.set_nodelay(true);
        metrics.accepted.with_label_values(&[name]).inc();
        let conn = Connection {
            app: app.clone(),
            builder: builder.clone(),
            limits: limits.clone(),
            metrics: metrics.clone(),
            name,
            peer,
            stop: stop_rx.clone(),
        };
        let tls = listener.tls.clone();
        let alive = alive_tx.clone();
        let Some(workers) = &listener.workers else {
            tokio::spawn(async move {
                let _permit = permit;
                let _alive = alive;
                conn.run(tcp, tls).await;
            });
            continue;
        };
        // Moved to the worker's runtime: registered there, not here.
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                debug!(error = %e, "cannot hand the connection to a worker");
                continue;
            }
        };
        let job = move || async move {
            let _permit = permit;
            let _alive = alive;
            match TcpStream::from_std(tcp) {
                Ok(tcp) => conn.run(tcp, tls).await,
                Err(e) => debug!(error = %e, "cannot register the connection"),
            }
        };
        if let Err(job) = workers.spawn(job) {
            tokio::spawn(job());
        }
    }
    drop(listener);
    drop(alive_tx);
    info!(
        listener = name,
        grace_secs = grace.as_secs_f64(),
        "shutting down, finishing in-flight requests"
    );
    let _ = stop_tx.send(true);
    if tokio::time::timeout(grace, alive_rx.recv()).await.is_err() {
        warn!(
            listener = name,
            "grace period over, dropping remaining requests"
        );
    }
    Ok(())
}

/// What one connection task needs.
struct Connection {
    app: App,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<ServeLimits>,
    metrics: ConnMetrics,
    name: &'static str,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(self, tcp: TcpStream, tls: Option<TlsAcceptor>) {
        let open = self.metrics.open.with_label_values(&[self.name]);
        open.inc();
        let reason = match tls {
            None => self.serve(tcp).await,
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                match handshake {
                    Ok(Ok(stream)) => self.serve(stream).await,
                    Ok(Err(e)) => {
                        debug!(peer = %self.peer, error = %e, "tls handshake failed");
                        Closed::TlsHandshake
                    }
                    Err(_) => {
                        debug!(peer = %self.peer, "tls handshake timed out");
                        Closed::TlsHandshake
                    }
                }
            }
        };
        open.dec();
        self.metrics
            .closed
            .with_label_values(&[self.name, reason.label()])
            .inc();
    }

    async fn serve<S>(&self, io: S) -> Closed
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let state = Arc::new(ConnState::new());
        let io = TokioIo::new(Watched {
            io,
            state: state.clone(),
        });
        let service = {
            let (app, state, peer) = (self.app.clone(), state.clone(), self.peer);
            hyper::service::service_fn(move |request: Request<Incoming>| {
                let guard = RequestGuard::enter(state.clone());
                let app = app.clone();
                async move {
                    let response = (app.0)(request.map(Body::new), peer).await;
                    Ok::<_, Infallible>(response.map(|body| Tracked {
                        body,
                        _guard: guard,
                    }))
                }
            })
        };
        let conn = self.builder.serve_connection(io, service);
        tokio::pin!(conn);
        let mut stop = self.stop.clone();
        let mut stopping = *stop.borrow();
        if stopping {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    return match result {
                        _ if stopping => Closed::Shutdown,
                        Ok(()) => Closed::Done,
                        Err(e) => {
                            debug!(peer = %self.peer, error = %e, "connection ended with an error");
                            Closed::Error
                        }
                    };
                }
                // Fires with nothing in flight (dropping the connection
                // cuts no answer short), or when the client stopped reading.
                reason = state.watch(&self.limits) => {
                    debug!(peer = %self.peer, reason = reason.label(), "closing connection");
                    return reason;
                }
                changed = stop.changed(), if !stopping => {
                    if changed.is_err() || *stop.borrow() {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}
