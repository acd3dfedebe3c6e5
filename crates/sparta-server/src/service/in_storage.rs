//! Making sure a version's file is in storage, not only answered: a
//! fetched file is answered before it is stored, which suits a client but
//! not a redirect to the stored object (`presigned` mode) nor a warm job,
//! whose point is the stored copy.

use sparta_core::{FileKind, ModulePath, Version, key};

use super::Proxy;
use super::zips::ZipLookup;
use crate::error::ProxyError;

impl Proxy {
    /// Makes sure the zip of `module@version` is in storage, fetching it on
    /// a miss and waiting for its store; returns its size.
    pub(crate) async fn zip_in_storage(
        &self,
        module: &ModulePath,
        version: &Version,
    ) -> Result<u64, ProxyError> {
        let storage_key = key::version_file(module, version, FileKind::Zip);
        let fetched = match self
            .zip_head_or_fetch(module, version, &storage_key)
            .await?
        {
            ZipLookup::Stored(info) => return Ok(info.size),
            ZipLookup::Fetched(fetched) => fetched,
        };
        if let Some(zip) = fetched
            && zip.wait_stored().await
        {
            return Ok(zip.size());
        }
        // Stored by another replica, or this store failed: storage says.
        match self.timed_head(&storage_key).await? {
            Some(info) => Ok(info.size),
            None => Err(not_stored(&storage_key)),
        }
    }

    /// Makes sure `module@version`'s `.info` or `.mod` is in storage,
    /// fetching it on a miss and waiting for its store; returns its size.
    pub(crate) async fn small_file_in_storage(
        &self,
        module: &ModulePath,
        version: &Version,
        file: FileKind,
    ) -> Result<u64, ProxyError> {
        let body = self.small_file(module, version, file).await?;
        let storage_key = key::version_file(module, version, file);
        // The fetch's flight lasts until its store has ended.
        self.inner.small_flights.idle(&storage_key).await;
        match self.timed_head(&storage_key).await? {
            Some(_) => Ok(body.body.len() as u64),
            None => {
                // Not stored: fetch it again next time, not from memory.
                self.inner.cache.invalidate(&storage_key);
                Err(not_stored(&storage_key))
            }
        }
    }
}

fn not_stored(storage_key: &str) -> ProxyError {
    ProxyError::Storage(format!("{storage_key} was fetched but could not be stored"))
}
