//! What the storage suites share: unique prefixes and the servers' settings
//! from the env files of `scripts/s3-server.sh start` and
//! `scripts/cloud-emulators.sh start`. A missing server panics: a test of a
//! backend never passes without it.

#![allow(dead_code)] // not every suite uses every helper

use std::sync::atomic::{AtomicUsize, Ordering};

use sparta_storage::{S3Keys, S3Options};

/// A set, non-empty environment variable.
pub fn var(n: &str) -> Option<String> {
    std::env::var(n).ok().filter(|v| !v.is_empty())
}

/// A name no other test run or test uses.
pub fn unique() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{nanos:x}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The S3-compatible server's bucket, options and keys.
pub fn s3_env() -> (String, S3Options, S3Keys) {
    let Some(endpoint) = var("SPARTA_TEST_S3_ENDPOINT") else {
        panic!(
            "SPARTA_TEST_S3_ENDPOINT is not set: run scripts/s3-server.sh start and source \
             its env file (or leave the S3 tests out explicitly: cargo test -- --skip s3)"
        );
    };
    let bucket = var("SPARTA_TEST_S3_BUCKET").expect("SPARTA_TEST_S3_BUCKET");
    let keys = S3Keys {
        access_key_id: var("SPARTA_TEST_S3_ACCESS_KEY").expect("SPARTA_TEST_S3_ACCESS_KEY"),
        secret_access_key: var("SPARTA_TEST_S3_SECRET_KEY").expect("SPARTA_TEST_S3_SECRET_KEY"),
        session_token: None,
    };
    let opts = S3Options {
        endpoint: Some(endpoint),
        region: var("SPARTA_TEST_S3_REGION").or(Some("us-east-1".into())),
        path_style: true,
        allow_http: true,
    };
    (bucket, opts, keys)
}

/// Azurite's container.
pub fn azure_env() -> String {
    if var("AZURITE_BLOB_STORAGE_URL").is_none() {
        panic!(
            "AZURITE_BLOB_STORAGE_URL is not set: run scripts/cloud-emulators.sh start and source \
             its env file (or leave these tests out explicitly: cargo test -- --skip azure)"
        );
    }
    var("SPARTA_TEST_AZURE_CONTAINER").expect("SPARTA_TEST_AZURE_CONTAINER")
}
