//! Storage calls, timed and counted by operation and outcome.

use std::time::Instant;

use bytes::Bytes;
use sparta_storage::{ObjectInfo, PutOutcome, StorageError};
use tracing::{Instrument, warn};

use super::{Kind, Proxy};
use crate::error::ProxyError;

impl Proxy {
    /// Reads a small object from storage, counting the lookup.
    pub(super) async fn stored(
        &self,
        kind: Kind,
        storage_key: &str,
    ) -> Result<Option<Bytes>, ProxyError> {
        let found = self
            .timed_storage("get", self.inner.store.get(storage_key))
            .await?;
        let result = if found.is_some() {
            crate::audit::note_tier(crate::audit::Tier::Storage);
            "hit"
        } else {
            "miss"
        };
        self.inner
            .metrics
            .cache_lookups
            .with_label_values(&["storage", kind.label(), result])
            .inc();
        Ok(found)
    }

    pub(super) async fn timed_head(
        &self,
        storage_key: &str,
    ) -> Result<Option<ObjectInfo>, ProxyError> {
        self.timed_storage("head", self.inner.store.head(storage_key))
            .await
    }

    pub(super) async fn timed_put(
        &self,
        storage_key: &str,
        body: Bytes,
    ) -> Result<PutOutcome, ProxyError> {
        self.timed_storage("put", self.inner.store.put_once(storage_key, body))
            .await
    }

    /// Times one storage operation and counts its outcome.
    pub(super) async fn timed_storage<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, StorageError>>,
    ) -> Result<T, ProxyError>
    where
        T: Found,
    {
        let started = Instant::now();
        let result = call
            .instrument(sparta_trace::tier_span("storage", op))
            .await;
        let outcome = match &result {
            Ok(v) if v.found() => "ok",
            Ok(_) => "not_found",
            Err(_) => "error",
        };
        let m = &self.inner.metrics;
        m.storage_duration
            .with_label_values(&[op, outcome])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            m.storage_errors.with_label_values(&[op]).inc();
            warn!(op, error = %e, "storage operation failed");
        }
        result.map_err(ProxyError::from)
    }
}

/// Whether a storage result found something, for the outcome label.
pub(super) trait Found {
    fn found(&self) -> bool;
}

impl<T> Found for Option<T> {
    fn found(&self) -> bool {
        self.is_some()
    }
}

impl Found for PutOutcome {
    fn found(&self) -> bool {
        true
    }
}

impl Found for () {
    fn found(&self) -> bool {
        true
    }
}
