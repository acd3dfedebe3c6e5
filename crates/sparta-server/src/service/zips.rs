//! A version's `.zip`: served from the disk tier or storage; on a miss one
//! fetch per key (singleflight here, a lease across replicas) into a spool
//! file, checked and verified, answered from there while it is stored.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use sparta_core::zipcheck::{MAX_ZIP_SIZE, ZipSummary};
use sparta_core::{CoreError, FileKind, ModulePath, Version, key};
use sparta_storage::{ObjectInfo, ObjectStream, PutOutcome};
use tracing::{info, warn};

use super::{Kind, Proxy, RangeRequest};
use crate::error::ProxyError;
use crate::flight::Rest;
use crate::limits::{SPOOL, SpoolSlot};

impl Proxy {
    /// `$module/@v/$version.zip`, optionally a byte range of it.
    pub async fn zip(
        &self,
        module: &ModulePath,
        version: &Version,
        range: Option<RangeRequest>,
    ) -> Result<ObjectStream, ProxyError> {
        let storage_key = key::version_file(module, version, FileKind::Zip);
        if let Some(body) = self.tier_zip(&storage_key, range).await? {
            return Ok(body);
        }
        let looked = Instant::now();
        if !self.look_with_lease(Kind::Zip, &storage_key).await {
            if let Some(body) = self.open_zip(&storage_key, range).await? {
                self.count_storage_zip(true);
                return Ok(body);
            }
            self.count_storage_zip(false);
            self.note_missing(module, version, FileKind::Zip);
        }
        if let Some(fetched) = self
            .fetch_zip_shared(module, version, &storage_key, looked)
            .await?
        {
            return fetched.stream(range);
        }
        if let Some(body) = self.tier_zip(&storage_key, range).await? {
            return Ok(body);
        }
        self.open_zip(&storage_key, range).await?.ok_or_else(|| {
            ProxyError::Storage(format!("{storage_key} vanished right after it was stored"))
        })
    }

    /// Counts a zip looked up in storage; a hit is also the audit line's tier.
    fn count_storage_zip(&self, hit: bool) {
        if hit {
            crate::audit::note_tier(crate::audit::Tier::Storage);
        }
        self.inner
            .metrics
            .cache_lookups
            .with_label_values(&["storage", "zip", if hit { "hit" } else { "miss" }])
            .inc();
    }

    /// A zip's size from a head call on storage, fetched first on a miss:
    /// HEAD and 304 answers need no body, so no GET is opened for them.
    pub async fn zip_info(
        &self,
        module: &ModulePath,
        version: &Version,
    ) -> Result<ObjectInfo, ProxyError> {
        let storage_key = key::version_file(module, version, FileKind::Zip);
        match self
            .zip_head_or_fetch(module, version, &storage_key)
            .await?
        {
            ZipLookup::Stored(info) => Ok(info),
            ZipLookup::Fetched(Some(fetched)) => Ok(fetched.info()),
            ZipLookup::Fetched(None) => self.timed_head(&storage_key).await?.ok_or_else(|| {
                ProxyError::Storage(format!("{storage_key} vanished right after it was stored"))
            }),
        }
    }

    /// A zip's head call on storage, or on a miss its fetch.
    pub(super) async fn zip_head_or_fetch(
        &self,
        module: &ModulePath,
        version: &Version,
        storage_key: &str,
    ) -> Result<ZipLookup, ProxyError> {
        let looked = Instant::now();
        if !self.look_with_lease(Kind::Zip, storage_key).await {
            if let Some(info) = self.timed_head(storage_key).await? {
                self.count_storage_zip(true);
                return Ok(ZipLookup::Stored(info));
            }
            self.count_storage_zip(false);
            self.note_missing(module, version, FileKind::Zip);
        }
        let fetched = self
            .fetch_zip_shared(module, version, storage_key, looked)
            .await?;
        Ok(ZipLookup::Fetched(fetched))
    }

    /// The one fetch of a missing zip that every waiter shares: the zip in
    /// its spool file when this fetch got it (its store may still be under
    /// way), `None` when it was stored already (by an earlier fetch or
    /// another replica). `looked`: when
    /// the storage lookup that missed began.
    async fn fetch_zip_shared(
        &self,
        module: &ModulePath,
        version: &Version,
        storage_key: &str,
        looked: Instant,
    ) -> Result<Option<Arc<FetchedZip>>, ProxyError> {
        crate::audit::note_tier(crate::audit::Tier::Upstream);
        let this = self.clone();
        let (m, v) = (module.clone(), version.clone());
        let k = storage_key.to_owned();
        self.shared_then(
            &self.inner.zip_flights,
            Kind::Zip,
            storage_key,
            async move { this.fetch_zip(&m, &v, &k, looked).await },
        )
        .await
    }

    /// Fetches, checks and verifies a missing zip into a spool file, which
    /// answers at once; it is stored in the rest (with leases, under the
    /// lease), and the spool file stays until both are done.
    async fn fetch_zip(
        &self,
        module: &ModulePath,
        version: &Version,
        storage_key: &str,
        looked: Instant,
    ) -> (Result<Option<Arc<FetchedZip>>, ProxyError>, Option<Rest>) {
        match self
            .before_zip_fetch(module, version, storage_key, looked)
            .await
        {
            Ok(true) => {}
            Ok(false) => return (Ok(None), None),
            Err(e) => return (Err(e), None),
        }
        // `None`: another replica stored it, read it from there.
        self.coordinated(module, version, FileKind::Zip, storage_key, || async {
            let (zip, summary) = self.zip_from_source(module, version, storage_key).await?;
            let rest =
                self.store_fetched_zip(module, version, storage_key, Arc::clone(&zip), summary);
            Ok((zip, Some(rest)))
        })
        .await
    }

    /// Whether a zip that missed in storage is to be fetched: not when a
    /// fetch here stored it since the lookup began (another replica's
    /// racing store is absorbed by the write-once put; with leases, the
    /// lease holder asks storage itself), never offline or while a recent
    /// miss is remembered.
    async fn before_zip_fetch(
        &self,
        module: &ModulePath,
        version: &Version,
        storage_key: &str,
        looked: Instant,
    ) -> Result<bool, ProxyError> {
        if !self.leases_on()
            && self.inner.zip_flights.ended_since(storage_key, looked)
            && self.timed_head(storage_key).await?.is_some()
        {
            return Ok(false);
        }
        if self.offline() {
            return Err(super::stored::not_stored(&format!(
                "{module}@{version} .zip"
            )));
        }
        self.check_negative(Kind::Zip, storage_key).await?;
        Ok(true)
    }

    /// The zip from the module's source in a spool file, checked and
    /// verified.
    async fn zip_from_source(
        &self,
        module: &ModulePath,
        version: &Version,
        storage_key: &str,
    ) -> Result<(Arc<FetchedZip>, ZipSummary), ProxyError> {
        let picked = self.pick(module).clone();
        let spool = tempfile::Builder::new()
            .prefix("sparta-zip-")
            .tempfile_in(&self.inner.config.spool_dir)
            .map_err(|e| ProxyError::Storage(format!("cannot create spool file: {e}")))?;
        // The spool slot lives until the zip is stored and served: its
        // bytes stay reserved while the spool file exists.
        let slot = SpoolSlot::new(self.inner.limits.clone());
        let host = picked.source.host(module);
        let size = SPOOL
            .scope(
                Arc::clone(&slot),
                self.source_call(Kind::Zip, storage_key, &host, async {
                    picked
                        .source
                        .zip_to_file(module, version, spool.path())
                        .await
                }),
            )
            .await?;
        if size > MAX_ZIP_SIZE {
            return Err(ProxyError::Upstream(format!(
                "{module}@{version}: zip is over the {MAX_ZIP_SIZE}-byte limit"
            )));
        }
        let reader = spool
            .reopen()
            .map_err(|e| ProxyError::Storage(format!("cannot reopen spool file: {e}")))?;
        let (m, v) = (module.clone(), version.clone());
        let summary = tokio::task::spawn_blocking(move || {
            let reader = super::pread::PositionedFile::new(reader)
                .map_err(|e| CoreError::InvalidZip(format!("reading zip: {e}")))?;
            sparta_core::zipcheck::check_zip_parallel(reader, &m, &v)
        })
        .await
        .map_err(|e| ProxyError::Upstream(format!("zip check failed to run: {e}")))?
        .map_err(|e| {
            self.inner
                .metrics
                .upstream_fetches
                .with_label_values(&["zip", "invalid"])
                .inc();
            warn!(module = %module, version = %version, error = %e, "refused zip from upstream");
            ProxyError::Upstream(format!(
                "upstream sent a bad zip for {module}@{version}: {e}"
            ))
        })?;
        self.verify_zip(picked.private, module, version, &summary.h1)
            .await?;
        let zip = FetchedZip {
            spool,
            size,
            stored: tokio::sync::watch::Sender::new(None),
            _slot: slot,
        };
        Ok((Arc::new(zip), summary))
    }

    /// The write-once store of a zip already answered from its spool file.
    fn store_fetched_zip(
        &self,
        module: &ModulePath,
        version: &Version,
        storage_key: &str,
        zip: Arc<FetchedZip>,
        summary: ZipSummary,
    ) -> Rest {
        let (this, module, version) = (self.clone(), module.clone(), version.clone());
        let storage_key = storage_key.to_owned();
        Box::pin(async move {
            let started = Instant::now();
            let put = this
                .inner
                .store
                .put_once_file(&storage_key, zip.spool.path());
            let outcome = this.timed_storage("put", put).await;
            zip.stored.send_replace(Some(outcome.is_ok()));
            match outcome {
                Ok(PutOutcome::Created) => {
                    info!(module = %module, version = %version, bytes = zip.size, files = summary.files, h1 = %summary.h1,
                        upload_ms = started.elapsed().as_millis() as u64, "stored zip from upstream");
                    this.note_stored(
                        &module,
                        &version,
                        FileKind::Zip,
                        zip.size,
                        Some(&summary.h1),
                    )
                    .await;
                    // Only bytes this fetch stored: storage is the truth.
                    if let Some(tier) = &this.inner.config.disk_tier {
                        tier.fill_from_file(&storage_key, zip.spool.path()).await;
                    }
                }
                // Another replica stored it first; ours was served once.
                Ok(_) => {}
                Err(e) => {
                    warn!(module = %module, version = %version, error = %e, "could not store a fetched zip: it was served, the next request fetches it again");
                }
            }
        })
    }

    pub(super) async fn open_zip(
        &self,
        storage_key: &str,
        range: Option<RangeRequest>,
    ) -> Result<Option<ObjectStream>, ProxyError> {
        let byte_range = match range {
            None => None,
            Some(range) => {
                let Some(info) = self.timed_head(storage_key).await? else {
                    return Ok(None);
                };
                Some(range.resolve(info.size)?)
            }
        };
        let stream = self
            .timed_storage("get", self.inner.store.get_stream(storage_key, byte_range))
            .await?;
        Ok(match (&self.inner.config.disk_tier, stream) {
            (Some(tier), Some(stream)) => Some(tier.tee(storage_key, stream)),
            (_, stream) => stream,
        })
    }

    /// The disk tier's checked copy of a zip, counted; `None` without a
    /// tier or on a miss.
    async fn tier_zip(
        &self,
        storage_key: &str,
        range: Option<RangeRequest>,
    ) -> Result<Option<ObjectStream>, ProxyError> {
        let Some(tier) = &self.inner.config.disk_tier else {
            return Ok(None);
        };
        let found = tier.open_file(storage_key).await;
        self.inner
            .metrics
            .cache_lookups
            .with_label_values(&["disk", "zip", if found.is_some() { "hit" } else { "miss" }])
            .inc();
        let Some(file) = found else {
            return Ok(None);
        };
        crate::audit::note_tier(crate::audit::Tier::Disk);
        let byte_range = match range {
            None => 0..file.size,
            Some(range) => range.resolve(file.size)?,
        };
        Ok(Some(super::disk_tier::stream_file(file, byte_range)))
    }
}

/// A zip in storage, or the outcome of its fetch; see
/// [`Proxy::zip_head_or_fetch`].
pub(super) enum ZipLookup {
    Stored(ObjectInfo),
    Fetched(Option<Arc<FetchedZip>>),
}

/// A zip this replica has just fetched, checked and verified, in its spool
/// file. The requests that waited for the fetch read it from there, while
/// it is stored and after: no wait for the store, one storage GET less, and
/// on object storage a round trip and the whole body less. Its spool bytes
/// stay reserved (the slot) until the store and the last of those
/// responses are done with it.
pub(super) struct FetchedZip {
    spool: tempfile::NamedTempFile,
    size: u64,
    /// Whether its store succeeded, once it is done.
    stored: tokio::sync::watch::Sender<Option<bool>>,
    _slot: Arc<SpoolSlot>,
}

impl FetchedZip {
    pub(super) fn size(&self) -> u64 {
        self.size
    }

    /// Waits for the zip's store: whether it is in storage now.
    pub(super) async fn wait_stored(&self) -> bool {
        let mut stored = self.stored.subscribe();
        let done = stored.wait_for(Option::is_some).await;
        done.is_ok_and(|outcome| *outcome == Some(true))
    }

    fn info(&self) -> ObjectInfo {
        ObjectInfo {
            size: self.size,
            etag: None,
        }
    }

    /// The zip, or `range` of it, read from the spool file; the stream
    /// keeps the spool file (and its reservation) for as long as it lives.
    fn stream(self: Arc<Self>, range: Option<RangeRequest>) -> Result<ObjectStream, ProxyError> {
        let range = match range {
            None => 0..self.size,
            Some(range) => range.resolve(self.size)?,
        };
        let file = std::fs::File::open(self.spool.path())
            .map_err(|e| ProxyError::Storage(format!("cannot reopen spool file: {e}")))?;
        let keep = Arc::clone(&self);
        let body = sparta_storage::file_stream(file, range.clone())
            .map(move |chunk| {
                let _spool = &keep;
                chunk
            })
            .boxed();
        Ok(ObjectStream {
            info: self.info(),
            range,
            body,
        })
    }
}
