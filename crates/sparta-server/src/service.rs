//! The proxy service: memory cache -> storage -> source, one way.
//!
//! Immutable files are served from memory or storage; on a miss exactly one
//! fetch per key runs (singleflight within the replica, a storage lease
//! across replicas), its result is checked, stored write-once, then served.
//! Mutable answers (list, latest, queries) come fresh from the source, are
//! cached for a TTL and persisted so the last good answer survives an
//! outage of the source.
//!
//! Every module's files come from the [`crate::source::Source`] its route picks; the
//! layers here are the same for every source. By responsibility:
//! `immutable` (versions' `.info`, `.mod`, `.zip`), `mutable` (list, latest,
//! queries), `coordination` (leases across replicas), `in_storage` (a file made sure
//! of in storage, not only answered), `checks` (what a
//! source's answer must look like, checksum verification), `metered` (timed,
//! counted storage calls) and `range` (byte ranges of zips).

mod background;
mod checks;
mod coordination;
pub mod disk_tier;
mod freshness;
mod immutable;
mod in_storage;
mod metered;
mod mutable;
mod pread;
mod presigned;
mod range;
mod stored;
mod zips;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::future::Cache;
use prometheus::IntCounter;
use sparta_storage::Store;
use sparta_sumdb::Sumdb;
use tracing::{Instrument, warn};

use crate::cache::{CachedFile, MemoryCache};
use crate::error::ProxyError;
use crate::flight::Flights;
use crate::limits::FetchLimits;
use crate::metrics::Metrics;
use crate::source::{Picked, SourceError, Sources};

mod cached;

pub use range::RangeRequest;

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
    /// Whether misses may be fetched, and what a source failure answers.
    pub network: sparta_core::network::NetworkMode,
    /// Per-pattern download modes (`--download-mode`).
    pub download_modes: sparta_core::download::DownloadModes,
    /// How long presigned zip URLs last (`presigned` download mode).
    pub presign_ttl: Duration,
    /// The local disk tier for zips, if configured.
    pub disk_tier: Option<Arc<disk_tier::DiskTier>>,
    /// Bounds on concurrent fetches and spool bytes.
    pub limits: crate::limits::LimitsConfig,
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

    pub(crate) fn label(self) -> &'static str {
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
    sources: Sources,
    sumdb: Sumdb,
    cache: MemoryCache,
    negative: Cache<String, ProxyError>,
    /// Files likely missing from storage (a sibling missed here lately); see
    /// [`Proxy::look_with_lease`].
    missing: moka::sync::Cache<String, ()>,
    small_flights: Arc<Flights<Arc<CachedFile>>>,
    zip_flights: Arc<Flights<Option<Arc<zips::FetchedZip>>>>,
    metrics: Metrics,
    /// Which versions the store holds (for `/catalog`, `/index`, `/ui`).
    catalog: sparta_catalog::Catalog,
    limits: FetchLimits,
    /// `sparta_cache_lookups_total{tier="memory",result="hit"}` per kind,
    /// resolved once for the hot path.
    memory_hits: [IntCounter; 6],
    /// Permits for `async` download mode's background fetches.
    background: Arc<tokio::sync::Semaphore>,
    config: ServiceConfig,
}

impl Proxy {
    /// Builds the service.
    pub fn new(
        store: Store,
        sources: Sources,
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
        for network in sparta_core::network::NetworkMode::ALL {
            metrics
                .network_mode
                .with_label_values(&[network.as_str()])
                .set(i64::from(network == config.network));
        }
        Proxy {
            inner: Arc::new(Inner {
                cache: MemoryCache::new(config.cache_size, &metrics),
                catalog: sparta_catalog::Catalog::new(store.clone(), &config.holder),
                store,
                sources,
                sumdb,
                negative,
                missing: coordination::missing_memo(),
                small_flights: Arc::default(),
                zip_flights: Arc::default(),
                memory_hits: Kind::ALL.map(|kind| {
                    metrics
                        .cache_lookups
                        .with_label_values(&["memory", kind.label(), "hit"])
                }),
                limits: FetchLimits::new(config.limits, metrics.registry()),
                metrics,
                background: background::permits(),
                config,
            }),
        }
    }

    /// Waits, at most `limit`, until no fetch is under way here, stores
    /// included (a fetched file is answered before it is stored); false if
    /// some still were. For shutdown, after the last request.
    pub async fn settle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.inner.small_flights.is_empty() && self.inner.zip_flights.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
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

    /// The catalog of stored versions.
    pub fn catalog(&self) -> &sparta_catalog::Catalog {
        &self.inner.catalog
    }

    /// Notes a newly stored file in the catalog. A failure to write the
    /// catalog's segment does not fail the request: the version is stored,
    /// this replica knows it, and `sparta catalog --rebuild` recovers it.
    async fn note_stored(
        &self,
        module: &sparta_core::ModulePath,
        version: &sparta_core::Version,
        file: sparta_core::FileKind,
        size: u64,
        h1: Option<&str>,
    ) {
        let file = match file {
            sparta_core::FileKind::Info => sparta_catalog::index::File::Info,
            sparta_core::FileKind::Mod => sparta_catalog::index::File::Mod,
            sparta_core::FileKind::Zip => sparta_catalog::index::File::Zip,
        };
        self.inner
            .catalog
            .stored(module, version, file, size, h1)
            .await;
    }

    /// The memory cache, for metrics.
    pub fn cache(&self) -> &MemoryCache {
        &self.inner.cache
    }

    /// Whether `module` is routed to `direct`: its path stays here.
    pub fn is_private(&self, module: &sparta_core::ModulePath) -> bool {
        self.pick(module).private
    }

    /// The source and privacy of `module`, by route.
    fn pick(&self, module: &sparta_core::ModulePath) -> &Picked {
        self.inner.sources.pick(module)
    }

    /// A memory hit for `storage_key`, counted; a miss is not counted here
    /// because the full path that follows counts it.
    pub fn memory_hit(&self, kind: Kind, storage_key: &str) -> Option<Arc<CachedFile>> {
        let hit = self.inner.cache.get(storage_key)?;
        self.inner.memory_hits[kind as usize].inc();
        crate::audit::note_tier(crate::audit::Tier::Memory);
        Some(hit)
    }

    /// The memory tier: a hit or a miss, counted.
    async fn memory_lookup(&self, kind: Kind, storage_key: &str) -> Option<Arc<CachedFile>> {
        let hit = sparta_trace::tier_span("cache", kind.label())
            .in_scope(|| self.inner.cache.get(storage_key));
        let result = if hit.is_some() {
            crate::audit::note_tier(crate::audit::Tier::Memory);
            "hit"
        } else {
            "miss"
        };
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
        let work = futures::FutureExt::map(work, |result| (result, None));
        self.shared_then(flights, kind, key, work).await
    }

    /// [`Proxy::shared`] for work that answers before it is done; see
    /// [`Flights::run_then`].
    async fn shared_then<V: Clone + Send + Sync + 'static>(
        &self,
        flights: &Arc<Flights<V>>,
        kind: Kind,
        key: &str,
        work: impl std::future::Future<Output = (Result<V, ProxyError>, Option<crate::flight::Rest>)>
        + Send
        + 'static,
    ) -> Result<V, ProxyError> {
        // The work may run on another task: it keeps this request's span.
        let work = work.instrument(tracing::Span::current());
        let (result, joined) = flights.run_then(key, work).await;
        if joined {
            self.inner
                .metrics
                .singleflight_saved
                .with_label_values(&[kind.label()])
                .inc();
        }
        result
    }

    /// Caches an immutable file read from storage and returns it.
    async fn cache_immutable(
        &self,
        storage_key: String,
        body: Bytes,
        content_type: &'static str,
    ) -> Arc<CachedFile> {
        let entry = CachedFile::immutable(&storage_key, body, content_type);
        self.inner.cache.insert(storage_key, Arc::clone(&entry));
        entry
    }

    /// Caches a mutable answer for the list TTL and returns it.
    async fn cache_mutable(
        &self,
        storage_key: String,
        body: Bytes,
        content_type: &'static str,
    ) -> Arc<CachedFile> {
        let ttl = self.inner.config.list_ttl;
        self.cache_mutable_for(storage_key, body, content_type, ttl)
            .await
    }

    /// Caches a mutable answer for `ttl` (what is left of another
    /// replica's fetch, say) and returns it.
    async fn cache_mutable_for(
        &self,
        storage_key: String,
        body: Bytes,
        content_type: &'static str,
        ttl: Duration,
    ) -> Arc<CachedFile> {
        let entry = CachedFile::mutable(body, content_type, ttl);
        self.inner.cache.insert(storage_key, Arc::clone(&entry));
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

    /// Wraps one fetch from a source with the fetch limits, metrics and the
    /// negative cache. `host` is where the fetch goes (the per-host limit's
    /// key). The `upstream` metrics count every source's fetches; a fetch
    /// refused by a limit is counted by the limits instead.
    async fn source_call<T>(
        &self,
        kind: Kind,
        storage_key: &str,
        host: &str,
        call: impl std::future::Future<Output = Result<T, SourceError>>,
    ) -> Result<T, ProxyError> {
        let _permit = self.inner.limits.fetch(host).await.map_err(|refused| {
            warn!(key = %storage_key, host, reason = refused.bound.label(), "fetch refused: over a fetch limit");
            ProxyError::from(refused)
        })?;
        let m = &self.inner.metrics;
        m.upstream_in_flight.inc();
        let started = Instant::now();
        let result = call
            .instrument(sparta_trace::tier_span("source", kind.label()))
            .await;
        m.upstream_in_flight.dec();
        if let Some(refused) = crate::limits::spool_refused() {
            warn!(key = %storage_key, host, "fetch refused: spool budget taken");
            return Err(ProxyError::from(refused));
        }
        m.upstream_duration
            .with_label_values(&[kind.label()])
            .observe(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
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
                    warn!(key = %storage_key, error = %err, "fetch from source failed");
                }
                Err(err)
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
}
