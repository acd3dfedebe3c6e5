//! `sparta storage init`: the bucket and the lifecycle rule that cleans up
//! after interrupted uploads (aws-sdk-s3, configured like the store).

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
};

use crate::{S3Options, StorageError};

/// The IDs of the rules Sparta owns; other rules in the bucket are kept.
pub const ABORT_RULE: &str = "sparta-abort-incomplete-uploads";
pub const STAGING_RULE: &str = "sparta-expire-staging";

/// What `init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    pub bucket: String,
    pub created_bucket: bool,
    /// The rule IDs in the bucket's lifecycle configuration afterwards, as
    /// read back from the server.
    pub rules: Vec<String>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(format!("{what}: {e}"))
}

/// Creates the bucket of `url` (`s3://bucket/prefix`) when `create` is set
/// and it is missing, then sets Sparta's two lifecycle rules: abort
/// multipart uploads left incomplete for a day, expire staging objects
/// after a day.
pub async fn init(url: &str, opts: &S3Options, create: bool) -> Result<InitReport, StorageError> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| {
        StorageError::Config(format!("storage init needs an s3:// store, not {url}"))
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(StorageError::Config(format!("no bucket in {url}")));
    }
    let prefix = prefix.trim_matches('/');
    let client = client(opts).await;

    let exists = client.head_bucket().bucket(bucket).send().await.is_ok();
    let mut created_bucket = false;
    if !exists {
        if !create {
            return Err(StorageError::Config(format!(
                "bucket {bucket} does not exist (or is not readable); pass --create-bucket to create it"
            )));
        }
        client
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| unavailable("create bucket", aws_sdk_s3::error::DisplayErrorContext(e)))?;
        created_bucket = true;
    }

    let scope = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let ours = [
        LifecycleRule::builder()
            .id(ABORT_RULE)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix(&scope).build())
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(1)
                    .build(),
            )
            .build(),
        LifecycleRule::builder()
            .id(STAGING_RULE)
            .status(ExpirationStatus::Enabled)
            .filter(
                LifecycleRuleFilter::builder()
                    .prefix(format!("{scope}_sparta/staging/"))
                    .build(),
            )
            .expiration(LifecycleExpiration::builder().days(1).build())
            .build(),
    ]
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .map_err(|e| StorageError::Config(format!("lifecycle rule: {e}")))?;

    // A put replaces the whole configuration: keep the rules of others.
    let mut rules: Vec<LifecycleRule> = match client
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => out.rules.unwrap_or_default(),
        Err(e) if has_code(&e, "NoSuchLifecycleConfiguration") => Vec::new(),
        Err(e) if has_code(&e, "NotImplemented") => {
            let created = if created_bucket { " (created)" } else { "" };
            return Err(StorageError::Config(format!(
                "bucket {bucket}{created}: this S3 server does not implement bucket lifecycle rules; set them by other means"
            )));
        }
        Err(e) => {
            return Err(unavailable(
                "read lifecycle",
                aws_sdk_s3::error::DisplayErrorContext(e),
            ));
        }
    };
    rules.retain(|r| !matches!(r.id(), Some(ABORT_RULE | STAGING_RULE)));
    rules.extend(ours);
    let config = BucketLifecycleConfiguration::builder()
        .set_rules(Some(rules))
        .build()
        .map_err(|e| StorageError::Config(format!("lifecycle configuration: {e}")))?;
    client
        .put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(config)
        .send()
        .await
        .map_err(|e| unavailable("set lifecycle", aws_sdk_s3::error::DisplayErrorContext(e)))?;

    let after = client
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| {
            unavailable(
                "read lifecycle back",
                aws_sdk_s3::error::DisplayErrorContext(e),
            )
        })?;
    let rules = after
        .rules()
        .iter()
        .filter_map(|r| r.id().map(str::to_owned))
        .collect();
    Ok(InitReport {
        bucket: bucket.to_owned(),
        created_bucket,
        rules,
    })
}

fn has_code<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>, code: &str) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == code)
}

/// An S3 client with the same endpoint, region, addressing and credentials
/// the store would use.
async fn client(opts: &S3Options) -> aws_sdk_s3::Client {
    let region = crate::aws_env::configured_region(opts.region.as_deref())
        .await
        .unwrap_or_else(|| crate::s3::DEFAULT_REGION.to_owned());
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .load()
        .await;
    let endpoint = crate::aws_env::endpoint(opts.endpoint.as_deref(), &sdk);
    let path_style = opts.path_style
        || endpoint
            .as_ref()
            .is_some_and(|e| crate::aws_env::is_ip_endpoint(&e.url));
    let mut config = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(path_style);
    if let Some(e) = endpoint {
        config = config.endpoint_url(e.url);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}
