//! Storage faults against the real S3-compatible server: errors (TCP resets),
//! added latency and an outage in the middle of a multipart upload, each
//! through toxiproxy; and a restart of an S3 server of the test's own. For
//! each: the client gets a 5xx or the true bytes, never wrong bytes as 200;
//! the store holds nothing or the true bytes (asked with
//! `Disable-Module-Fetch: true`, which answers from storage only); the
//! storage counters move; probes and memory hits still answer.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use sparta_e2e::toxiproxy::Toxiproxy;
use sparta_e2e::{
    Sparta, SpartaOptions, fixture, http_client, scratch_module, sha256_hex, version_path,
    workspace_root,
};

/// The shared S3 server's settings (scripts/s3-server.sh start, env sourced).
struct S3 {
    addr: String,
    bucket: String,
    key: String,
    secret: String,
}

fn s3() -> S3 {
    let (endpoint, bucket, key, secret) = crate::aws_env::server();
    S3 {
        addr: endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned(),
        bucket,
        key,
        secret,
    }
}

/// Sparta on a fresh prefix of the bucket, talking to S3 at `endpoint`.
async fn sparta_on(s3: &S3, endpoint: &str, name: &str, extra: &[&str]) -> Sparta {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let storage = format!(
        "s3://{}/e2e-faults/{name}-{}-{nanos}",
        s3.bucket,
        std::process::id()
    );
    let mut args = vec![
        "--storage",
        &storage,
        "--s3-endpoint",
        endpoint,
        "--s3-path-style",
        "--s3-allow-http",
        "--s3-region",
        "us-east-1",
    ];
    args.extend_from_slice(extra);
    let mut opts = SpartaOptions::fixture().args(&args);
    opts.env = vec![
        ("AWS_ACCESS_KEY_ID".into(), s3.key.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), s3.secret.clone()),
    ];
    Sparta::start(opts).await
}

/// GET through Sparta: status and body (status 0: the connection broke).
async fn get(sparta: &Sparta, path: &str, storage_only: bool) -> (u16, Vec<u8>) {
    let mut req = http_client().get(format!("{}{path}", sparta.url));
    if storage_only {
        req = req.header("Disable-Module-Fetch", "true");
    }
    let Ok(resp) = req.send().await else {
        return (0, Vec::new());
    };
    let status = resp.status().as_u16();
    match resp.bytes().await {
        Ok(b) => (status, b.to_vec()),
        Err(_) => (0, Vec::new()),
    }
}

/// The sum of every series of a metric family.
async fn metric_sum(sparta: &Sparta, family: &str) -> f64 {
    let (_, body) = get(sparta, "/metrics", false).await;
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The store holds nothing for `path`, or exactly the true bytes.
async fn store_is_clean(sparta: &Sparta, path: &str, truth: &[u8]) -> Result<(), String> {
    match get(sparta, path, true).await {
        (404, _) => Ok(()),
        (200, body) if body == truth => Ok(()),
        (200, _) => Err(format!("{path}: storage holds wrong bytes")),
        (s, _) => Err(format!("{path}: storage-only read answered {s}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_errors_latency_and_an_outage_mid_upload() {
    let s3 = s3();
    let fx = fixture();
    let toxi = Toxiproxy::start().await;
    let port = toxi.proxy("s3", &s3.addr).await;
    let endpoint = format!("http://127.0.0.1:{port}");
    let sparta = sparta_on(&s3, &endpoint, "toxic", &["--upstream-timeout", "60s"]).await;
    let mut failures = Vec::new();

    // A memory hit to check during the faults: the .info of a warm module.
    let warm = version_path(&scratch_module(), "v1.0.0", "info");
    assert_eq!(get(&sparta, &warm, false).await.0, 200, "{}", sparta.log());

    // Errors: every connection to S3 is reset.
    let cold = version_path(&scratch_module(), "v1.0.0", "zip");
    let truth = fx.truth(&cold).await;
    let errors_before = metric_sum(&sparta, "sparta_storage_errors_total").await;
    toxi.toxic(
        "s3",
        "reset",
        "reset_peer",
        "upstream",
        json!({"timeout": 0}),
    )
    .await;
    let (status, _) = get(&sparta, &cold, false).await;
    if !(500..600).contains(&status) {
        failures.push(format!("resets: {cold} answered {status}, want a 5xx"));
    }
    if metric_sum(&sparta, "sparta_storage_errors_total").await <= errors_before {
        failures.push("resets: sparta_storage_errors_total did not move".into());
    }
    for probe in ["/healthz", warm.as_str()] {
        let s = get(&sparta, probe, false).await.0;
        if s != 200 {
            failures.push(format!("resets: {probe} answered {s} while S3 failed"));
        }
    }
    toxi.heal("s3", "reset").await;
    if let Err(e) = store_is_clean(&sparta, &cold, &truth).await {
        failures.push(format!("resets: {e}"));
    }
    let (status, body) = get(&sparta, &cold, false).await;
    if status != 200 || body != truth {
        failures.push(format!("resets: after healing {cold} answered {status}"));
    }

    // Latency: 300 ms on every answer from S3; slower, still right.
    let slow = version_path(&scratch_module(), "v1.0.0", "zip");
    let truth = fx.truth(&slow).await;
    let ops_before = metric_sum(&sparta, "sparta_storage_operation_duration_seconds_count").await;
    toxi.toxic(
        "s3",
        "slow",
        "latency",
        "downstream",
        json!({"latency": 300}),
    )
    .await;
    let (status, body) = get(&sparta, &slow, false).await;
    if status != 200 || body != truth {
        failures.push(format!("latency: {slow} answered {status}"));
    }
    if metric_sum(&sparta, "sparta_storage_operation_duration_seconds_count").await <= ops_before {
        failures.push("latency: storage operations were not counted".into());
    }
    toxi.heal("s3", "slow").await;

    // An outage in the middle of a multipart upload: the large zip goes up
    // slowly (8 MiB/s), and the link is cut for 3 s after 2 s.
    let large = version_path("fixture.test/large", "v1.0.0", "zip");
    let truth = fx.truth(&large).await;
    toxi.toxic(
        "s3",
        "narrow",
        "bandwidth",
        "upstream",
        json!({"rate": 8192}),
    )
    .await;
    let request = {
        let url = format!("{}{large}", sparta.url);
        tokio::spawn(async move {
            let resp = http_client().get(url).send().await.ok()?;
            let status = resp.status().as_u16();
            Some((status, resp.bytes().await.ok()?.to_vec()))
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    toxi.enable("s3", false).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    toxi.enable("s3", true).await;
    toxi.heal("s3", "narrow").await;
    match request.await.unwrap() {
        Some((200, body)) if sha256_hex(&body) == sha256_hex(&truth) => {}
        Some((200, _)) => failures.push("outage: wrong bytes served as 200".into()),
        Some((s, _)) if (500..600).contains(&s) => {}
        other => failures.push(format!(
            "outage: {:?}, want the true bytes or a 5xx",
            other.map(|(s, _)| s)
        )),
    }
    if let Err(e) = store_is_clean(&sparta, &large, &truth).await {
        failures.push(format!("outage: {e}"));
    }
    let (status, body) = get(&sparta, &large, false).await;
    if status != 200 || sha256_hex(&body) != sha256_hex(&truth) {
        failures.push(format!("outage: after it {large} answered {status}"));
    }
    assert!(
        failures.is_empty(),
        "{}\n--- sparta log ---\n{}",
        failures.join("\n"),
        sparta.log()
    );
}

/// An S3 server of this test's own (scripts/s3-server.sh with a private
/// state directory), so stopping it disturbs no other test.
struct OwnS3 {
    state: tempfile::TempDir,
}

impl OwnS3 {
    fn script(&self, args: &[&str]) -> String {
        let out = Command::new("bash")
            .arg(workspace_root().join("scripts/s3-server.sh"))
            .args(args)
            .env("SPARTA_S3_STATE_DIR", self.state.path())
            .output()
            .expect("run s3-server.sh");
        assert!(
            out.status.success(),
            "s3-server.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Starts it; returns its endpoint URL.
    fn start(&self) -> String {
        let env_file = self.script(&["start"]);
        let env = std::fs::read_to_string(env_file).expect("s3 env file");
        env.lines()
            .find_map(|l| l.strip_prefix("export SPARTA_TEST_S3_ENDPOINT="))
            .expect("endpoint in the env file")
            .to_owned()
    }
}

impl Drop for OwnS3 {
    fn drop(&mut self) {
        self.script(&["stop"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_server_restart() {
    let shared = s3();
    let own = OwnS3 {
        state: tempfile::tempdir().expect("tempdir"),
    };
    let endpoint = own.start();
    let s3 = S3 {
        addr: String::new(),
        ..shared
    };
    let sparta = sparta_on(&s3, &endpoint, "restart", &[]).await;
    let fx = fixture();
    let stored = version_path(&scratch_module(), "v1.0.0", "zip");
    let truth = fx.truth(&stored).await;
    assert_eq!(
        get(&sparta, &stored, false).await,
        (200, truth.clone()),
        "{}",
        sparta.log()
    );
    let info = stored.replace(".zip", ".info");
    assert_eq!(get(&sparta, &info, false).await.0, 200);

    own.script(&["stop", "--keep"]);
    let errors_before = metric_sum(&sparta, "sparta_storage_errors_total").await;
    let (status, _) = get(&sparta, &stored, false).await;
    let mut failures = Vec::new();
    if !(500..600).contains(&status) {
        failures.push(format!(
            "while stopped: {stored} answered {status}, want a 5xx"
        ));
    }
    if metric_sum(&sparta, "sparta_storage_errors_total").await <= errors_before {
        failures.push("while stopped: sparta_storage_errors_total did not move".into());
    }
    for probe in ["/healthz", info.as_str()] {
        let s = get(&sparta, probe, false).await.0;
        if s != 200 {
            failures.push(format!("while stopped: {probe} answered {s}"));
        }
    }
    // Same port, same data.
    assert_eq!(own.start(), endpoint, "restarted on another port");
    let (status, body) = get(&sparta, &stored, false).await;
    if status != 200 || body != truth {
        failures.push(format!("after the restart: {stored} answered {status}"));
    }
    let cold = version_path(&scratch_module(), "v1.0.0", "zip");
    let (status, body) = get(&sparta, &cold, false).await;
    if status != 200 || body != fx.truth(&cold).await {
        failures.push(format!("after the restart: cold {cold} answered {status}"));
    }
    assert!(
        failures.is_empty(),
        "{}\n--- sparta log ---\n{}",
        failures.join("\n"),
        sparta.log()
    );
}
