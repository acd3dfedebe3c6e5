//! Cross-replica coordination: one fetch per file, and one per mutable
//! answer per TTL, across replicas that share a store, through a lease
//! object in it.

use std::future::Future;
use std::time::{Duration, Instant};

use sparta_core::{FileKind, ModulePath, Version, key};
use tracing::warn;

use super::{Coordination, Proxy};
use crate::error::ProxyError;

/// What a leased fetch came to: this replica fetched, or another replica's
/// result turned up in storage first.
pub(super) enum Leased<T, U> {
    Fetched(T),
    Found(U),
}

impl Proxy {
    /// Whether fetches are coordinated across replicas through leases.
    pub(super) fn leases_on(&self) -> bool {
        matches!(self.inner.config.coordination, Coordination::Lease { .. })
    }

    /// Runs `fetch` once across replicas when leases are in use: the lease
    /// holder fetches, the others wait for the object to appear in storage.
    /// `None` means another replica stored it and `fetch` did not run.
    /// Correctness never depends on the lease, since objects are write-once.
    pub(super) async fn coordinated<T, F, Fut>(
        &self,
        module: &ModulePath,
        version: &Version,
        file: FileKind,
        storage_key: &str,
        fetch: F,
    ) -> Result<Option<T>, ProxyError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ProxyError>>,
    {
        let lease_key = key::lease(module, version, file);
        let stored = || async {
            let head = self.timed_head(storage_key).await?;
            Ok(head.map(|_| ()))
        };
        match self.leased(lease_key, file.ext(), stored, fetch).await? {
            Leased::Fetched(t) => Ok(Some(t)),
            Leased::Found(()) => Ok(None),
        }
    }

    /// The lease protocol itself. `found` looks in storage for another
    /// replica's result: the holder asks it once before fetching (the
    /// previous holder may have finished between our miss and this lease),
    /// a waiter after every pause. Without leases, `fetch` just runs.
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
        let Coordination::Lease { ttl } = self.inner.config.coordination else {
            return fetch().await.map(Leased::Fetched);
        };
        // Bounds the wait only if the holder stops renewing without
        // releasing; a live holder renews every ttl/3 (see LeaseGuard).
        let mut deadline = Instant::now() + ttl * 4;
        let mut pause = Duration::from_millis(50);
        loop {
            // Timed as storage op "lease" (outcome not_found: held by
            // another replica), so that lease requests show beside the rest.
            let acquire =
                self.inner
                    .store
                    .try_acquire_lease(&lease_key, &self.inner.config.holder, ttl);
            let acquired = self.timed_storage("lease", acquire).await;
            match acquired {
                Ok(Some(lease)) => {
                    // Renewed while the fetch runs, so a long fetch keeps it.
                    let failures = self.inner.metrics.lease_renewal_failures.clone();
                    let guard = self.inner.store.hold_lease(
                        lease,
                        ttl,
                        std::sync::Arc::new(move || failures.inc()),
                    );
                    let result = match found().await {
                        Ok(Some(u)) => Ok(Leased::Found(u)),
                        _ => fetch().await.map(Leased::Fetched),
                    };
                    // The result is stored (or failed): whoever waits on the
                    // lease checks storage first, so the release need not
                    // delay this answer.
                    let this = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = this.timed_storage("release", guard.release()).await {
                            warn!(key = %lease_key, error = %e, "could not release lease");
                        }
                    });
                    return result;
                }
                // Held by a live replica: its renewals keep us waiting.
                Ok(None) => deadline = deadline.max(Instant::now() + ttl),
                Err(e) => {
                    // A lease is an optimisation: without one, fetch anyway.
                    warn!(key = %lease_key, error = %e, "lease unavailable, fetching without it");
                    return fetch().await.map(Leased::Fetched);
                }
            }
            // Another replica is fetching: wait for its result to appear.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
            if let Some(u) = found().await? {
                self.inner
                    .metrics
                    .singleflight_saved
                    .with_label_values(&[label])
                    .inc();
                return Ok(Leased::Found(u));
            }
            if Instant::now() > deadline {
                return fetch().await.map(Leased::Fetched);
            }
        }
    }
}
