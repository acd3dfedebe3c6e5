//! `sparta storage init` against the real S3-compatible server: creates the
//! bucket when asked and sets Sparta's lifecycle rules, read back from it.

use std::process::{Command, Output};

use sparta_e2e::sparta_bin;

use crate::aws_env::server;

fn init(bucket: &str, extra: &[&str]) -> Output {
    let (endpoint, _, key, secret) = server();
    let mut cmd = Command::new(sparta_bin());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("SPARTA_") || k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.args([
        "storage",
        "init",
        "--storage",
        &format!("s3://{bucket}/proxy"),
    ])
    .args(extra)
    .env("AWS_ENDPOINT_URL", endpoint)
    .env("AWS_ACCESS_KEY_ID", key)
    .env("AWS_SECRET_ACCESS_KEY", secret)
    .env("AWS_REGION", "us-east-1")
    .output()
    .expect("run sparta storage init")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn storage_init_creates_the_bucket_and_reports_missing_lifecycle_support() {
    // Fails without the S3 server rather than passing unrun.
    server();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let bucket = format!("sparta-init-{}-{nanos}", std::process::id());

    let missing = init(&bucket, &[]);
    assert!(!missing.status.success(), "{}", text(&missing));
    assert!(
        text(&missing).contains("--create-bucket"),
        "{}",
        text(&missing)
    );

    // The test server (versitygw) creates buckets but does not implement
    // lifecycle rules: init must create the bucket and then say exactly that.
    let first = init(&bucket, &["--create-bucket"]);
    let out = text(&first);
    assert!(!first.status.success(), "{out}");
    assert!(
        out.contains(&format!(
            "bucket {bucket} (created): this S3 server does not implement bucket lifecycle rules"
        )),
        "{out}"
    );
    // Now the bucket exists: no --create-bucket needed, nothing created.
    let second = init(&bucket, &[]);
    let out = text(&second);
    assert!(
        !out.contains("(created)") && !out.contains("--create-bucket"),
        "{out}"
    );
    assert!(
        out.contains("does not implement bucket lifecycle rules"),
        "{out}"
    );
}
