//! Singleflight: concurrent requests for the same key share one piece of work.
//!
//! The work runs in its own task, so a client that disconnects does not
//! cancel it for the others waiting on the same key.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::error::ProxyError;

type Flight<V> = Shared<BoxFuture<'static, Result<V, ProxyError>>>;

/// What a piece of work still does after its waiters have its result
/// (storing it, say); see [`Flights::run_then`].
pub type Rest = BoxFuture<'static, ()>;

/// How long an ended piece of work is remembered; see [`Flights::ended_since`].
const REMEMBER: Duration = Duration::from_secs(10);
/// Ended keys kept before the ones older than [`REMEMBER`] are dropped.
const REMEMBER_KEYS: usize = 1024;

/// A table of pieces of work under way, by key.
pub struct Flights<V: Clone + Send + Sync + 'static> {
    table: Mutex<Table<V>>,
}

struct Table<V> {
    running: HashMap<String, Flight<V>>,
    /// When the last work for a key ended, for a while.
    ended: HashMap<String, Instant>,
}

impl<V: Clone + Send + Sync + 'static> Default for Flights<V> {
    fn default() -> Self {
        Flights {
            table: Mutex::new(Table {
                running: HashMap::new(),
                ended: HashMap::new(),
            }),
        }
    }
}

impl<V: Clone + Send + Sync + 'static> Flights<V> {
    /// Runs `work` unless work for `key` is already under way, in which case
    /// it waits for that one. Returns the result and whether it joined.
    pub async fn run<F>(self: &Arc<Self>, key: &str, work: F) -> (Result<V, ProxyError>, bool)
    where
        F: Future<Output = Result<V, ProxyError>> + Send + 'static,
    {
        self.run_then(key, work.map(|result| (result, None))).await
    }

    /// [`Flights::run`] for work that hands out its result before it is
    /// done: it returns the result and the [`Rest`] of the work. Waiters get
    /// the result at once; the key stays under way until the rest is done,
    /// so a caller that comes meanwhile joins (and gets the same result)
    /// rather than starting the work again.
    pub async fn run_then<F>(self: &Arc<Self>, key: &str, work: F) -> (Result<V, ProxyError>, bool)
    where
        F: Future<Output = (Result<V, ProxyError>, Option<Rest>)> + Send + 'static,
    {
        let (flight, joined) = {
            let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            match table.running.get(key) {
                Some(flight) => (flight.clone(), true),
                None => {
                    let guard = Release {
                        flights: Arc::clone(self),
                        key: key.to_owned(),
                    };
                    let (result_tx, result_rx) = oneshot::channel();
                    // With the id and span of the request that started it:
                    // the fetch's log lines carry that request's id.
                    let task = tokio::spawn(crate::reqid::carried(
                        async move {
                            let (result, rest) = work.await;
                            match rest {
                                None => {
                                    // Removed before waiters see the result: a
                                    // request that arrives later starts afresh
                                    // and finds what was stored.
                                    drop(guard);
                                    let _ = result_tx.send(result);
                                }
                                Some(rest) => {
                                    let _ = result_tx.send(result);
                                    rest.await;
                                    drop(guard);
                                }
                            }
                        }
                        .in_current_span(),
                    ));
                    let flight: Flight<V> = async move {
                        match result_rx.await {
                            Ok(result) => result,
                            // The work panicked: once its task is gone, so
                            // is its key (the guard drops when it unwinds).
                            Err(_) => {
                                let e = task.await.err().map(|e| e.to_string());
                                let e = e.unwrap_or_else(|| "ended without a result".into());
                                tracing::error!(error = %e, "shared fetch task failed");
                                Err(ProxyError::Upstream(format!("fetch task failed: {e}")))
                            }
                        }
                    }
                    .boxed()
                    .shared();
                    table.running.insert(key.to_owned(), flight.clone());
                    (flight, false)
                }
            }
        };
        (flight.await, joined)
    }

    /// Whether work for `key` ended at or after `since`: what it stored may
    /// have been missed by a lookup that started then. `false` is a hint,
    /// not a promise (ends are remembered for a few seconds, and another
    /// replica's are never seen): skipping a second look on it costs at
    /// worst one needless fetch, which write-once storage absorbs.
    pub fn ended_since(&self, key: &str, since: Instant) -> bool {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.ended.get(key).is_some_and(|&at| at >= since)
    }

    /// Waits until no work for `key` is under way, its rest included.
    pub async fn idle(&self, key: &str) {
        while self
            .table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .running
            .contains_key(key)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Number of keys with work under way.
    pub fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .running
            .len()
    }

    /// Whether no work is under way.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Removes a key from the table when its work ends, however it ends: done,
/// panicked, or aborted (the task is dropped and so is the guard).
struct Release<V: Clone + Send + Sync + 'static> {
    flights: Arc<Flights<V>>,
    key: String,
}

impl<V: Clone + Send + Sync + 'static> Drop for Release<V> {
    fn drop(&mut self) {
        // A poisoned lock still holds a usable table; never panic in a drop.
        let mut table = match self.flights.table.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        table.running.remove(&self.key);
        let now = Instant::now();
        if table.ended.len() >= REMEMBER_KEYS {
            table
                .ended
                .retain(|_, at| now.duration_since(*at) < REMEMBER);
            // Still many: forget them all rather than sweep on every end.
            if table.ended.len() >= REMEMBER_KEYS / 2 {
                table.ended.clear();
            }
        }
        table.ended.insert(std::mem::take(&mut self.key), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn an_end_is_seen_by_lookups_that_began_before_it_only() {
        let flights: Arc<Flights<u32>> = Arc::default();
        let before = Instant::now();
        assert!(!flights.ended_since("k", before), "nothing ran yet");
        let (r, _) = flights.run("k", async { Ok(1) }).await;
        assert_eq!(r.unwrap(), 1);
        assert!(flights.ended_since("k", before));
        assert!(!flights.ended_since("other", before));
        assert!(
            !flights.ended_since("k", Instant::now()),
            "began after the end"
        );
    }

    #[tokio::test]
    async fn remembered_ends_stay_bounded() {
        let flights: Arc<Flights<u32>> = Arc::default();
        for i in 0..3 * REMEMBER_KEYS {
            let _ = flights.run(&format!("k{i}"), async { Ok(0) }).await;
        }
        let table = flights.table.lock().unwrap();
        assert!(table.ended.len() <= REMEMBER_KEYS, "{}", table.ended.len());
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let flights: Arc<Flights<u32>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for _ in 0..50 {
            let flights = Arc::clone(&flights);
            let runs = Arc::clone(&runs);
            handles.push(tokio::spawn(async move {
                flights
                    .run("k", async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(7)
                    })
                    .await
            }));
        }
        let mut joined = 0;
        for h in handles {
            let (v, j) = h.await.unwrap();
            assert_eq!(v, Ok(7));
            joined += usize::from(j);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(joined, 49);
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn dropped_caller_does_not_cancel_the_work() {
        let flights: Arc<Flights<u32>> = Arc::default();
        let done = Arc::new(AtomicUsize::new(0));
        let d = Arc::clone(&done);
        let first = {
            let flights = Arc::clone(&flights);
            tokio::spawn(async move {
                flights
                    .run("k", async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        d.fetch_add(1, Ordering::SeqCst);
                        Ok(1)
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        first.abort();
        let (v, joined) = flights.run("k", async { Ok(2) }).await;
        assert!(joined, "the second caller joins the first caller's work");
        assert_eq!(v, Ok(1));
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_panicking_fetch_releases_its_key() {
        let flights: Arc<Flights<u32>> = Arc::default();
        let (v, _) = flights
            .run("k", async {
                if true {
                    panic!("boom");
                }
                Ok(1)
            })
            .await;
        assert!(matches!(v, Err(ProxyError::Upstream(_))), "{v:?}");
        assert!(flights.is_empty(), "the key is released");
        let (v, joined) = flights.run("k", async { Ok(2) }).await;
        assert!(!joined);
        assert_eq!(v, Ok(2), "the next caller runs afresh");
    }

    #[tokio::test]
    async fn waiters_of_a_panicking_fetch_get_an_error() {
        let flights: Arc<Flights<u32>> = Arc::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let flights = Arc::clone(&flights);
            tokio::spawn(async move {
                flights
                    .run("k", async move {
                        let _ = rx.await;
                        panic!("boom");
                    })
                    .await
            })
        };
        while flights.is_empty() {
            tokio::task::yield_now().await;
        }
        let second = {
            let flights = Arc::clone(&flights);
            tokio::spawn(async move { flights.run("k", async { Ok(9) }).await })
        };
        tokio::task::yield_now().await;
        tx.send(()).unwrap();
        let (a, _) = first.await.unwrap();
        let (b, _) = second.await.unwrap();
        assert!(a.is_err());
        // The second caller either joined the failed run or ran afresh.
        assert!(b.is_err() || b == Ok(9));
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn a_result_is_handed_out_before_the_rest_and_the_key_stays_until_it_ends() {
        let flights: Arc<Flights<u32>> = Arc::default();
        let (rest_go, rest_wait) = oneshot::channel::<()>();
        let (rest_done_tx, rest_done) = oneshot::channel::<()>();
        let rest: Rest = Box::pin(async move {
            let _ = rest_wait.await;
            let _ = rest_done_tx.send(());
        });
        let (v, joined) = flights
            .run_then("k", async move { (Ok(5), Some(rest)) })
            .await;
        assert_eq!((v, joined), (Ok(5), false), "the result before the rest");
        assert_eq!(flights.len(), 1, "the key is under way while the rest runs");
        let (v, joined) = flights.run("k", async { Ok(6) }).await;
        assert_eq!(
            (v, joined),
            (Ok(5), true),
            "a later caller joins, no second run"
        );
        rest_go.send(()).unwrap();
        rest_done.await.unwrap();
        for _ in 0..100 {
            if flights.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(flights.is_empty(), "released when the rest ended");
        let (v, joined) = flights.run("k", async { Ok(7) }).await;
        assert_eq!((v, joined), (Ok(7), false));
    }
}
