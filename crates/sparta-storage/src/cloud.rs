//! Google Cloud Storage and Azure Blob stores, configured the way their own
//! tools are: object_store's `GOOGLE_*` and `AZURE_*` variables and default
//! credential chains, plus each ecosystem's emulator convention.

use std::sync::Arc;
use std::time::Duration;

use object_store::ClientConfigKey;
use object_store::azure::{AzureConfigKey, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::gcp::{
    GcpCredential, GoogleCloudStorage, GoogleCloudStorageBuilder, GoogleConfigKey,
};
use object_store::{RetryConfig, StaticCredentialProvider};

use crate::StorageError;

/// The emulator variable Google's client libraries honour (fake-gcs-server
/// documents it too): `host:port` or a URL, which takes no credentials.
const GCS_EMULATOR_ENV: &str = "STORAGE_EMULATOR_HOST";

/// Retries bounded as for S3: callers and `/readyz` learn of an outage in
/// seconds.
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(10),
        ..RetryConfig::default()
    }
}

/// A generous whole-request timeout (a body transfer of a large zip) and a
/// short connect timeout, unless the environment sets them.
fn timeouts<B>(
    mut builder: B,
    get: impl Fn(&B, ClientConfigKey) -> Option<String>,
    set: impl Fn(B, ClientConfigKey, &str) -> B,
) -> B {
    if get(&builder, ClientConfigKey::Timeout).is_none() {
        builder = set(builder, ClientConfigKey::Timeout, "300s");
    }
    if get(&builder, ClientConfigKey::ConnectTimeout).is_none() {
        builder = set(builder, ClientConfigKey::ConnectTimeout, "3s");
    }
    builder
}

/// Builds the GCS store for `bucket`; the second value names the emulator
/// endpoint when one is used.
pub(crate) fn build_gcs(
    bucket: &str,
) -> Result<(GoogleCloudStorage, Option<String>), StorageError> {
    let mut builder = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry());
    builder = timeouts(
        builder,
        |b, k| b.get_config_value(&GoogleConfigKey::Client(k)),
        |b, k, v| b.with_config(GoogleConfigKey::Client(k), v),
    );
    let emulator = std::env::var(GCS_EMULATOR_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|host| {
            let host = host.trim().trim_end_matches('/');
            if host.contains("://") {
                host.to_owned()
            } else {
                format!("http://{host}")
            }
        });
    if let Some(url) = &emulator {
        // A static empty token: no request (a delete asks for one even
        // unsigned) may fall through to the cloud metadata server.
        let token = GcpCredential {
            bearer: String::new(),
        };
        builder = builder
            .with_base_url(url)
            .with_skip_signature(true)
            .with_credentials(Arc::new(StaticCredentialProvider::new(token)))
            .with_config(GoogleConfigKey::Client(ClientConfigKey::AllowHttp), "true");
    }
    let store = builder
        .build()
        .map_err(|e| StorageError::Config(format!("gcs: {e}")))?;
    Ok((store, emulator))
}

/// Builds the Azure Blob store for `container`; the second value names the
/// emulator (Azurite) endpoint when one is used.
pub(crate) fn build_azure(
    container: &str,
) -> Result<(MicrosoftAzure, Option<String>), StorageError> {
    let mut builder = MicrosoftAzureBuilder::from_env()
        .with_container_name(container)
        .with_retry(retry());
    builder = timeouts(
        builder,
        |b, k| b.get_config_value(&AzureConfigKey::Client(k)),
        |b, k, v| b.with_config(AzureConfigKey::Client(k), v),
    );
    let emulator = builder
        .get_config_value(&AzureConfigKey::UseEmulator)
        .filter(|v| matches!(v.as_str(), "true" | "1"))
        .map(|_| {
            std::env::var("AZURITE_BLOB_STORAGE_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:10000".into())
        });
    let store = builder
        .build()
        .map_err(|e| StorageError::Config(format!("azure: {e}")))?;
    Ok((store, emulator))
}
