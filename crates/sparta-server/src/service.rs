//! The proxy service: memory cache -> storage -> upstream, one way.
//!
//! Immutable files are served from memory or storage; on a miss exactly one
//! fetch per key runs (singleflight within the replica, a storage lease
//! across replicas), its result is checked, stored write-once, then served.
//! Mutable answers (list, latest, queries) come fresh from upstream, are
//! cached for a TTL and persisted so the last good answer survives an
//! upstream outage.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::future::Cache;
use prometheus::IntCounter;
use sparta_core::zipcheck::{MAX_GOMOD_SIZE, MAX_ZIP_SIZE};
use sparta_core::{FileKind, ModulePath, Version, key};
use sparta_storage::{ObjectInfo, ObjectStream, PutOutcome, StorageError, Store};
use sparta_sumdb::{Sumdb, SumdbError, Verdict};
use sparta_upstream::Upstream;
use tracing::{info, warn};

use crate::cache::{CachedFile, MemoryCache};
use crate::error::ProxyError;
use crate::flight::Flights;
use crate::metrics::Metrics;

/// Largest list, latest or `.info` answer accepted from upstream.
const MAX_SMALL_SIZE: u64 = 16 << 20;

/// Content types as the go command's reference proxy sends them.
pub const TEXT: &str = "text/plain; charset=utf-8";
pub const JSON: &str = "application/json";
pub const ZIP: &str = "application/zip";

/// How replicas coordinate fetches of the same object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coordination {
    /// A lease object per file in the shared store, held for `ttl`.
    Lease { ttl: Duration },
    /// Per-replica singleflight only (the store lacks conditional puts).
    Local,
}

/// Service settings.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub cache_size: u64,
    pub list_ttl: Duration,
    pub negative_ttl: Duration,
    pub spool_dir: PathBuf,
    pub coordination: Coordination,
    /// Identifies this replica in leases.
    pub holder: String,
}

/// What a metric calls each kind of answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Info,
    Mod,
    Zip,
    List,
    Latest,
    Query,
}

impl Kind {
    /// Every kind, in declaration order.
    const ALL: [Kind; 6] = [
        Kind::Info,
        Kind::Mod,
        Kind::Zip,
        Kind::List,
        Kind::Latest,
        Kind::Query,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::Info => "info",
            Kind::Mod => "mod",
            Kind::Zip => "zip",
            Kind::List => "list",
            Kind::Latest => "latest",
            Kind::Query => "query",
        }
    }
}

/// The proxy service; cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    upstream: Upstream,
    sumdb: Sumdb,
    cache: MemoryCache,
    negative: Cache<String, ProxyError>,
    small_flights: Arc<Flights<Arc<CachedFile>>>,
    zip_flights: Arc<Flights<()>>,
    metrics: Metrics,
    /// `sparta_cache_lookups_total{tier="memory",result="hit"}` per kind,
    /// resolved once for the hot path.
    memory_hits: [IntCounter; 6],
    config: ServiceConfig,
}

impl Proxy {
    /// Builds the service.
    pub fn new(
        store: Store,
        upstream: Upstream,
        sumdb: Sumdb,
        metrics: Metrics,
        config: ServiceConfig,
    ) -> Self {
        let negative = Cache::builder()
            .max_capacity(100_000)
            .time_to_live(config.negative_ttl.max(Duration::from_millis(1)))
            .build();
        let mode = match config.coordination {
            Coordination::Lease { .. } => "lease",
            Coordination::Local => "local",
        };
        metrics.lease_mode.with_label_values(&[mode]).set(1);
        Proxy {
            inner: Arc::new(Inner {
                cache: MemoryCache::new(config.cache_size, &metrics),
                store,
                upstream,
                sumdb,
                negative,
                small_flights: Arc::default(),
                zip_flights: Arc::default(),
                memory_hits: Kind::ALL.map(|kind| {
                    metrics
                        .cache_lookups
                        .with_label_values(&["memory", kind.label(), "hit"])
                }),
                metrics,
                config,
            }),
        }
    }

    /// The store, for readiness checks.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The checksum database service, for the `/sumdb/` relay.
    pub fn sumdb(&self) -> &Sumdb {
        &self.inner.sumdb
    }

    /// The memory cache, for metrics.
    pub fn cache(&self) -> &MemoryCache {
        &self.inner.cache
    }

    /// `$module/@v/list`.
    pub async fn list(&self, module: &ModulePath) -> Result<Arc<CachedFile>, ProxyError> {
        let upstream_path = format!("{}/@v/list", module.escaped());
        self.mutable(Kind::List, key::list(module), upstream_path, TEXT)
            .await
    }

    /// `$module/@latest`.
    pub async fn latest(&self, module: &ModulePath) -> Result<Arc<CachedFile>, ProxyError> {
        let upstream_path = format!("{}/@latest", module.escaped());
        self.mutable(Kind::Latest, key::latest(module), upstream_path, JSON)
            .await
    }

    /// `$module/@v/$query.info` for a non-canonical version.
    pub async fn query(
        &self,
        module: &ModulePath,
        escaped_query: &str,
    ) -> Result<Arc<CachedFile>, ProxyError> {
        let upstream_path = format!("{}/@v/{escaped_query}.info", module.escaped());
        self.mutable(
            Kind::Query,
            key::query(module, escaped_query),
            upstream_path,
            JSON,
        )
        .await
    }

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
        self.shared(&self.inner.small_flights, kind, &flight_key, async move {
            this.fetch_small_file(kind, &module, &version, file, storage_key, content_type)
                .await
        })
        .await
    }

    async fn fetch_small_file(
        &self,
        kind: Kind,
        module: &ModulePath,
        version: &Version,
        file: FileKind,
        storage_key: String,
        content_type: &'static str,
    ) -> Result<Arc<CachedFile>, ProxyError> {
        if let Some(body) = self.stored(kind, &storage_key).await? {
            return Ok(self.cache_immutable(storage_key, body, content_type).await);
        }
        self.check_negative(kind, &storage_key).await?;
        let upstream_path = format!(
            "{}/@v/{}.{}",
            module.escaped(),
            version.escaped(),
            file.ext()
        );
        let key_ref = storage_key.as_str();
        let fetched = self.coordinated(module, version, file, key_ref, move || async move {
                let storage_key = key_ref;
                let limit = if file == FileKind::Mod {
                    MAX_GOMOD_SIZE
                } else {
                    MAX_SMALL_SIZE
                };
                let body = self
                    .fetch_upstream_bytes(kind, storage_key, &upstream_path, limit)
                    .await?;
                match file {
                    FileKind::Info => check_info(&body, version)?,
                    FileKind::Mod => {
                        check_gomod(&body, module, version)?;
                        let verdict = self.inner.sumdb.verify_mod(module, version, &body).await;
                        self.record_verification(module, version, "mod", verdict)?;
                    }
                    FileKind::Zip => unreachable!(),
                }
                let outcome = self.timed_put(storage_key, body.clone()).await?;
                if outcome == PutOutcome::Created {
                    info!(module = %module, version = %version, file = file.ext(), bytes = body.len(), "stored from upstream");
                    return Ok(Some(body));
                }
                Ok(None)
            })
            .await?;
        let body = match fetched.flatten() {
            Some(body) => body,
            // Whoever stored it first wins: serve what the store holds.
            None => self.stored(kind, &storage_key).await?.ok_or_else(|| {
                ProxyError::Storage(format!("{storage_key} vanished right after it was stored"))
            })?,
        };
        Ok(self.cache_immutable(storage_key, body, content_type).await)
    }

    /// `$module/@v/$version.zip`, optionally a byte range of it.
    pub async fn zip(
        &self,
        module: &ModulePath,
        version: &Version,
        range: Option<RangeRequest>,
    ) -> Result<ObjectStream, ProxyError> {
        let storage_key = key::version_file(module, version, FileKind::Zip);
        if let Some(body) = self.open_zip(&storage_key, range).await? {
            self.inner
                .metrics
                .cache_lookups
                .with_label_values(&["storage", "zip", "hit"])
                .inc();
            return Ok(body);
        }
        self.inner
            .metrics
            .cache_lookups
            .with_label_values(&["storage", "zip", "miss"])
            .inc();
        let this = self.clone();
        let (m, v) = (module.clone(), version.clone());
        let k = storage_key.clone();
        self.shared(
            &self.inner.zip_flights,
            Kind::Zip,
            &storage_key,
            async move { this.fetch_zip(&m, &v, &k).await },
        )
        .await?;
        self.open_zip(&storage_key, range).await?.ok_or_else(|| {
            ProxyError::Storage(format!("{storage_key} vanished right after it was stored"))
        })
    }

    async fn fetch_zip(
        &self,
        module: &ModulePath,
        version: &Version,
        storage_key: &str,
    ) -> Result<(), ProxyError> {
        if self.timed_head(storage_key).await?.is_some() {
            return Ok(());
        }
        self.check_negative(Kind::Zip, storage_key).await?;
        let upstream_path = format!("{}/@v/{}.zip", module.escaped(), version.escaped());
        self.coordinated(module, version, FileKind::Zip, storage_key, move || async move {
            let spool = tempfile::Builder::new()
                .prefix("sparta-zip-")
                .tempfile_in(&self.inner.config.spool_dir)
                .map_err(|e| ProxyError::Storage(format!("cannot create spool file: {e}")))?;
            let mut file = tokio::fs::File::from_std(
                spool
                    .reopen()
                    .map_err(|e| ProxyError::Storage(format!("cannot open spool file: {e}")))?,
            );
            let size = self
                .upstream_call(Kind::Zip, storage_key, async {
                    self.inner
                        .upstream
                        .fetch_to_file(&upstream_path, &mut file, MAX_ZIP_SIZE)
                        .await
                })
                .await?;
            drop(file);
            let reader = spool
                .reopen()
                .map_err(|e| ProxyError::Storage(format!("cannot reopen spool file: {e}")))?;
            let (m, v) = (module.clone(), version.clone());
            let summary = tokio::task::spawn_blocking(move || {
                sparta_core::zipcheck::check_zip(std::io::BufReader::new(reader), &m, &v)
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
                ProxyError::Upstream(format!("upstream sent a bad zip for {module}@{version}: {e}"))
            })?;
            let verdict = self.inner.sumdb.verify_zip(module, version, &summary.h1).await;
            self.record_verification(module, version, "zip", verdict)?;
            let started = Instant::now();
            let outcome = self
                .timed_storage("put", self.inner.store.put_once_file(storage_key, spool.path()))
                .await?;
            if outcome == PutOutcome::Created {
                info!(module = %module, version = %version, bytes = size, files = summary.files, h1 = %summary.h1,
                    upload_ms = started.elapsed().as_millis() as u64, "stored zip from upstream");
            }
            Ok(())
        })
        .await?;
        // Stored by this fetch or by another replica: either way it is there.
        Ok(())
    }

    async fn open_zip(
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
        Ok(stream)
    }

    /// Runs `fetch` once across replicas when leases are in use: the lease
    /// holder fetches, the others wait for the object to appear in storage.
    /// `None` means another replica stored it and `fetch` did not run.
    /// Correctness never depends on the lease, since objects are write-once.
    async fn coordinated<T, F, Fut>(
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

    /// The mutable-answer path shared by list, latest and queries.
    async fn mutable(
        &self,
        kind: Kind,
        storage_key: String,
        upstream_path: String,
        content_type: &'static str,
    ) -> Result<Arc<CachedFile>, ProxyError> {
        if let Some(hit) = self.memory_lookup(kind, &storage_key).await {
            return Ok(hit);
        }
        self.check_negative(kind, &storage_key).await?;
        let this = self.clone();
        let flight_key = storage_key.clone();
        self.shared(&self.inner.small_flights, kind, &flight_key, async move {
            this.refresh_mutable(kind, storage_key, upstream_path, content_type)
                .await
        })
        .await
    }

    /// A memory hit for `storage_key`, counted; a miss is not counted here
    /// because the full path that follows counts it.
    pub async fn memory_hit(&self, kind: Kind, storage_key: &str) -> Option<Arc<CachedFile>> {
        let hit = self.inner.cache.get(storage_key).await?;
        self.inner.memory_hits[kind as usize].inc();
        Some(hit)
    }

    /// The memory tier: a hit or a miss, counted.
    async fn memory_lookup(&self, kind: Kind, storage_key: &str) -> Option<Arc<CachedFile>> {
        let hit = self.inner.cache.get(storage_key).await;
        let result = if hit.is_some() { "hit" } else { "miss" };
        self.inner
            .metrics
            .cache_lookups
            .with_label_values(&["memory", kind.label(), result])
            .inc();
        hit
    }

    /// Runs `work` once per key at a time, counting the callers that joined
    /// work already under way.
    async fn shared<V: Clone + Send + Sync + 'static>(
        &self,
        flights: &Arc<Flights<V>>,
        kind: Kind,
        key: &str,
        work: impl std::future::Future<Output = Result<V, ProxyError>> + Send + 'static,
    ) -> Result<V, ProxyError> {
        let (result, joined) = flights.run(key, work).await;
        if joined {
            self.inner
                .metrics
                .singleflight_saved
                .with_label_values(&[kind.label()])
                .inc();
        }
        result
    }

    async fn refresh_mutable(
        &self,
        kind: Kind,
        storage_key: String,
        upstream_path: String,
        content_type: &'static str,
    ) -> Result<Arc<CachedFile>, ProxyError> {
        let fetched = self
            .fetch_upstream_bytes(kind, &storage_key, &upstream_path, MAX_SMALL_SIZE)
            .await
            .and_then(|body| {
                check_mutable(kind, &body)?;
                Ok(body)
            });
        match fetched {
            Ok(body) => {
                // Persisting is for stale-if-error only; a failure here must
                // not fail the request.
                if let Err(e) = self
                    .timed_storage(
                        "put",
                        self.inner.store.put_overwrite(&storage_key, body.clone()),
                    )
                    .await
                {
                    warn!(key = %storage_key, error = %e, "could not persist answer");
                }
                Ok(self.cache_mutable(storage_key, body, content_type).await)
            }
            Err(e @ ProxyError::NotFound { .. }) => Err(e),
            Err(e) => match self.stored(kind, &storage_key).await {
                Ok(Some(body)) if check_mutable(kind, &body).is_ok() => {
                    warn!(key = %storage_key, error = %e, "upstream failed, serving the last good answer");
                    Ok(self.cache_mutable(storage_key, body, content_type).await)
                }
                _ => Err(e),
            },
        }
    }

    /// Counts a checksum verification; any failure refuses the file with a
    /// 502 (never a 404, so the go command does not try another proxy).
    fn record_verification(
        &self,
        module: &ModulePath,
        version: &Version,
        file: &'static str,
        verdict: Result<Verdict, SumdbError>,
    ) -> Result<(), ProxyError> {
        let outcome = match &verdict {
            Ok(Verdict::Verified) => "ok",
            Ok(Verdict::Skipped) => "skipped",
            Err(SumdbError::Mismatch { .. }) => "mismatch",
            Err(_) => "error",
        };
        self.inner
            .metrics
            .sumdb_verifications
            .with_label_values(&[outcome])
            .inc();
        match verdict {
            Ok(_) => Ok(()),
            Err(e) => {
                warn!(module = %module, version = %version, file, error = %e, "refused: checksum database check failed");
                Err(ProxyError::Upstream(format!(
                    "refusing {module}@{version} .{file}: {e}"
                )))
            }
        }
    }

    /// Caches an immutable file read from storage and returns it.
    async fn cache_immutable(
        &self,
        storage_key: String,
        body: Bytes,
        content_type: &'static str,
    ) -> Arc<CachedFile> {
        let entry = CachedFile::immutable(&storage_key, body, content_type);
        self.inner
            .cache
            .insert(storage_key, Arc::clone(&entry))
            .await;
        entry
    }

    /// Caches a mutable answer for the list TTL and returns it.
    async fn cache_mutable(
        &self,
        storage_key: String,
        body: Bytes,
        content_type: &'static str,
    ) -> Arc<CachedFile> {
        let entry = CachedFile::mutable(body, content_type, self.inner.config.list_ttl);
        self.inner
            .cache
            .insert(storage_key, Arc::clone(&entry))
            .await;
        entry
    }

    async fn check_negative(&self, kind: Kind, storage_key: &str) -> Result<(), ProxyError> {
        if let Some(err) = self.inner.negative.get(storage_key).await {
            self.inner
                .metrics
                .negative_cache_hits
                .with_label_values(&[kind.label()])
                .inc();
            return Err(err);
        }
        Ok(())
    }

    /// Reads a small object from storage, counting the lookup.
    async fn stored(&self, kind: Kind, storage_key: &str) -> Result<Option<Bytes>, ProxyError> {
        let found = self
            .timed_storage("get", self.inner.store.get(storage_key))
            .await?;
        let result = if found.is_some() { "hit" } else { "miss" };
        self.inner
            .metrics
            .cache_lookups
            .with_label_values(&["storage", kind.label(), result])
            .inc();
        Ok(found)
    }

    async fn fetch_upstream_bytes(
        &self,
        kind: Kind,
        storage_key: &str,
        upstream_path: &str,
        limit: u64,
    ) -> Result<Bytes, ProxyError> {
        self.upstream_call(kind, storage_key, async {
            self.inner.upstream.fetch_bytes(upstream_path, limit).await
        })
        .await
    }

    /// Wraps one upstream fetch with metrics and the negative cache.
    async fn upstream_call<T>(
        &self,
        kind: Kind,
        storage_key: &str,
        call: impl std::future::Future<Output = Result<T, sparta_upstream::UpstreamError>>,
    ) -> Result<T, ProxyError> {
        let m = &self.inner.metrics;
        m.upstream_in_flight.inc();
        let started = Instant::now();
        let result = call.await;
        m.upstream_in_flight.dec();
        m.upstream_duration
            .with_label_values(&[kind.label()])
            .observe(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(_) => "ok",
            Err(sparta_upstream::UpstreamError::NotFound { .. }) => "not_found",
            Err(sparta_upstream::UpstreamError::Timeout(_)) => "timeout",
            Err(sparta_upstream::UpstreamError::Failed(_)) => "error",
        };
        m.upstream_fetches
            .with_label_values(&[kind.label(), outcome])
            .inc();
        m.cache_lookups
            .with_label_values(&[
                "upstream",
                kind.label(),
                if result.is_ok() { "hit" } else { "miss" },
            ])
            .inc();
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                let err = ProxyError::from(e);
                if matches!(err, ProxyError::NotFound { .. }) {
                    self.inner
                        .negative
                        .insert(storage_key.to_owned(), err.clone())
                        .await;
                } else {
                    warn!(key = %storage_key, error = %err, "upstream fetch failed");
                }
                Err(err)
            }
        }
    }

    async fn timed_head(&self, storage_key: &str) -> Result<Option<ObjectInfo>, ProxyError> {
        self.timed_storage("head", self.inner.store.head(storage_key))
            .await
    }

    async fn timed_put(&self, storage_key: &str, body: Bytes) -> Result<PutOutcome, ProxyError> {
        self.timed_storage("put", self.inner.store.put_once(storage_key, body))
            .await
    }

    /// Times one storage operation and counts its outcome.
    async fn timed_storage<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, StorageError>>,
    ) -> Result<T, ProxyError>
    where
        T: Found,
    {
        let started = Instant::now();
        let result = call.await;
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
trait Found {
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

/// A byte range as the client asked for it (one range only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// `bytes=start-` or `bytes=start-end` (end inclusive).
    From { start: u64, end: Option<u64> },
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl RangeRequest {
    /// Parses a `Range` header; `None` for anything but one byte range, in
    /// which case the whole file is served (allowed by RFC 9110).
    pub fn parse(header: &str) -> Option<Self> {
        let spec = header.trim().strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (start, end) = spec.split_once('-')?;
        let (start, end) = (start.trim(), end.trim());
        if start.is_empty() {
            return end.parse().ok().map(RangeRequest::Suffix);
        }
        let start = start.parse().ok()?;
        let end = if end.is_empty() {
            None
        } else {
            let end: u64 = end.parse().ok()?;
            if end < start {
                return None;
            }
            Some(end)
        };
        Some(RangeRequest::From { start, end })
    }

    /// The half-open byte range within a file of `size` bytes.
    pub fn resolve(self, size: u64) -> Result<Range<u64>, ProxyError> {
        match self {
            RangeRequest::From { start, end } if start < size => {
                let end = end.map_or(size, |e| (e + 1).min(size));
                Ok(start..end)
            }
            RangeRequest::Suffix(n) if n > 0 && size > 0 => Ok(size.saturating_sub(n)..size),
            _ => Err(ProxyError::RangeNotSatisfiable { size }),
        }
    }
}

/// An upstream `.info` for a canonical version must be JSON naming that version.
fn check_info(body: &[u8], version: &Version) -> Result<(), ProxyError> {
    let info: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ProxyError::Upstream(format!("upstream .info is not JSON: {e}")))?;
    match info.get("Version").and_then(|v| v.as_str()) {
        Some(v) if v == version.as_str() => Ok(()),
        Some(v) => Err(ProxyError::Upstream(format!(
            "upstream .info names version {v}, not {version}"
        ))),
        None => Err(ProxyError::Upstream(
            "upstream .info has no Version".to_owned(),
        )),
    }
}

/// An upstream go.mod must be UTF-8 text with a module directive. The path
/// it names may differ from the request (renamed modules), and the go command
/// reports that itself, so only corruption is refused here.
fn check_gomod(body: &[u8], module: &ModulePath, version: &Version) -> Result<(), ProxyError> {
    let text = std::str::from_utf8(body).map_err(|_| {
        ProxyError::Upstream(format!(
            "upstream go.mod for {module}@{version} is not UTF-8"
        ))
    })?;
    match sparta_core::gomod::module_directive(text) {
        Some(_) => Ok(()),
        None => Err(ProxyError::Upstream(format!(
            "upstream go.mod for {module}@{version} has no module directive"
        ))),
    }
}

fn check_mutable(kind: Kind, body: &[u8]) -> Result<(), ProxyError> {
    match kind {
        // Only canonical versions, one per line: anything else is an
        // upstream failing (an error page, a redirect target's answer).
        Kind::List => sparta_upstream::answers::check_list(body).map_err(ProxyError::from),
        _ => {
            let value: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| ProxyError::Upstream(format!("upstream answer is not JSON: {e}")))?;
            match value.get("Version").and_then(|v| v.as_str()) {
                Some(v) if Version::parse(v).is_ok() => Ok(()),
                _ => Err(ProxyError::Upstream(
                    "upstream answer names no canonical Version".to_owned(),
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_listed_in_declaration_order() {
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i, "{kind:?}");
        }
    }

    #[test]
    fn ranges_parse_and_resolve() {
        let r = RangeRequest::parse("bytes=0-99").unwrap();
        assert_eq!(r.resolve(1000).unwrap(), 0..100);
        assert_eq!(
            RangeRequest::parse("bytes=990-")
                .unwrap()
                .resolve(1000)
                .unwrap(),
            990..1000
        );
        assert_eq!(
            RangeRequest::parse("bytes=-10")
                .unwrap()
                .resolve(1000)
                .unwrap(),
            990..1000
        );
        assert_eq!(
            RangeRequest::parse("bytes=0-5000")
                .unwrap()
                .resolve(1000)
                .unwrap(),
            0..1000
        );
        assert!(
            RangeRequest::parse("bytes=1000-")
                .unwrap()
                .resolve(1000)
                .is_err()
        );
        assert!(RangeRequest::parse("bytes=5-1").is_none());
        assert!(RangeRequest::parse("bytes=0-1,5-6").is_none());
        assert!(RangeRequest::parse("items=0-1").is_none());
        assert!(
            RangeRequest::parse("bytes=-0")
                .unwrap()
                .resolve(10)
                .is_err()
        );
    }
}
