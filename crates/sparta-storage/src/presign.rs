//! Presigned GET URLs of stored objects (`--download-mode glob=presigned`),
//! through object_store's `Signer`: S3, GCS and Azure stores can sign,
//! a local directory or memory cannot.
//!
//! The URL names the object under the store's prefix, exactly as every
//! other call does, and carries its credentials in the query only: it is
//! handed to a client and must never reach a log line.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::prefix::PrefixStore;
/// A presigned URL (re-exported so callers need no `url` dependency).
pub use object_store::signer::Url;
use object_store::signer::{Method, Signer};

use crate::{StorageError, Store, obj_path};

/// Longest validity a presigned URL may ask for: AWS Signature V4 and
/// Google's V4 signatures both refuse more than 7 days.
pub const MAX_PRESIGN_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Whether a store opened from `url` can presign URLs: the bucket
/// schemes, whose stores [`Store::bucket`] makes (checkable before the
/// store is opened, as configuration checks want).
pub fn url_can_presign(url: &str) -> bool {
    let url = url.trim();
    ["s3://", "gs://", "az://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
}

impl Store {
    /// A shared bucket store under `prefix` (empty: the bucket's root),
    /// which is also its URL signer, so presigned URLs name the same keys.
    pub(crate) fn bucket<T>(store: T, prefix: &str, description: String) -> Store
    where
        T: ObjectStore + Signer,
    {
        let (inner, signer): (Arc<dyn ObjectStore>, Arc<dyn Signer>) = if prefix.is_empty() {
            let s = Arc::new(store);
            (s.clone(), s)
        } else {
            let s = Arc::new(PrefixStore::new(store, prefix));
            (s.clone(), s)
        };
        Store {
            inner,
            signer: Some(signer),
            description: description.into(),
            shared: true,
        }
    }

    /// Whether this store can presign URLs (a bucket, not a directory).
    pub fn can_presign(&self) -> bool {
        self.signer.is_some()
    }

    /// A URL that lets its holder GET the object at `key` for `ttl`
    /// without other credentials. Signing happens here, with the store's
    /// own credentials; the object need not exist.
    pub async fn presigned_get(&self, key: &str, ttl: Duration) -> Result<Url, StorageError> {
        let Some(signer) = &self.signer else {
            return Err(StorageError::Config(format!(
                "{} cannot presign URLs (only s3://, gs:// and az:// stores can)",
                self.describe()
            )));
        };
        if ttl.is_zero() || ttl > MAX_PRESIGN_TTL {
            return Err(StorageError::Config(format!(
                "a presigned URL must last between 1s and 7 days, not {}s",
                ttl.as_secs()
            )));
        }
        Ok(signer.signed_url(Method::GET, &obj_path(key), ttl).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{S3Keys, S3Options};

    const SECRET: &str = "presign-test-secret-value";

    async fn s3(url: &str) -> Store {
        let opts = S3Options {
            // Signing is local: nothing listens here, nothing is sent.
            endpoint: Some("http://127.0.0.1:9".into()),
            region: Some("us-east-1".into()),
            path_style: true,
            allow_http: true,
        };
        let keys = S3Keys {
            access_key_id: "AKIDPRESIGNTEST".into(),
            secret_access_key: SECRET.into(),
            session_token: None,
        };
        Store::open_with_keys(url, &opts, Some(keys))
            .await
            .expect("s3 store")
    }

    #[tokio::test]
    async fn s3_urls_name_the_prefixed_key_and_hide_the_secret() {
        let store = s3("s3://bucket/some/prefix/").await;
        assert!(store.can_presign());
        assert!(url_can_presign("s3://bucket/some/prefix/"));
        let key = "github.com/!azure/x/@v/v1.0.0.zip";
        let url = store
            .presigned_get(key, Duration::from_secs(90))
            .await
            .expect("signed");
        assert_eq!(url.host_str(), Some("127.0.0.1"));
        assert_eq!(
            url.path(),
            "/bucket/some/prefix/github.com/%21azure/x/%40v/v1.0.0.zip"
        );
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query.get("X-Amz-Expires").map(String::as_str), Some("90"));
        assert!(query["X-Amz-Credential"].starts_with("AKIDPRESIGNTEST/"));
        assert!(query.contains_key("X-Amz-Signature"));
        assert!(!url.as_str().contains(SECRET), "{url}");

        let root = s3("s3://bucket").await;
        let url = root
            .presigned_get(key, Duration::from_secs(90))
            .await
            .unwrap();
        assert_eq!(url.path(), "/bucket/github.com/%21azure/x/%40v/v1.0.0.zip");
    }

    #[tokio::test]
    async fn ttl_out_of_range_is_refused() {
        let store = s3("s3://bucket/p").await;
        for ttl in [Duration::ZERO, MAX_PRESIGN_TTL + Duration::from_secs(1)] {
            let err = store.presigned_get("k", ttl).await.unwrap_err();
            assert!(matches!(err, StorageError::Config(_)), "{err}");
        }
        assert!(store.presigned_get("k", MAX_PRESIGN_TTL).await.is_ok());
    }

    #[tokio::test]
    async fn directories_and_memory_cannot_presign() {
        let dir = tempfile::tempdir().unwrap();
        for url in ["memory://", dir.path().to_str().unwrap()] {
            let store = Store::open(url, &S3Options::default()).await.unwrap();
            assert!(!store.can_presign(), "{url}");
            assert!(!url_can_presign(url), "{url}");
            let err = store
                .presigned_get("k", Duration::from_secs(60))
                .await
                .unwrap_err();
            assert!(err.to_string().contains("cannot presign"), "{err}");
        }
    }
}
