//! Faults on S3: a replica killed mid-upload, an S3 outage, a bad upstream
//! zip. Nothing half-written is ever visible, nothing wrong is ever served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sparta_e2e::{fixture, http_client, same_info, scratch_module, sha256_hex, version_path};

use crate::support::{
    Replica, ReplicaSpec, S3, S3Env, Throttle, fixture_count, fixture_fault, fixture_truth, get,
    get_sha, serial, stop_s3_server, unique_prefix, wait_status, within,
};

/// Upload speed to S3 during the kill test: 40 MiB take about 5 s.
const SLOW_UPLOAD: u64 = 8 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_upload() {
    let _serial = serial().await;
    let s3env = S3Env::from_env();
    let s3 = Arc::new(S3::new(&s3env));
    let fx = fixture();
    let prefix = unique_prefix("kill-upload");
    // Sparta talks to S3 through a slow link, so the multipart upload of the
    // large zip lasts seconds and the kill lands in the middle of it.
    let throttle = Throttle::start(s3env.addr(), SLOW_UPLOAD).await;
    let spec =
        ReplicaSpec::s3("a", &s3env, &throttle.url(), &prefix, &fx.url).arg(&["--lease-ttl", "2s"]);
    let mut a = Replica::start(spec).await;

    let zip = version_path("fixture.test/large", "v1.0.0", "zip");
    let final_key = format!("{prefix}{zip}");
    let truth = fixture_truth(&zip).await;
    let truth_sha = sha256_hex(&truth);
    let upstream_before = fixture_count(&zip).await;

    // Watch the final key from the start: it must not exist until a
    // complete upload publishes it.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (s3, key, stop) = (s3.clone(), final_key.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(180);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let status = s3.head(&key).await;
                if status != 404 {
                    seen.push(status);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };

    let request = {
        let url = format!("{}{zip}", a.url);
        tokio::spawn(async move { get_sha(&http_client(), &url).await })
    };
    // The upload has begun once a multipart upload exists under staging.
    let staging = format!("{prefix}/_sparta/staging/");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut uploads = Vec::new();
    while Instant::now() < deadline {
        uploads = s3.uploads(&staging).await;
        if !uploads.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !uploads.is_empty(),
        "no multipart upload under {staging} within 60s; log:\n{}",
        a.log()
    );
    // Let a few parts go up, then pull the plug.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still_uploading = s3.uploads(&staging).await;
    let stored_before_kill = s3.head(&final_key).await;
    a.kill9();
    assert!(
        !still_uploading.is_empty() && stored_before_kill == 404,
        "the upload finished before the kill (uploads {still_uploading:?}, HEAD {stored_before_kill}); \
         the test did not test anything; log:\n{}",
        a.log()
    );
    // The zip is answered from its spool file before it is stored, so the
    // request may have completed; with anything but the true bytes, never.
    let answer = request.await.expect("request task");
    if let Ok((200, sha, len)) = &answer {
        assert_eq!(
            (sha, *len),
            (&truth_sha, truth.len() as u64),
            "the killed replica answered other bytes"
        );
    }
    assert_eq!(
        s3.head(&final_key).await,
        404,
        "object visible after the kill"
    );
    let keys = s3.list(&format!("{prefix}/fixture.test/large/")).await;
    assert!(
        keys.is_empty(),
        "objects under the module after the kill: {keys:?}"
    );
    let left = s3.uploads(&staging).await;
    eprintln!(
        "unfinished multipart uploads left by the killed replica: {}",
        left.len()
    );

    // Restart A with the same flags (full speed now): the next request
    // waits out the dead holder's lease and stores the true bytes.
    throttle.set_rate(0);
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.await.expect("watcher");
    assert!(
        seen.is_empty(),
        "HEAD {final_key} answered {seen:?} before any complete upload"
    );
    let a = a.restart().await;
    let started = Instant::now();
    let (status, sha, len) = get_sha(&http_client(), &format!("{}{zip}", a.url))
        .await
        .unwrap_or_else(|e| panic!("request after restart: {e}"));
    assert_eq!(status, 200, "after restart; log:\n{}", a.log());
    assert_eq!(
        (sha, len),
        (truth_sha, truth.len() as u64),
        "bytes after restart"
    );
    let upstream = fixture_count(&zip).await - upstream_before;
    eprintln!(
        "after restart: served in {:?}; upstream requests in total: {upstream}",
        started.elapsed()
    );
    assert_eq!(
        upstream, 2,
        "one fetch by the killed replica, one after the restart"
    );
    let stored = within(Duration::from_secs(30), || async {
        s3.head(&final_key).await == 200
    })
    .await;
    assert!(stored, "zip stored after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_outage() {
    let _serial = serial().await;
    let s3env = S3Env::from_env();
    let fx = fixture();
    let prefix = unique_prefix("outage");
    let sparta = Replica::start(ReplicaSpec::s3(
        "a",
        &s3env,
        &s3env.endpoint,
        &prefix,
        &fx.url,
    ))
    .await;
    let client = http_client();
    let url = |p: &str| format!("{}{p}", sparta.url);
    let module = scratch_module();
    let hot: Vec<String> = ["info", "mod"]
        .iter()
        .map(|e| version_path(&module, "v1.0.0", e))
        .collect();
    let zip = version_path(&module, "v1.0.0", "zip");
    let cold_mod = version_path(&module, "v1.1.0", "mod");
    let mut hot_bodies = Vec::new();
    for path in hot.iter().chain([&zip]) {
        let (status, _, body) = get(&client, &url(path)).await;
        assert_eq!(status, 200, "{path} before the outage");
        hot_bodies.push(body);
    }
    wait_status(&url("/readyz"), 200, Duration::from_secs(10))
        .await
        .expect("ready before the outage");

    let mut s3_server = stop_s3_server(&s3env);
    let outage = Instant::now();
    wait_status(&url("/readyz"), 503, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", sparta.log()));
    eprintln!("/readyz went 503 {:?} after the stop", outage.elapsed());
    // Hot small files come from memory.
    for (path, before) in hot.iter().zip(&hot_bodies) {
        let (status, _, body) = get(&client, &url(path)).await;
        assert_eq!(
            status,
            200,
            "hot {path} during the outage: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(&body, before, "hot {path} changed");
    }
    // Anything that needs the store: 503 with a reason.
    for path in [&zip, &cold_mod] {
        let started = Instant::now();
        let (status, ctype, body) = get(&client, &url(path)).await;
        let text = String::from_utf8_lossy(&body);
        eprintln!(
            "{path} during the outage: {status} in {:?}: {}",
            started.elapsed(),
            text.trim()
        );
        assert_eq!(status, 503, "{path} during the outage: {text}");
        assert!(
            ctype.starts_with("text/plain"),
            "{path}: content type {ctype}"
        );
        assert!(!text.trim().is_empty(), "{path}: 503 without a reason");
    }

    s3_server.start();
    let back = Instant::now();
    wait_status(&url("/readyz"), 200, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("no recovery without a restart: {e}\nlog:\n{}", sparta.log()));
    eprintln!("/readyz back to 200 {:?} after S3 started", back.elapsed());
    let (status, _, body) = get(&client, &url(&zip)).await;
    assert_eq!(
        status,
        200,
        "zip after the outage: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(body == hot_bodies[2], "zip after the outage: other bytes");
    let (status, _, body) = get(&client, &url(&cold_mod)).await;
    assert_eq!(status, 200, "cold .mod after the outage");
    assert_eq!(
        body,
        fixture_truth(&cold_mod).await,
        "cold .mod after the outage"
    );
    assert!(
        same_info(&hot_bodies[0], &fixture_truth(&hot[0]).await),
        "hot .info"
    );
}

/// One bad upstream answer for `path`: Sparta must refuse it, store
/// nothing, and serve the true bytes once upstream behaves.
async fn refuse_and_recover(s3: &S3, sparta: &Replica, prefix: &str, path: &str, kind: &str) {
    let client = http_client();
    let final_key = format!("{prefix}{path}");
    let before = fixture_count(path).await;
    // Every upstream answer is bad until cleared, so a retry cannot hide it.
    fixture_fault(serde_json::json!({"path": path, "kind": kind, "times": 50})).await;
    let (status, _, body) = get(&client, &format!("{}{path}", sparta.url)).await;
    fixture_fault(serde_json::json!({"path": path, "kind": kind, "times": 0})).await;
    assert_ne!(
        status,
        200,
        "{path} with upstream fault {kind} answered 200 ({} bytes)",
        body.len()
    );
    eprintln!(
        "{path} with fault {kind}: {status} {} ({} upstream requests)",
        String::from_utf8_lossy(&body).trim(),
        fixture_count(path).await - before
    );
    assert_eq!(
        s3.head(&final_key).await,
        404,
        "{final_key} exists after fault {kind}"
    );
    let keys = s3.list(&final_key).await;
    assert!(keys.is_empty(), "stored after fault {kind}: {keys:?}");

    // Upstream is clean again: the true bytes, stored once.
    let truth = fixture_truth(path).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut status, mut body) = (0, Vec::new());
    // A refused fetch may be remembered briefly; retry within a bound.
    while Instant::now() < deadline {
        (status, _, body) = get(&client, &format!("{}{path}", sparta.url)).await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        status,
        200,
        "{path} after fault {kind} cleared: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(body == truth, "{path} after fault {kind}: other bytes");
    let stored = within(Duration::from_secs(30), || async {
        s3.head(&final_key).await == 200
    })
    .await;
    assert!(stored, "{final_key} stored after recovery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_upload_leaves_nothing() {
    let _serial = serial().await;
    let s3env = S3Env::from_env();
    let s3 = S3::new(&s3env);
    let fx = fixture();
    let prefix = unique_prefix("failed-upload");
    let sparta = Replica::start(ReplicaSpec::s3(
        "a",
        &s3env,
        &s3env.endpoint,
        &prefix,
        &fx.url,
    ))
    .await;
    // Small zips go up as one PUT, the large one as a multipart upload.
    let cases = [
        (version_path(&scratch_module(), "v1.0.0", "zip"), "truncate"),
        (version_path(&scratch_module(), "v1.0.0", "zip"), "flip"),
        (version_path(&scratch_module(), "v1.0.0", "zip"), "close"),
        (version_path("fixture.test/large", "v1.1.0", "zip"), "flip"),
        (
            version_path("fixture.test/large", "v1.0.0", "zip"),
            "truncate",
        ),
    ];
    for (path, kind) in &cases {
        refuse_and_recover(&s3, &sparta, &prefix, path, kind).await;
    }
}
