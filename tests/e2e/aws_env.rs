//! S3 reached through the AWS conventions alone, as the AWS CLI finds it:
//! `AWS_ENDPOINT_URL`, the shared config file's `services` section and
//! profiles (`AWS_PROFILE`), with `--s3-endpoint` still winning. Against the
//! real S3-compatible server (`scripts/s3-server.sh start`, env file sourced).

use sparta_e2e::{Sparta, SpartaOptions, fixture, http_client, scratch_module, version_path};

/// Endpoint, bucket and keys of the test server. Without it the test fails:
/// leave these tests out explicitly (`cargo test -- --skip aws_env`) so the
/// runner reports them as not run, never as passed.
pub(crate) fn server() -> (String, String, String, String) {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let endpoint = var("SPARTA_TEST_S3_ENDPOINT").unwrap_or_else(|| {
        panic!(
            "SPARTA_TEST_S3_ENDPOINT is not set: run scripts/s3-server.sh start and source its env file \
             (or leave these tests out: cargo test -- --skip aws_env)"
        )
    });
    (
        endpoint,
        var("SPARTA_TEST_S3_BUCKET").expect("bucket"),
        var("SPARTA_TEST_S3_ACCESS_KEY").expect("access key"),
        var("SPARTA_TEST_S3_SECRET_KEY").expect("secret key"),
    )
}

/// A port nothing listens on: an endpoint there fails every request.
const DEAD: &str = "http://127.0.0.1:9";

/// Starts Sparta on `s3://bucket/<unique>` with `env` and `args`, fetches a
/// zip through it, restarts it (empty memory) and fetches again: the second
/// answer must come from the bucket, not upstream.
async fn round_trip(env: Vec<(String, String)>, args: &[&str]) {
    let fx = fixture();
    let (_, bucket, ..) = server();
    let module = scratch_module();
    // Unique per run: the bucket outlives test runs.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let storage = format!(
        "s3://{bucket}/e2e-aws/{}-{}-{nanos}",
        module.replace('/', "-"),
        std::process::id()
    );
    let mut all = vec!["--storage", storage.as_str()];
    all.extend_from_slice(args);
    let mut opts = SpartaOptions::fixture().args(&all);
    opts.env = env;
    let sparta = Sparta::start(opts).await;
    let path = version_path(&module, "v1.0.0", "zip");
    let get = |url: String| async move {
        let resp = http_client().get(url).send().await.expect("request");
        (
            resp.status().as_u16(),
            resp.bytes().await.expect("body").to_vec(),
        )
    };
    let (status, body) = get(format!("{}{path}", sparta.url)).await;
    assert_eq!(status, 200, "{}", sparta.log());
    assert_eq!(body, fx.truth(&path).await);
    let ready = get(format!("{}/readyz", sparta.url)).await.0;
    assert_eq!(ready, 200, "{}", sparta.log());
    let sparta = sparta.restart(&all).await;
    let (status, again) = get(format!("{}{path}", sparta.url)).await;
    assert_eq!((status, again), (200, body));
    assert_eq!(
        fx.count(&path).await,
        1,
        "the restarted replica fetched again"
    );
}

fn pairs(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_endpoint_url_alone() {
    let (endpoint, _, key, secret) = server();
    let env = pairs(&[
        ("AWS_ENDPOINT_URL", &endpoint),
        ("AWS_ACCESS_KEY_ID", &key),
        ("AWS_SECRET_ACCESS_KEY", &secret),
        ("AWS_REGION", "us-east-1"),
    ]);
    round_trip(env, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_specific_variable_beats_the_global_one() {
    let (endpoint, _, key, secret) = server();
    let env = pairs(&[
        ("AWS_ENDPOINT_URL", DEAD),
        ("AWS_ENDPOINT_URL_S3", &endpoint),
        ("AWS_ACCESS_KEY_ID", &key),
        ("AWS_SECRET_ACCESS_KEY", &secret),
        ("AWS_REGION", "us-east-1"),
    ]);
    round_trip(env, &[]).await;
}

/// A profile from the shared config and credentials files: its `services`
/// section names the endpoint (over the profile's own dead `endpoint_url`),
/// its credentials come through the AWS chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_with_services_section() {
    let (endpoint, _, key, secret) = server();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &config,
        format!(
            "[profile sparta-e2e]\nregion = us-east-1\nendpoint_url = {DEAD}\nservices = local-s3\n\n\
             [services local-s3]\ns3 =\n  endpoint_url = {endpoint}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        &credentials,
        format!("[sparta-e2e]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    let env = pairs(&[
        ("AWS_PROFILE", "sparta-e2e"),
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    round_trip(env, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_endpoint_flag_still_wins() {
    let (endpoint, _, key, secret) = server();
    let env = pairs(&[
        ("AWS_ENDPOINT_URL", DEAD),
        ("AWS_ENDPOINT_URL_S3", DEAD),
        ("AWS_ACCESS_KEY_ID", &key),
        ("AWS_SECRET_ACCESS_KEY", &secret),
        ("AWS_REGION", "us-east-1"),
    ]);
    round_trip(
        env,
        &[
            "--s3-endpoint",
            &endpoint,
            "--s3-path-style",
            "--s3-allow-http",
        ],
    )
    .await;
}

/// The dead endpoint really is dead: with it alone nothing is served, so the
/// tests above pass because of the endpoint each one expects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_aws_endpoint_fails() {
    let (_, bucket, key, secret) = server();
    let mut opts =
        SpartaOptions::fixture().args(&["--storage", &format!("s3://{bucket}/e2e-dead")]);
    opts.env = pairs(&[
        ("AWS_ENDPOINT_URL", DEAD),
        ("AWS_ACCESS_KEY_ID", &key),
        ("AWS_SECRET_ACCESS_KEY", &secret),
        ("AWS_REGION", "us-east-1"),
    ]);
    let sparta = Sparta::start(opts).await;
    let resp = http_client()
        .get(format!("{}/readyz", sparta.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
}
