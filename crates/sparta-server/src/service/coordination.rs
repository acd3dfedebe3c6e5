//! Cross-replica coordination: one fetch per file across replicas that share
//! a store, through a lease object in it.

use std::time::{Duration, Instant};

use sparta_core::{FileKind, ModulePath, Version, key};
use tracing::warn;

use super::{Coordination, Proxy};
use crate::error::ProxyError;

impl Proxy {
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
        Fut: std::future::Future<Output = Result<T, ProxyError>>,
    {
        let Coordination::Lease { ttl } = self.inner.config.coordination else {
            return fetch().await.map(Some);
        };
        let lease_key = key::lease(module, version, file);
        // Bounds the wait only if the holder stops renewing without
        // releasing; a live holder renews every ttl/3 (see LeaseGuard).
        let mut deadline = Instant::now() + ttl * 4;
        let mut pause = Duration::from_millis(50);
        loop {
            let acquired = self
                .inner
                .store
                .try_acquire_lease(&lease_key, &self.inner.config.holder, ttl)
                .await;
            match acquired {
                Ok(Some(lease)) => {
                    // Renewed while the fetch runs, so a long fetch keeps it.
                    let failures = self.inner.metrics.lease_renewal_failures.clone();
                    let guard = self.inner.store.hold_lease(
                        lease,
                        ttl,
                        std::sync::Arc::new(move || failures.inc()),
                    );
                    // The previous holder may have stored it and let go
                    // between our storage miss and this lease.
                    let result = match self.timed_head(storage_key).await {
                        Ok(Some(_)) => Ok(None),
                        _ => fetch().await.map(Some),
                    };
                    // The file is stored (or failed): whoever waits on the
                    // lease checks storage first, so the release need not
                    // delay this answer.
                    tokio::spawn(async move {
                        if let Err(e) = guard.release().await {
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
                    return fetch().await.map(Some);
                }
            }
            // Another replica is fetching: wait for its result to appear.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
            if self.timed_head(storage_key).await?.is_some() {
                self.inner
                    .metrics
                    .singleflight_saved
                    .with_label_values(&[file.ext()])
                    .inc();
                return Ok(None);
            }
            if Instant::now() > deadline {
                return fetch().await.map(Some);
            }
        }
    }
}
