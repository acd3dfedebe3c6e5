//! One id per request, in the response, the log and the audit line; error
//! bodies short and free of internal detail; HEAD and 304 for zips from a
//! head call on storage.

use reqwest::header;
use sparta_e2e::{Sparta, fixture, http_client, scratch_module, version_path};

fn is_generated_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Waits for a log line holding every one of `needles`.
async fn log_line(sparta: &Sparta, needles: &[&str]) -> Option<String> {
    for _ in 0..50 {
        if let Some(l) = sparta
            .log()
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
        {
            return Some(l.to_owned());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_has_an_id_in_its_answer_log_and_audit_line() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let sparta = Sparta::for_fixture(&["--audit-log", audit.to_str().expect("utf-8")]).await;
    let client = http_client();
    let info = version_path("fixture.test/graph/c", "v1.0.0", "info");
    let url = format!("{}{info}", sparta.url);

    let r = client
        .get(&url)
        .header("x-request-id", "lb-7f3a.e2e:1")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-request-id"],
        "lb-7f3a.e2e:1",
        "a sane id is kept"
    );
    let line = log_line(&sparta, &["lb-7f3a.e2e:1", "request", "status"]).await;
    assert!(
        line.is_some(),
        "no request log line with the id:\n{}",
        sparta.log()
    );

    let r = client
        .get(&url)
        .header("x-request-id", "has spaces and \"quotes\"")
        .send()
        .await
        .expect("get");
    let replaced = r.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        is_generated_id(&replaced),
        "an odd id is replaced: {replaced}"
    );

    let r = client.get(&url).send().await.expect("get");
    let generated = r.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(is_generated_id(&generated), "{generated}");
    assert_ne!(generated, replaced, "ids differ per request");
    let r = client
        .get(format!("{}/healthz", sparta.url))
        .send()
        .await
        .expect("healthz");
    assert!(
        r.headers().contains_key("x-request-id"),
        "probes carry an id too"
    );

    // The audit line of each module file request carries the same id.
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids = std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["request_id"].as_str().map(str::to_owned))
            .collect();
        if ids.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        ids,
        ["lb-7f3a.e2e:1", replaced.as_str(), generated.as_str()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_body_is_short_and_names_the_request_id_only() {
    let fx = fixture();
    let module = scratch_module();
    let path = version_path(&module, "v1.0.0", "info");
    let sparta = Sparta::for_fixture(&[]).await;
    fx.fault(serde_json::json!({"path": path, "kind": "status", "status": 500, "times": 1}))
        .await;
    let r = http_client()
        .get(format!("{}{path}", sparta.url))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 502);
    let id = r.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body = r.text().await.expect("body");
    assert_eq!(
        body,
        format!("upstream failed or sent an invalid answer (request id {id})\n")
    );
    let port = fx.addr.port().to_string();
    assert!(!body.contains(&port), "no upstream address in the body");
    // The detail is in the log, under the id.
    let line = log_line(&sparta, &[&id, "request failed"]).await;
    let line = line.unwrap_or_else(|| panic!("no detail logged under {id}:\n{}", sparta.log()));
    assert!(
        line.contains("500"),
        "the upstream status is in the log: {line}"
    );
    fx.clear_fault(&path).await;
}

/// `sparta_storage_operation_duration_seconds_count` of one op.
async fn storage_ops(sparta: &Sparta, op: &str) -> f64 {
    let page = http_client()
        .get(format!("{}/metrics", sparta.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    let series =
        format!(r#"sparta_storage_operation_duration_seconds_count{{op="{op}",outcome="ok"}} "#);
    page.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zip_head_and_304_come_from_a_head_call() {
    let fx = fixture();
    let path = version_path("fixture.test/graph/b", "v1.0.0", "zip");
    let truth = fx.truth(&path).await;
    let sparta = Sparta::for_fixture(&[]).await;
    let url = format!("{}{path}", sparta.url);
    let client = http_client();
    let get = client.get(&url).send().await.expect("get");
    assert_eq!(get.status(), 200);
    let get_headers = get.headers().clone();
    assert_eq!(get.bytes().await.expect("body")[..], truth[..]);
    let etag = get_headers[header::ETAG].clone();

    let gets_before = storage_ops(&sparta, "get").await;
    let heads_before = storage_ops(&sparta, "head").await;
    let head = client.head(&url).send().await.expect("head");
    assert_eq!(head.status(), 200);
    for h in [
        header::ETAG,
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
        header::CACHE_CONTROL,
        header::ACCEPT_RANGES,
    ] {
        assert_eq!(
            head.headers().get(&h),
            get_headers.get(&h),
            "{h} of HEAD and GET"
        );
    }
    let ranged = client
        .head(&url)
        .header(header::RANGE, "bytes=10-19")
        .send()
        .await
        .expect("ranged head");
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        ranged.headers()[header::CONTENT_RANGE],
        format!("bytes 10-19/{}", truth.len()).as_str()
    );
    assert_eq!(ranged.headers()[header::CONTENT_LENGTH], "10");
    let not_modified = client
        .get(&url)
        .header(header::IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .expect("conditional get");
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()[header::ETAG], etag);

    assert_eq!(
        storage_ops(&sparta, "get").await,
        gets_before,
        "HEAD and 304 opened a storage GET"
    );
    assert!(
        storage_ops(&sparta, "head").await >= heads_before + 3.0,
        "HEAD and 304 made head calls"
    );

    // A cold HEAD fetches and stores the zip, then answers from its head.
    let cold = version_path("fixture.test/graph/a", "v1.0.0", "zip");
    let head = client
        .head(format!("{}{cold}", sparta.url))
        .send()
        .await
        .expect("cold head");
    assert_eq!(head.status(), 200);
    let cold_truth = fx.truth(&cold).await;
    assert_eq!(
        head.headers()[header::CONTENT_LENGTH],
        cold_truth.len().to_string().as_str()
    );
    assert_eq!(sparta.corrupt_objects(fx).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_carry_the_request_id_as_a_field() {
    let sparta = Sparta::for_fixture(&["--log-format", "json"]).await;
    let info = version_path("fixture.test/graph/c", "v1.0.0", "info");
    let r = http_client()
        .get(format!("{}{info}", sparta.url))
        .header("x-request-id", "json-e2e-1")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let line = log_line(&sparta, &["json-e2e-1", "status"]).await;
    let line = line.unwrap_or_else(|| panic!("no log line with the id:\n{}", sparta.log()));
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
    assert_eq!(v["request_id"], "json-e2e-1", "{line}");
    assert_eq!(v["status"], 200, "{line}");
    // A line logged by the shared fetch, spawned for the request, carries
    // the id of the request that started it.
    let module = scratch_module();
    let r = http_client()
        .get(format!(
            "{}{}",
            sparta.url,
            version_path(&module, "v1.0.0", "info")
        ))
        .header("x-request-id", "json-e2e-2")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let line = log_line(&sparta, &["json-e2e-2", "stored from upstream"]).await;
    let line = line.unwrap_or_else(|| panic!("no fetch line with the id:\n{}", sparta.log()));
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(v["request_id"], "json-e2e-2", "{line}");
    // Lines outside any request (start-up) have no id field.
    let startup = sparta
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .next()
        .expect("a JSON start-up line");
    assert!(startup.get("request_id").is_none(), "{startup}");
}
