//! The memory tier: small files (`.info`, `.mod`, list, latest, queries)
//! bounded by bytes, with per-entry freshness for mutable answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use bytes::Bytes;
use moka::Expiry;
use moka::notification::RemovalCause;
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use sparta_core::hash::hex;

use crate::metrics::Metrics;

/// A small file ready to serve: body and precomputed headers.
#[derive(Debug)]
pub struct CachedFile {
    pub body: Bytes,
    pub etag: HeaderValue,
    pub content_type: &'static str,
    /// `None` for immutable files; mutable answers expire after this.
    pub ttl: Option<Duration>,
    /// The headers of a 200 with this body (type, length, cache policy,
    /// ETag), made once: cloning them costs less than building them.
    pub headers: HeaderMap,
}

/// Cache policy for files that never change.
pub const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
/// Cache policy for answers that change (list, latest, queries).
pub const REVALIDATE: HeaderValue = HeaderValue::from_static("public, max-age=60");

/// The cache policy of an answer fresh for `ttl` (`None`: forever).
pub fn cache_policy(ttl: Option<Duration>) -> HeaderValue {
    if ttl.is_none() { IMMUTABLE } else { REVALIDATE }
}

/// The content headers of a 200 with an in-memory body, with room for the
/// ETag and request id added after.
pub fn content_headers(
    len: usize,
    content_type: &'static str,
    cache_control: HeaderValue,
) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(6);
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, cache_control);
    h
}

fn ok_headers(
    body: &Bytes,
    content_type: &'static str,
    etag: &HeaderValue,
    ttl: Option<Duration>,
) -> HeaderMap {
    let mut h = content_headers(body.len(), content_type, cache_policy(ttl));
    h.insert(header::ETAG, etag.clone());
    h
}

impl CachedFile {
    /// An immutable file; its ETag is derived from its storage key, which
    /// names exactly one content forever.
    pub fn immutable(key: &str, body: Bytes, content_type: &'static str) -> Arc<Self> {
        let etag = immutable_etag(key);
        Arc::new(CachedFile {
            headers: ok_headers(&body, content_type, &etag, None),
            etag,
            body,
            content_type,
            ttl: None,
        })
    }

    /// A mutable answer (list, latest, query), fresh for `ttl`.
    pub fn mutable(body: Bytes, content_type: &'static str, ttl: Duration) -> Arc<Self> {
        let digest = Sha256::digest(&body);
        let etag = format!("\"{}\"", hex(&digest[..16]));
        let etag = HeaderValue::from_str(&etag).expect("hex is a valid header");
        Arc::new(CachedFile {
            headers: ok_headers(&body, content_type, &etag, Some(ttl)),
            etag,
            body,
            content_type,
            ttl: Some(ttl),
        })
    }
}

/// The strong ETag of the immutable object stored under `key`.
pub fn immutable_etag(key: &str) -> HeaderValue {
    let digest = Sha256::digest(key.as_bytes());
    HeaderValue::from_str(&format!("\"{}\"", hex(&digest[..16]))).expect("hex is a valid header")
}

struct PerEntryTtl;

impl Expiry<String, Arc<CachedFile>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<CachedFile>,
        _created_at: Instant,
    ) -> Option<Duration> {
        value.ttl
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<CachedFile>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        value.ttl
    }
}

/// The memory cache, keyed by storage key. moka's blocking flavour: its
/// reads and writes never wait on I/O, and a lookup that is not a future
/// keeps the hot path's future small (the async flavour's cost a fifth of
/// serving a warm file).
#[derive(Clone)]
pub struct MemoryCache {
    cache: Cache<String, Arc<CachedFile>>,
}

impl MemoryCache {
    /// A cache holding at most `budget` bytes of keys and bodies.
    pub fn new(budget: u64, metrics: &Metrics) -> Self {
        let evictions = metrics.memory_cache_evictions.clone();
        let cache = Cache::builder()
            .max_capacity(budget)
            .weigher(|key: &String, value: &Arc<CachedFile>| {
                // Bookkeeping overhead per entry is roughly 200 bytes.
                u32::try_from(key.len() + value.body.len() + 200).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .eviction_listener(move |_key, _value, cause| {
                if cause == RemovalCause::Size {
                    evictions.inc();
                }
            })
            .build();
        MemoryCache { cache }
    }

    /// The cached file under `key`, if present and fresh.
    pub fn get(&self, key: &str) -> Option<Arc<CachedFile>> {
        self.cache.get(key)
    }

    /// Caches `file` under `key`.
    pub fn insert(&self, key: String, file: Arc<CachedFile>) {
        self.cache.insert(key, file);
    }

    /// Drops the file under `key`: the next request reads storage.
    pub fn invalidate(&self, key: &str) {
        self.cache.invalidate(key);
    }

    /// Weighted size in bytes and entry count, for metrics.
    pub fn usage(&self) -> (u64, u64) {
        (self.cache.weighted_size(), self.cache.entry_count())
    }

    /// Runs pending maintenance so usage figures are current.
    pub fn sync(&self) {
        self.cache.run_pending_tasks();
    }
}
