//! Immutable files: a version's `.info` and `.mod` (its `.zip`: zips.rs).
//! Served from memory or storage; on a miss one fetch per key (singleflight
//! here, a lease across replicas), checked, verified, served, then stored
//! write-once.

use std::sync::Arc;

use bytes::Bytes;

use sparta_core::{FileKind, ModulePath, Version, key};
use sparta_storage::PutOutcome;
use tracing::{info, warn};

use super::checks::{check_gomod, check_info};
use super::{JSON, Kind, Proxy, TEXT};
use crate::cache::CachedFile;
use crate::error::ProxyError;
use crate::flight::Rest;

impl Proxy {
    /// `$module/@v/$version.info` or `.mod` for a canonical version.
    pub async fn small_file(
        &self,
        module: &ModulePath,
        version: &Version,
        file: FileKind,
    ) -> Result<Arc<CachedFile>, ProxyError> {
        let (kind, content_type) = match file {
            FileKind::Info => (Kind::Info, JSON),
            FileKind::Mod => (Kind::Mod, TEXT),
            FileKind::Zip => unreachable!("zips are streamed, never held in memory"),
        };
        let storage_key = key::version_file(module, version, file);
        if let Some(hit) = self.memory_lookup(kind, &storage_key).await {
            return Ok(hit);
        }
        let this = self.clone();
        let (module, version) = (module.clone(), version.clone());
        let flight_key = storage_key.clone();
        // The fetch runs in a task of its own, in this request's scope
        // (Flights carry it): the tier it finds is noted for this request.
        self.shared_then(&self.inner.small_flights, kind, &flight_key, async move {
            this.fetch_small_file(kind, &module, &version, file, storage_key, content_type)
                .await
        })
        .await
    }

    /// The fetch behind [`Proxy::small_file`], and the store still to do
    /// when it answers first.
    async fn fetch_small_file(
        &self,
        kind: Kind,
        module: &ModulePath,
        version: &Version,
        file: FileKind,
        storage_key: String,
        content_type: &'static str,
    ) -> (Result<Arc<CachedFile>, ProxyError>, Option<Rest>) {
        let head = async {
            if self.look_with_lease(kind, &storage_key).await {
                return Ok(None);
            }
            if let Some(body) = self.stored(kind, &storage_key).await? {
                return Ok(Some(body));
            }
            self.note_missing(module, version, file);
            self.before_source(kind, module, version, file, &storage_key)
                .await?;
            Ok(None)
        };
        match head.await {
            Ok(Some(body)) => {
                let entry = self.cache_immutable(storage_key, body, content_type).await;
                return (Ok(entry), None);
            }
            Ok(None) => {}
            Err(e) => return (Err(e), None),
        }
        // Missing: fetched (by this replica, or by another holding the
        // lease) and served before it is stored. The flight stays under way
        // until the store ends, so nobody here fetches it twice; another
        // replica's racing store is absorbed by the write-once put.
        let (fetched, rest) = self
            .coordinated(module, version, file, &storage_key, || async {
                let body = self
                    .small_file_from_source(kind, module, version, file, &storage_key)
                    .await?;
                let rest = self.store_after_answer(
                    module,
                    version,
                    file,
                    storage_key.clone(),
                    body.clone(),
                );
                Ok((body, Some(rest)))
            })
            .await;
        let body = match fetched {
            Ok(Some(body)) => body,
            // Another replica stored it: serve what the store holds.
            Ok(None) => match self.stored(kind, &storage_key).await {
                Ok(Some(body)) => body,
                Ok(None) => {
                    let e = format!("{storage_key} vanished right after it was stored");
                    return (Err(ProxyError::Storage(e)), rest);
                }
                Err(e) => return (Err(e), rest),
            },
            Err(e) => return (Err(e), rest),
        };
        let entry = self.cache_immutable(storage_key, body, content_type).await;
        (Ok(entry), rest)
    }

    /// The store of a file already answered.
    fn store_after_answer(
        &self,
        module: &ModulePath,
        version: &Version,
        file: FileKind,
        storage_key: String,
        body: Bytes,
    ) -> Rest {
        let (this, module, version) = (self.clone(), module.clone(), version.clone());
        Box::pin(async move {
            match this
                .store_small_file(&module, &version, file, &storage_key, body)
                .await
            {
                Ok(true) => {}
                // Another replica stored it first: serve its copy from now on.
                Ok(false) => this.inner.cache.invalidate(&storage_key),
                Err(e) => {
                    warn!(module = %module, version = %version, file = file.ext(), error = %e, "could not store a fetched file: served from memory until evicted, then fetched again");
                }
            }
        })
    }

    /// Refuses a fetch offline, or while a recent miss is remembered.
    async fn before_source(
        &self,
        kind: Kind,
        module: &ModulePath,
        version: &Version,
        file: FileKind,
        storage_key: &str,
    ) -> Result<(), ProxyError> {
        if self.offline() {
            return Err(super::stored::not_stored(&format!(
                "{module}@{version} .{}",
                file.ext()
            )));
        }
        self.check_negative(kind, storage_key).await
    }

    /// The `.info` or `.mod` from the module's source, checked (and a
    /// `.mod` verified against the checksum database).
    async fn small_file_from_source(
        &self,
        kind: Kind,
        module: &ModulePath,
        version: &Version,
        file: FileKind,
        storage_key: &str,
    ) -> Result<Bytes, ProxyError> {
        let picked = self.pick(module).clone();
        let host = picked.source.host(module);
        crate::audit::note_tier(crate::audit::Tier::Upstream);
        let body = self
            .source_call(kind, storage_key, host.as_str(), async {
                match file {
                    FileKind::Mod => picked.source.gomod(module, version).await,
                    _ => picked.source.info(module, version).await,
                }
            })
            .await?;
        match file {
            FileKind::Info => check_info(&body, version)?,
            FileKind::Mod => {
                check_gomod(&body, module, version)?;
                self.verify_mod(picked.private, module, version, &body)
                    .await?;
            }
            FileKind::Zip => unreachable!("zips are streamed, never held in memory"),
        }
        Ok(body)
    }

    /// Stores a fetched `.info` or `.mod` write-once; true if this put
    /// created it (then it is in the catalog too).
    async fn store_small_file(
        &self,
        module: &ModulePath,
        version: &Version,
        file: FileKind,
        storage_key: &str,
        body: Bytes,
    ) -> Result<bool, ProxyError> {
        let len = body.len();
        if self.timed_put(storage_key, body).await? != PutOutcome::Created {
            return Ok(false);
        }
        info!(module = %module, version = %version, file = file.ext(), bytes = len, "stored from upstream");
        self.note_stored(module, version, file, len as u64, None)
            .await;
        Ok(true)
    }
}
