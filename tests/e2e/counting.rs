//! Caching and singleflight, asserted by the fixture's request counts.

use std::sync::Arc;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use sparta_e2e::{
    GoEnv, Sparta, fixture, http_client, metric_value, scratch_module, sha256_hex, version_path,
};

/// A second download of the same version, from an empty module cache, is
/// served without asking upstream again; so is a third after a restart
/// (storage, not memory, holds it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_download_never_reaches_upstream() {
    let fx = fixture();
    let module = scratch_module();
    let prefix = format!("/{module}/");
    let target = format!("{module}@v1.0.0");
    let sparta = Sparta::for_fixture(&[]).await;

    let first = GoEnv::new(&sparta.url).download(&[&target]).await;
    let after_first = fx.stats(&prefix).await;
    for ext in ["mod", "zip"] {
        let p = version_path(&module, "v1.0.0", ext);
        assert_eq!(
            after_first.get(&p).copied(),
            Some(1),
            "first download fetches {p} once: {after_first:?}"
        );
    }

    let second = GoEnv::new(&sparta.url).download(&[&target]).await;
    assert_eq!(first[0]["Sum"], second[0]["Sum"]);
    assert_eq!(
        fx.stats(&prefix).await,
        after_first,
        "second download reached upstream"
    );

    let sparta = sparta.restart(&[]).await;
    let third = GoEnv::new(&sparta.url).download(&[&target]).await;
    assert_eq!(first[0]["Sum"], third[0]["Sum"]);
    let after_third = fx.stats(&prefix).await;
    for ext in ["info", "mod", "zip"] {
        let p = version_path(&module, "v1.0.0", ext);
        assert_eq!(
            after_third.get(&p),
            after_first.get(&p),
            "download after a restart reached upstream for {p}"
        );
    }
}

/// 100 concurrent cold requests for one large zip: one upstream fetch, and
/// every client gets the fixture's exact bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_zip_requests_fetch_once() {
    let fx = fixture();
    let path = version_path("fixture.test/large", "v1.0.0", "zip");
    let want = sha256_hex(&fx.truth(&path).await);
    let before = fx.count(&path).await;
    let sparta = Sparta::for_fixture(&[]).await;
    let client = http_client();
    let url = Arc::new(format!("{}{path}", sparta.url));
    // Upstream answers slowly, so every request arrives during the fetch.
    fx.fault(serde_json::json!({"path": path, "kind": "delay", "delay_ms": 400, "times": 1}))
        .await;

    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let resp = client.get(url.as_str()).send().await.expect("request");
                let status = resp.status().as_u16();
                let mut hasher = Sha256::new();
                let mut len = 0usize;
                let mut body = resp.bytes_stream();
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.expect("body chunk");
                    len += chunk.len();
                    hasher.update(&chunk);
                }
                (status, len, hex::encode(hasher.finalize()))
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task"));
    }
    let bad: Vec<_> = results
        .iter()
        .filter(|(status, _, sum)| *status != 200 || *sum != want)
        .collect();
    assert!(
        bad.is_empty(),
        "{} of 100 responses were wrong, e.g. {:?}",
        bad.len(),
        bad.first()
    );
    assert_eq!(
        fx.count(&path).await - before,
        1,
        "100 cold requests must reach upstream once"
    );
    // They are all answered from the fetch's spool file, none from storage.
    let page = sparta.metrics().await;
    let storage_reads = r#"sparta_storage_operation_duration_seconds_count{op="get",outcome="ok"}"#;
    let storage_misses =
        r#"sparta_storage_operation_duration_seconds_count{op="get",outcome="not_found"}"#;
    assert!(
        metric_value(&page, storage_misses) >= 100.0,
        "each cold request looks in storage first:\n{page}"
    );
    assert_eq!(
        metric_value(&page, storage_reads),
        0.0,
        "requests that waited for the fetch read the zip back from storage"
    );
}

/// Two replicas on one local directory with `--leases on`: concurrent cold
/// requests spread over both reach upstream once per file. By default a
/// local store is one replica's and takes no leases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_a_directory_fetch_once_with_leases_on() {
    let fx = fixture();
    let module = scratch_module();
    let (a, b) = leased_replicas().await;
    for replica in [&a, &b] {
        assert_eq!(
            coordination(replica).await,
            "lease",
            "--leases on did not take leases:\n{}",
            replica.log()
        );
    }
    for ext in ["info", "mod", "zip"] {
        let path = version_path(&module, "v1.0.0", ext);
        let want = fx.truth(&path).await;
        // Upstream answers slowly, so every request below arrives while
        // the first fetch is still under way.
        fx.fault(serde_json::json!({"path": path, "kind": "delay", "delay_ms": 400, "times": 2}))
            .await;
        burst_over(&a, &b, &path, &want).await;
        assert_eq!(fx.count(&path).await, 1, "{path} fetched more than once");
    }

    let alone = Sparta::for_fixture(&[]).await;
    assert_eq!(
        coordination(&alone).await,
        "local",
        "a local store took leases by default:\n{}",
        alone.log()
    );
}

/// Two replicas on one directory with `--leases on`: concurrent requests
/// for a module's list and `@latest`, spread over both while neither has a
/// fresh answer, reach upstream once each within the list TTL; every
/// client gets the fixture's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_refresh_a_list_once_per_ttl() {
    let fx = fixture();
    let module = scratch_module();
    let (a, b) = leased_replicas().await;
    for path in [format!("/{module}/@v/list"), format!("/{module}/@latest")] {
        let want = fx.truth(&path).await;
        fx.fault(serde_json::json!({"path": path, "kind": "delay", "delay_ms": 400, "times": 2}))
            .await;
        burst_over(&a, &b, &path, &want).await;
        assert_eq!(
            fx.count(&path).await,
            1,
            "{path} fetched more than once within the list TTL:\n{}\n{}",
            a.log(),
            b.log()
        );
    }
    // The leases are counted with the storage operations: one replica took
    // each, the other found it held.
    let series = |outcome: &str| {
        format!(
            r#"sparta_storage_operation_duration_seconds_count{{op="lease",outcome="{outcome}"}}"#
        )
    };
    let (pa, pb) = (a.metrics().await, b.metrics().await);
    let count =
        |outcome: &str| metric_value(&pa, &series(outcome)) + metric_value(&pb, &series(outcome));
    assert!(count("ok") >= 2.0, "lease takes not counted:\n{pa}\n{pb}");
    assert!(
        count("not_found") >= 1.0,
        "held leases not counted:\n{pa}\n{pb}"
    );
}

/// Two replicas on one directory with `--leases on`.
async fn leased_replicas() -> (Sparta, Sparta) {
    let a = Sparta::for_fixture(&["--leases", "on"]).await;
    let b = Sparta::start(
        sparta_e2e::SpartaOptions::fixture()
            .args(&["--leases", "on"])
            .with_dir(a.dir.clone()),
    )
    .await;
    (a, b)
}

/// 20 concurrent GETs of `path`, every other one to each replica; each
/// must answer 200 with `want`.
async fn burst_over(a: &Sparta, b: &Sparta, path: &str, want: &[u8]) {
    let client = http_client();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let url = format!("{}{path}", if i % 2 == 0 { &a.url } else { &b.url });
            let client = client.clone();
            tokio::spawn(async move {
                let resp = client.get(url).send().await.expect("request");
                (resp.status().as_u16(), resp.bytes().await.expect("body"))
            })
        })
        .collect();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{path}");
        assert_eq!(body.as_ref(), want, "{path}: wrong answer");
    }
}

/// The coordination mode a replica reports in `sparta_fetch_coordination`
/// (the one series at 1), read from its metrics rather than a log line.
async fn coordination(sparta: &Sparta) -> String {
    let text = sparta.metrics().await;
    let on: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("sparta_fetch_coordination{mode=\""))
        .filter_map(|l| l.strip_suffix("\"} 1"))
        .collect();
    assert_eq!(on.len(), 1, "want one coordination mode at 1:\n{text}");
    on[0].to_owned()
}
