//! Cached-only answers (`Disable-Module-Fetch: true`, as pkgsite sends):
//! memory, then storage, never upstream; a miss is a 404 that says so.

use std::sync::Arc;

use sparta_core::{FileKind, ModulePath, Version, key};
use sparta_storage::ObjectStream;

use super::{JSON, Kind, Proxy, RangeRequest, TEXT};
use crate::cache::CachedFile;
use crate::error::ProxyError;

/// The 404 a cached-only miss gets; the go command then tries its next proxy.
fn not_cached(what: &str) -> ProxyError {
    ProxyError::NotFound {
        status: 404,
        reason: format!("{what} is not cached, and Disable-Module-Fetch forbids fetching it"),
    }
}

impl Proxy {
    /// `.info` or `.mod` of a canonical version, from memory or storage only.
    pub async fn cached_small_file(
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
        match self.stored(kind, &storage_key).await? {
            Some(body) => Ok(self.cache_immutable(storage_key, body, content_type).await),
            None => Err(not_cached(&format!("{module}@{version} .{}", file.ext()))),
        }
    }

    /// A stored zip, or a range of it, without fetching.
    pub async fn cached_zip(
        &self,
        module: &ModulePath,
        version: &Version,
        range: Option<RangeRequest>,
    ) -> Result<ObjectStream, ProxyError> {
        let storage_key = key::version_file(module, version, FileKind::Zip);
        self.open_zip(&storage_key, range)
            .await?
            .ok_or_else(|| not_cached(&format!("{module}@{version} .zip")))
    }

    /// [`Proxy::zip_info`] without a fetch.
    pub async fn cached_zip_info(
        &self,
        module: &ModulePath,
        version: &Version,
    ) -> Result<sparta_storage::ObjectInfo, ProxyError> {
        let storage_key = key::version_file(module, version, FileKind::Zip);
        self.timed_head(&storage_key)
            .await?
            .ok_or_else(|| not_cached(&format!("{module}@{version} .zip")))
    }

    /// The last list answer seen, from memory or its persisted copy.
    pub async fn cached_list(&self, module: &ModulePath) -> Result<Arc<CachedFile>, ProxyError> {
        self.cached_mutable(Kind::List, key::list(module), TEXT, module, "list")
            .await
    }

    /// The last `@latest` answer seen.
    pub async fn cached_latest(&self, module: &ModulePath) -> Result<Arc<CachedFile>, ProxyError> {
        self.cached_mutable(Kind::Latest, key::latest(module), JSON, module, "@latest")
            .await
    }

    /// The last answer seen for a version query.
    pub async fn cached_query(
        &self,
        module: &ModulePath,
        escaped_query: &str,
    ) -> Result<Arc<CachedFile>, ProxyError> {
        let storage_key = key::query(module, escaped_query);
        self.cached_mutable(Kind::Query, storage_key, JSON, module, escaped_query)
            .await
    }

    async fn cached_mutable(
        &self,
        kind: Kind,
        storage_key: String,
        content_type: &'static str,
        module: &ModulePath,
        what: &str,
    ) -> Result<Arc<CachedFile>, ProxyError> {
        if let Some(hit) = self.memory_lookup(kind, &storage_key).await {
            return Ok(hit);
        }
        // Not put in memory: a later normal request must still refresh it.
        match self.stored(kind, &storage_key).await? {
            Some(body) => Ok(CachedFile::mutable(
                body,
                content_type,
                self.inner.config.list_ttl,
            )),
            None => Err(not_cached(&format!("{module} {what}"))),
        }
    }
}
