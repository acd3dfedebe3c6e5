//! Presigned GET URLs against real servers: the S3-compatible server
//! (`scripts/s3-server.sh start`, env file sourced) and Azurite
//! (`scripts/cloud-emulators.sh start`, same). A URL fetched with no other
//! credential serves the object stored under the store's prefix, and stops
//! working once it expires. A missing server fails its test; leave it out
//! explicitly (`cargo test -- --skip s3 --skip azure`).

use std::time::Duration;

use bytes::Bytes;
use sparta_storage::{S3Options, Store};

mod common;
use common::{azure_env, s3_env, unique};

async fn s3_store() -> Store {
    let (bucket, opts, keys) = s3_env();
    let url = format!("s3://{bucket}/presign/{}", unique());
    Store::open_with_keys(&url, &opts, Some(keys))
        .await
        .expect("s3 store")
}

async fn azure_store() -> Store {
    let container = azure_env();
    let url = format!("az://{container}/presign/{}", unique());
    Store::open(&url, &S3Options::default())
        .await
        .expect("azure store")
}

/// What a client does with the URL: a plain GET, no credentials of its own.
async fn fetch(url: &str) -> (u16, Vec<u8>) {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .expect("GET the presigned URL");
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap_or_default().to_vec())
}

async fn check_presigned_get(store: &Store) {
    assert!(store.can_presign());
    // A key as the proxy stores it: `!`-escaped upper case, `@v`.
    let key = "example.com/!upper/x/@v/v1.0.0+incompatible.zip";
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    store
        .put_once(key, Bytes::from(data.clone()))
        .await
        .unwrap();
    store
        .put_once(
            "example.com/!upper/x/@v/v1.1.0.zip",
            Bytes::from_static(b"other"),
        )
        .await
        .unwrap();

    let url = store
        .presigned_get(key, Duration::from_secs(60))
        .await
        .unwrap();
    let (status, body) = fetch(url.as_str()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(body == data, "the URL served other bytes");

    // The signature covers the path: the URL opens no other object.
    let other = url.as_str().replace("v1.0.0+incompatible", "v1.1.0");
    let other = other.replace("v1.0.0%2Bincompatible", "v1.1.0");
    assert_ne!(other, url.as_str());
    assert_eq!(fetch(&other).await.0, 403);

    // Once expired, it opens nothing.
    let short = store
        .presigned_get(key, Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, _) = fetch(short.as_str()).await;
    assert_eq!(status, 403, "an expired URL still worked");
}

#[tokio::test]
async fn s3_presigned_get() {
    check_presigned_get(&s3_store().await).await;
}

#[tokio::test]
async fn azure_presigned_get() {
    check_presigned_get(&azure_store().await).await;
}
