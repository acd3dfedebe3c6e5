//! Cross-replica coordination: one fetch per file, and one per mutable
//! answer per TTL, across replicas that share a store, through a lease
//! object in it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use sparta_core::{FileKind, ModulePath, Version, key};
use sparta_storage::Lease;
use tracing::warn;

use super::{Coordination, Proxy};
use crate::error::ProxyError;
use crate::flight::Rest;

/// What a leased fetch came to: this replica fetched, or another replica's
/// result turned up in storage first.
pub(super) enum Leased<T, U> {
    Fetched(T),
    Found(U),
}

/// How long, and for how many files, a likely miss in storage is
/// remembered for [`Proxy::look_with_lease`]: the go command asks for a
/// version's other files within seconds of the first.
const MISSING_FOR: Duration = Duration::from_secs(60);
const MISSING_FILES: u64 = 20_000;

/// The memo behind [`Proxy::look_with_lease`].
pub(super) fn missing_memo() -> moka::sync::Cache<String, ()> {
    moka::sync::Cache::builder()
        .max_capacity(MISSING_FILES)
        .time_to_live(MISSING_FOR)
        .build()
}

/// A result, and the rest of the work behind it still to run after it is
/// answered (see [`crate::flight::Flights::run_then`]).
pub(super) type Then<T> = (Result<T, ProxyError>, Option<Rest>);

impl Proxy {
    /// Whether fetches are coordinated across replicas through leases.
    pub(super) fn leases_on(&self) -> bool {
        matches!(self.inner.config.coordination, Coordination::Lease { .. })
    }

    /// Remembers, after `file` of `module@version` missed in storage, that
    /// the version's other files most likely miss too.
    pub(super) fn note_missing(&self, module: &ModulePath, version: &Version, file: FileKind) {
        if !self.leases_on() {
            return;
        }
        for other in [FileKind::Info, FileKind::Mod, FileKind::Zip] {
            if other != file {
                let other_key = key::version_file(module, version, other);
                self.inner.missing.insert(other_key, ());
            }
        }
    }

    /// Whether a file not in memory is to be looked up in storage only by
    /// the lease holder, together with its lease request (one round trip
    /// for both) instead of before it: when another file of its version
    /// missed in storage here lately (the go command asks for a version's
    /// files one after another), so this one most likely misses too. Each
    /// such guess is used once; a wrong one costs a lease request and its
    /// release, never a fetch. Not offline (nothing is fetched there) nor
    /// while a miss at the source is remembered (that refusal is only for
    /// files storage does not hold).
    pub(super) async fn look_with_lease(&self, kind: super::Kind, storage_key: &str) -> bool {
        self.leases_on()
            && !self.offline()
            && self.inner.missing.remove(storage_key).is_some()
            && self.check_negative(kind, storage_key).await.is_ok()
    }

    /// Runs `fetch` once across replicas when leases are in use: the lease
    /// holder fetches, the others wait for the object to appear in storage.
    /// `None` means another replica stored it and `fetch` did not run.
    /// `fetch` answers first and stores in the rest it returns; the lease
    /// is held until that rest is done, and released in the rest returned
    /// here. Correctness never depends on the lease: objects are write-once.
    pub(super) async fn coordinated<T, F, Fut>(
        &self,
        module: &ModulePath,
        version: &Version,
        file: FileKind,
        storage_key: &str,
        fetch: F,
    ) -> Then<Option<T>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, Option<Rest>), ProxyError>>,
    {
        let lease_key = key::lease(module, version, file);
        let stored = || async {
            let head = self.timed_head(storage_key).await?;
            Ok(head.map(|_| ()))
        };
        let (result, rest) = self.leased_then(lease_key, file.ext(), stored, fetch).await;
        let result = result.map(|leased| match leased {
            Leased::Fetched(t) => Some(t),
            Leased::Found(()) => None,
        });
        (result, rest)
    }

    /// [`Proxy::leased_then`] for a fetch that is done when it answers; the
    /// lease's release runs on its own.
    pub(super) async fn leased<T, U, D, DFut, F, Fut>(
        &self,
        lease_key: String,
        label: &'static str,
        found: D,
        fetch: F,
    ) -> Result<Leased<T, U>, ProxyError>
    where
        D: Fn() -> DFut,
        DFut: Future<Output = Result<Option<U>, ProxyError>>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ProxyError>>,
    {
        let fetch = || fetch().map(|result| result.map(|t| (t, None)));
        let (result, rest) = self.leased_then(lease_key, label, found, fetch).await;
        if let Some(rest) = rest {
            tokio::spawn(rest);
        }
        result
    }

    /// The lease protocol itself. `found` looks in storage for another
    /// replica's result: the first time together with the first request
    /// for the lease (a holder must look after its lease is granted, since
    /// the previous holder may have stored it after our miss; asked at
    /// once the two cost one round trip, and a previous holder's store and
    /// release would both have to land between them, which takes a round
    /// trip of its own, for a second fetch to follow: write-once storage
    /// absorbs it); a waiter looks after every pause, before asking again.
    /// Without leases, `fetch` just runs.
    pub(super) async fn leased_then<T, U, D, DFut, F, Fut>(
        &self,
        lease_key: String,
        label: &'static str,
        found: D,
        fetch: F,
    ) -> Then<Leased<T, U>>
    where
        D: Fn() -> DFut,
        DFut: Future<Output = Result<Option<U>, ProxyError>>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, Option<Rest>), ProxyError>>,
    {
        let Coordination::Lease { ttl } = self.inner.config.coordination else {
            return fetched(fetch().await);
        };
        // Bounds the wait only if the holder stops renewing without
        // releasing; a live holder renews every ttl/3 (see LeaseGuard).
        let mut deadline = Instant::now() + ttl * 4;
        let mut pause = Duration::from_millis(50);
        let (mut acquired, mut seen) = tokio::join!(self.try_lease(&lease_key, ttl), found());
        loop {
            match acquired {
                Ok(Some(lease)) => return self.hold(lease, ttl, lease_key, seen, fetch).await,
                // Held by a live replica: its renewals keep us waiting.
                Ok(None) => {
                    if let Ok(Some(u)) = seen {
                        return self.found_meanwhile(label, u);
                    }
                    deadline = deadline.max(Instant::now() + ttl);
                }
                Err(e) => {
                    // A lease is an optimisation: without one, fetch anyway.
                    warn!(key = %lease_key, error = %e, "lease unavailable, fetching without it");
                    if let Ok(Some(u)) = seen {
                        return (Ok(Leased::Found(u)), None);
                    }
                    return fetched(fetch().await);
                }
            }
            // Another replica is fetching: wait for its result to appear.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
            match found().await {
                Ok(Some(u)) => return self.found_meanwhile(label, u),
                Ok(None) => {}
                Err(e) => return (Err(e), None),
            }
            if Instant::now() > deadline {
                return fetched(fetch().await);
            }
            acquired = self.try_lease(&lease_key, ttl).await;
            seen = match acquired {
                Ok(Some(_)) => found().await,
                _ => Ok(None),
            };
        }
    }

    /// Asks for the lease, timed as storage op "lease" (outcome not_found:
    /// held by another replica), so lease requests show beside the rest.
    async fn try_lease(&self, lease_key: &str, ttl: Duration) -> Result<Option<Lease>, ProxyError> {
        let acquire = self
            .inner
            .store
            .try_acquire_lease(lease_key, &self.inner.config.holder, ttl);
        self.timed_storage("lease", acquire).await
    }

    /// Fetches under a granted lease unless `seen` found the result, and
    /// hands back the fetch's rest followed by the release: whoever waits
    /// on the lease looks in storage first, so the release need not delay
    /// the answer, but the store must come before it.
    async fn hold<T, U, F, Fut>(
        &self,
        lease: Lease,
        ttl: Duration,
        lease_key: String,
        seen: Result<Option<U>, ProxyError>,
        fetch: F,
    ) -> Then<Leased<T, U>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, Option<Rest>), ProxyError>>,
    {
        // Renewed while the fetch and the store run, so a long one keeps it.
        let failures = self.inner.metrics.lease_renewal_failures.clone();
        let guard = self
            .inner
            .store
            .hold_lease(lease, ttl, Arc::new(move || failures.inc()));
        let (result, rest) = match seen {
            Ok(Some(u)) => (Ok(Leased::Found(u)), None),
            _ => fetched(fetch().await),
        };
        let this = self.clone();
        let release: Rest = Box::pin(async move {
            if let Some(rest) = rest {
                rest.await;
            }
            if let Err(e) = this.timed_storage("release", guard.release()).await {
                warn!(key = %lease_key, error = %e, "could not release lease");
            }
        });
        (result, Some(release))
    }

    /// Another replica's result, found while waiting on its lease.
    fn found_meanwhile<T, U>(&self, label: &'static str, u: U) -> Then<Leased<T, U>> {
        self.inner
            .metrics
            .singleflight_saved
            .with_label_values(&[label])
            .inc();
        (Ok(Leased::Found(u)), None)
    }
}

/// A fetch's outcome as a leased one.
fn fetched<T, U>(outcome: Result<(T, Option<Rest>), ProxyError>) -> Then<Leased<T, U>> {
    match outcome {
        Ok((t, rest)) => (Ok(Leased::Fetched(t)), rest),
        Err(e) => (Err(e), None),
    }
}
