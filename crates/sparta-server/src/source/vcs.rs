//! The VCS fetcher as a source: modules straight from their repositories.

use std::path::Path;

use bytes::Bytes;
use sparta_core::{ModulePath, Version};
use sparta_vcs::{Vcs, VcsError};
use tracing::warn;

use super::{Source, SourceError};

/// Fetches from version control; reached only through `direct` in a list.
pub struct VcsSource(pub Vcs);

/// The client gets the error's short text; the log gets which module and
/// operation. VCS error texts never carry credentials.
fn map(op: &'static str, module: &ModulePath, e: VcsError) -> SourceError {
    if !matches!(e, VcsError::NotFound(_)) {
        warn!(module = %module, op, error = %e, "vcs fetch failed");
    }
    match e {
        VcsError::NotFound(_) => SourceError::NotFound {
            status: 404,
            reason: e.to_string(),
        },
        VcsError::Refused(_) => SourceError::Refused(e.to_string()),
        VcsError::TooLarge(_) => SourceError::TooLarge(e.to_string()),
        VcsError::Timeout(_) => SourceError::Timeout(e.to_string()),
        VcsError::Failed(_) => SourceError::Failed(e.to_string()),
    }
}

#[async_trait::async_trait]
impl Source for VcsSource {
    async fn list(&self, module: &ModulePath) -> Result<Bytes, SourceError> {
        let versions = self
            .0
            .list(module)
            .await
            .map_err(|e| map("list", module, e))?;
        let mut body = String::new();
        for v in versions {
            body.push_str(v.as_str());
            body.push('\n');
        }
        Ok(Bytes::from(body))
    }

    async fn latest(&self, module: &ModulePath) -> Result<Bytes, SourceError> {
        let info = self
            .0
            .latest(module)
            .await
            .map_err(|e| map("latest", module, e))?;
        Ok(info.to_json())
    }

    async fn query(&self, module: &ModulePath, query: &str) -> Result<Bytes, SourceError> {
        let info = self
            .0
            .query(module, query)
            .await
            .map_err(|e| map("query", module, e))?;
        Ok(info.to_json())
    }

    async fn info(&self, module: &ModulePath, version: &Version) -> Result<Bytes, SourceError> {
        let info = self
            .0
            .info(module, version)
            .await
            .map_err(|e| map("info", module, e))?;
        Ok(info.to_json())
    }

    async fn gomod(&self, module: &ModulePath, version: &Version) -> Result<Bytes, SourceError> {
        self.0
            .gomod(module, version)
            .await
            .map_err(|e| map("mod", module, e))
    }

    async fn zip_to_file(
        &self,
        module: &ModulePath,
        version: &Version,
        out: &Path,
    ) -> Result<u64, SourceError> {
        // A zip made here has no size before it is made: reserve the limit.
        crate::limits::reserve_spool(None, sparta_core::zipcheck::MAX_ZIP_SIZE)
            .await
            .map_err(|refused| SourceError::Failed(refused.to_string()))?;
        self.0
            .zip_to_file(module, version, out)
            .await
            .map_err(|e| map("zip", module, e))
    }
}
