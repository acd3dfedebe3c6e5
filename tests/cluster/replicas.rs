//! Three replicas, one bucket: one upstream fetch per file, whoever asks.

use std::collections::BTreeMap;
use std::time::Instant;

use sparta_e2e::{fixture, http_client, same_info, scratch_module, sha256_hex, version_path};

use crate::support::{
    Replica, ReplicaSpec, S3Env, fixture_count, fixture_truth, get, get_sha, serial, unique_prefix,
};

/// Each replica's `sparta_upstream_fetches_total` lines for one kind: who
/// went upstream, for failure messages.
async fn who_fetched(replicas: &[&Replica], kind: &str) -> String {
    let mut out = String::new();
    for (i, r) in replicas.iter().enumerate() {
        let (_, _, body) = get(&http_client(), &format!("{}/metrics", r.url)).await;
        let text = String::from_utf8_lossy(&body).into_owned();
        let needle = format!("kind=\"{kind}\"");
        for line in text.lines() {
            if line.starts_with("sparta_upstream_fetches_total")
                && line.contains(&needle)
                && !line.ends_with(" 0")
            {
                out.push_str(&format!("\n  replica {i}: {line}"));
            }
        }
    }
    out
}

/// Mean S3 latency per operation as Sparta measured it, summed over the
/// replicas: "op/outcome: count, mean ms".
async fn storage_latency(replicas: &[&Replica]) -> Vec<String> {
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for r in replicas {
        let (_, _, body) = get(&http_client(), &format!("{}/metrics", r.url)).await;
        for line in String::from_utf8_lossy(&body).lines() {
            let (name, rest) = line.split_once('{').unwrap_or(("", ""));
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let value: f64 = value.parse().unwrap_or(0.0);
            let entry = sums.entry(labels.to_string()).or_default();
            match name {
                "sparta_storage_operation_duration_seconds_sum" => entry.0 += value,
                "sparta_storage_operation_duration_seconds_count" => entry.1 += value,
                _ => {}
            }
        }
    }
    sums.into_iter()
        .filter(|(_, (_, n))| *n > 0.0)
        .map(|(k, (sum, n))| format!("{k}: {n} ops, mean {:.2} ms", sum / n * 1000.0))
        .collect()
}

/// Sends `n` concurrent GETs for `path`, round-robin over `replicas`:
/// (status, sha256, length) per request, in order.
async fn burst(replicas: &[&Replica], path: &str, n: usize) -> Vec<(u16, String, u64)> {
    let client = http_client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let url = format!("{}{path}", replicas[i % replicas.len()].url);
        let client = client.clone();
        tasks.spawn(async move { (i, get_sha(&client, &url).await) });
    }
    let mut out = vec![(0, String::new(), 0); n];
    while let Some(done) = tasks.join_next().await {
        let (i, result) = done.expect("request task");
        out[i] = result.unwrap_or_else(|e| panic!("request {i} for {path} broke: {e}"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_one_fetch() {
    let _serial = serial().await;
    let s3env = S3Env::from_env();
    let fx = fixture();
    let prefix = unique_prefix("three-replicas");
    let spec = |name: &str| ReplicaSpec::s3(name, &s3env, &s3env.endpoint, &prefix, &fx.url);
    let a = Replica::start(spec("a")).await;
    let b = Replica::start(spec("b")).await;
    let c = Replica::start(spec("c")).await;
    for r in [&a, &b, &c] {
        // Leases need a store that refuses a second create; versitygw does.
        assert!(
            r.log().contains("coordination=Lease"),
            "replica did not pick lease coordination:\n{}",
            r.log()
        );
    }
    let all = [&a, &b, &c];
    let mut report = BTreeMap::new();

    // The large zip: 100 cold requests, one upstream fetch.
    let zip = version_path("fixture.test/large", "v1.1.0", "zip");
    let truth = fixture_truth(&zip).await;
    let truth_sha = sha256_hex(&truth);
    let before = fixture_count(&zip).await;
    let started = Instant::now();
    let results = burst(&all, &zip, 100).await;
    let elapsed = started.elapsed();
    let fetched = fixture_count(&zip).await - before;
    for (i, (status, sha, len)) in results.iter().enumerate() {
        assert_eq!(*status, 200, "zip request {i} via replica {}", i % 3);
        assert_eq!(
            (sha.as_str(), *len),
            (truth_sha.as_str(), truth.len() as u64),
            "zip request {i} via replica {} got other bytes",
            i % 3
        );
    }
    report.insert("large zip", (fetched, elapsed));
    assert_eq!(
        fetched,
        1,
        "upstream requests for {zip} (100 concurrent via 3 replicas):{}",
        who_fetched(&all, "zip").await
    );

    // A .mod and an .info of a version nobody asked for yet.
    let module = scratch_module();
    for ext in ["mod", "info"] {
        let path = version_path(&module, "v1.0.0", ext);
        let truth = fixture_truth(&path).await;
        let before = fixture_count(&path).await;
        let client = http_client();
        let mut tasks = tokio::task::JoinSet::new();
        let started = Instant::now();
        for i in 0..100 {
            let url = format!("{}{path}", all[i % 3].url);
            let client = client.clone();
            tasks.spawn(async move { (i, get(&client, &url).await) });
        }
        let mut bodies = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let (i, (status, _, body)) = done.expect("request task");
            assert_eq!(
                status,
                200,
                "{path} request {i}: {}",
                String::from_utf8_lossy(&body)
            );
            bodies.push(body);
        }
        let elapsed = started.elapsed();
        let fetched = fixture_count(&path).await - before;
        assert!(
            bodies.iter().all(|b| b == &bodies[0]),
            "{path}: replicas answered different bytes"
        );
        let right = if ext == "info" {
            same_info(&bodies[0], &truth)
        } else {
            bodies[0] == truth
        };
        assert!(right, "{path}: {:?}", String::from_utf8_lossy(&bodies[0]));
        report.insert(
            if ext == "mod" { ".mod" } else { ".info" },
            (fetched, elapsed),
        );
        assert_eq!(
            fetched,
            1,
            "upstream requests for {path} (100 concurrent via 3 replicas):{}",
            who_fetched(&all, ext).await
        );
    }

    // Stored via A, served by B and C without touching upstream.
    let files: Vec<String> = ["info", "mod", "zip"]
        .iter()
        .map(|ext| version_path(&module, "v1.1.0", ext))
        .collect();
    let client = http_client();
    for path in &files {
        let (status, _, body) = get(&client, &format!("{}{path}", a.url)).await;
        assert_eq!(
            status,
            200,
            "{path} via A: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let mut counts = Vec::new();
    for path in &files {
        counts.push(fixture_count(path).await);
    }
    for r in [&b, &c] {
        for path in &files {
            let (status, _, body) = get(&client, &format!("{}{path}", r.url)).await;
            assert_eq!(status, 200, "{path} via {}", r.url);
            let truth = fixture_truth(path).await;
            if path.ends_with(".info") {
                assert!(same_info(&body, &truth), "{path} via {}", r.url);
            } else {
                assert!(body == truth, "{path} via {}: other bytes", r.url);
            }
        }
    }
    for (path, before) in files.iter().zip(counts) {
        assert_eq!(
            fixture_count(path).await,
            before,
            "{path}: B or C went upstream for a version A had stored"
        );
    }
    eprintln!("upstream requests (100 concurrent requests, 3 replicas): {report:?}");
    eprintln!(
        "S3 latency seen by the replicas:\n  {}",
        storage_latency(&all).await.join("\n  ")
    );
}
