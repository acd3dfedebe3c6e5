//! `sparta storage init`: prepares an S3 bucket for Sparta.

use anyhow::{Context, Result};
use clap::{ArgAction, Args};

/// Flags of `sparta storage init`: the store's own settings, same names.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// The store, s3://bucket/prefix.
    #[arg(long, env = "SPARTA_STORAGE")]
    pub storage: String,
    /// Create the bucket when it does not exist.
    #[arg(long)]
    pub create_bucket: bool,
    /// S3 endpoint URL [default: the AWS conventions, else AWS].
    #[arg(long, env = "SPARTA_S3_ENDPOINT")]
    pub s3_endpoint: Option<url::Url>,
    /// S3 region [default: from the AWS environment, else us-east-1].
    #[arg(long, env = "SPARTA_S3_REGION")]
    pub s3_region: Option<String>,
    /// Path-style requests.
    #[arg(long, env = "SPARTA_S3_PATH_STYLE", action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub s3_path_style: bool,
}

/// Runs `sparta storage init` and prints what the bucket holds afterwards.
pub async fn init(args: InitArgs) -> Result<()> {
    let opts = sparta_storage::S3Options {
        endpoint: args
            .s3_endpoint
            .map(|u| u.as_str().trim_end_matches('/').to_owned()),
        region: args.s3_region,
        path_style: args.s3_path_style,
        allow_http: true,
    };
    let report = sparta_storage::init::init(&args.storage, &opts, args.create_bucket)
        .await
        .with_context(|| format!("storage init {}", args.storage))?;
    if report.created_bucket {
        println!("created bucket {}", report.bucket);
    }
    println!(
        "bucket {} lifecycle rules: {}",
        report.bucket,
        report.rules.join(", ")
    );
    Ok(())
}
