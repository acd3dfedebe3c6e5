//! HTTP semantics the go command and caches rely on: content types, HEAD,
//! Range (resumed downloads), ETag and If-None-Match, version queries.

use reqwest::header;
use sparta_e2e::{Sparta, fixture, http_client, same_info, scratch_module, version_path};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zip_head_range_and_etag() {
    let fx = fixture();
    let module = scratch_module();
    let path = version_path(&module, "v1.1.0", "zip");
    let truth = fx.truth(&path).await;
    let sparta = Sparta::for_fixture(&[]).await;
    let url = format!("{}{path}", sparta.url);
    let client = http_client();

    // A cold Range request: the go command resumes downloads this way.
    let resp = client
        .get(&url)
        .header(header::RANGE, "bytes=0-99")
        .send()
        .await
        .expect("range");
    assert_eq!(resp.status(), 206, "cold Range request");
    assert_eq!(
        resp.headers()[header::CONTENT_RANGE],
        format!("bytes 0-99/{}", truth.len()).as_str()
    );
    assert_eq!(resp.bytes().await.expect("body")[..], truth[..100]);

    let resp = client.get(&url).send().await.expect("get");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/zip");
    assert_eq!(
        resp.headers()[header::CONTENT_LENGTH],
        truth.len().to_string().as_str()
    );
    let etag = resp
        .headers()
        .get(header::ETAG)
        .expect("zip has an ETag")
        .clone();
    assert!(
        !etag.to_str().expect("ascii").starts_with("W/"),
        "ETag must be strong: {etag:?}"
    );
    assert!(
        resp.headers().contains_key(header::CACHE_CONTROL),
        "immutable zip has Cache-Control"
    );
    assert_eq!(resp.bytes().await.expect("body")[..], truth[..]);

    let resp = client.head(&url).send().await.expect("head");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()[header::CONTENT_LENGTH],
        truth.len().to_string().as_str()
    );
    assert_eq!(resp.headers()[header::ETAG], etag);
    assert!(
        resp.bytes().await.expect("body").is_empty(),
        "HEAD has no body"
    );

    for (range, from, to) in [
        ("bytes=0-99", 0, 100),
        ("bytes=100-", 100, truth.len()),
        ("bytes=-50", truth.len() - 50, truth.len()),
        ("bytes=1000-1999", 1000, 2000),
    ] {
        let resp = client
            .get(&url)
            .header(header::RANGE, range)
            .send()
            .await
            .expect("range");
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(
            resp.headers()[header::CONTENT_RANGE],
            format!("bytes {from}-{}/{}", to - 1, truth.len()).as_str(),
            "{range}"
        );
        assert_eq!(
            resp.bytes().await.expect("body")[..],
            truth[from..to],
            "{range}"
        );
    }

    let resp = client
        .get(&url)
        .header(header::RANGE, format!("bytes={}-", truth.len() + 10))
        .send()
        .await
        .expect("range");
    assert_eq!(resp.status(), 416, "range beyond the end");

    let resp = client
        .get(&url)
        .header(header::IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .expect("conditional");
    assert_eq!(resp.status(), 304, "If-None-Match with the ETag");
    assert!(resp.bytes().await.expect("body").is_empty());

    let resp = client
        .get(&url)
        .header(header::IF_NONE_MATCH, "\"something-else\"")
        .send()
        .await
        .expect("conditional");
    assert_eq!(resp.status(), 200, "If-None-Match with another ETag");

    // If-Range: the range holds only while the ETag still matches.
    let resp = client
        .get(&url)
        .header(header::RANGE, "bytes=0-9")
        .header(header::IF_RANGE, etag.clone())
        .send()
        .await
        .expect("if-range");
    assert_eq!(resp.status(), 206, "If-Range with the ETag");
    assert_eq!(resp.bytes().await.expect("body")[..], truth[..10]);
    let resp = client
        .get(&url)
        .header(header::RANGE, "bytes=0-9")
        .header(header::IF_RANGE, "\"stale\"")
        .send()
        .await
        .expect("if-range");
    assert_eq!(resp.status(), 200, "If-Range with a stale ETag");
    assert_eq!(resp.bytes().await.expect("body")[..], truth[..]);

    // All of that took one upstream fetch.
    assert_eq!(fx.count(&path).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_types_and_etags() {
    let fx = fixture();
    let sparta = Sparta::for_fixture(&[]).await;
    let client = http_client();
    let module = "fixture.test/Upper/Case";
    let cases = [
        (
            version_path(module, "v1.0.0", "info"),
            "application/json",
            true,
        ),
        (
            version_path(module, "v1.0.0", "mod"),
            "text/plain; charset=utf-8",
            true,
        ),
        (
            "/fixture.test/!upper/!case/@v/list".to_string(),
            "text/plain; charset=utf-8",
            false,
        ),
    ];
    for (path, ctype, immutable) in cases {
        let truth = fx.truth(&path).await;
        let resp = client
            .get(format!("{}{path}", sparta.url))
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), 200, "{path}");
        let got_type = resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(
            got_type.starts_with(ctype.split(';').next().expect("type")),
            "{path}: content type {got_type}, want {ctype}"
        );
        let etag = resp.headers().get(header::ETAG).cloned();
        let body = resp.bytes().await.expect("body");
        if path.ends_with(".info") {
            assert!(same_info(&body, &truth), "{path}");
        } else {
            assert_eq!(body[..], truth[..], "{path}");
        }
        if immutable {
            let etag = etag.unwrap_or_else(|| panic!("{path} has no ETag"));
            let resp = client
                .get(format!("{}{path}", sparta.url))
                .header(header::IF_NONE_MATCH, etag)
                .send()
                .await
                .expect("conditional");
            assert_eq!(resp.status(), 304, "{path}: If-None-Match");
        }
    }
    // `%21` and `!` are the same request.
    let resp = client
        .get(format!(
            "{}/fixture.test/%21upper/%21case/@v/v1.0.0.mod",
            sparta.url
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.bytes().await.expect("body")[..],
        fx.truth(&version_path(module, "v1.0.0", "mod")).await[..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_queries_and_latest() {
    let sparta = Sparta::for_fixture(&[]).await;
    let client = http_client();
    let cases = [
        ("/fixture.test/graph/c/@v/v1.1.info", "v1.1.0"),
        ("/fixture.test/graph/c/@v/v1.info", "v1.2.0"),
        ("/fixture.test/graph/c/@latest", "v1.2.0"),
        (
            "/fixture.test/pseudo/@v/main.info",
            "v0.0.0-20240203040506-abcdef012345",
        ),
        (
            "/fixture.test/pseudo/@latest",
            "v0.0.0-20240203040506-abcdef012345",
        ),
        ("/fixture.test/major/v2/@latest", "v2.1.0"),
        ("/fixture.test/!upper/!case/@latest", "v1.1.0"),
    ];
    for (path, want) in cases {
        let resp = client
            .get(format!("{}{path}", sparta.url))
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), 200, "{path}");
        let v: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(v["Version"], want, "{path}");
        assert!(v["Time"].is_string(), "{path}: Time missing");
    }
    let stored = sparta.stored();
    let by_query_name = stored.keys().filter(|k| {
        !k.starts_with("_sparta/") && (k.ends_with("/v1.1.info") || k.ends_with("/main.info"))
    });
    assert_eq!(
        by_query_name.count(),
        0,
        "a query was stored as a version: {stored:?}"
    );
}

/// A client that gives up on a slow fetch leaves no request counted in
/// flight, and the fetch still completes for the next caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_requests_leave_the_in_flight_gauge() {
    let fx = fixture();
    let module = scratch_module();
    let path = version_path(&module, "v1.0.0", "mod");
    fx.fault(serde_json::json!({"path": path, "kind": "delay", "delay_ms": 1500, "times": 1}))
        .await;
    let sparta = Sparta::for_fixture(&[]).await;
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(200))
        .no_proxy()
        .build()
        .unwrap();
    for _ in 0..5 {
        let gave_up = impatient.get(format!("{}{path}", sparta.url)).send().await;
        assert!(gave_up.is_err(), "the delayed fetch answered within 200 ms");
    }
    let client = http_client();
    let body = client
        .get(format!("{}{path}", sparta.url))
        .send()
        .await
        .unwrap();
    assert_eq!(body.status(), 200);
    assert_eq!(
        body.bytes().await.unwrap().as_ref(),
        fx.truth(&path).await.as_slice()
    );
    let metrics = client
        .get(format!("{}/metrics", sparta.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Only the /metrics request itself is in flight.
    assert!(
        metrics
            .lines()
            .any(|l| l == "sparta_http_requests_in_flight 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("sparta_http_requests_in_flight"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
