//! Object storage for Sparta, on top of `object_store`.
//!
//! One [`Store`] wraps an `Arc<dyn ObjectStore>` chosen by URL (local path,
//! `file://`, `memory://`, `s3://bucket/prefix`). Immutable files are written
//! once (`PutMode::Create`); an object is visible only when completely stored.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;

/// The one error type of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The configuration (URL, S3 settings) is unusable.
    #[error("invalid storage configuration: {0}")]
    Config(String),
    /// The store could not be reached or failed the operation.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A local I/O error (spool files).
    #[error("storage i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// S3 settings beyond the bucket and prefix in the URL.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Custom endpoint (MinIO, COS, ...); `None` means AWS.
    pub endpoint: Option<String>,
    /// Region; `None` lets the AWS chain decide (falls back to `us-east-1`).
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted.
    pub path_style: bool,
    /// Allow plain http endpoints (local MinIO and tests).
    pub allow_http: bool,
}

/// Result of a write-once put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// This call stored the object.
    Created,
    /// The object was already there (someone else stored it first).
    AlreadyExists,
}

/// Size and identity of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// Store ETag, if the store reports one.
    pub etag: Option<String>,
}

/// A stored object's body as a stream of chunks.
pub struct ObjectStream {
    pub info: ObjectInfo,
    /// The byte range this stream covers.
    pub range: Range<u64>,
    pub body: BoxStream<'static, Result<Bytes, StorageError>>,
}

/// A held fetch lease (cross-replica singleflight).
#[derive(Debug, Clone)]
pub struct Lease {
    pub key: String,
    /// Fencing number: strictly increases with each takeover.
    pub fence: u64,
}

/// A Sparta object store.
#[derive(Clone, Debug)]
pub struct Store {
    _private: (),
}

impl Store {
    /// Opens the store named by `url`.
    pub async fn open(url: &str, s3: &S3Options) -> Result<Store, StorageError> {
        let _ = (url, s3);
        todo!()
    }

    /// A short description for logs, e.g. `s3://bucket/prefix` (never secrets).
    pub fn describe(&self) -> String {
        todo!()
    }

    /// Reads a whole small object; `None` if absent.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        let _ = key;
        todo!()
    }

    /// Streams an object or a byte range of it; `None` if absent.
    pub async fn get_stream(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<ObjectStream>, StorageError> {
        let _ = (key, range);
        todo!()
    }

    /// Size and ETag of an object; `None` if absent.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        let _ = key;
        todo!()
    }

    /// Stores `data` under `key` unless something is there already.
    pub async fn put_once(&self, key: &str, data: Bytes) -> Result<PutOutcome, StorageError> {
        let _ = (key, data);
        todo!()
    }

    /// Stores the file at `path` under `key` unless something is there already,
    /// streaming it (multipart upload for large files); visible only when complete.
    pub async fn put_once_file(&self, key: &str, path: &Path) -> Result<PutOutcome, StorageError> {
        let _ = (key, path);
        todo!()
    }

    /// Stores `data` under `key`, replacing what is there (mutable answers:
    /// list, latest, queries).
    pub async fn put_overwrite(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        let _ = (key, data);
        todo!()
    }

    /// Deletes an object; absent is fine.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let _ = key;
        todo!()
    }

    /// Lists every key under `prefix` (recursive).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let _ = prefix;
        todo!()
    }

    /// Cheap round trip to the store, for `/readyz`.
    pub async fn check_ready(&self) -> Result<(), StorageError> {
        todo!()
    }

    /// Whether the store honours write-once puts (create-twice probe).
    pub async fn probe_conditional_put(&self) -> Result<bool, StorageError> {
        todo!()
    }

    /// Tries to take the lease at `key` for `ttl`: `Some` if this caller holds
    /// it now (created, or taken over from an expired holder), `None` if a live
    /// holder has it.
    pub async fn try_acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StorageError> {
        let _ = (key, holder, ttl);
        todo!()
    }

    /// Releases a held lease (only if still ours).
    pub async fn release_lease(&self, lease: &Lease) -> Result<(), StorageError> {
        let _ = lease;
        todo!()
    }
}
