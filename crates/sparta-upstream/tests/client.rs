//! The upstream client against a real HTTP server on loopback that answers
//! each request with a script of raw writes, pauses and closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sparta_core::proxylist;
use sparta_upstream::{Upstream, UpstreamConfig, UpstreamError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One step of an answer.
#[derive(Clone)]
enum Step {
    Write(Vec<u8>),
    Sleep(Duration),
}

struct Server {
    url: String,
    hits: Arc<AtomicUsize>,
    /// Bytes the server managed to write, summed over connections.
    written: Arc<AtomicUsize>,
}

/// Serves each request (one per connection) with `script(path, hit number)`.
async fn server(script: impl Fn(&str, usize) -> Vec<Step> + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let written = Arc::new(AtomicUsize::new(0));
    let script = Arc::new(script);
    let (h, w) = (Arc::clone(&hits), Arc::clone(&written));
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let (script, hits, written) = (Arc::clone(&script), Arc::clone(&h), Arc::clone(&w));
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                let n = hits.fetch_add(1, Ordering::SeqCst);
                for step in script(&path, n) {
                    match step {
                        Step::Write(bytes) => {
                            for piece in bytes.chunks(64 << 10) {
                                if conn.write_all(piece).await.is_err() {
                                    return;
                                }
                                written.fetch_add(piece.len(), Ordering::SeqCst);
                            }
                        }
                        Step::Sleep(d) => tokio::time::sleep(d).await,
                    }
                }
                let _ = conn.shutdown().await;
            });
        }
    });
    Server { url, hits, written }
}

fn head(status: &str, headers: &[(&str, &str)], len: Option<usize>) -> Step {
    let mut s = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(n) = len {
        s.push_str(&format!("content-length: {n}\r\n"));
    }
    s.push_str("\r\n");
    Step::Write(s.into_bytes())
}

fn answer(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<Step> {
    vec![
        head(status, headers, Some(body.len())),
        Step::Write(body.to_vec()),
    ]
}

fn client(list: &str, idle: Duration) -> Upstream {
    Upstream::new(UpstreamConfig {
        proxies: proxylist::parse(list)
            .unwrap()
            .into_iter()
            .map(|e| match e {
                proxylist::ListEntry::Proxy(p) => p,
                other => panic!("not a proxy: {other:?}"),
            })
            .collect(),
        timeout: Duration::from_secs(120),
        idle_timeout: idle,
        connect_timeout: Duration::from_secs(5),
        retry_after_max: Duration::from_secs(2),
    })
    .unwrap()
}

#[tokio::test]
async fn redirects_are_failures_and_never_followed() {
    let target = server(|_, _| answer("200 OK", &[], b"v1.0.0\n")).await;
    let location = format!("{}/elsewhere", target.url);
    let redirector =
        server(move |_, _| answer("302 Found", &[("location", location.as_str())], b"")).await;
    let up = client(&redirector.url, Duration::from_secs(10));
    let err = up
        .fetch_bytes("example.com/m/@v/list", 1 << 20)
        .await
        .unwrap_err();
    match &err {
        UpstreamError::Failed(m) => assert!(m.contains("redirects are not followed"), "{m}"),
        other => panic!("want a failure, got {other:?}"),
    }
    assert_eq!(
        target.hits.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
    // With `|` the next proxy is tried, as after any failure.
    let next = server(|_, _| answer("200 OK", &[], b"v1.0.0\n")).await;
    let up = client(
        &format!("{}|{}", redirector.url, next.url),
        Duration::from_secs(10),
    );
    let body = up
        .fetch_bytes("example.com/m/@v/list", 1 << 20)
        .await
        .unwrap();
    assert_eq!(&body[..], b"v1.0.0\n");
    assert_eq!(target.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_stalled_body_fails_on_the_idle_timeout() {
    let stall = server(|_, _| {
        vec![
            head("200 OK", &[], Some(100)),
            Step::Write(vec![b'x'; 10]),
            Step::Sleep(Duration::from_secs(30)),
            Step::Write(vec![b'x'; 90]),
        ]
    })
    .await;
    let up = client(&stall.url, Duration::from_millis(300));
    let err = up
        .fetch_bytes("m/@v/v1.0.0.mod", 1 << 20)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Timeout(m) if m.contains("stalled")),
        "{err:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut file = tokio::fs::File::create(dir.path().join("z")).await.unwrap();
    let err = up
        .fetch_to_file("m/@v/v1.0.0.zip", &mut file, 1 << 20)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Timeout(_)), "{err:?}");
}

#[tokio::test]
async fn a_slow_but_moving_body_arrives_whole() {
    // Every chunk comes well within the idle timeout; the whole takes longer
    // than one idle period would allow.
    let drip = server(|_, _| {
        let mut steps = vec![head("200 OK", &[], Some(20))];
        for _ in 0..20 {
            steps.push(Step::Write(vec![b'y']));
            steps.push(Step::Sleep(Duration::from_millis(20)));
        }
        steps
    })
    .await;
    let up = client(&drip.url, Duration::from_secs(10));
    let dir = tempfile::tempdir().unwrap();
    let mut file = tokio::fs::File::create(dir.path().join("z")).await.unwrap();
    let n = up
        .fetch_to_file("m/@v/v1.0.0.zip", &mut file, 1 << 20)
        .await
        .unwrap();
    assert_eq!(n, 20);
    assert_eq!(std::fs::read(dir.path().join("z")).unwrap(), vec![b'y'; 20]);
}

#[tokio::test]
async fn error_bodies_are_read_only_a_few_kib_deep() {
    const HUGE: usize = 64 << 20;
    for status in ["404 Not Found", "500 Internal Server Error"] {
        let huge = server(move |_, _| {
            let mut body = b"no such module\n".to_vec();
            body.resize(HUGE, b'z');
            answer(status, &[], &body)
        })
        .await;
        let up = client(&huge.url, Duration::from_secs(10));
        let err = up.fetch_bytes("m/@v/list", 1 << 20).await.unwrap_err();
        if status.starts_with("404") {
            assert_eq!(
                err,
                UpstreamError::NotFound {
                    status: 404,
                    reason: "no such module".into()
                }
            );
        } else {
            assert!(matches!(err, UpstreamError::Failed(_)), "{err:?}");
        }
        // Give the server time to notice the closed connection, then check
        // it could not push the whole body through.
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let written = huge.written.load(Ordering::SeqCst);
        assert!(
            written < HUGE,
            "{status}: the client read all {written} bytes"
        );
    }
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_its_bound() {
    // A short Retry-After: waited for, then the same proxy answers.
    let busy = server(|_, n| {
        if n == 0 {
            answer(
                "429 Too Many Requests",
                &[("retry-after", "1")],
                b"slow down",
            )
        } else {
            answer("200 OK", &[], b"v1.0.0\n")
        }
    })
    .await;
    let up = client(&busy.url, Duration::from_secs(10));
    let body = up.fetch_bytes("m/@v/list", 1 << 20).await.unwrap();
    assert_eq!(&body[..], b"v1.0.0\n");
    assert_eq!(busy.hits.load(Ordering::SeqCst), 2);

    // Still busy after the one retry: a failure.
    let always =
        server(|_, _| answer("503 Service Unavailable", &[("retry-after", "0")], b"")).await;
    let up = client(&always.url, Duration::from_secs(10));
    let err = up.fetch_bytes("m/@v/list", 1 << 20).await.unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Failed(m) if m.contains("503")),
        "{err:?}"
    );
    assert_eq!(always.hits.load(Ordering::SeqCst), 2);

    // Longer than the bound, or absent: no wait, fail over with `|`.
    for header in [Some("3600"), None] {
        let far = server(move |_, _| {
            let headers: Vec<(&str, &str)> =
                header.map(|h| ("retry-after", h)).into_iter().collect();
            answer("429 Too Many Requests", &headers, b"")
        })
        .await;
        let next = server(|_, _| answer("200 OK", &[], b"v2.0.0\n")).await;
        let up = client(
            &format!("{}|{}", far.url, next.url),
            Duration::from_secs(10),
        );
        let body = up.fetch_bytes("m/@v/list", 1 << 20).await.unwrap();
        assert_eq!(&body[..], b"v2.0.0\n");
        assert_eq!(far.hits.load(Ordering::SeqCst), 1, "{header:?}");
        // With `,` a 429 is not a reason to try the next proxy.
        let up = client(
            &format!("{},{}", far.url, next.url),
            Duration::from_secs(10),
        );
        let err = up.fetch_bytes("m/@v/list", 1 << 20).await.unwrap_err();
        assert!(
            matches!(&err, UpstreamError::Failed(m) if m.contains("429")),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn a_localhost_name_is_allowed_as_configured() {
    let s = server(|_, _| answer("200 OK", &[], b"ok")).await;
    let url = s.url.replace("127.0.0.1", "localhost");
    let up = client(&url, Duration::from_secs(10));
    assert_eq!(&up.fetch_bytes("x", 100).await.unwrap()[..], b"ok");
}
