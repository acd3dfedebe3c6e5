//! Fetch limits: over `--max-fetches`, `--max-fetches-per-host` or
//! `--spool-budget` a fetch waits `--fetch-queue-wait`, then gets 503 with
//! Retry-After; nothing is stored for it, warm files are still served, and
//! requests that join a fetch under way take no permit.

use std::time::Duration;

use serde_json::json;
use sparta_e2e::{Sparta, fixture, http_client, scratch_module, version_path, within};

/// GETs a path of `sparta`: status, Retry-After, body.
async fn get(sparta: &Sparta, path: &str) -> (u16, Option<String>, Vec<u8>) {
    let resp = http_client()
        .get(format!("{}{path}", sparta.url))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        status,
        retry,
        resp.bytes().await.unwrap_or_default().to_vec(),
    )
}

/// The value of one metrics series (0 when absent).
pub async fn metric(sparta: &Sparta, series: &str) -> f64 {
    let (_, _, body) = get(sparta, "/metrics").await;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .map(|v| v.trim().parse().unwrap_or(0.0))
        })
        .unwrap_or(0.0)
}

/// Holds one fetch busy: the zip of a fresh module answers after `hold`.
async fn slow_zip(hold: Duration, kind: &str) -> String {
    let module = scratch_module();
    let path = version_path(&module, "v1.0.0", "zip");
    fixture()
        .fault(json!({"path": path, "kind": kind, "delay_ms": hold.as_millis() as u64}))
        .await;
    path
}

/// Starts a GET in the background and gives it time to reach upstream.
async fn in_background(sparta: &Sparta, path: &str) -> tokio::task::JoinHandle<(u16, Vec<u8>)> {
    let url = format!("{}{path}", sparta.url);
    let task = tokio::spawn(async move {
        let resp = http_client().get(url).send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.unwrap_or_default().to_vec())
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    task
}

/// Over the limit: 503 with Retry-After, nothing stored, the refusal counted.
async fn refused(sparta: &Sparta, path: &str, reason: &str) {
    let before = metric(
        sparta,
        &format!("sparta_fetch_refused_total{{reason=\"{reason}\"}}"),
    )
    .await;
    let (status, retry, body) = get(sparta, path).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{path}: {status} {text}\n{}", sparta.log());
    assert_eq!(retry.as_deref(), Some("1"), "{path}: Retry-After");
    assert!(text.contains("busy"), "{path}: body {text:?}");
    let after = metric(
        sparta,
        &format!("sparta_fetch_refused_total{{reason=\"{reason}\"}}"),
    )
    .await;
    assert_eq!(after, before + 1.0, "refusals by {reason}");
    let key = path.trim_start_matches('/');
    assert!(
        !sparta.stored().contains_key(key),
        "{key} stored though refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_fetches_is_503_and_joiners_take_no_permit() {
    let sparta = Sparta::for_fixture(&["--max-fetches", "1", "--fetch-queue-wait", "1s"]).await;
    let fx = fixture();
    // A file stored before the limit fills: served from storage meanwhile.
    let warm = version_path(&scratch_module(), "v1.0.0", "zip");
    assert_eq!(get(&sparta, &warm).await.0, 200);

    let busy = slow_zip(Duration::from_secs(4), "delay").await;
    let first = in_background(&sparta, &busy).await;
    // Joins the fetch under way: waits for it, takes no permit, gets the zip.
    let joiner = in_background(&sparta, &busy).await;
    assert!(metric(&sparta, "sparta_fetch_queue_waiting").await == 0.0);

    let cold = version_path(&scratch_module(), "v1.0.0", "info");
    refused(&sparta, &cold, "fetches").await;
    assert_eq!(get(&sparta, &warm).await.0, 200, "warm zip while full");

    let truth = fx.truth(&busy).await;
    for task in [first, joiner] {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{busy}");
        assert!(body == truth, "{busy}: wrong bytes");
    }
    assert_eq!(
        fx.count(&busy).await,
        1,
        "one upstream fetch for two clients"
    );
    // The slot is free again: the refused file is fetched now.
    assert_eq!(get(&sparta, &cold).await.0, 200);
    assert!(sparta.corrupt_objects(fx).await.is_empty());
    assert!(metric(&sparta, "sparta_fetch_queue_wait_seconds_count").await >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_fetches_per_host_is_503() {
    let sparta =
        Sparta::for_fixture(&["--max-fetches-per-host", "1", "--fetch-queue-wait", "1s"]).await;
    let busy = slow_zip(Duration::from_secs(3), "delay").await;
    let first = in_background(&sparta, &busy).await;
    let cold = version_path(&scratch_module(), "v1.0.0", "mod");
    refused(&sparta, &cold, "host_fetches").await;
    assert_eq!(first.await.unwrap().0, 200);
    assert_eq!(get(&sparta, &cold).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_spool_budget_is_503() {
    let sparta = Sparta::for_fixture(&["--spool-budget", "1KiB", "--fetch-queue-wait", "1s"]).await;
    // Headers and half the body, then a pause: its spool bytes stay reserved.
    let busy = slow_zip(Duration::from_secs(3), "stall").await;
    let first = in_background(&sparta, &busy).await;
    assert!(metric(&sparta, "sparta_spool_reserved_bytes").await >= 1024.0);
    let cold = version_path(&scratch_module(), "v1.0.0", "zip");
    refused(&sparta, &cold, "spool").await;
    // Small files need no spool.
    let info = cold.replace(".zip", ".info");
    assert_eq!(get(&sparta, &info).await.0, 200);
    assert_eq!(first.await.unwrap().0, 200);
    // The answer goes out before the store; the spool bytes stay reserved
    // until the store ends.
    let released = within(Duration::from_secs(10), || async {
        metric(&sparta, "sparta_spool_reserved_bytes").await == 0.0
    })
    .await;
    assert!(released, "spool bytes still reserved after the store");
    assert_eq!(get(&sparta, &cold).await.0, 200);
    assert!(sparta.corrupt_objects(fixture()).await.is_empty());
}
