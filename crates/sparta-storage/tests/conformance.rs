//! One conformance suite, run against memory, the local filesystem, a real
//! S3-compatible server (`scripts/s3-server.sh start`, then source its env
//! file) and Azurite for Azure Blob (`scripts/cloud-emulators.sh start`,
//! same; GCS has its own file, gcs_emulator.rs). A remote backend's tests
//! fail when its server's variables are missing; to leave them out, say so
//! to the runner (`cargo test -- --skip s3 --skip azure`), which then
//! reports them as filtered out rather than passed.

use std::fmt;
use std::io::Write;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use sparta_storage::{PutOutcome, S3Keys, S3Options, StorageError, Store};

mod common;
use common::{azure_env, s3_env, unique};

/// Which backend a test runs against.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Memory,
    Local,
    S3,
    Azure,
}

/// A store plus whatever must live as long as it (the temp dir).
struct Fixture {
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

/// With `SPARTA_TEST_S3_AWS_ENV=1` (scripts/run-tests.sh's second S3 run)
/// the store is opened with no Sparta S3 settings at all: endpoint, region
/// and keys come from `AWS_ENDPOINT_URL` and the other AWS variables only.
fn via_aws_env() -> bool {
    std::env::var("SPARTA_TEST_S3_AWS_ENV").as_deref() == Ok("1")
}

async fn open_s3(url: &str, opts: S3Options, keys: S3Keys) -> Store {
    if via_aws_env() {
        assert!(
            std::env::var("AWS_ENDPOINT_URL").is_ok(),
            "SPARTA_TEST_S3_AWS_ENV=1 needs AWS_ENDPOINT_URL"
        );
        return Store::open(url, &S3Options::default()).await.unwrap();
    }
    Store::open_with_keys(url, &opts, Some(keys)).await.unwrap()
}

async fn fixture(backend: Backend) -> Option<Fixture> {
    match backend {
        Backend::Memory => Some(Fixture {
            store: Store::open("memory://", &S3Options::default())
                .await
                .unwrap(),
            _dir: None,
        }),
        Backend::Local => {
            let dir = tempfile::tempdir().unwrap();
            // A folder that does not exist yet: open must create it.
            let url = format!("file://{}/store", dir.path().display());
            let store = Store::open(&url, &S3Options::default()).await.unwrap();
            Some(Fixture {
                store,
                _dir: Some(dir),
            })
        }
        Backend::S3 => {
            let (bucket, opts, keys) = s3_env();
            // Each test gets its own prefix, so tests never see each other.
            let url = format!("s3://{bucket}/conformance/{}", unique());
            let store = open_s3(&url, opts, keys).await;
            Some(Fixture { store, _dir: None })
        }
        Backend::Azure => {
            // Opened by URL alone: the emulator and its well-known account
            // come from AZURE_STORAGE_USE_EMULATOR and AZURITE_BLOB_STORAGE_URL,
            // as a user would configure them.
            let url = format!("az://{}/conformance/{}", azure_env(), unique());
            let store = Store::open(&url, &S3Options::default()).await.unwrap();
            assert!(store.is_shared());
            Some(Fixture { store, _dir: None })
        }
    }
}

/// Deterministic test data that differs at every offset modulo 251.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed)
        .collect::<Vec<u8>>()
}

async fn collect(store: &Store, key: &str, range: Option<Range<u64>>) -> (Range<u64>, Vec<u8>) {
    let s = store.get_stream(key, range).await.unwrap().unwrap();
    let r = s.range.clone();
    let chunks: Vec<Bytes> = s.body.try_collect().await.unwrap();
    (r, chunks.concat())
}

async fn check_put_get_head(store: &Store) {
    let key = "github.com/!azure/x/@v/v1.2.0.mod";
    assert_eq!(store.get(key).await.unwrap(), None);
    assert_eq!(store.head(key).await.unwrap(), None);
    let data = Bytes::from_static(b"module github.com/Azure/x\n");
    assert_eq!(
        store.put_once(key, data.clone()).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(store.get(key).await.unwrap(), Some(data.clone()));
    let info = store.head(key).await.unwrap().unwrap();
    assert_eq!(info.size, data.len() as u64);
    let (range, body) = collect(store, key, None).await;
    assert_eq!(range, 0..data.len() as u64);
    assert_eq!(body, data);
}

async fn check_range_get(store: &Store) {
    let key = "m/@v/v1.0.0.zip";
    let data = pattern(10_000, 7);
    store
        .put_once(key, Bytes::from(data.clone()))
        .await
        .unwrap();
    let (range, body) = collect(store, key, Some(100..200)).await;
    assert_eq!(range, 100..200);
    assert_eq!(body, &data[100..200]);
    // Past the end is cut at the end, like HTTP.
    let (range, body) = collect(store, key, Some(9_990..20_000)).await;
    assert_eq!(range, 9_990..10_000);
    assert_eq!(body, &data[9_990..]);
    // Starting at the end is not satisfiable.
    match store.get_stream(key, Some(10_000..10_010)).await {
        Err(StorageError::InvalidRange { size }) => assert_eq!(size, 10_000),
        Err(e) => panic!("expected InvalidRange, got {e}"),
        Ok(_) => panic!("expected InvalidRange, got a body"),
    }
    assert!(
        store
            .get_stream("m/@v/absent.zip", Some(0..10))
            .await
            .unwrap()
            .is_none()
    );
}

async fn check_already_exists(store: &Store) {
    let key = "m/@v/v1.0.0.info";
    let first = Bytes::from_static(b"first");
    assert_eq!(
        store.put_once(key, first.clone()).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(
        store
            .put_once(key, Bytes::from_static(b"second"))
            .await
            .unwrap(),
        PutOutcome::AlreadyExists
    );
    assert_eq!(store.get(key).await.unwrap(), Some(first));
}

async fn check_list_overwrite_delete(store: &Store) {
    for key in [
        "a/@v/list",
        "a/@v/v1.0.0.info",
        "a/b/@v/v2.0.0.mod",
        "ab/@v/v1.0.0.info",
        "_sparta/lease/x",
    ] {
        store
            .put_overwrite(key, Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
    assert_eq!(
        store.list("a").await.unwrap(),
        vec!["a/@v/list", "a/@v/v1.0.0.info", "a/b/@v/v2.0.0.mod"]
    );
    assert_eq!(store.list("a/b/").await.unwrap(), vec!["a/b/@v/v2.0.0.mod"]);
    assert_eq!(store.list("zzz").await.unwrap(), Vec::<String>::new());
    assert_eq!(store.list("").await.unwrap().len(), 5);

    store
        .put_overwrite("a/@v/list", Bytes::from_static(b"v1.0.0\nv1.1.0\n"))
        .await
        .unwrap();
    assert_eq!(
        store.get("a/@v/list").await.unwrap().unwrap(),
        Bytes::from_static(b"v1.0.0\nv1.1.0\n")
    );
    store.delete("a/@v/list").await.unwrap();
    assert_eq!(store.get("a/@v/list").await.unwrap(), None);
    // Deleting what is absent is fine.
    store.delete("a/@v/list").await.unwrap();
}

async fn check_put_once_file(store: &Store, len: usize) {
    let key = format!("big/@v/v1.0.{len}.zip");
    let data = pattern(len, 3);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&data).unwrap();
    file.flush().unwrap();
    assert_eq!(
        store.put_once_file(&key, file.path()).await.unwrap(),
        PutOutcome::Created
    );
    let other = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(other.path(), pattern(len, 9)).unwrap();
    assert_eq!(
        store.put_once_file(&key, other.path()).await.unwrap(),
        PutOutcome::AlreadyExists
    );
    assert_eq!(store.head(&key).await.unwrap().unwrap().size, len as u64);
    let (_, body) = collect(store, &key, None).await;
    assert!(body == data, "stored bytes differ from the file");
    // Nothing but the object itself is left (staging objects are removed).
    assert_eq!(store.list("").await.unwrap(), vec![key]);
}

async fn check_concurrent_put_once(store: &Store) {
    for round in 0..3 {
        let key = format!("race/@v/v1.0.{round}.zip");
        let tasks: Vec<_> = (0..10u8)
            .map(|i| {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    let data = Bytes::from(pattern(64 * 1024, i));
                    (i, store.put_once(&key, data).await.unwrap())
                })
            })
            .collect();
        let mut winners = vec![];
        for t in tasks {
            let (i, outcome) = t.await.unwrap();
            if outcome == PutOutcome::Created {
                winners.push(i);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let stored = store.get(&key).await.unwrap().unwrap();
        assert!(stored == pattern(64 * 1024, winners[0]), "winner's bytes");
    }
}

async fn check_leases(store: &Store) {
    let key = "_sparta/lease/m/@v/v1.0.0.zip";
    let ttl = Duration::from_secs(60);
    let a = store
        .try_acquire_lease(key, "replica-a", ttl)
        .await
        .unwrap()
        .expect("first acquire");
    assert_eq!(a.fence, 1);
    assert!(
        store
            .try_acquire_lease(key, "replica-b", ttl)
            .await
            .unwrap()
            .is_none(),
        "a live lease is refused"
    );
    // Released by its holder, it can be taken again.
    store.release_lease(&a).await.unwrap();
    let short = store
        .try_acquire_lease(key, "replica-a", Duration::from_millis(1))
        .await
        .unwrap()
        .expect("acquire after release");
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Expired: taken over with a higher fence.
    let b = store
        .try_acquire_lease(key, "replica-b", ttl)
        .await
        .unwrap()
        .expect("takeover of an expired lease");
    assert_eq!(b.fence, short.fence + 1);
    // The old holder's release must not remove the new holder's lease.
    store.release_lease(&short).await.unwrap();
    assert!(
        store
            .try_acquire_lease(key, "replica-c", ttl)
            .await
            .unwrap()
            .is_none(),
        "stale release removed a live lease"
    );
    store.release_lease(&b).await.unwrap();
    assert_eq!(store.get(key).await.unwrap(), None);
}

async fn check_concurrent_takeover(store: &Store, conditional_update: bool) {
    let key = "_sparta/lease/takeover";
    store
        .try_acquire_lease(key, "old", Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .try_acquire_lease(key, &format!("r{i}"), Duration::from_secs(60))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut held = vec![];
    for t in tasks {
        held.extend(t.await.unwrap());
    }
    if conditional_update {
        assert_eq!(held.len(), 1, "holders after takeover: {held:?}");
    } else {
        // An unconditional overwrite can let several in (documented race), never none.
        assert!(!held.is_empty(), "nobody took over the expired lease");
    }
    assert!(held.iter().all(|l| l.fence == 2), "fences: {held:?}");
}

async fn check_ready_and_probe(store: &Store) {
    store.check_ready().await.unwrap();
    assert!(store.probe_conditional_put().await.unwrap());
    // The probe cleans up after itself.
    assert_eq!(store.list("").await.unwrap(), Vec::<String>::new());
}

/// Fails every multipart part after the first `ok_parts`, like a store that
/// dies in the middle of an upload.
#[derive(Debug)]
struct FailingParts {
    inner: Arc<dyn ObjectStore>,
    ok_parts: usize,
}

impl fmt::Display for FailingParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FailingParts({})", self.inner)
    }
}

#[derive(Debug)]
struct FailingUpload {
    inner: Box<dyn MultipartUpload>,
    left: usize,
}

#[async_trait]
impl MultipartUpload for FailingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        if self.left == 0 {
            return async {
                Err(object_store::Error::Generic {
                    store: "test",
                    source: "injected part failure".into(),
                })
            }
            .boxed();
        }
        self.left -= 1;
        self.inner.put_part(data)
    }
    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.inner.complete().await
    }
    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectStore for FailingParts {
    async fn put_opts(
        &self,
        location: &ObjPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &ObjPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FailingUpload {
            inner,
            left: self.ok_parts,
        }))
    }
    async fn get_opts(
        &self,
        location: &ObjPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjPath>> {
        self.inner.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&ObjPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &ObjPath,
        to: &ObjPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Reaches the object_store under a `Store` opened the same way as the
/// fixture, so the fault can be injected beneath it.
async fn raw_store(backend: Backend) -> Option<(Arc<dyn ObjectStore>, Option<tempfile::TempDir>)> {
    match backend {
        Backend::Memory => Some((Arc::new(object_store::memory::InMemory::new()), None)),
        Backend::Local => {
            let dir = tempfile::tempdir().unwrap();
            let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
            Some((Arc::new(fs), Some(dir)))
        }
        Backend::S3 => {
            let (bucket, opts, keys) = s3_env();
            let store = object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_endpoint(opts.endpoint.unwrap())
                .with_region(opts.region.unwrap())
                .with_allow_http(true)
                .with_access_key_id(keys.access_key_id)
                .with_secret_access_key(keys.secret_access_key)
                .with_copy_if_not_exists(object_store::aws::S3CopyIfNotExists::Multipart)
                .build()
                .unwrap();
            let prefixed =
                object_store::prefix::PrefixStore::new(store, format!("faults/{}", unique()));
            Some((Arc::new(prefixed), None))
        }
        Backend::Azure => {
            let store = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(azure_env())
                .build()
                .unwrap();
            let prefixed =
                object_store::prefix::PrefixStore::new(store, format!("faults/{}", unique()));
            Some((Arc::new(prefixed), None))
        }
    }
}

async fn check_failed_upload_leaves_nothing(backend: Backend) {
    let Some((raw, _dir)) = raw_store(backend).await else {
        return;
    };
    let failing = Arc::new(FailingParts {
        inner: Arc::clone(&raw),
        ok_parts: 1,
    });
    let store = Store::from_object_store(failing, "failing");
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&pattern(20 * 1024 * 1024, 1)).unwrap();
    file.flush().unwrap();
    let key = "big/@v/v9.9.9.zip";
    assert!(store.put_once_file(key, file.path()).await.is_err());
    assert_eq!(store.head(key).await.unwrap(), None);
    assert_eq!(store.list("").await.unwrap(), Vec::<String>::new());
    // After the fault, a good upload still works.
    let good = Store::from_object_store(raw, "good");
    assert_eq!(
        good.put_once_file(key, file.path()).await.unwrap(),
        PutOutcome::Created
    );
}

async fn check_file_shrinking_during_upload(store: &Store) {
    // A file that loses bytes while uploading must not be stored short.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.zip");
    std::fs::write(&path, pattern(64 * 1024 * 1024, 5)).unwrap();
    let key = "shrink/@v/v1.0.0.zip";
    let upload = {
        let store = store.clone();
        let path = path.clone();
        tokio::spawn(async move { store.put_once_file(key, &path).await })
    };
    // Truncate once the upload has begun.
    tokio::time::sleep(Duration::from_millis(30)).await;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(8 * 1024 * 1024 + 1)
        .unwrap();
    let result = upload.await.unwrap();
    match result {
        // Finished before the truncation: then it must be whole.
        Ok(PutOutcome::Created) => {
            assert_eq!(
                store.head(key).await.unwrap().unwrap().size,
                64 * 1024 * 1024
            )
        }
        Ok(PutOutcome::AlreadyExists) => panic!("nothing was there"),
        Err(_) => assert_eq!(store.head(key).await.unwrap(), None),
    }
}

macro_rules! conformance {
    ($name:ident, $backend:expr) => {
        mod $name {
            use super::*;

            async fn store() -> Option<Fixture> {
                fixture($backend).await
            }

            #[tokio::test]
            async fn put_get_head() {
                let Some(f) = store().await else { return };
                check_put_get_head(&f.store).await;
            }
            #[tokio::test]
            async fn range_get() {
                let Some(f) = store().await else { return };
                check_range_get(&f.store).await;
            }
            #[tokio::test]
            async fn already_exists_keeps_original() {
                let Some(f) = store().await else { return };
                check_already_exists(&f.store).await;
            }
            #[tokio::test]
            async fn list_overwrite_delete() {
                let Some(f) = store().await else { return };
                check_list_overwrite_delete(&f.store).await;
            }
            #[tokio::test]
            async fn put_once_file_small() {
                let Some(f) = store().await else { return };
                check_put_once_file(&f.store, 100_000).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn put_once_file_large_multipart() {
                let Some(f) = store().await else { return };
                check_put_once_file(&f.store, 20 * 1024 * 1024 + 12_345).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_put_once_one_winner() {
                let Some(f) = store().await else { return };
                check_concurrent_put_once(&f.store).await;
            }
            #[tokio::test]
            async fn leases() {
                let Some(f) = store().await else { return };
                check_leases(&f.store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_lease_takeover() {
                let Some(f) = store().await else { return };
                let conditional_update = !matches!($backend, Backend::Local);
                check_concurrent_takeover(&f.store, conditional_update).await;
            }
            #[tokio::test]
            async fn ready_and_conditional_put_probe() {
                let Some(f) = store().await else { return };
                check_ready_and_probe(&f.store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn failed_upload_leaves_nothing() {
                check_failed_upload_leaves_nothing($backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn file_shrinking_during_upload() {
                let Some(f) = store().await else { return };
                check_file_shrinking_during_upload(&f.store).await;
            }
        }
    };
}

conformance!(memory, Backend::Memory);
conformance!(local, Backend::Local);
conformance!(s3, Backend::S3);
conformance!(azure, Backend::Azure);

/// Per-request latency against the S3 server (`cargo test -- --ignored latency`).
#[tokio::test]
#[ignore]
async fn s3_latency() {
    let Some(f) = fixture(Backend::S3).await else {
        return;
    };
    let store = &f.store;
    let n = 200;
    let data = Bytes::from(pattern(2048, 1));
    let mut put = vec![];
    let mut get = vec![];
    let mut head = vec![];
    for i in 0..n {
        let key = format!("lat/@v/v1.0.{i}.info");
        let t = Instant::now();
        store.put_once(&key, data.clone()).await.unwrap();
        put.push(t.elapsed());
        let t = Instant::now();
        store.get(&key).await.unwrap().unwrap();
        get.push(t.elapsed());
        let t = Instant::now();
        store.head(&key).await.unwrap().unwrap();
        head.push(t.elapsed());
    }
    for (name, mut v) in [("put_once", put), ("get", get), ("head", head)] {
        v.sort();
        let pct = |p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
        println!(
            "{name:9} 2 KiB x{n}: p50 {:?} p90 {:?} p99 {:?} max {:?}",
            pct(50),
            pct(90),
            pct(99),
            v[v.len() - 1]
        );
    }
}
