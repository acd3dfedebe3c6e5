//! Building the S3 client: endpoint, addressing style, conditional writes and
//! credentials from the AWS default chain.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::aws::{
    AmazonS3, AmazonS3Builder, AwsCredential, S3ConditionalPut, S3CopyIfNotExists,
};
use object_store::{ClientOptions, CredentialProvider, RetryConfig};
use tokio::sync::Mutex;

use crate::{S3Keys, S3Options, StorageError};

/// Region used when neither the settings nor the AWS chain name one.
pub(crate) const DEFAULT_REGION: &str = "us-east-1";

/// Credentials this close to expiry are refreshed before use.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Builds the S3 store for `bucket` with `opts`.
pub(crate) async fn build(
    bucket: &str,
    opts: &S3Options,
    keys: Option<S3Keys>,
) -> Result<AmazonS3, StorageError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let keys = keys.or_else(|| {
        let (id, secret) = env("AWS_ACCESS_KEY_ID").zip(env("AWS_SECRET_ACCESS_KEY"))?;
        Some(S3Keys {
            access_key_id: id,
            secret_access_key: secret,
            session_token: env("AWS_SESSION_TOKEN"),
        })
    });

    // The region the settings, environment or profile name; the loader
    // then skips instance metadata, which only the credential chain needs.
    let mut region = crate::aws_env::configured_region(opts.region.as_deref()).await;
    if keys.is_some() && region.is_none() {
        region = Some(DEFAULT_REGION.to_owned());
    }
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = &region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    let sdk = if keys.is_some() {
        // Static keys: only the endpoint is left to find, and it comes from
        // the environment and profile files alone.
        loader.no_credentials().load().await
    } else {
        loader.load().await
    };
    let endpoint = crate::aws_env::endpoint(opts.endpoint.as_deref(), &sdk);
    // An endpoint found through the AWS conventions is used as the AWS CLI
    // uses it: plain http allowed when it says http, path style for an IP.
    let from_aws = endpoint.as_ref().is_some_and(|e| e.source == "aws");
    let allow_http = opts.allow_http
        || (from_aws
            && endpoint
                .as_ref()
                .is_some_and(|e| e.url.starts_with("http://")));
    let path_style = opts.path_style
        || endpoint
            .as_ref()
            .is_some_and(|e| crate::aws_env::is_ip_endpoint(&e.url));

    // Bounded retries: when the store is down, callers (and `/readyz`) must
    // learn it in seconds, not after object_store's default three minutes.
    let retry = RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(10),
        ..RetryConfig::default()
    };
    // The request timeout covers a whole body transfer, so it is generous;
    // connecting to a dead endpoint fails fast instead.
    let client = ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(300));

    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_virtual_hosted_style_request(!path_style)
        .with_allow_http(allow_http)
        // `PutMode::Create` sends `If-None-Match: *`.
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        // Write-once copies finish a multipart copy with `If-None-Match: *`;
        // large files are published this way (see `Store::put_once_file`).
        .with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
        .with_retry(retry)
        .with_client_options(client);
    // No checksum algorithm is set on purpose: object_store then signs the
    // plain SHA-256 of each body and never sends aws-chunked bodies or the
    // extra checksum headers that COS and some MinIO versions refuse.

    if let Some(endpoint) = &endpoint {
        tracing::info!(endpoint = %endpoint.url, source = endpoint.source, "s3 endpoint");
        builder = builder.with_endpoint(endpoint.url.trim_end_matches('/'));
    }

    if let Some(keys) = keys {
        builder = builder
            .with_access_key_id(keys.access_key_id)
            .with_secret_access_key(keys.secret_access_key);
        if let Some(token) = keys.session_token {
            builder = builder.with_token(token);
        }
    } else {
        if region.is_none() {
            region = sdk.region().map(|r| r.to_string());
        }
        let provider = sdk.credentials_provider().ok_or_else(|| {
            StorageError::Config("no AWS credentials provider could be configured".into())
        })?;
        tracing::info!("s3 credentials from the aws default chain");
        builder = builder.with_credentials(Arc::new(AwsChainCredentials::new(provider)));
    }

    builder = builder.with_region(region.as_deref().unwrap_or(DEFAULT_REGION));
    builder
        .build()
        .map_err(|e| StorageError::Config(format!("s3: {e}")))
}

/// Hands credentials from the AWS default chain (profile, web identity,
/// ECS/EKS pod identity, IMDS) to object_store, caching them until shortly
/// before they expire.
#[derive(Debug)]
struct AwsChainCredentials {
    provider: SharedCredentialsProvider,
    cached: Mutex<Option<Cached>>,
}

/// A credential and when it stops being valid (`None`: never).
struct Cached {
    credential: Arc<AwsCredential>,
    expires: Option<SystemTime>,
}

// Hand-written so that the secret in `AwsCredential` is never formatted.
impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl AwsChainCredentials {
    fn new(provider: SharedCredentialsProvider) -> Self {
        Self {
            provider,
            cached: Mutex::new(None),
        }
    }
}

#[async_trait]
impl CredentialProvider for AwsChainCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        // One refresh at a time; concurrent callers wait and reuse its result.
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let fresh = match c.expires {
                None => true,
                Some(t) => t > SystemTime::now() + REFRESH_MARGIN,
            };
            if fresh {
                return Ok(Arc::clone(&c.credential));
            }
        }
        let creds = self.provider.provide_credentials().await.map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: format!("aws credential chain: {e}").into(),
            }
        })?;
        let credential = Arc::new(AwsCredential {
            key_id: creds.access_key_id().to_string(),
            secret_key: creds.secret_access_key().to_string(),
            token: creds.session_token().map(str::to_string),
        });
        tracing::debug!(expires = ?creds.expiry(), "refreshed s3 credentials");
        *cached = Some(Cached {
            credential: Arc::clone(&credential),
            expires: creds.expiry(),
        });
        Ok(credential)
    }
}
