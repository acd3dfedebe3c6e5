//! Object storage for Sparta, on top of `object_store`.
//!
//! One [`Store`] wraps an `Arc<dyn ObjectStore>` chosen by URL (local path,
//! `file://`, `memory://`, `s3://bucket/prefix`, `gs://bucket/prefix`,
//! `az://container/prefix`). Immutable files are written
//! once (`PutMode::Create`); an object is visible only when completely stored.

mod aws_env;
mod cloud;
mod file_stream;
pub mod init;
mod lease;
mod lease_guard;
mod presign;
mod s3;
mod sweep;

pub use file_stream::file_stream;
pub use lease::SKEW_MARGIN;
pub use lease_guard::{LeaseGuard, OnRenewFailure};
pub use presign::{MAX_PRESIGN_TTL, Url, url_can_presign};
pub use sweep::{SPOOL_MAX_AGE, SPOOL_PREFIX, STAGING_MAX_AGE, SWEEP_LIMIT, Swept, sweep_spool};

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjPath;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt,
    PutMode, PutOptions, PutPayload, WriteMultipart,
};
use tokio::io::AsyncReadExt;

/// The one error type of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A byte range starts at or beyond the end of the object (HTTP 416).
    #[error("range not satisfiable: object has {size} bytes")]
    InvalidRange {
        /// Size of the stored object.
        size: u64,
    },
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

impl From<object_store::Error> for StorageError {
    fn from(e: object_store::Error) -> Self {
        StorageError::Unavailable(e.to_string())
    }
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

/// Static S3 keys given explicitly instead of through the environment.
#[derive(Clone, Default)]
pub struct S3Keys {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token, for temporary keys.
    pub session_token: Option<String>,
}

// Hand-written so that secrets never reach a log.
impl std::fmt::Debug for S3Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Keys")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
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
    /// Size in bytes.
    pub size: u64,
    /// Store ETag, if the store reports one.
    pub etag: Option<String>,
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Storage key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification (for write-once objects: when stored).
    pub modified: SystemTime,
}

/// A stored object's body as a stream of chunks.
pub struct ObjectStream {
    /// The whole object's size and ETag.
    pub info: ObjectInfo,
    /// The byte range this stream covers.
    pub range: Range<u64>,
    /// The bytes of `range`, in order.
    pub body: BoxStream<'static, Result<Bytes, StorageError>>,
}

/// A held fetch lease (cross-replica singleflight).
#[derive(Debug, Clone)]
pub struct Lease {
    /// Storage key of the lease object.
    pub key: String,
    /// Fencing number: strictly increases with each takeover.
    pub fence: u64,
    /// Who holds it (as passed to [`Store::try_acquire_lease`]).
    pub holder: String,
}

/// Files at least this large are uploaded in parts (multipart upload).
pub const MULTIPART_THRESHOLD: u64 = 8 * 1024 * 1024;

/// Size of one uploaded part of a multipart upload.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts uploaded concurrently; bounds memory to about this many parts.
const PART_CONCURRENCY: usize = 2;

/// Where large files are staged before being published under their key.
const STAGING_PREFIX: &str = "_sparta/staging";

/// A Sparta object store.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// The same store as a URL signer, for backends that can presign.
    signer: Option<Arc<dyn object_store::signer::Signer>>,
    description: Arc<str>,
    shared: bool,
}

impl Store {
    /// Opens the store named by `url`.
    pub async fn open(url: &str, s3: &S3Options) -> Result<Store, StorageError> {
        Store::open_with_keys(url, s3, None).await
    }

    /// Opens the store named by `url`; an `s3://` store uses `keys` if given
    /// (otherwise the environment's keys or the AWS default chain).
    pub async fn open_with_keys(
        url: &str,
        s3: &S3Options,
        keys: Option<S3Keys>,
    ) -> Result<Store, StorageError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(StorageError::Config("empty storage location".into()));
        }
        if url == "memory://" || url == "memory:" {
            return Ok(Store::from_object_store(
                Arc::new(InMemory::new()),
                "memory://",
            ));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StorageError::Config(format!("no bucket in {url}")));
            }
            let prefix = prefix.trim_matches('/');
            let store = s3::build(bucket, s3, keys).await?;
            let mut description = format!("s3://{bucket}/{prefix}");
            if let Some(ep) = &s3.endpoint {
                description.push_str(&format!(" (endpoint {ep})"));
            }
            return Ok(Store::bucket(store, prefix, description));
        }
        if let Some((scheme, rest)) = url.split_once("://")
            && matches!(scheme, "gs" | "az")
        {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StorageError::Config(format!("no bucket in {url}")));
            }
            let prefix = prefix.trim_matches('/');
            let described = |emulator: Option<String>| {
                let mut description = format!("{scheme}://{bucket}/{prefix}");
                if let Some(ep) = emulator {
                    description.push_str(&format!(" (emulator {ep})"));
                }
                description
            };
            return Ok(if scheme == "gs" {
                let (s, e) = cloud::build_gcs(bucket)?;
                Store::bucket(s, prefix, described(e))
            } else {
                let (s, e) = cloud::build_azure(bucket)?;
                Store::bucket(s, prefix, described(e))
            });
        }
        let dir = if url.starts_with("file://") {
            let parsed = url::Url::parse(url)
                .map_err(|e| StorageError::Config(format!("bad file url {url}: {e}")))?;
            parsed
                .to_file_path()
                .map_err(|()| StorageError::Config(format!("bad file url {url}")))?
        } else if url.contains("://") {
            return Err(StorageError::Config(format!(
                "unsupported storage scheme in {url} (use a path, file://, memory://, s3://, gs:// or az://)"
            )));
        } else {
            std::path::PathBuf::from(url)
        };
        tokio::fs::create_dir_all(&dir).await?;
        let dir = tokio::fs::canonicalize(&dir).await?;
        // No automatic cleanup of emptied directories: leases and staging
        // objects come and go in two flat directories, and removing and
        // re-creating those on every fetch costs more than it tidies.
        let local = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| StorageError::Config(format!("{}: {e}", dir.display())))?;
        Ok(Store::from_object_store(
            Arc::new(local),
            format!("file://{}", dir.display()),
        ))
    }

    /// Wraps an existing object store (tests, custom backends).
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, description: impl Into<String>) -> Store {
        Store {
            inner,
            signer: None,
            description: description.into().into(),
            shared: false,
        }
    }

    /// Whether the store is meant to be shared by several replicas (a
    /// bucket), as opposed to one process's directory or memory.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// A short description for logs, e.g. `s3://bucket/prefix` (never secrets).
    pub fn describe(&self) -> String {
        self.description.to_string()
    }

    /// Reads a whole small object; `None` if absent.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        let path = obj_path(key);
        match self.inner.get(&path).await {
            Ok(r) => match r.bytes().await {
                Ok(b) => Ok(Some(b)),
                // Deleted between the answer's head and its body.
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            },
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams an object or a byte range of it; `None` if absent.
    ///
    /// Like HTTP, a range ending past the object is cut at its end; one
    /// starting at or past the end is [`StorageError::InvalidRange`].
    pub async fn get_stream(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<ObjectStream>, StorageError> {
        let path = obj_path(key);
        if let Some(r) = &range
            && r.start >= r.end
        {
            // An empty range cannot be asked of the stores; report it the
            // way a range past the end is reported.
            return match self.head(key).await? {
                None => Ok(None),
                Some(info) => Err(StorageError::InvalidRange { size: info.size }),
            };
        }
        let opts = GetOptions {
            range: range.clone().map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = match self.inner.get_opts(&path, opts).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => {
                // Stores word a range past the end differently; ask the size
                // to tell it apart from an outage.
                if let Some(r) = &range
                    && let Ok(Some(info)) = self.head(key).await
                    && r.start >= info.size
                {
                    return Err(StorageError::InvalidRange { size: info.size });
                }
                return Err(e.into());
            }
        };
        let info = ObjectInfo {
            size: result.meta.size,
            etag: result.meta.e_tag.clone(),
        };
        let range = result.range.clone();
        let body = match result.payload {
            // object_store reads local files in 8 KiB blocking calls; large
            // reads keep a zip download from being bound by thread hand-offs.
            GetResultPayload::File(file, _) => file_stream(file, range.clone()),
            GetResultPayload::Stream(s) => s.map_err(StorageError::from).boxed(),
        };
        Ok(Some(ObjectStream { info, range, body }))
    }

    /// Size and ETag of an object; `None` if absent.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        match self.inner.head(&obj_path(key)).await {
            Ok(meta) => Ok(Some(ObjectInfo {
                size: meta.size,
                etag: meta.e_tag,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores `data` under `key` unless something is there already.
    pub async fn put_once(&self, key: &str, data: Bytes) -> Result<PutOutcome, StorageError> {
        let opts = PutOptions::from(PutMode::Create);
        match self
            .inner
            .put_opts(&obj_path(key), PutPayload::from(data), opts)
            .await
        {
            Ok(_) => Ok(PutOutcome::Created),
            Err(e) if is_already_exists(&e) => Ok(PutOutcome::AlreadyExists),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores the file at `path` under `key` unless something is there already,
    /// streaming it (multipart upload for large files); visible only when complete.
    ///
    /// Large files go up as a multipart upload to a unique staging key, then
    /// are published with a write-once copy: object_store cannot finish a
    /// multipart upload with `If-None-Match: *`, but its S3 copy-if-not-exists
    /// (a one-part multipart copy inside the store) does, and the local store
    /// publishes with a hard link. Either way no reader sees a partial object
    /// and an existing object is never replaced. A crash can leave a staging
    /// object or an unfinished upload behind (expire them with a bucket
    /// lifecycle rule on `_sparta/staging/`).
    pub async fn put_once_file(&self, key: &str, path: &Path) -> Result<PutOutcome, StorageError> {
        let mut file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        if len < MULTIPART_THRESHOLD {
            let mut buf = Vec::with_capacity(len as usize);
            file.read_to_end(&mut buf).await?;
            if buf.len() as u64 != len {
                return Err(changed_while_read(path));
            }
            return self.put_once(key, Bytes::from(buf)).await;
        }
        // Skip the upload when the object is there already (the usual loser
        // of a race); the write-once publish below still decides for real.
        if self.head(key).await?.is_some() {
            return Ok(PutOutcome::AlreadyExists);
        }
        let staging = obj_path(&format!("{STAGING_PREFIX}/{}", unique_token()));
        let uploaded = self.upload_multipart(&staging, &mut file, len, path).await;
        let result = match uploaded {
            Ok(()) => {
                let opts = CopyOptions {
                    mode: CopyMode::Create,
                    ..CopyOptions::default()
                };
                match self.inner.copy_opts(&staging, &obj_path(key), opts).await {
                    Ok(()) => Ok(PutOutcome::Created),
                    Err(e) if is_already_exists(&e) => Ok(PutOutcome::AlreadyExists),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = self.inner.delete(&staging).await
            && !matches!(e, object_store::Error::NotFound { .. })
        {
            tracing::warn!(key = %staging, error = %e, "could not delete staging object");
        }
        result
    }

    /// Uploads `len` bytes of `file` to `dest` in parts; aborts on failure.
    async fn upload_multipart(
        &self,
        dest: &ObjPath,
        file: &mut tokio::fs::File,
        len: u64,
        path: &Path,
    ) -> Result<(), StorageError> {
        let upload = self.inner.put_multipart(dest).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; 1024 * 1024];
        let mut sent: u64 = 0;
        let outcome: Result<(), StorageError> = async {
            loop {
                // Bounds memory: at most PART_CONCURRENCY parts in flight.
                writer.wait_for_capacity(PART_CONCURRENCY).await?;
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                sent += n as u64;
                if sent > len {
                    break;
                }
                writer.write(&buf[..n]);
            }
            if sent != len {
                return Err(changed_while_read(path));
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => {
                writer.finish().await?;
                Ok(())
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %abort, "could not abort multipart upload");
                }
                Err(e)
            }
        }
    }

    /// Stores `data` under `key`, replacing what is there (mutable answers:
    /// list, latest, queries).
    pub async fn put_overwrite(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        self.inner
            .put(&obj_path(key), PutPayload::from(data))
            .await?;
        Ok(())
    }

    /// Deletes an object; absent is fine.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.inner.delete(&obj_path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Lists every key under `prefix` (recursive).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let prefix = obj_path(prefix);
        let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
        let metas: Vec<_> = self.inner.list(prefix.as_ref()).try_collect().await?;
        let mut keys: Vec<String> = metas.iter().map(|m| key_of(&m.location)).collect();
        keys.sort();
        Ok(keys)
    }

    /// Lists every object under `prefix` with its size and modification
    /// time, sorted by key (a catalog rebuild reads times from here).
    pub async fn list_with_meta(&self, prefix: &str) -> Result<Vec<ListedObject>, StorageError> {
        let prefix = obj_path(prefix);
        let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
        let mut out: Vec<ListedObject> = self
            .inner
            .list(prefix.as_ref())
            .map_ok(|m| ListedObject {
                key: key_of(&m.location),
                size: m.size,
                modified: SystemTime::from(m.last_modified),
            })
            .try_collect()
            .await?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Cheap round trip to the store, for `/readyz`.
    pub async fn check_ready(&self) -> Result<(), StorageError> {
        // A list (not a HEAD) because S3 answers a HEAD on a missing bucket
        // with a bare 404, indistinguishable from a missing key.
        self.inner
            .list_with_delimiter(Some(&obj_path("_sparta/ready")))
            .await?;
        Ok(())
    }

    /// Whether the store honours write-once puts (create-twice probe).
    pub async fn probe_conditional_put(&self) -> Result<bool, StorageError> {
        let path = obj_path(&format!("_sparta/probe/{}", unique_token()));
        let put = |b: &'static [u8]| {
            let opts = PutOptions::from(PutMode::Create);
            self.inner.put_opts(&path, PutPayload::from_static(b), opts)
        };
        let outcome = match put(b"1").await {
            Ok(_) => match put(b"2").await {
                Ok(_) => Ok(false),
                Err(e) if is_already_exists(&e) => Ok(true),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let _ = self.inner.delete(&path).await;
        match outcome {
            Ok(honoured) => Ok(honoured),
            // Stores without conditional puts refuse `PutMode::Create`.
            Err(
                object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. },
            ) => Ok(false),
            Err(e) => Err(e.into()),
        }
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
        lease::try_acquire(self.inner.as_ref(), key, holder, ttl).await
    }

    /// Releases a held lease (only if still ours).
    pub async fn release_lease(&self, lease: &Lease) -> Result<(), StorageError> {
        lease::release(self.inner.as_ref(), lease).await
    }
}

/// The object_store path of a storage key. Characters object_store does not
/// allow in a segment are percent-encoded, and `.`/`..` segments cannot
/// escape the store; [`key_of`] reverses it.
pub(crate) fn obj_path(key: &str) -> ObjPath {
    ObjPath::from(key)
}

/// The storage key of an object_store path (inverse of [`obj_path`]).
pub(crate) fn key_of(path: &ObjPath) -> String {
    path.parts()
        .map(|p| {
            percent_encoding::percent_decode_str(p.as_ref())
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a write-once write failed because the object exists.
pub(crate) fn is_already_exists(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }
    )
}

fn changed_while_read(path: &Path) -> StorageError {
    StorageError::Io(std::io::Error::other(format!(
        "{} changed size while being uploaded",
        path.display()
    )))
}

/// A token unique across processes and calls (staging and probe keys).
pub(crate) fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // RandomState is seeded randomly per process: tells apart replicas that
    // share a pid (containers) and start in the same nanosecond.
    let random = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.finish()
    };
    format!(
        "{nanos:x}-{:x}-{random:016x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
