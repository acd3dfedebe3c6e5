//! Bounds on fetches from sources: how many run at once (in all, and per
//! upstream host) and how many spool bytes cold zips may hold at once.
//!
//! A fetch over a bound waits up to the queue wait, then is refused with
//! [`Refused`], answered as `503` with `Retry-After`. Permits are taken
//! inside the singleflight work, so requests that join a fetch under way
//! take none. The spool reservation is made by the source once it knows the
//! size (Content-Length, else the zip limit), through a task-local
//! [`SpoolSlot`] the service sets around the zip fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Spool bytes are counted in KiB so a reservation fits a `u32` of permits.
const SPOOL_UNIT: u64 = 1024;

/// The limits' settings; zero turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Concurrent fetches in all.
    pub max_fetches: usize,
    /// Concurrent fetches per upstream host.
    pub max_fetches_per_host: usize,
    /// Spool bytes reserved by zip fetches at once.
    pub spool_budget: u64,
    /// How long a fetch waits for a permit before it is refused.
    pub queue_wait: Duration,
}

impl LimitsConfig {
    /// No limit at all (tests, embedded use).
    pub const UNLIMITED: LimitsConfig = LimitsConfig {
        max_fetches: 0,
        max_fetches_per_host: 0,
        spool_budget: 0,
        queue_wait: Duration::ZERO,
    };
}

/// Which bound refused a fetch (the metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Fetches,
    HostFetches,
    Spool,
}

impl Bound {
    /// The `reason` label of `sparta_fetch_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Bound::Fetches => "fetches",
            Bound::HostFetches => "host_fetches",
            Bound::Spool => "spool",
        }
    }
}

/// A fetch that waited out the queue wait without a permit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub bound: Bound,
    /// Seconds the client is told to wait (`Retry-After`).
    pub retry_after: u64,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.bound {
            Bound::Fetches => "too many fetches under way",
            Bound::HostFetches => "too many fetches from this upstream under way",
            Bound::Spool => "the spool budget is taken by other fetches",
        };
        write!(f, "{what}; retry in {}s", self.retry_after)
    }
}

/// The limits' metrics, registered once.
#[derive(Clone)]
struct LimitMetrics {
    queued: IntGauge,
    waited: Histogram,
    refused: IntCounterVec,
    spool_reserved: IntGauge,
}

impl LimitMetrics {
    fn new(r: &Registry) -> Self {
        let queued = IntGauge::new(
            "sparta_fetch_queue_waiting",
            "Fetches waiting for a fetch permit or spool budget.",
        )
        .expect("valid metric");
        let waited = Histogram::with_opts(
            HistogramOpts::new(
                "sparta_fetch_queue_wait_seconds",
                "Time fetches waited for a permit or spool budget (refused ones included).",
            )
            .buckets(vec![
                0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        )
        .expect("valid metric");
        let refused = IntCounterVec::new(
            Opts::new(
                "sparta_fetch_refused_total",
                "Fetches refused with 503 after the queue wait, by the bound that was full.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let spool_reserved = IntGauge::new(
            "sparta_spool_reserved_bytes",
            "Spool bytes reserved by zip fetches under way.",
        )
        .expect("valid metric");
        for bound in [Bound::Fetches, Bound::HostFetches, Bound::Spool] {
            refused.with_label_values(&[bound.label()]);
        }
        r.register(Box::new(queued.clone())).expect("unique metric");
        r.register(Box::new(waited.clone())).expect("unique metric");
        r.register(Box::new(refused.clone()))
            .expect("unique metric");
        r.register(Box::new(spool_reserved.clone()))
            .expect("unique metric");
        LimitMetrics {
            queued,
            waited,
            refused,
            spool_reserved,
        }
    }
}

/// The shared limits; cheap to clone.
#[derive(Clone)]
pub struct FetchLimits {
    inner: Arc<Inner>,
}

struct Inner {
    config: LimitsConfig,
    global: Option<Arc<Semaphore>>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    spool: Option<Arc<Semaphore>>,
    metrics: LimitMetrics,
}

/// Held while a fetch runs; dropping it frees the permits.
pub struct FetchPermit {
    _global: Option<OwnedSemaphorePermit>,
    _host: Option<HostPermit>,
}

/// A per-host permit that forgets its host's semaphore when nobody holds
/// or waits for it, so the table stays as small as the hosts in use.
struct HostPermit {
    permit: Option<OwnedSemaphorePermit>,
    semaphore: Arc<Semaphore>,
    host: String,
    limits: Arc<Inner>,
}

impl Drop for HostPermit {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut hosts = self.limits.hosts.lock().unwrap_or_else(|p| p.into_inner());
        // The table's reference and ours: nobody else holds or waits.
        if Arc::strong_count(&self.semaphore) == 2 {
            hosts.remove(&self.host);
        }
    }
}

/// Spool bytes held for one zip fetch; dropping it frees them.
pub struct SpoolReservation {
    _permit: OwnedSemaphorePermit,
    bytes: u64,
    gauge: IntGauge,
}

impl SpoolReservation {
    /// The bytes reserved.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for SpoolReservation {
    fn drop(&mut self) {
        self.gauge.sub(self.bytes as i64);
    }
}

impl FetchLimits {
    /// Builds the limits and registers their metrics in `registry`.
    pub fn new(config: LimitsConfig, registry: &Registry) -> Self {
        let sem = |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n)));
        let spool_units = match config.spool_budget {
            0 => 0,
            budget => usize::try_from(spool_capacity(budget)).unwrap_or(u32::MAX as usize),
        };
        FetchLimits {
            inner: Arc::new(Inner {
                config,
                global: sem(config.max_fetches),
                hosts: Mutex::new(HashMap::new()),
                spool: sem(spool_units),
                metrics: LimitMetrics::new(registry),
            }),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> LimitsConfig {
        self.inner.config
    }

    fn refused(&self, bound: Bound) -> Refused {
        self.inner
            .metrics
            .refused
            .with_label_values(&[bound.label()])
            .inc();
        Refused {
            bound,
            retry_after: self.inner.config.queue_wait.as_secs().max(1),
        }
    }

    /// Waits for a permit on `semaphore` until `deadline`, counted as queued.
    async fn wait(
        &self,
        semaphore: &Arc<Semaphore>,
        units: u32,
        deadline: tokio::time::Instant,
    ) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = Arc::clone(semaphore).try_acquire_many_owned(units) {
            return Some(p);
        }
        let m = &self.inner.metrics;
        m.queued.inc();
        let got =
            tokio::time::timeout_at(deadline, Arc::clone(semaphore).acquire_many_owned(units))
                .await;
        m.queued.dec();
        match got {
            Ok(Ok(p)) => Some(p),
            _ => None,
        }
    }

    /// A permit to fetch from `host`: the host's first, then the global one,
    /// so a request waiting on a busy host holds no global slot meanwhile.
    pub async fn fetch(&self, host: &str) -> Result<FetchPermit, Refused> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.inner.config.queue_wait;
        let result = self.fetch_until(host, deadline).await;
        self.inner
            .metrics
            .waited
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn fetch_until(
        &self,
        host: &str,
        deadline: tokio::time::Instant,
    ) -> Result<FetchPermit, Refused> {
        let per_host = self.inner.config.max_fetches_per_host;
        let host_permit = if per_host > 0 {
            let semaphore = {
                let mut hosts = self.inner.hosts.lock().unwrap_or_else(|p| p.into_inner());
                Arc::clone(
                    hosts
                        .entry(host.to_owned())
                        .or_insert_with(|| Arc::new(Semaphore::new(per_host))),
                )
            };
            // Built before waiting so its drop tidies the table on refusal too.
            let mut held = HostPermit {
                permit: None,
                semaphore: Arc::clone(&semaphore),
                host: host.to_owned(),
                limits: Arc::clone(&self.inner),
            };
            held.permit = self.wait(&semaphore, 1, deadline).await;
            if held.permit.is_none() {
                return Err(self.refused(Bound::HostFetches));
            }
            Some(held)
        } else {
            None
        };
        let global = match &self.inner.global {
            Some(semaphore) => match self.wait(semaphore, 1, deadline).await {
                Some(p) => Some(p),
                None => return Err(self.refused(Bound::Fetches)),
            },
            None => None,
        };
        Ok(FetchPermit {
            _global: global,
            _host: host_permit,
        })
    }

    /// Reserves `bytes` of spool (at most the whole budget, so one fetch
    /// larger than the budget can still run alone). `None` when the budget
    /// is off.
    pub async fn reserve_spool(&self, bytes: u64) -> Result<Option<SpoolReservation>, Refused> {
        let Some(semaphore) = &self.inner.spool else {
            return Ok(None);
        };
        let budget_units = spool_capacity(self.inner.config.spool_budget);
        let units = bytes.div_ceil(SPOOL_UNIT).clamp(1, budget_units);
        let units = u32::try_from(units).unwrap_or(u32::MAX);
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.inner.config.queue_wait;
        let got = self.wait(semaphore, units, deadline).await;
        self.inner
            .metrics
            .waited
            .observe(started.elapsed().as_secs_f64());
        let Some(permit) = got else {
            return Err(self.refused(Bound::Spool));
        };
        let reserved = u64::from(units) * SPOOL_UNIT;
        let gauge = self.inner.metrics.spool_reserved.clone();
        gauge.add(reserved as i64);
        Ok(Some(SpoolReservation {
            _permit: permit,
            bytes: reserved,
            gauge,
        }))
    }
}

/// The budget in spool units, within what a semaphore takes at once.
fn spool_capacity(budget: u64) -> u64 {
    budget.div_ceil(SPOOL_UNIT).clamp(1, u64::from(u32::MAX))
}

/// The spool reservation of one zip fetch, reachable from the source that
/// spools it (task-local [`SPOOL`]). A refusal sticks: a source that falls
/// through to the next proxy is refused again at once, not after another wait.
pub struct SpoolSlot {
    limits: FetchLimits,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    held: Option<SpoolReservation>,
    refused: Option<Refused>,
}

tokio::task_local! {
    /// The spool slot of the zip fetch running in this task.
    pub static SPOOL: Arc<SpoolSlot>;
}

impl SpoolSlot {
    /// An empty slot drawing on `limits`.
    pub fn new(limits: FetchLimits) -> Arc<Self> {
        Arc::new(SpoolSlot {
            limits,
            state: Mutex::new(SlotState::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces this fetch's reservation with one for `bytes`.
    pub async fn reserve(&self, bytes: u64) -> Result<(), Refused> {
        {
            let mut state = self.state();
            if let Some(refused) = &state.refused {
                return Err(refused.clone());
            }
            // A retry against the next proxy frees the last attempt's bytes first.
            state.held = None;
        }
        match self.limits.reserve_spool(bytes).await {
            Ok(held) => {
                self.state().held = held;
                Ok(())
            }
            Err(refused) => {
                self.state().refused = Some(refused.clone());
                Err(refused)
            }
        }
    }

    /// The refusal this fetch met, if any.
    pub fn refused(&self) -> Option<Refused> {
        self.state().refused.clone()
    }

    /// The bytes held now.
    pub fn reserved(&self) -> u64 {
        self.state().held.as_ref().map_or(0, |h| h.bytes())
    }
}

/// Reserves spool for the zip about to be written by this task: `declared`
/// bytes, or `fallback` (the zip limit) when the size is not known. Without
/// a slot (no limits in this task) it does nothing.
pub async fn reserve_spool(declared: Option<u64>, fallback: u64) -> Result<(), Refused> {
    let Ok(slot) = SPOOL.try_with(Arc::clone) else {
        return Ok(());
    };
    slot.reserve(declared.unwrap_or(fallback)).await
}

/// The refusal met by this task's spool slot, if any.
pub fn spool_refused() -> Option<Refused> {
    SPOOL.try_with(|slot| slot.refused()).ok().flatten()
}

#[cfg(test)]
mod tests {
    use prometheus::Encoder;

    use super::*;

    fn limits(max: usize, per_host: usize, spool: u64, wait_ms: u64) -> (FetchLimits, Registry) {
        let r = Registry::new();
        let l = FetchLimits::new(
            LimitsConfig {
                max_fetches: max,
                max_fetches_per_host: per_host,
                spool_budget: spool,
                queue_wait: Duration::from_millis(wait_ms),
            },
            &r,
        );
        (l, r)
    }

    fn refused_count(r: &Registry, reason: &str) -> u64 {
        let text = {
            let mut out = Vec::new();
            prometheus::TextEncoder::new()
                .encode(&r.gather(), &mut out)
                .unwrap();
            String::from_utf8(out).unwrap()
        };
        let line = format!("sparta_fetch_refused_total{{reason=\"{reason}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("no {line} in\n{text}"))
    }

    #[tokio::test]
    async fn a_full_host_refuses_after_the_wait_and_others_still_run() {
        let (l, r) = limits(0, 2, 0, 50);
        let a = l.fetch("a.example").await.unwrap();
        let _b = l.fetch("a.example").await.unwrap();
        let err = l.fetch("a.example").await.err().unwrap();
        assert_eq!(err.bound, Bound::HostFetches);
        assert_eq!(err.retry_after, 1);
        assert_eq!(refused_count(&r, "host_fetches"), 1);
        // Another host is not held up by the first one's permits.
        let _c = l.fetch("b.example").await.unwrap();
        drop(a);
        let _d = l.fetch("a.example").await.unwrap();
    }

    #[tokio::test]
    async fn a_waiting_fetch_gets_the_permit_freed_within_the_wait() {
        let (l, r) = limits(1, 0, 0, 2000);
        let first = l.fetch("h").await.unwrap();
        let waiter = tokio::spawn({
            let l = l.clone();
            async move { l.fetch("h").await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(first);
        assert!(waiter.await.unwrap());
        assert_eq!(refused_count(&r, "fetches"), 0);
    }

    #[tokio::test]
    async fn the_global_bound_counts_every_host() {
        let (l, r) = limits(2, 16, 0, 20);
        let _a = l.fetch("a").await.unwrap();
        let _b = l.fetch("b").await.unwrap();
        assert_eq!(l.fetch("c").await.err().unwrap().bound, Bound::Fetches);
        assert_eq!(refused_count(&r, "fetches"), 1);
        // The refused fetch gave its host permit back: the table forgot "c".
        assert!(!l.inner.hosts.lock().unwrap().contains_key("c"));
    }

    #[tokio::test]
    async fn host_table_forgets_idle_hosts() {
        let (l, _) = limits(0, 1, 0, 10);
        drop(l.fetch("x").await.unwrap());
        assert!(l.inner.hosts.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn spool_reservations_are_bounded_by_the_budget() {
        let (l, r) = limits(0, 0, 10 << 20, 30);
        let a = l.reserve_spool(6 << 20).await.unwrap().unwrap();
        assert_eq!(a.bytes(), 6 << 20);
        // 6 + 6 > 10 MiB: refused after the wait.
        assert_eq!(
            l.reserve_spool(6 << 20).await.err().unwrap().bound,
            Bound::Spool
        );
        assert_eq!(refused_count(&r, "spool"), 1);
        // Larger than the whole budget: capped to it, runs once alone.
        drop(a);
        let whole = l.reserve_spool(1 << 40).await.unwrap().unwrap();
        assert_eq!(whole.bytes(), 10 << 20);
    }

    #[tokio::test]
    async fn zero_means_unlimited() {
        let (l, _) = limits(0, 0, 0, 0);
        let held: Vec<_> = futures::future::join_all((0..100).map(|_| l.fetch("h"))).await;
        assert!(held.iter().all(|p| p.is_ok()));
        assert!(l.reserve_spool(u64::MAX).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_slot_refusal_sticks_and_without_a_slot_nothing_is_reserved() {
        let (l, _) = limits(0, 0, 1 << 20, 10);
        let hog = l.reserve_spool(1 << 20).await.unwrap();
        let slot = SpoolSlot::new(l.clone());
        let first = SPOOL
            .scope(Arc::clone(&slot), reserve_spool(Some(4096), 1 << 30))
            .await;
        assert!(first.is_err());
        drop(hog);
        // The budget is free now, but this fetch was already refused.
        let again = SPOOL
            .scope(Arc::clone(&slot), async {
                reserve_spool(Some(4096), 1 << 30).await?;
                Ok::<_, Refused>(spool_refused())
            })
            .await;
        assert!(again.is_err());
        assert!(reserve_spool(None, 1 << 30).await.is_ok());
        assert_eq!(spool_refused(), None);
    }

    #[tokio::test]
    async fn a_slot_holds_one_reservation_per_attempt() {
        let (l, _) = limits(0, 0, 1 << 20, 10);
        let slot = SpoolSlot::new(l.clone());
        SPOOL
            .scope(Arc::clone(&slot), async {
                reserve_spool(Some(600 << 10), 0).await.unwrap();
                // The next attempt replaces the first one's bytes.
                reserve_spool(Some(700 << 10), 0).await.unwrap();
            })
            .await;
        assert_eq!(slot.reserved(), 700 << 10);
        drop(slot);
        assert!(l.reserve_spool(1 << 20).await.unwrap().is_some());
    }
}
