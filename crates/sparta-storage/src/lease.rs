//! Leases for cross-replica singleflight, kept as small JSON objects.
//!
//! A lease is created with a write-once put. An expired lease is taken over
//! with a conditional update (`If-Match` on the ETag that was read), so of
//! two replicas that both see it expired only one wins, and the winner's
//! fence is one more than the expired holder's.
//!
//! Stores without conditional updates (the local filesystem) fall back to an
//! atomic overwrite. There, two replicas that see the same expired lease at
//! the same moment can both end up holding it (both at the next fence). That
//! costs at most one duplicate upstream fetch, which is harmless because
//! stored files are write-once.
//!
//! Expiry tolerates clock skew: a lease counts as expired only once both the
//! writer's own deadline and the store's `last_modified` plus the lease's
//! ttl have passed by a margin on the reader's clock ([`SKEW_MARGIN`], or the
//! ttl if that is shorter). The store's
//! timestamp moves the comparison from the writer's clock to the store's, so
//! a writer whose clock runs behind cannot make its lease look expired early,
//! and the margin absorbs the skew left between reader and store.
//!
//! A holder renews its lease while its fetch runs ([`renew`], driven by
//! [`crate::LeaseGuard`]): the same conditional update as a takeover, at the
//! same fence, only while the lease still names this holder.
//!
//! Release deletes the lease only if it still names this holder and fence.
//! S3 has no conditional delete, so a lease that expired and was taken over
//! between that read and the delete is removed too; its new holder then just
//! loses the lease early (again at most a duplicate fetch).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::{Lease, StorageError, is_already_exists, obj_path};

/// Attempts before giving up when the lease keeps changing under us.
const MAX_ATTEMPTS: usize = 4;
/// Clock skew between replicas and the store that expiry tolerates.
pub const SKEW_MARGIN: Duration = Duration::from_secs(5);

/// The stored form of a lease.
#[derive(Debug, Serialize, Deserialize)]
struct LeaseRecord {
    holder: String,
    fence: u64,
    expires_at_unix_ms: u64,
    /// The ttl the lease was written with (0 in leases written before it
    /// was recorded: then only the writer's deadline counts).
    #[serde(default)]
    ttl_ms: u64,
}

impl LeaseRecord {
    /// Whether the lease has expired at `now_ms`, given the store's
    /// last-modified time of the object.
    fn expired(&self, now_ms: u64, last_modified_ms: u64) -> bool {
        // Never more than the ttl itself, so short test leases stay short.
        let margin = (SKEW_MARGIN.as_millis() as u64).min(self.ttl_ms);
        let by_writer = self.expires_at_unix_ms.saturating_add(margin);
        let by_store = last_modified_ms
            .saturating_add(self.ttl_ms)
            .saturating_add(margin);
        now_ms >= by_writer.max(by_store)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn encode(holder: &str, fence: u64, ttl: Duration) -> PutPayload {
    let record = LeaseRecord {
        holder: holder.to_string(),
        fence,
        expires_at_unix_ms: now_ms().saturating_add(ttl.as_millis() as u64),
        ttl_ms: ttl.as_millis() as u64,
    };
    // Serialising a struct of strings and integers cannot fail.
    let json = serde_json::to_vec(&record).unwrap_or_default();
    PutPayload::from(Bytes::from(json))
}

pub(crate) async fn try_acquire(
    store: &dyn ObjectStore,
    key: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<Lease>, StorageError> {
    let path = obj_path(key);
    let held = |fence| {
        Ok(Some(Lease {
            key: key.to_string(),
            fence,
            holder: holder.to_string(),
        }))
    };
    for _ in 0..MAX_ATTEMPTS {
        let create = PutOptions::from(PutMode::Create);
        match store.put_opts(&path, encode(holder, 1, ttl), create).await {
            Ok(_) => return held(1),
            Err(e) if is_already_exists(&e) => {}
            Err(e) => return Err(e.into()),
        }

        let current = match store.get(&path).await {
            Ok(r) => r,
            // Released in between: try to create it again.
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let version = UpdateVersion {
            e_tag: current.meta.e_tag.clone(),
            version: current.meta.version.clone(),
        };
        let modified_ms = current.meta.last_modified.timestamp_millis().max(0) as u64;
        let body = match current.bytes().await {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        // An unreadable lease (torn by hand, or from another program) counts
        // as expired rather than blocking the key forever.
        let record: Option<LeaseRecord> = serde_json::from_slice(&body).ok();
        let (expired, old_fence) = match &record {
            Some(r) => (r.expired(now_ms(), modified_ms), r.fence),
            None => (true, 0),
        };
        if !expired {
            return Ok(None);
        }
        let fence = old_fence + 1;

        let update = PutOptions::from(PutMode::Update(version));
        match store
            .put_opts(&path, encode(holder, fence, ttl), update)
            .await
        {
            Ok(_) => {
                tracing::debug!(key, fence, "took over expired lease");
                return held(fence);
            }
            // Someone else took it over (or released it) first.
            Err(object_store::Error::Precondition { .. }) => return Ok(None),
            Err(object_store::Error::NotImplemented { .. }) => {}
            Err(e) => return Err(e.into()),
        }

        // No conditional update here: replace it outright (see module doc).
        // An atomic overwrite, never delete-then-create, so nobody ever sees
        // the key absent and starts a fresh lease at fence 1 beside ours.
        let overwrite = PutOptions::from(PutMode::Overwrite);
        return match store
            .put_opts(&path, encode(holder, fence, ttl), overwrite)
            .await
        {
            Ok(_) => held(fence),
            Err(e) => Err(e.into()),
        };
    }
    // The lease kept appearing and vanishing: let the caller wait instead.
    Ok(None)
}

/// Extends a held lease by `ttl` from now. `Ok(false)`: the lease is no
/// longer ours (taken over, or gone), so renewing stops.
pub(crate) async fn renew(
    store: &dyn ObjectStore,
    lease: &Lease,
    ttl: Duration,
) -> Result<bool, StorageError> {
    let path = obj_path(&lease.key);
    let current = match store.get(&path).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let version = UpdateVersion {
        e_tag: current.meta.e_tag.clone(),
        version: current.meta.version.clone(),
    };
    let body = match current.bytes().await {
        Ok(b) => b,
        Err(object_store::Error::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    match serde_json::from_slice::<LeaseRecord>(&body) {
        Ok(r) if r.holder == lease.holder && r.fence == lease.fence => {}
        _ => return Ok(false),
    }
    let payload = || encode(&lease.holder, lease.fence, ttl);
    let update = PutOptions::from(PutMode::Update(version));
    match store.put_opts(&path, payload(), update).await {
        Ok(_) => return Ok(true),
        Err(object_store::Error::Precondition { .. }) => return Ok(false),
        Err(object_store::Error::NotImplemented { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    // No conditional update (local filesystem): overwrite, as a takeover does.
    store
        .put_opts(&path, payload(), PutOptions::from(PutMode::Overwrite))
        .await?;
    Ok(true)
}

pub(crate) async fn release(store: &dyn ObjectStore, lease: &Lease) -> Result<(), StorageError> {
    let path = obj_path(&lease.key);
    let body = match store.get(&path).await {
        Ok(r) => match r.bytes().await {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        },
        Err(object_store::Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let Ok(record) = serde_json::from_slice::<LeaseRecord>(&body) else {
        return Ok(());
    };
    if record.fence != lease.fence || record.holder != lease.holder {
        return Ok(());
    }
    match store.delete(&path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires_at_unix_ms: u64, ttl_ms: u64) -> LeaseRecord {
        LeaseRecord {
            holder: "h".into(),
            fence: 1,
            expires_at_unix_ms,
            ttl_ms,
        }
    }

    #[test]
    fn expiry_needs_both_clocks_and_the_margin() {
        let margin = SKEW_MARGIN.as_millis() as u64;
        let now = 1_000_000_000;
        // Written by a writer whose clock is 60 s behind: by its own clock
        // the lease expired long ago, but the store saw it written just now.
        let behind = record(now - 60_000 + 30_000, 30_000);
        assert!(!behind.expired(now, now - 1_000));
        // Both deadlines past, but within the margin: still held.
        let fresh = record(now - 10, 30_000);
        assert!(!fresh.expired(now, now - 30_000 - 10));
        assert!(fresh.expired(now + margin, now - 30_000 - 10));
        // An old record without a ttl: the writer's deadline alone.
        assert!(record(now, 0).expired(now, 0));
        assert!(!record(now + 1, 0).expired(now, 0));
        // A ttl shorter than the margin is its own margin.
        let short = record(now - 20, 10);
        assert!(!short.expired(now - 11, now - 30));
        assert!(short.expired(now, now - 30));
    }
}
