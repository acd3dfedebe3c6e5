//! A connection's watchdog: where the connection is between requests (its
//! I/O, its requests in flight and their response bodies report it), and
//! the deadline that follows from that: header read, idle, or send.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::{Closed, ServeLimits};

/// Where a connection is between requests, shared by its I/O, its requests
/// and its watchdog.
pub(super) struct ConnState {
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
    pub(super) fn new() -> Self {
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
    pub(super) async fn watch(&self, limits: &ServeLimits) -> Closed {
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
pub(super) struct RequestGuard(Arc<ConnState>);

impl RequestGuard {
    pub(super) fn enter(state: Arc<ConnState>) -> Self {
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
pub(super) struct Tracked {
    pub(super) body: Body,
    pub(super) _guard: RequestGuard,
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
pub(super) struct Watched<S> {
    pub(super) io: S,
    pub(super) state: Arc<ConnState>,
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
