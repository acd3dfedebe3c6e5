//! A fetched file is answered before it is stored, the lease held until
//! the store ends; a version's later files are looked up together with
//! their lease request.

use std::time::Duration;

use sparta_e2e::{fixture, http_client, scratch_module, sha256_hex, version_path};

use crate::disk_tier::metric_sum;
use crate::support::{
    Replica, ReplicaSpec, S3, S3Env, Throttle, fixture_count, fixture_truth, get, get_sha, serial,
    unique_prefix, within,
};

/// Client-to-S3 bytes per second for the slow replica: its upload of the
/// 40 MiB zip lasts about 5 s, its answer well under one.
const SLOW_UPLOAD: u64 = 8 << 20;

/// `sparta_storage_operation_duration_seconds_count` for one op and outcome.
async fn storage_ops(replica: &Replica, op: &str, outcome: &str) -> f64 {
    let op = format!("op=\"{op}\"");
    let outcome = format!("outcome=\"{outcome}\"");
    metric_sum(
        replica,
        "sparta_storage_operation_duration_seconds_count",
        &[&op, &outcome],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zip_answered_before_its_upload_ends_and_the_lease_covers_it() {
    let _serial = serial().await;
    let s3env = S3Env::from_env();
    let s3 = S3::new(&s3env);
    let fx = fixture();
    let prefix = unique_prefix("answer-first");
    let throttle = Throttle::start(s3env.addr(), SLOW_UPLOAD).await;
    let slow = Replica::start(ReplicaSpec::s3(
        "slow",
        &s3env,
        &throttle.url(),
        &prefix,
        &fx.url,
    ))
    .await;
    let other = Replica::start(ReplicaSpec::s3(
        "other",
        &s3env,
        &s3env.endpoint,
        &prefix,
        &fx.url,
    ))
    .await;
    let zip = version_path("fixture.test/large", "v1.1.0", "zip");
    let final_key = format!("{prefix}{zip}");
    let truth = fixture_truth(&zip).await;
    let truth_sha = sha256_hex(&truth);
    let upstream_before = fixture_count(&zip).await;

    let (status, sha, len) = get_sha(&http_client(), &format!("{}{zip}", slow.url))
        .await
        .unwrap_or_else(|e| panic!("cold zip through the slow replica: {e}"));
    let stored_at_answer = s3.head(&final_key).await;
    assert_eq!(status, 200, "log:\n{}", slow.log());
    assert_eq!((sha, len), (truth_sha.clone(), truth.len() as u64));
    assert_eq!(
        stored_at_answer,
        404,
        "the answer waited for the upload (8 MiB/s for 40 MiB); log:\n{}",
        slow.log()
    );

    // The other replica asks while the upload runs: the lease is still
    // held, so it waits for the stored zip instead of fetching its own.
    let (status, sha, len) = get_sha(&http_client(), &format!("{}{zip}", other.url))
        .await
        .unwrap_or_else(|e| panic!("zip through the other replica: {e}"));
    assert_eq!(status, 200, "log:\n{}", other.log());
    assert_eq!((sha, len), (truth_sha, truth.len() as u64));
    assert_eq!(
        fixture_count(&zip).await - upstream_before,
        1,
        "one upstream fetch for both replicas; other's log:\n{}",
        other.log()
    );
    assert_eq!(
        s3.head(&final_key).await,
        200,
        "stored once the other answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_versions_later_files_are_looked_up_with_their_lease() {
    let _serial = serial().await;
    let s3env = S3Env::from_env();
    let fx = fixture();
    let prefix = unique_prefix("look-with-lease");
    let spec = |name: &str| ReplicaSpec::s3(name, &s3env, &s3env.endpoint, &prefix, &fx.url);
    let (a, b) = (
        Replica::start(spec("a")).await,
        Replica::start(spec("b")).await,
    );
    let client = http_client();
    let module = scratch_module();

    // A new version, file after file, as the go command asks: only the
    // first file is looked up before its lease is asked for.
    let misses = storage_ops(&a, "get", "not_found").await;
    let heads = storage_ops(&a, "head", "not_found").await;
    for file in ["mod", "info", "zip"] {
        let path = version_path(&module, "v1.0.0", file);
        let (status, _, body) = get(&client, &format!("{}{path}", a.url)).await;
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        assert!(body == fixture_truth(&path).await, "{path}: other bytes");
    }
    assert_eq!(
        storage_ops(&a, "get", "not_found").await - misses,
        1.0,
        "storage lookups before the lease: the .mod's only"
    );
    assert_eq!(
        storage_ops(&a, "head", "not_found").await - heads,
        3.0,
        "one look with each lease"
    );

    // A wrong guess: another replica stored the .info meanwhile. The look
    // with the lease finds it, and nothing is fetched again.
    let info = version_path(&module, "v1.1.0", "info");
    let (status, _, _) = get(&client, &format!("{}{info}", b.url)).await;
    assert_eq!(status, 200, "{info} through b");
    let info_fetches = fixture_count(&info).await;
    let stored = within(Duration::from_secs(10), || async {
        storage_ops(&b, "put", "ok").await >= 1.0
    })
    .await;
    assert!(stored, "b stored {info}; log:\n{}", b.log());
    let gomod = version_path(&module, "v1.1.0", "mod");
    let (status, _, _) = get(&client, &format!("{}{gomod}", a.url)).await;
    assert_eq!(status, 200, "{gomod} through a");
    let (status, _, body) = get(&client, &format!("{}{info}", a.url)).await;
    assert_eq!(status, 200, "{info} through a; log:\n{}", a.log());
    assert!(body == fixture_truth(&info).await, "{info}: other bytes");
    assert_eq!(
        fixture_count(&info).await,
        info_fetches,
        "{info} fetched again though b had stored it; a's log:\n{}",
        a.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_answered_zip_finish_its_upload() {
    let _serial = serial().await;
    let s3env = S3Env::from_env();
    let s3 = S3::new(&s3env);
    let fx = fixture();
    let prefix = unique_prefix("answer-then-stop");
    let throttle = Throttle::start(s3env.addr(), SLOW_UPLOAD).await;
    let spec = ReplicaSpec::s3("slow", &s3env, &throttle.url(), &prefix, &fx.url)
        .arg(&["--shutdown-grace", "30s"]);
    let mut slow = Replica::start(spec).await;
    let zip = version_path("fixture.test/large", "v1.0.0", "zip");
    let final_key = format!("{prefix}{zip}");

    let (status, _, _) = get_sha(&http_client(), &format!("{}{zip}", slow.url))
        .await
        .unwrap_or_else(|e| panic!("cold zip: {e}"));
    assert_eq!(status, 200, "log:\n{}", slow.log());
    assert_eq!(
        s3.head(&final_key).await,
        404,
        "stored before the answer; log:\n{}",
        slow.log()
    );
    // Asked to stop with its upload under way: it finishes the upload
    // within the grace period, then exits cleanly.
    slow.sigterm();
    let exit = slow
        .wait_exit(Duration::from_secs(40))
        .await
        .unwrap_or_else(|| panic!("still running 40 s after SIGTERM; log:\n{}", slow.log()));
    assert!(
        exit.success(),
        "exit after SIGTERM: {exit}; log:\n{}",
        slow.log()
    );
    assert_eq!(
        s3.head(&final_key).await,
        200,
        "the answered zip was not stored before the exit; log:\n{}",
        slow.log()
    );
}
