//! Holding a lease while a fetch runs: a background task renews it every
//! ttl/3, so a fetch longer than the ttl keeps it and other replicas keep
//! waiting instead of fetching again. A failed renewal is logged and counted
//! and retried at the next tick; a lease found taken over stops the renewals
//! (the fetch goes on: stored objects are write-once, so the cost is at most
//! a duplicate fetch).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::warn;

use crate::{Lease, StorageError, Store};

/// Called once per failed renewal (for a metric).
pub type OnRenewFailure = Arc<dyn Fn() + Send + Sync>;

/// A held lease, renewed until [`LeaseGuard::release`] or drop.
#[derive(Debug)]
pub struct LeaseGuard {
    store: Store,
    lease: Lease,
    renewer: JoinHandle<()>,
}

impl Store {
    /// Starts renewing `lease` every `ttl / 3` until the guard is released
    /// or dropped (dropping stops renewing; the lease then expires).
    pub fn hold_lease(
        &self,
        lease: Lease,
        ttl: Duration,
        on_failure: OnRenewFailure,
    ) -> LeaseGuard {
        let period = (ttl / 3).max(Duration::from_millis(10));
        let (store, held) = (self.clone(), lease.clone());
        let renewer = tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match store.renew_lease(&held, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        warn!(key = %held.key, fence = held.fence, "lease taken over while fetching; renewal stops");
                        on_failure();
                        return;
                    }
                    Err(e) => {
                        warn!(key = %held.key, error = %e, "could not renew lease");
                        on_failure();
                    }
                }
            }
        });
        LeaseGuard {
            store: self.clone(),
            lease,
            renewer,
        }
    }

    /// Extends a held lease by `ttl` from now; `Ok(false)` if it is no
    /// longer ours.
    pub async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StorageError> {
        crate::lease::renew(self.inner.as_ref(), lease, ttl).await
    }
}

impl LeaseGuard {
    /// The lease held.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Stops renewing and releases the lease (only if still ours).
    pub async fn release(mut self) -> Result<(), StorageError> {
        self.renewer.abort();
        // A renewal cut short mid-write leaves the lease ours, as release
        // expects; wait for the task so none lands after the delete.
        let _ = (&mut self.renewer).await;
        self.store.release_lease(&self.lease).await
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}
