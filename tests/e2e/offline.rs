//! `--network offline` and `--network fallback`, with the real go command,
//! asserted by the fixture's request counts.

use std::path::Path;

use sparta_e2e::{Fixture, GoEnv, Sparta, SpartaOptions, http_client, version_path};

/// A fixture of this file's own (with the wide graph), so its counts and its
/// life (it is stopped mid-test) are this test's alone.
fn own_fixture() -> Fixture {
    Fixture::start(&["--large-size", "4KiB", "--wide", "64"])
}

async fn get(url: &str) -> (u16, String) {
    let resp = http_client().get(url).send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

async fn metric(sparta: &Sparta, series: &str) -> f64 {
    let (_, text) = get(&format!("{}/metrics", sparta.url)).await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// Offline, stored versions are served, list and latest are computed from
/// them, and what is not stored is a 404 that says why; no request reaches
/// the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_serves_the_store_and_never_the_upstream() {
    let fx = own_fixture();
    let module = "fixture.test/wide/m0001";
    let sparta = Sparta::start(SpartaOptions::new(&fx.url).args(&["--sumdb-verify=false"])).await;
    let go = GoEnv::new(&sparta.url);
    go.download(&[&format!("{module}@v1.0.0")]).await;
    let before = fx.stats("/").await;
    let sparta = sparta.restart(&["--network", "offline"]).await;

    let (status, ready) = get(&format!("{}/readyz", sparta.url)).await;
    assert_eq!((status, ready.as_str()), (200, "ready\nnetwork: offline\n"));
    assert_eq!(
        metric(&sparta, "sparta_network_mode{mode=\"offline\"}").await,
        1.0
    );

    let (status, list) = get(&format!("{}/{module}/@v/list", sparta.url)).await;
    assert_eq!((status, list.as_str()), (200, "v1.0.0\n"));
    let (status, latest) = get(&format!("{}/{module}/@latest", sparta.url)).await;
    assert_eq!(status, 200, "{latest}");
    assert!(latest.contains("\"Version\":\"v1.0.0\""), "{latest}");
    for path in [
        version_path(module, "v1.0.0", "zip"),
        version_path(module, "v1.0.0", "mod"),
    ] {
        assert_eq!(get(&format!("{}{path}", sparta.url)).await.0, 200, "{path}");
    }
    // Not stored: a 404 naming the mode, for files, lists and latest.
    for path in [
        version_path("fixture.test/wide/m0002", "v1.0.0", "info"),
        version_path("fixture.test/wide/m0002", "v1.0.0", "zip"),
        "/fixture.test/wide/m0002/@v/list".to_owned(),
        "/fixture.test/wide/m0002/@latest".to_owned(),
    ] {
        let (status, body) = get(&format!("{}{path}", sparta.url)).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("--network offline"), "{path}: {body}");
    }

    // The go command resolves @latest and lists versions from the store.
    let go = GoEnv::new(&sparta.url);
    let out = go
        .ok(&go.work(), &["list", "-m", "-versions", module])
        .await;
    assert_eq!(out.trim(), format!("{module} v1.0.0"));
    let dir = go.work().join("app");
    write(&dir.join("go.mod"), "module example.test/app\n\ngo 1.21\n");
    write(
        &dir.join("main.go"),
        "package main\n\nimport m \"fixture.test/wide/m0001\"\n\nfunc main() { println(m.N()) }\n",
    );
    go.ok(&dir, &["get", &format!("{module}@latest")]).await;
    go.ok(&dir, &["build", "-o", "app", "."]).await;
    let missing = go
        .run(&dir, &["get", "fixture.test/wide/m0002@latest"])
        .await;
    assert!(!missing.ok, "a module that is not stored resolved offline");

    assert_eq!(fx.stats("/").await, before, "offline reached the upstream");
}

/// Fallback: on a source failure (not a 404) list and latest come from the
/// stored versions, counted; strict mode answers the same failure with an
/// error, and a 404 from the source stays a 404 in both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_answers_from_the_store_when_the_source_fails() {
    let fx = own_fixture();
    let module = "fixture.test/wide/m0003";
    let sparta = Sparta::start(SpartaOptions::new(&fx.url).args(&["--sumdb-verify=false"])).await;
    let go = GoEnv::new(&sparta.url);
    let other = "fixture.test/wide/m0004";
    go.download(&[&format!("{module}@v1.0.0"), &format!("{other}@v1.0.0")])
        .await;
    let list_path = format!("/{module}/@v/list");
    let latest_path = format!("/{module}/@latest");
    for path in [&list_path, &latest_path] {
        fx.fault(serde_json::json!({"path": path, "kind": "status", "status": 500, "times": 100}))
            .await;
    }

    // Strict: the failure is an error (nothing persisted to fall back on).
    assert_eq!(get(&format!("{}{list_path}", sparta.url)).await.0, 502);

    let sparta = sparta.restart(&["--network", "fallback"]).await;
    let (_, ready) = get(&format!("{}/readyz", sparta.url)).await;
    assert_eq!(ready, "ready\nnetwork: fallback\n");
    let asked = fx.count(&list_path).await;
    let (status, list) = get(&format!("{}{list_path}", sparta.url)).await;
    assert_eq!((status, list.as_str()), (200, "v1.0.0\n"));
    assert!(
        fx.count(&list_path).await > asked,
        "fallback did not ask the source first"
    );
    let (status, latest) = get(&format!("{}{latest_path}", sparta.url)).await;
    assert_eq!(status, 200, "{latest}");
    assert!(latest.contains("v1.0.0"), "{latest}");
    assert_eq!(
        metric(
            &sparta,
            "sparta_network_fallback_answers_total{kind=\"list\"}"
        )
        .await,
        1.0
    );
    let go = GoEnv::new(&sparta.url);
    let out = go
        .ok(&go.work(), &["list", "-m", "-versions", module])
        .await;
    assert_eq!(out.trim(), format!("{module} v1.0.0"));

    // A 404 from the source is an answer, not a failure: no fallback,
    // though versions of that module are stored.
    let other_list = format!("/{other}/@v/list");
    fx.fault(
        serde_json::json!({"path": other_list, "kind": "status", "status": 404, "times": 100}),
    )
    .await;
    assert_eq!(get(&format!("{}{other_list}", sparta.url)).await.0, 404);
}
