//! `--download-mode glob=presigned` against the real S3-compatible server
//! (`scripts/s3-server.sh start`, env file sourced): the go command gets a
//! 302 for each zip and downloads it from the bucket, so Sparta's zip route
//! carries no bytes; `.info`, `.mod` and lists are served as usual; a store
//! that cannot presign is refused at start-up.

use std::collections::HashMap;
use std::time::Duration;

use sparta_e2e::{
    Fixture, GoEnv, Sparta, SpartaOptions, metric_value as metric, sparta_bin, version_path,
    wait_bounded,
};

/// Follows no redirect: the test looks at each 302 itself.
fn client() -> reqwest::Client {
    sparta_e2e::no_redirect_client()
}

const ZIP_BYTES: &str = r#"sparta_http_response_bytes_total{route="zip"}"#;
const ZIP_GET_200: &str = r#"sparta_http_requests_total{method="GET",route="zip",status="200"}"#;
const ZIP_GET_302: &str = r#"sparta_http_requests_total{method="GET",route="zip",status="302"}"#;
const PRESIGNED: &str = r#"sparta_download_redirects_total{mode="presigned"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zips_come_from_the_bucket_through_presigned_urls() {
    let (endpoint, bucket, access, secret) = crate::aws_env::server();
    // A fixture of our own: its request counts are this test's alone.
    let fx = Fixture::start(&["--large-size", "1MiB"]);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("e2e-presign/{}-{nanos}", std::process::id());
    let storage = format!("s3://{bucket}/{prefix}");
    let s3_endpoint = format!("--s3-endpoint={endpoint}");
    let args = [
        "--storage",
        storage.as_str(),
        s3_endpoint.as_str(),
        "--s3-path-style",
        "--s3-allow-http",
        "--s3-region=us-east-1",
        "--download-mode=fixture.test/Upper/*,fixture.test/graph,fixture.test/large=presigned",
        "--presign-ttl=2m",
    ];
    let mut opts = SpartaOptions::new(&fx.url).args(&args);
    opts.fixture_defaults = true;
    opts.env = vec![
        ("AWS_ACCESS_KEY_ID".into(), access.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), secret.clone()),
    ];
    let sparta = Sparta::start(opts).await;
    let http = client();

    // A zip not stored yet: fetched once, stored under the prefix with the
    // `!`-escaped key, then a 302 to a presigned URL of that object.
    let upper = version_path("fixture.test/Upper/Case", "v1.0.0", "zip");
    let resp = http
        .get(format!("{}{upper}", sparta.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 302, "{}", sparta.log());
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        resp.headers()["cache-control"].to_str().unwrap(),
        "private, max-age=60",
        "a 302 to a URL that lasts 2m is cached for at most half of it"
    );
    let url = reqwest::Url::parse(&location).unwrap();
    assert_eq!(
        format!("{}://{}", url.scheme(), url.authority()),
        endpoint.trim_end_matches('/')
    );
    assert_eq!(
        url.path(),
        format!("/{bucket}/{prefix}/fixture.test/%21upper/%21case/%40v/v1.0.0.zip"),
        "the URL names the stored key under the store's prefix"
    );
    let query: HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query.get("X-Amz-Expires").map(String::as_str), Some("120"));
    assert!(query.contains_key("X-Amz-Signature"), "{query:?}");
    assert!(!location.contains(&secret), "the secret key is in the URL");
    assert_eq!(fx.count(&upper).await, 1, "fetched once to be stored");

    // The URL works on the S3 server itself, without credentials, and
    // serves the module's true bytes.
    let from_bucket = http.get(&location).send().await.unwrap();
    assert_eq!(from_bucket.status().as_u16(), 200);
    assert_eq!(
        from_bucket.bytes().await.unwrap().to_vec(),
        fx.truth(&upper).await
    );
    // A holder cannot stretch the URL's life: the signature covers it.
    let forged = location.replace("X-Amz-Expires=120", "X-Amz-Expires=7200");
    assert_ne!(forged, location);
    assert_eq!(
        http.get(&forged).send().await.unwrap().status().as_u16(),
        403
    );

    // HEAD is answered here (size only; a GET-signed URL refuses a HEAD),
    // and so are .info and .mod.
    let head = http
        .head(format!("{}{upper}", sparta.url))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        fx.truth(&upper).await.len().to_string()
    );
    for ext in ["info", "mod"] {
        let path = version_path("fixture.test/Upper/Case", "v1.0.0", ext);
        let resp = http
            .get(format!("{}{path}", sparta.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }

    // The go command follows the 302s: a 1 MiB zip and a small graph, with
    // the go.sum hashes the fixture computed.
    let go = GoEnv::new(&sparta.url);
    let targets = [
        ("fixture.test/Upper/Case", "v1.0.0"),
        ("fixture.test/graph/a", "v1.2.0"),
        ("fixture.test/large", "v1.0.0"),
    ];
    let args: Vec<String> = targets.iter().map(|(m, v)| format!("{m}@{v}")).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let got = go.download(&args).await;
    let sums = fx.sums().await;
    for (module, version) in targets {
        let entry = got
            .iter()
            .find(|j| j["Path"] == module && j["Version"] == version)
            .unwrap_or_else(|| panic!("{module}@{version} not in {got:?}"));
        assert_eq!(
            entry["Sum"].as_str(),
            Some(sums.get(module, version).0.as_str()),
            "{module}@{version}: h1"
        );
        assert_eq!(
            fx.count(&version_path(module, version, "zip")).await,
            1,
            "{module}@{version} fetched from upstream once"
        );
    }

    // No zip byte went through Sparta: every zip answer was a 302.
    let page = sparta.metrics().await;
    assert_eq!(metric(&page, ZIP_BYTES), 0.0, "{page}");
    assert_eq!(metric(&page, ZIP_GET_200), 0.0, "{page}");
    let redirects = metric(&page, PRESIGNED);
    assert!(redirects >= 4.0, "{redirects} presigned redirects");
    assert_eq!(metric(&page, ZIP_GET_302), redirects);

    // A module outside the pattern is sync: its bytes do go through Sparta,
    // and the counters above see them.
    let scratch = version_path("fixture.test/scratch/s00", "v1.0.0", "zip");
    let resp = http
        .get(format!("{}{scratch}", sparta.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let len = resp.bytes().await.unwrap().len() as f64;
    let page = sparta.metrics().await;
    assert_eq!(metric(&page, ZIP_BYTES), len);
    assert_eq!(metric(&page, PRESIGNED), redirects);

    // The signed URLs and keys never reached the log.
    let log = sparta.log();
    assert!(!log.contains("X-Amz-Signature"), "{log}");
    assert!(!log.contains(&secret), "{log}");
}

/// A local directory (or memory) cannot presign: `serve` refuses to start,
/// naming the mode and the store, before it listens.
#[test]
fn a_store_that_cannot_presign_is_refused_at_start_up() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let store = dir.path().join("store");
    for storage in [store.to_str().unwrap(), "memory://"] {
        let err_path = dir.path().join("stderr");
        let mut child = std::process::Command::new(sparta_bin())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--upstream", "http://127.0.0.1:9"])
            .args(["--storage", storage])
            .args(["--download-mode", "fixture.test/*=presigned"])
            .env_remove("SPARTA_DOWNLOAD_MODE")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .expect("run sparta");
        // A Sparta that starts anyway would serve until killed.
        let status = wait_bounded(&mut child, Duration::from_secs(20), "sparta serve");
        let err = std::fs::read_to_string(&err_path).unwrap();
        assert!(!status.success(), "{storage}: {err}");
        assert!(err.contains("presigned"), "{err}");
        assert!(err.contains(storage), "{err}");
        assert!(!err.contains("listening"), "{err}");
    }
}
