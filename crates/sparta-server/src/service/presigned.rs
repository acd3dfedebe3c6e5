//! `--download-mode glob=presigned`: a zip is made sure of in storage
//! (fetched, verified and stored write-once on a miss, as in `sync`), then
//! the client is sent to a short-lived presigned URL of that object, so
//! the bytes go from the bucket to the client and not through a replica.

use sparta_core::{FileKind, ModulePath, Version, key};
use sparta_storage::Url;
use tracing::warn;

use super::Proxy;
use crate::error::ProxyError;

impl Proxy {
    /// A presigned GET URL of the stored zip of `module@version`, fetching
    /// and storing it first when it is missing. `Ok(None)` when signing
    /// failed (logged): the caller serves the bytes itself instead.
    pub async fn presigned_zip(
        &self,
        module: &ModulePath,
        version: &Version,
    ) -> Result<Option<Url>, ProxyError> {
        self.zip_in_storage(module, version).await?;
        let storage_key = key::version_file(module, version, FileKind::Zip);
        let ttl = self.inner.config.presign_ttl;
        match self.inner.store.presigned_get(&storage_key, ttl).await {
            Ok(url) => Ok(Some(url)),
            Err(e) => {
                // The error names the key, never the URL or credentials.
                warn!(key = %storage_key, error = %e, "could not presign a zip URL; serving it instead");
                Ok(None)
            }
        }
    }

    /// How long presigned URLs last (`--presign-ttl`).
    pub fn presign_ttl(&self) -> std::time::Duration {
        self.inner.config.presign_ttl
    }
}
