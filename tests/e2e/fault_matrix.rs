//! The fault matrix: each upstream fault against a running Sparta, and for
//! each: the right status to the client, nothing wrong served as 200,
//! nothing stored for the faulted file, the right counter moved in
//! /metrics, and the proxy still serving other requests (warm and cold).
//! Storage faults (the real S3-compatible server behind toxiproxy) are in
//! `fault_matrix/storage.rs`.

mod storage;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sparta_e2e::{
    Sparta, SpartaOptions, fixture, go_exe, http_client, scratch_module, target_dir, version_path,
    workspace_root,
};

/// One row of the matrix.
struct Case {
    name: &'static str,
    /// Which file of a fresh module is faulted: `zip` or `list`.
    file: &'static str,
    fault: Value,
    /// What the client must get.
    want: u16,
    /// A /metrics series that must move by at least one.
    counter: &'static str,
    /// Upstream requests for the faulted path (retries are bounded).
    max_upstream: u64,
}

/// GETs a path: status and body; status 0 when the connection broke.
async fn get(sparta: &Sparta, path: &str) -> (u16, Vec<u8>) {
    let Ok(resp) = http_client()
        .get(format!("{}{path}", sparta.url))
        .send()
        .await
    else {
        return (0, Vec::new());
    };
    let status = resp.status().as_u16();
    match resp.bytes().await {
        Ok(b) => (status, b.to_vec()),
        Err(_) => (0, Vec::new()),
    }
}

async fn metric(sparta: &Sparta, series: &str) -> f64 {
    let (_, body) = get(sparta, "/metrics").await;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .filter(|rest| rest.starts_with(' '))
                .map(|v| v.trim().parse().unwrap_or(0.0))
        })
        .unwrap_or(0.0)
}

/// Runs every case against `sparta`; returns the failures.
async fn run(sparta: &Sparta, cases: Vec<Case>) -> Vec<String> {
    let fx = fixture();
    // A warm file: stored before any fault, must be served throughout.
    let warm = version_path(&scratch_module(), "v1.0.0", "zip");
    assert_eq!(get(sparta, &warm).await.0, 200, "warm zip");
    let warm_truth = fx.truth(&warm).await;
    let mut failures = Vec::new();
    for case in cases {
        let module = scratch_module();
        let path = match case.file {
            "list" => format!("/{}/@v/list", sparta_e2e::escape(&module)),
            ext => version_path(&module, "v1.0.0", ext),
        };
        let truth = fx.truth(&path).await;
        let mut spec = case.fault.clone();
        spec["path"] = json!(path);
        fx.fault(spec).await;
        let before = metric(sparta, case.counter).await;
        let started = Instant::now();
        let (status, body) = get(sparta, &path).await;
        let took = started.elapsed();
        let mut fail = |what: String| failures.push(format!("{}: {what}", case.name));
        if status != case.want {
            fail(format!(
                "status {status}, want {} ({})",
                case.want,
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
        }
        if status == 200 && body != truth {
            fail("wrong bytes served as 200".into());
        }
        if status != 200 && body.len() > 2048 {
            fail(format!("error body of {} bytes", body.len()));
        }
        let after = metric(sparta, case.counter).await;
        if after < before + 1.0 {
            fail(format!(
                "{} did not move ({before} -> {after})",
                case.counter
            ));
        }
        let upstream = fx.count(&path).await;
        if upstream > case.max_upstream {
            fail(format!(
                "{upstream} upstream requests, want <= {}",
                case.max_upstream
            ));
        }
        let key = path.trim_start_matches('/');
        if case.want != 200 && case.file == "zip" && sparta.stored().contains_key(key) {
            fail(format!("{key} stored under a fault"));
        }
        // Still serving: the warm zip, and a cold file of the same module.
        let (s, b) = get(sparta, &warm).await;
        if s != 200 || b != warm_truth {
            fail(format!("warm zip after the fault: {s}"));
        }
        let other = version_path(&module, "v1.0.0", "mod");
        if get(sparta, &other).await.0 != 200 {
            fail("cold .mod after the fault failed".into());
        }
        fx.clear_fault(&path).await;
        progress_line(case.name, status, took);
    }
    let bad = sparta.corrupt_objects(fx).await;
    if !bad.is_empty() {
        failures.push(format!("storage holds wrong bytes: {bad:?}"));
    }
    failures
}

fn progress_line(name: &str, status: u16, took: Duration) {
    eprintln!("fault {name}: {status} in {} ms", took.as_millis());
}

fn zip_error(kind: &'static str) -> &'static str {
    match kind {
        "timeout" => "sparta_upstream_fetches_total{kind=\"zip\",outcome=\"timeout\"}",
        "invalid" => "sparta_upstream_fetches_total{kind=\"zip\",outcome=\"invalid\"}",
        _ => "sparta_upstream_fetches_total{kind=\"zip\",outcome=\"error\"}",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_faults() {
    let sparta = Sparta::for_fixture(&[
        "--upstream-timeout",
        "3s",
        "--upstream-idle-timeout",
        "1s",
        "--negative-ttl",
        "1s",
    ])
    .await;
    let cases = vec![
        Case {
            name: "5xx",
            file: "zip",
            fault: json!({"kind": "status", "status": 500, "times": 5}),
            want: 502,
            counter: zip_error("error"),
            max_upstream: 1,
        },
        Case {
            name: "429 with a long Retry-After",
            file: "zip",
            fault: json!({"kind": "retry_after", "delay_ms": 30000, "times": 5}),
            want: 502,
            counter: zip_error("error"),
            max_upstream: 1,
        },
        Case {
            name: "429 with a short Retry-After (retried once)",
            file: "zip",
            fault: json!({"kind": "retry_after", "delay_ms": 1000, "times": 1}),
            want: 200,
            counter: "sparta_upstream_fetches_total{kind=\"zip\",outcome=\"ok\"}",
            max_upstream: 2,
        },
        Case {
            name: "connection reset",
            file: "zip",
            fault: json!({"kind": "reset", "times": 5}),
            want: 502,
            counter: zip_error("error"),
            // The HTTP client may resend once on a connection reset.
            max_upstream: 2,
        },
        Case {
            name: "timeout (no answer within --upstream-timeout)",
            file: "zip",
            fault: json!({"kind": "delay", "delay_ms": 6000, "times": 5}),
            want: 504,
            counter: zip_error("timeout"),
            max_upstream: 1,
        },
        Case {
            name: "slow-drip body (idle timeout)",
            file: "zip",
            fault: json!({"kind": "stall", "delay_ms": 2500, "times": 5}),
            want: 504,
            counter: zip_error("timeout"),
            max_upstream: 1,
        },
        Case {
            name: "truncation",
            file: "zip",
            fault: json!({"kind": "truncate", "times": 5}),
            want: 502,
            counter: zip_error("error"),
            max_upstream: 1,
        },
        Case {
            name: "flipped byte",
            file: "zip",
            fault: json!({"kind": "flip", "times": 5}),
            want: 502,
            counter: zip_error("invalid"),
            max_upstream: 1,
        },
        Case {
            name: "redirect to loopback",
            file: "zip",
            fault: json!({"kind": "redirect", "times": 5}),
            want: 502,
            counter: zip_error("error"),
            max_upstream: 1,
        },
        Case {
            name: "huge error body",
            file: "zip",
            fault: json!({"kind": "huge_error", "times": 5}),
            want: 502,
            counter: zip_error("error"),
            max_upstream: 1,
        },
        Case {
            name: "list of 100,000 lines",
            file: "list",
            fault: json!({"kind": "long_list", "times": 5}),
            want: 502,
            counter: "sparta_upstream_fetches_total{kind=\"list\",outcome=\"invalid\"}",
            max_upstream: 1,
        },
    ];
    let failures = run(&sparta, cases).await;
    assert!(
        failures.is_empty(),
        "{}\n--- sparta log ---\n{}",
        failures.join("\n"),
        sparta.log()
    );
}

/// A checksum database for the fixture's modules (tests/sumdb-fixture),
/// killed on drop.
struct SumdbFixture {
    child: Mutex<Child>,
    /// `name+hash+key`.
    vkey: String,
    url: String,
}

impl Drop for SumdbFixture {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn sumdb_fixture() -> SumdbFixture {
    let bin = target_dir().join("sparta-e2e/sumdb-fixture");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    let built = Command::new(go_exe())
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(workspace_root().join("tests/sumdb-fixture"))
        .status()
        .expect("go build sumdb-fixture");
    assert!(built.success(), "building tests/sumdb-fixture failed");
    let mut child = Command::new(&bin)
        .args(["--sums", &format!("{}/_fixture/sums", fixture().url)])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sumdb-fixture");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut vkey, mut addr) = (None, None);
    while addr.is_none() {
        let line = lines.next().expect("sumdb-fixture output").unwrap();
        if let Some(k) = line.strip_prefix("verifier key ") {
            vkey = Some(k.trim().to_owned());
        }
        if let Some(a) = line.strip_prefix("listening on ") {
            addr = Some(a.trim().to_owned());
        }
    }
    std::thread::spawn(move || for _ in lines {});
    SumdbFixture {
        child: Mutex::new(child),
        vkey: vkey.expect("verifier key"),
        url: format!("http://{}", addr.unwrap()),
    }
}

/// A zip that passes every zip rule but whose hash is not the one the
/// checksum database holds: refused, counted as a mismatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_hash_is_refused() {
    let db = sumdb_fixture();
    let sumdb = format!("{} {}", db.vkey, db.url);
    let sparta = Sparta::start(SpartaOptions::fixture().args(&["--sumdb", &sumdb])).await;
    let cases = vec![Case {
        name: "wrong hash",
        file: "zip",
        fault: json!({"kind": "wrong_zip", "times": 5}),
        want: 502,
        counter: "sparta_sumdb_verifications_total{outcome=\"mismatch\"}",
        max_upstream: 1,
    }];
    let failures = run(&sparta, cases).await;
    assert!(
        failures.is_empty(),
        "{}\n--- sparta log ---\n{}",
        failures.join("\n"),
        sparta.log()
    );
}
