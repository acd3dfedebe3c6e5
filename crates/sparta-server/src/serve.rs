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
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::workers::ConnWorkers;

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

/// Where a connection is between requests, shared by its I/O, its requests
/// and its watchdog.
struct ConnState {
    phase: Mutex<Phase>,
    /// Set while a write to the client is blocked: when it blocked, in ms
    /// since `opened` plus one (0: not blocked). An atomic, not the mutex:
    /// a fast download blocks and unblocks thousands of times a second.
    blocked: AtomicU64,
    opened: Instant,
}

struct Phase {
    in_flight: usize,
    /// Requests answered so far.
    served: u64,
    /// When the last request finished (or the connection opened).
    idle_since: Instant,
    /// When the first byte of the next request head arrived.
    head_started: Option<Instant>,
}

impl ConnState {
    fn new() -> Self {
        let now = Instant::now();
        ConnState {
            phase: Mutex::new(Phase {
                in_flight: 0,
                served: 0,
                idle_since: now,
                head_started: None,
            }),
            blocked: AtomicU64::new(0),
            opened: now,
        }
    }

    /// Notes whether a write got through; called on every poll of one. A
    /// write that blocks wakes the watchdog (its deadline starts now); one
    /// that gets through only clears the mark, so an answer that is never
    /// blocked, as a small file's, costs the watchdog nothing.
    fn on_write<T>(&self, polled: &Poll<T>) {
        match polled {
            Poll::Pending => {
                if self.blocked.load(Ordering::Relaxed) == 0 {
                    let ms = self.opened.elapsed().as_millis() as u64 + 1;
                    self.blocked.store(ms, Ordering::Relaxed);
                }
            }
            Poll::Ready(_) => {
                if self.blocked.load(Ordering::Relaxed) != 0 {
                    self.blocked.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    /// Since when writes to the client are blocked, if they are.
    fn blocked_since(&self) -> Option<Instant> {
        match self.blocked.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.opened + Duration::from_millis(ms - 1)),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn on_read(&self) {
        let mut p = self.phase();
        if p.in_flight == 0 && p.head_started.is_none() {
            p.head_started = Some(Instant::now());
        }
    }

    /// The next deadline and what passing it means. While a request is in
    /// flight only a blocked write has one (a slow upstream fetch is not
    /// the client's fault).
    fn deadline(&self, limits: &ServeLimits) -> Option<(Instant, Closed)> {
        let p = self.phase();
        if p.in_flight > 0 {
            if limits.send_timeout.is_zero() {
                return None;
            }
            return self
                .blocked_since()
                .map(|t| (t + limits.send_timeout, Closed::SendTimeout));
        }
        Some(match p.head_started {
            Some(t) => (t + limits.header_read_timeout, Closed::HeaderTimeout),
            // A new connection owes its first request head in time.
            None if p.served == 0 => (
                p.idle_since + limits.header_read_timeout,
                Closed::HeaderTimeout,
            ),
            None => (p.idle_since + limits.idle_timeout, Closed::IdleTimeout),
        })
    }

    /// Resolves when the connection should be closed. Nothing wakes it
    /// when the connection's phase changes (that cost more than serving a
    /// warm file): it looks again at least every shortest timeout, and a
    /// deadline that arises after a look is at least that far from it, so
    /// it never sleeps past one.
    async fn watch(&self, limits: &ServeLimits) -> Closed {
        let recheck = limits.shortest_timeout();
        loop {
            let now = Instant::now();
            let at = match self.deadline(limits) {
                Some((at, reason)) if now >= at => return reason,
                Some((at, _)) => at.min(now + recheck),
                None => now + recheck,
            };
            tokio::time::sleep_until(at).await;
        }
    }
}

/// Counts a request in flight until its response body is dropped (sent, or
/// abandoned when the client went away).
struct RequestGuard(Arc<ConnState>);

impl RequestGuard {
    fn enter(state: Arc<ConnState>) -> Self {
        {
            let mut p = state.phase();
            p.in_flight += 1;
            p.head_started = None;
        }
        RequestGuard(state)
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        {
            let mut p = self.0.phase();
            p.in_flight -= 1;
            p.served += 1;
            if p.in_flight == 0 {
                p.idle_since = Instant::now();
                p.head_started = None;
            }
        }
    }
}

/// A response body that holds its request's guard.
struct Tracked {
    body: Body,
    _guard: RequestGuard,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The connection's I/O, noting when request bytes arrive.
struct Watched<S> {
    io: S,
    state: Arc<ConnState>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.state.on_write(&polled);
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.state.on_write(&polled);
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.state.on_write(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ServeLimits {
        ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ..ServeLimits::default()
        }
    }

    #[test]
    fn a_new_connection_owes_its_first_head_within_the_header_timeout() {
        let state = Arc::new(ConnState::new());
        let opened = state.phase().idle_since;
        let (at, reason) = state.deadline(&limits()).expect("a deadline");
        assert_eq!(reason, Closed::HeaderTimeout);
        assert_eq!(at, opened + Duration::from_secs(10));
    }

    #[test]
    fn nothing_times_out_while_a_request_is_in_flight() {
        let state = Arc::new(ConnState::new());
        let guard = RequestGuard::enter(state.clone());
        state.on_read(); // a request body's bytes
        assert_eq!(state.deadline(&limits()), None);
        drop(guard);
        let (_, reason) = state.deadline(&limits()).expect("a deadline");
        assert_eq!(reason, Closed::IdleTimeout, "kept alive after an answer");
    }

    #[test]
    fn a_blocked_write_while_answering_has_the_send_timeout() {
        let state = Arc::new(ConnState::new());
        let guard = RequestGuard::enter(state.clone());
        state.on_write(&Poll::<()>::Pending);
        let since = state.blocked_since().expect("blocked");
        let (at, reason) = state.deadline(&limits()).expect("a deadline");
        assert_eq!(reason, Closed::SendTimeout);
        assert_eq!(at, since + limits().send_timeout);
        // Still blocked: the deadline does not move.
        state.on_write(&Poll::<()>::Pending);
        assert_eq!(state.deadline(&limits()).expect("a deadline").0, at);
        // A write got through: no deadline while answering.
        state.on_write(&Poll::Ready(()));
        assert_eq!(state.deadline(&limits()), None);
        drop(guard);
    }

    #[tokio::test]
    async fn the_watchdog_cuts_an_answer_the_client_stopped_reading() {
        let state = Arc::new(ConnState::new());
        let _guard = RequestGuard::enter(state.clone());
        let limits = ServeLimits {
            send_timeout: Duration::from_millis(300),
            ..limits()
        };
        let started = Instant::now();
        state.on_write(&Poll::<()>::Pending);
        let closed = tokio::time::timeout(Duration::from_secs(10), state.watch(&limits)).await;
        assert_eq!(closed, Ok(Closed::SendTimeout));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
    }

    #[tokio::test]
    async fn an_answer_that_keeps_being_read_is_not_cut() {
        let state = Arc::new(ConnState::new());
        let _guard = RequestGuard::enter(state.clone());
        let limits = ServeLimits {
            send_timeout: Duration::from_millis(300),
            ..limits()
        };
        let writer = {
            let state = state.clone();
            async move {
                // Blocked for 100 ms at a time, then a write gets through.
                for _ in 0..10 {
                    state.on_write(&Poll::<()>::Pending);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    state.on_write(&Poll::Ready(()));
                }
            }
        };
        tokio::select! {
            closed = state.watch(&limits) => panic!("cut while being read: {closed:?}"),
            () = writer => {}
        }
    }

    /// Nothing wakes the watchdog when a head starts: it must still look
    /// again before the header deadline, not sleep to the idle one.
    #[tokio::test]
    async fn a_head_started_while_idle_is_timed_without_a_wake_up() {
        let state = Arc::new(ConnState::new());
        drop(RequestGuard::enter(state.clone()));
        let limits = ServeLimits {
            header_read_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            ..ServeLimits::default()
        };
        let head = {
            let state = state.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                state.on_read();
                std::future::pending::<()>().await
            }
        };
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::select! {
                closed = state.watch(&limits) => closed,
                () = head => unreachable!(),
            }
        })
        .await;
        assert_eq!(closed, Ok(Closed::HeaderTimeout));
    }

    #[test]
    fn the_first_byte_of_a_later_request_starts_the_header_timeout() {
        let state = Arc::new(ConnState::new());
        drop(RequestGuard::enter(state.clone()));
        let idle = state.deadline(&limits()).expect("idle deadline").0;
        state.on_read();
        let (at, reason) = state.deadline(&limits()).expect("a deadline");
        assert_eq!(reason, Closed::HeaderTimeout);
        assert!(at < idle, "the header deadline comes before the idle one");
        // Only the first byte counts: a trickle does not push it back.
        state.on_read();
        assert_eq!(state.deadline(&limits()).expect("a deadline").0, at);
    }
}
