//! Upstream faults: Sparta never serves or stores bad bytes, maps upstream
//! errors to the right status, and serves the true bytes once upstream heals.

use std::time::Duration;

use serde_json::json;
use sparta_e2e::{Fixture, Sparta, fixture, http_client, same_info, scratch_module, version_path};

/// GETs a URL; status 0 when the transfer broke (reset, cut-short body).
async fn fetch(url: &str) -> (u16, Vec<u8>) {
    let Ok(resp) = http_client().get(url).send().await else {
        return (0, Vec::new());
    };
    let status = resp.status().as_u16();
    match resp.bytes().await {
        Ok(b) => (status, b.to_vec()),
        Err(_) => (0, Vec::new()),
    }
}

fn same(path: &str, got: &[u8], truth: &[u8]) -> bool {
    if path.ends_with(".info") {
        same_info(got, truth)
    } else {
        got == truth
    }
}

/// Injects `fault` (without its path) on the .info, .mod and .zip of a
/// fresh scratch module, one at a time, and checks each answer with
/// `check(path, status, body_is_true)`; then clears the fault, checks a clean
/// request gets the true bytes and that storage holds only true bytes.
async fn each_file(
    sparta: &Sparta,
    fx: &Fixture,
    fault: serde_json::Value,
    check: impl Fn(&str, u16, bool) -> Result<(), String>,
    pause_before_clean: Duration,
) {
    let module = scratch_module();
    let mut failures = Vec::new();
    for ext in ["info", "mod", "zip"] {
        let path = version_path(&module, "v1.0.0", ext);
        let truth = fx.truth(&path).await;
        let mut spec = fault.clone();
        spec["path"] = json!(path);
        if spec["kind"] == "flip" && spec.get("offset").is_none() {
            // Corrupt something a proxy can notice without a checksum
            // database: the JSON syntax of .info, the `module` directive of
            // go.mod ("lodule ..."), the compressed data in the zip (CRC).
            let offset = match ext {
                "info" | "mod" => 0,
                _ => truth.len() / 2,
            };
            spec["offset"] = json!(offset);
        }
        fx.fault(spec).await;
        let (status, body) = fetch(&format!("{}{path}", sparta.url)).await;
        if let Err(e) = check(&path, status, status == 200 && same(&path, &body, &truth)) {
            failures.push(e);
        }

        fx.clear_fault(&path).await;
        tokio::time::sleep(pause_before_clean).await;
        let (status, body) = fetch(&format!("{}{path}", sparta.url)).await;
        if status != 200 || !same(&path, &body, &truth) {
            failures.push(format!(
                "{path}: clean request after the fault got {status}, {}",
                if status == 200 {
                    "wrong bytes"
                } else {
                    "no bytes"
                }
            ));
        }
    }
    let bad = sparta.corrupt_objects(fx).await;
    if !bad.is_empty() {
        failures.push(format!("storage holds bad bytes: {bad:?}"));
    }
    assert!(
        failures.is_empty(),
        "{}\n--- sparta log ---\n{}",
        failures.join("\n"),
        sparta.log()
    );
}

/// Turns a condition into a check result.
fn expect(ok: bool, msg: String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(msg) }
}

/// The answer under a fault must be an error, or (after a retry) the truth.
fn error_or_truth(path: &str, status: u16, is_true: bool) -> Result<(), String> {
    expect(
        status != 200 || is_true,
        format!("{path}: a faulty upstream answer was served as 200"),
    )?;
    // A dropped connection (status 0) is not an answer: Sparta checks every
    // file before serving it, so an upstream fault is a whole 5xx response.
    expect(
        status == 200 || (500..600).contains(&status),
        format!("{path}: unexpected status {status} for an upstream fault (0: connection dropped)"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_body() {
    let sparta = Sparta::for_fixture(&[]).await;
    let f = json!({"kind": "truncate"});
    each_file(&sparta, fixture(), f, error_or_truth, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_connection() {
    let sparta = Sparta::for_fixture(&[]).await;
    let f = json!({"kind": "close"});
    each_file(&sparta, fixture(), f, error_or_truth, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte() {
    let sparta = Sparta::for_fixture(&[]).await;
    let f = json!({"kind": "flip"});
    each_file(&sparta, fixture(), f, error_or_truth, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_delay_still_serves_the_truth() {
    let sparta = Sparta::for_fixture(&["--upstream-timeout", "30s"]).await;
    let f = json!({"kind": "delay", "delay_ms": 1000});
    let check = |path: &str, status: u16, is_true: bool| {
        expect(
            status == 200 && is_true,
            format!("{path}: delayed answer {status}"),
        )
    };
    each_file(&sparta, fixture(), f, check, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_beyond_timeout_is_504() {
    let sparta = Sparta::for_fixture(&["--upstream-timeout", "2s"]).await;
    // More times than any retry policy, so every attempt is slow.
    let f = json!({"kind": "delay", "delay_ms": 8000, "times": 5});
    let check = |path: &str, status: u16, _: bool| {
        expect(
            status == 504,
            format!("{path}: {status}, want 504 (upstream slower than --upstream-timeout)"),
        )
    };
    each_file(&sparta, fixture(), f, check, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_500_is_502() {
    let sparta = Sparta::for_fixture(&[]).await;
    let f = json!({"kind": "status", "status": 500, "times": 5});
    let check = |path: &str, status: u16, _: bool| {
        expect(
            status == 502,
            format!("{path}: {status}, want 502 (upstream 500)"),
        )
    };
    each_file(&sparta, fixture(), f, check, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_404_is_404() {
    let sparta = Sparta::for_fixture(&["--negative-ttl", "1s"]).await;
    let f = json!({"kind": "status", "status": 404, "times": 5});
    let check = |path: &str, status: u16, _: bool| {
        expect(
            status == 404,
            format!("{path}: {status}, want 404 (upstream 404)"),
        )
    };
    // Wait out the negative cache before the clean request.
    each_file(&sparta, fixture(), f, check, Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_410_is_410() {
    let sparta = Sparta::for_fixture(&["--negative-ttl", "1s"]).await;
    let f = json!({"kind": "status", "status": 410, "times": 5});
    let check = |path: &str, status: u16, _: bool| {
        expect(
            status == 410,
            format!("{path}: {status}, want 410 (upstream 410)"),
        )
    };
    each_file(&sparta, fixture(), f, check, Duration::from_millis(1500)).await;
}

/// Things upstream truly does not have: 404 stays 404, 410 stays 410, for
/// every kind of request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_things_are_not_found() {
    let sparta = Sparta::for_fixture(&[]).await;
    let cases = [
        ("/fixture.test/nonexistent/@v/list", 404),
        ("/fixture.test/nonexistent/@latest", 404),
        ("/fixture.test/nonexistent/@v/v1.0.0.info", 404),
        ("/fixture.test/nonexistent/@v/v1.0.0.mod", 404),
        ("/fixture.test/nonexistent/@v/v1.0.0.zip", 404),
        ("/fixture.test/graph/c/@v/v9.9.9.info", 404),
        ("/fixture.test/graph/c/@v/v9.9.9.zip", 404),
        ("/fixture.test/graph/c/@v/nosuchbranch.info", 404),
        ("/fixture.test/gone/x/@v/list", 410),
        ("/fixture.test/gone/x/@latest", 410),
        ("/fixture.test/gone/x/@v/v1.0.0.info", 410),
        ("/fixture.test/gone/x/@v/v1.0.0.mod", 410),
        ("/fixture.test/gone/x/@v/v1.0.0.zip", 410),
    ];
    let mut wrong = Vec::new();
    for (path, want) in cases {
        // Twice: the second answer may come from the negative cache.
        for _ in 0..2 {
            let (status, _) = fetch(&format!("{}{path}", sparta.url)).await;
            if status != want {
                wrong.push(format!("{path}: {status}, want {want}"));
            }
        }
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert!(
        sparta.corrupt_objects(fixture()).await.is_empty(),
        "something was stored for a missing module"
    );
}
