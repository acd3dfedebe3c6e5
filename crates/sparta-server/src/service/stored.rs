//! Answers from the store alone, for `--network offline` (always) and
//! `--network fallback` (when a source fails): list and `@latest` computed
//! from the versions stored for one module, read with one listing of that
//! module's `@v/` objects (never the whole bucket).

use std::sync::Arc;

use bytes::Bytes;
use sparta_core::network::{NetworkMode, StoredVersions};
use sparta_core::{FileKind, ModulePath, key};

use super::{Kind, Proxy};
use crate::cache::CachedFile;
use crate::error::ProxyError;

/// The 404 for what an offline proxy does not hold.
pub(super) fn not_stored(what: &str) -> ProxyError {
    ProxyError::NotFound {
        status: 404,
        reason: format!("{what} is not stored, and --network offline forbids fetching it"),
    }
}

impl Proxy {
    /// The network mode this service runs in.
    pub fn network(&self) -> NetworkMode {
        self.inner.config.network
    }

    /// Whether no source may be contacted.
    pub fn offline(&self) -> bool {
        self.inner.config.network == NetworkMode::Offline
    }

    /// The versions of `module` the store holds.
    pub async fn stored_versions(&self, module: &ModulePath) -> Result<StoredVersions, ProxyError> {
        let prefix = format!("{}/@v/", module.escaped());
        let keys = self
            .timed_storage("list", async {
                self.inner.store.list(&prefix).await.map(Some)
            })
            .await?
            .unwrap_or_default();
        Ok(StoredVersions::from_names(
            keys.iter().filter_map(|k| k.strip_prefix(&prefix)),
        ))
    }

    /// A list or `@latest` answer computed from the store, or None for
    /// other kinds (a version query cannot be resolved without a source).
    pub(super) async fn mutable_from_store(
        &self,
        kind: Kind,
        module: &ModulePath,
    ) -> Result<Option<Bytes>, ProxyError> {
        match kind {
            Kind::List => {
                let stored = self.stored_versions(module).await?;
                if stored.is_empty() {
                    return Ok(None);
                }
                Ok(Some(Bytes::from(stored.list_body())))
            }
            Kind::Latest => {
                let stored = self.stored_versions(module).await?;
                let Some(version) = stored.latest() else {
                    return Ok(None);
                };
                let info_key = key::version_file(module, version, FileKind::Info);
                self.stored(Kind::Info, &info_key).await
            }
            _ => Ok(None),
        }
    }

    /// The offline answer for a mutable request: computed from the store for
    /// list and latest, the persisted answer for a query; else a 404.
    pub(super) async fn mutable_offline(
        &self,
        kind: Kind,
        storage_key: String,
        module: &ModulePath,
        content_type: &'static str,
        what: &str,
    ) -> Result<Arc<CachedFile>, ProxyError> {
        let body = match self.mutable_from_store(kind, module).await? {
            Some(body) => Some(body),
            None if kind == Kind::Query => self.stored(kind, &storage_key).await?,
            None => None,
        };
        match body {
            Some(body) => Ok(self.cache_mutable(storage_key, body, content_type).await),
            None => Err(not_stored(&format!("{module} {what}"))),
        }
    }

    /// Counts an answer given from the store because a source failed.
    pub(super) fn count_fallback(&self, kind: Kind) {
        self.inner
            .metrics
            .network_fallback_answers
            .with_label_values(&[kind.label()])
            .inc();
    }
}
