//! The upstream proxy chain as a source.

use std::path::Path;

use bytes::Bytes;
use sparta_core::zipcheck::{MAX_GOMOD_SIZE, MAX_ZIP_SIZE};
use sparta_core::{ModulePath, Version};
use sparta_upstream::{Upstream, UpstreamError};

use super::{Source, SourceError};

/// Largest list, latest or `.info` answer accepted from upstream.
pub const MAX_SMALL_SIZE: u64 = 16 << 20;

/// Other module proxies, walked by [`Upstream`] with GOPROXY-list rules.
pub struct UpstreamSource(pub Upstream);

impl From<UpstreamError> for SourceError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::NotFound { status, reason } => SourceError::NotFound { status, reason },
            UpstreamError::Timeout(m) => SourceError::Timeout(m),
            UpstreamError::Failed(m) => SourceError::Failed(m),
        }
    }
}

impl UpstreamSource {
    async fn bytes(&self, path: String, limit: u64) -> Result<Bytes, SourceError> {
        Ok(self.0.fetch_bytes(&path, limit).await?)
    }
}

#[async_trait::async_trait]
impl Source for UpstreamSource {
    async fn list(&self, module: &ModulePath) -> Result<Bytes, SourceError> {
        self.bytes(format!("{}/@v/list", module.escaped()), MAX_SMALL_SIZE)
            .await
    }

    async fn latest(&self, module: &ModulePath) -> Result<Bytes, SourceError> {
        self.bytes(format!("{}/@latest", module.escaped()), MAX_SMALL_SIZE)
            .await
    }

    async fn query(&self, module: &ModulePath, query: &str) -> Result<Bytes, SourceError> {
        let escaped = sparta_core::request::escape_query(query);
        self.bytes(
            format!("{}/@v/{escaped}.info", module.escaped()),
            MAX_SMALL_SIZE,
        )
        .await
    }

    async fn info(&self, module: &ModulePath, version: &Version) -> Result<Bytes, SourceError> {
        let path = format!("{}/@v/{}.info", module.escaped(), version.escaped());
        self.bytes(path, MAX_SMALL_SIZE).await
    }

    async fn gomod(&self, module: &ModulePath, version: &Version) -> Result<Bytes, SourceError> {
        let path = format!("{}/@v/{}.mod", module.escaped(), version.escaped());
        self.bytes(path, MAX_GOMOD_SIZE).await
    }

    async fn zip_to_file(
        &self,
        module: &ModulePath,
        version: &Version,
        out: &Path,
    ) -> Result<u64, SourceError> {
        let path = format!("{}/@v/{}.zip", module.escaped(), version.escaped());
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(out)
            .await
            .map_err(|e| SourceError::Failed(format!("cannot open spool file: {e}")))?;
        let sized = |declared: Option<u64>| async move {
            crate::limits::reserve_spool(declared, MAX_ZIP_SIZE)
                .await
                .map_err(|refused| UpstreamError::Failed(refused.to_string()))
        };
        Ok(self
            .0
            .fetch_to_file_sized(&path, &mut file, MAX_ZIP_SIZE, sized)
            .await?)
    }

    fn host(&self, _module: &ModulePath) -> String {
        self.0.first_host()
    }
}
