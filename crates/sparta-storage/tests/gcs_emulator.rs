//! `gs://` stores against fake-gcs-server (`scripts/cloud-emulators.sh
//! start`, then source its env file), configured by `STORAGE_EMULATOR_HOST`
//! alone, as Google's own client libraries are.
//!
//! object_store speaks the GCS XML API (the S3-like one) for objects.
//! fake-gcs-server implements its reads, lists and deletes but not its
//! writes: a plain `PUT /bucket/object` is refused with 400 (it wants the
//! JSON API's `uploadType`), and it has no XML multipart uploads, copies or
//! `x-goog-if-generation-match` preconditions. So these tests check what the
//! emulator can show: Sparta reads, ranges, lists and deletes objects that
//! another client wrote (seeded here through the emulator's JSON API), and a
//! write the store refuses is an error, never reported as stored, and makes
//! the write-once probe fail, which is what makes Sparta fall back to
//! per-replica fetch coordination at start-up. The write path (write-once
//! puts, multipart publish, leases) is covered on GCS itself only; see the
//! storage section of the README.
//!
//! Fails when `STORAGE_EMULATOR_HOST` is missing; leave it out explicitly
//! with `cargo test -- --skip gcs`.

use bytes::Bytes;
use futures::TryStreamExt;
use sparta_storage::{S3Options, Store};

mod common;
use common::{unique, var};

/// The emulator's URL and bucket; panics when they are missing.
fn gcs_env() -> (String, String) {
    let Some(host) = var("STORAGE_EMULATOR_HOST") else {
        panic!(
            "STORAGE_EMULATOR_HOST is not set: run scripts/cloud-emulators.sh start and source \
             its env file (or leave these tests out explicitly: cargo test -- --skip gcs)"
        );
    };
    let bucket = var("SPARTA_TEST_GCS_BUCKET").expect("SPARTA_TEST_GCS_BUCKET");
    (host.trim_end_matches('/').to_owned(), bucket)
}

/// A `gs://` store under a fresh prefix, and that prefix.
async fn open() -> (Store, String) {
    let (_, bucket) = gcs_env();
    let prefix = format!("conformance/{}", unique());
    let store = Store::open(&format!("gs://{bucket}/{prefix}"), &S3Options::default())
        .await
        .unwrap();
    assert!(store.is_shared());
    assert!(
        store.describe().contains("emulator"),
        "{}",
        store.describe()
    );
    (store, prefix)
}

/// Writes an object the way another GCS client would (JSON API upload).
async fn seed(name: &str, body: &[u8]) {
    let (host, bucket) = gcs_env();
    let url = url::Url::parse_with_params(
        &format!("{host}/upload/storage/v1/b/{bucket}/o"),
        &[("uploadType", "media"), ("name", name)],
    )
    .unwrap();
    let resp = reqwest::Client::new()
        .post(url)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "seeding {name}: {}",
        resp.status()
    );
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn gcs_reads_ranges_lists_and_deletes() {
    let (store, prefix) = open().await;
    let zip = "github.com/!azure/x/@v/v1.2.0.zip";
    let data = pattern(10_000);
    seed(&format!("{prefix}/{zip}"), &data).await;
    seed(
        &format!("{prefix}/github.com/!azure/x/@v/v1.2.0.mod"),
        b"module x\n",
    )
    .await;
    seed(&format!("{prefix}/other/@v/list"), b"v1.0.0\n").await;

    assert_eq!(
        store.get(zip).await.unwrap(),
        Some(Bytes::from(data.clone()))
    );
    assert_eq!(store.head(zip).await.unwrap().unwrap().size, 10_000);
    let s = store
        .get_stream(zip, Some(100..200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.range, 100..200);
    let body: Vec<Bytes> = s.body.try_collect().await.unwrap();
    assert_eq!(body.concat(), &data[100..200]);

    assert_eq!(store.get("absent/@v/v1.0.0.mod").await.unwrap(), None);
    assert_eq!(store.head("absent/@v/v1.0.0.mod").await.unwrap(), None);
    assert!(
        store
            .get_stream("absent/@v/v1.0.0.zip", None)
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(
        store.list("github.com").await.unwrap(),
        vec![
            "github.com/!azure/x/@v/v1.2.0.mod",
            "github.com/!azure/x/@v/v1.2.0.zip"
        ]
    );
    assert_eq!(store.list("").await.unwrap().len(), 3);
    store.check_ready().await.unwrap();

    store.delete("other/@v/list").await.unwrap();
    assert_eq!(store.get("other/@v/list").await.unwrap(), None);
    store.delete("other/@v/list").await.unwrap();
}

#[tokio::test]
async fn gcs_refused_writes_are_errors_and_the_probe_fails() {
    let (store, _) = open().await;
    let key = "m/@v/v1.0.0.info";
    // Refused by the emulator: an error, never "stored" and never half there.
    assert!(
        store
            .put_once(key, Bytes::from_static(b"{}"))
            .await
            .is_err()
    );
    assert!(
        store
            .put_overwrite(key, Bytes::from_static(b"{}"))
            .await
            .is_err()
    );
    assert_eq!(store.head(key).await.unwrap(), None);
    // The start-up probe fails, so Sparta coordinates fetches per replica
    // (see `serve` in crates/sparta/src/main.rs) instead of taking leases.
    assert!(store.probe_conditional_put().await.is_err());
}
