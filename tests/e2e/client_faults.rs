//! Hostile and broken clients against the real binary over loopback: a
//! client that goes away mid-zip, floods of idle and slow-header
//! connections, oversized request heads, and the connection cap. Through
//! all of it other clients are served and nothing wrong is stored.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sparta_e2e::{
    Sparta, fixture, http_client, metric_value as metric, metrics_page, version_path,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Polls `/metrics` at `base` until `ok` holds for the page, for at most
/// `limit`; returns the last page and whether it held.
async fn wait_metrics(base: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> (String, bool) {
    let deadline = Instant::now() + limit;
    loop {
        let page = metrics_page(base).await;
        if ok(&page) {
            return (page, true);
        }
        if Instant::now() > deadline {
            return (page, false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads until the server closes (EOF or reset); false if it is still open
/// after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Sends `head` and reads the status code of the answer (0 if the server
/// closed without one).
async fn status_of(addr: SocketAddr, head: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // A write may fail once the server has answered and closed mid-head.
    let _ = s.write_all(head).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads_get_431() {
    let sparta = Sparta::for_fixture(&["--max-header-bytes", "16KiB"]).await;
    let request = |header_bytes: usize, headers: usize| {
        let mut r = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n", sparta.addr);
        r.push_str(&format!("X-Big: {}\r\n", "a".repeat(header_bytes)));
        for i in 0..headers {
            r.push_str(&format!("X-H{i}: v\r\n"));
        }
        r.push_str("Connection: close\r\n\r\n");
        r.into_bytes()
    };
    assert_eq!(
        status_of(sparta.addr, &request(12 * 1024, 0)).await,
        200,
        "a head under the limit is served"
    );
    assert_eq!(
        status_of(sparta.addr, &request(40 * 1024, 0)).await,
        431,
        "a head over --max-header-bytes"
    );
    assert_eq!(
        status_of(sparta.addr, &request(10, 150)).await,
        431,
        "more header fields than hyper's 100"
    );
    let r = http_client()
        .get(format!("{}/healthz", sparta.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200, "still serving after the refusals");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_header_floods_are_closed_while_others_are_served() {
    const IDLE: usize = 1000;
    const SLOW: usize = 1000;
    let sparta =
        Sparta::for_fixture(&["--header-read-timeout", "2s", "--idle-timeout", "30s"]).await;
    let addr = sparta.addr;
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(addr).await.expect("connect idle"));
    }
    // Slow headers: a request line, then one header line every 300 ms,
    // never the blank line that ends the head.
    let mut slow = Vec::with_capacity(SLOW);
    for i in 0..SLOW {
        let s = TcpStream::connect(addr).await.expect("connect slow");
        slow.push(tokio::spawn(async move {
            let mut s = s;
            let started = Instant::now();
            if s.write_all(format!("GET /healthz?{i} HTTP/1.1\r\nHost: x\r\n").as_bytes())
                .await
                .is_err()
            {
                return Some(started.elapsed());
            }
            for n in 0..200 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if s.write_all(format!("X-Drip-{n}: 1\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    return Some(started.elapsed());
                }
                let mut probe = [0u8; 1];
                // A closed connection reads EOF (or a reset) at once.
                if let Ok(r) =
                    tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await
                {
                    match r {
                        Ok(0) | Err(_) => return Some(started.elapsed()),
                        Ok(_) => return None, // answered: the head was never complete
                    }
                }
            }
            None
        }));
    }

    // Meanwhile an ordinary client is served, each answer well in time.
    let client = http_client();
    let paths = [
        "/healthz".to_string(),
        version_path("fixture.test/graph/c", "v1.0.0", "info"),
        version_path("fixture.test/graph/c", "v1.0.0", "mod"),
        version_path("fixture.test/graph/c", "v1.0.0", "zip"),
        "/fixture.test/graph/c/@v/list".to_string(),
    ];
    for round in 0..4 {
        for p in &paths {
            let t = Instant::now();
            let r = client
                .get(format!("{}{p}", sparta.url))
                .timeout(Duration::from_secs(20))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{p} during the flood (round {round}): {e}"));
            assert_eq!(r.status(), 200, "{p} during the flood");
            r.bytes().await.expect("body");
            let took = t.elapsed();
            assert!(
                took < Duration::from_secs(5),
                "{p} took {took:?} during the flood"
            );
        }
    }

    drop(client);
    // Every flood connection is closed by the server, none answered.
    for (i, s) in idle.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(20)).await,
            "idle connection {i} still open"
        );
    }
    for (i, t) in slow.into_iter().enumerate() {
        let closed_after = t.await.expect("slow task");
        let after = closed_after.unwrap_or_else(|| panic!("slow-header connection {i} not closed"));
        assert!(
            after < Duration::from_secs(25),
            "slow-header connection {i} closed only after {after:?}"
        );
    }
    let (page, settled) = wait_metrics(&sparta.url, Duration::from_secs(10), |p| {
        metric(p, r#"sparta_connections_open{listener="main"}"#) <= 1.0
    })
    .await;
    assert!(settled, "connections still open after the flood:\n{page}");
    let timed_out = metric(
        &page,
        r#"sparta_connections_closed_total{listener="main",reason="header_timeout"}"#,
    );
    assert!(
        timed_out >= (IDLE + SLOW) as f64,
        "header timeouts counted: {timed_out}"
    );
    assert!(
        metric(
            &page,
            r#"sparta_connections_accepted_total{listener="main"}"#
        ) >= (IDLE + SLOW) as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let sparta =
        Sparta::for_fixture(&["--header-read-timeout", "1s", "--idle-timeout", "5s"]).await;
    let mut s = TcpStream::connect(sparta.addr).await.expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // Past the header timeout but inside the idle timeout: still open.
    assert!(
        !closed_within(&mut s, Duration::from_secs(3)).await,
        "closed before --idle-timeout"
    );
    assert!(
        closed_within(&mut s, Duration::from_secs(15)).await,
        "still open long after --idle-timeout"
    );
    let page = metrics_page(&sparta.url).await;
    assert!(
        metric(
            &page,
            r#"sparta_connections_closed_total{listener="main",reason="idle_timeout"}"#
        ) >= 1.0,
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_new_connections_until_one_closes() {
    const CAP: usize = 20;
    let admin = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let admin_s = admin.to_string();
    let cap = CAP.to_string();
    let sparta = Sparta::for_fixture(&[
        "--max-connections",
        &cap,
        "--header-read-timeout",
        "60s",
        "--admin-listen",
        &admin_s,
    ])
    .await;
    let admin_url = format!("http://{admin}");
    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(TcpStream::connect(sparta.addr).await.expect("connect"));
    }
    let (page, full) = wait_metrics(&admin_url, Duration::from_secs(10), |p| {
        metric(p, r#"sparta_connections_open{listener="main"}"#) == CAP as f64
    })
    .await;
    assert!(full, "the cap's connections were not all accepted:\n{page}");

    // One more: the kernel completes its handshake, Sparta does not take it.
    let mut extra = TcpStream::connect(sparta.addr)
        .await
        .expect("connect extra");
    extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let early = tokio::time::timeout(Duration::from_secs(2), extra.read_to_end(&mut buf)).await;
    assert!(early.is_err(), "answered over the cap: {buf:?}");
    let page = metrics_page(&admin_url).await;
    assert_eq!(
        metric(&page, r#"sparta_connections_open{listener="main"}"#),
        CAP as f64,
        "{page}"
    );
    assert_eq!(
        metric(
            &page,
            r#"sparta_connections_accepted_total{listener="main"}"#
        ),
        CAP as f64,
        "{page}"
    );

    // A held connection goes away: the waiting one is served.
    drop(held.pop());
    tokio::time::timeout(Duration::from_secs(10), extra.read_to_end(&mut buf))
        .await
        .expect("served once a connection closed")
        .expect("read");
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_zip_leaves_nothing_behind() {
    let fx = fixture();
    let sparta = Sparta::for_fixture(&[]).await;
    let spool = sparta.dir.path().join("spool");
    let warm = version_path("fixture.test/large", "v1.0.0", "zip");
    let cold = version_path("fixture.test/large", "v1.1.0", "zip");
    let client = http_client();

    // Warm: stored first, then abandoned several times part-way.
    let r = client
        .get(format!("{}{warm}", sparta.url))
        .send()
        .await
        .expect("warm get");
    assert_eq!(r.status(), 200);
    let whole = r.bytes().await.expect("body");
    assert!(whole.len() > 1 << 20, "the large zip is large");
    for _ in 0..5 {
        let mut s = TcpStream::connect(sparta.addr).await.expect("connect");
        s.write_all(format!("GET {warm} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut got = vec![0u8; 256 * 1024];
        let mut n = 0;
        while n < got.len() {
            let k = s.read(&mut got[n..]).await.expect("read");
            assert!(k > 0, "closed early");
            n += k;
        }
        drop(s);
    }

    // Cold: the client leaves while Sparta is still fetching from upstream.
    fx.fault(serde_json::json!({"path": cold, "kind": "delay", "delay_ms": 1500, "times": 1}))
        .await;
    {
        let mut s = TcpStream::connect(sparta.addr).await.expect("connect");
        s.write_all(format!("GET {cold} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Requests in flight and connections drop back; the spool empties.
    let (page, settled) = wait_metrics(&sparta.url, Duration::from_secs(60), |p| {
        metric(p, "sparta_http_requests_in_flight") <= 1.0
            && metric(p, r#"sparta_connections_open{listener="main"}"#) <= 2.0
            && metric(p, "sparta_upstream_fetches_in_flight") == 0.0
    })
    .await;
    assert!(settled, "requests or connections left over:\n{page}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !files_in(&spool).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(files_in(&spool), Vec::<String>::new(), "spool left behind");

    // Nothing wrong stored, and both zips are served whole.
    assert_eq!(sparta.corrupt_objects(fx).await, Vec::<String>::new());
    for p in [&warm, &cold] {
        let r = client
            .get(format!("{}{p}", sparta.url))
            .send()
            .await
            .expect("get after");
        assert_eq!(r.status(), 200, "{p}");
        let body = r.bytes().await.expect("body");
        assert_eq!(body[..], fx.truth(p).await[..], "{p}");
    }
}

/// A GET of `path` on a connection with a small receive buffer, so that a
/// client that stops reading blocks the server's writes soon.
async fn small_buffer_get(addr: SocketAddr, path: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
    let mut s = socket.connect(addr).await.expect("connect");
    // Closed after the answer, so reading to the end ends.
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    s
}

/// Reads `n` bytes (fewer if the server closes first); returns how many.
async fn read_n(s: &mut TcpStream, n: usize) -> usize {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < n {
        let want = buf.len().min(n - got);
        match tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf[..want])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(k)) => got += k,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_the_client_stopped_reading_is_cut_after_the_send_timeout() {
    let fx = fixture();
    let sparta = Sparta::for_fixture(&["--send-timeout", "2s"]).await;
    let zip = version_path("fixture.test/large", "v1.0.0", "zip");
    let whole = fx.truth(&zip).await.len();
    let r = http_client()
        .get(format!("{}{zip}", sparta.url))
        .send()
        .await
        .expect("store it first");
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.expect("body").len(), whole);
    let cut = r#"sparta_connections_closed_total{listener="main",reason="send_timeout"}"#;

    // A client that reads in bursts with pauses shorter than the timeout
    // (3.6 s of pauses in all) is served to the end.
    let mut s = small_buffer_get(sparta.addr, &zip).await;
    let mut got = 0;
    for _ in 0..3 {
        got += read_n(&mut s, 8 << 20).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    got += read_n(&mut s, usize::MAX).await;
    assert!(
        got > whole,
        "the whole answer arrived: {got} of {whole}+ bytes"
    );
    drop(s);
    assert_eq!(metric(&metrics_page(&sparta.url).await, cut), 0.0);

    // A client that stops reading: its answer is cut, its connection closed.
    let started = Instant::now();
    let mut s = small_buffer_get(sparta.addr, &zip).await;
    let first = read_n(&mut s, 64 * 1024).await;
    assert_eq!(first, 64 * 1024);
    let (page, done) = wait_metrics(&sparta.url, Duration::from_secs(30), |p| {
        metric(p, cut) >= 1.0
    })
    .await;
    assert!(done, "not cut:\n{page}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "cut before the timeout"
    );
    // What was already in the socket buffers arrives, then the end.
    let rest = read_n(&mut s, usize::MAX).await;
    assert!(
        first + rest < whole,
        "the answer was cut: {} of {whole}",
        first + rest
    );
    // Others are served as before.
    let r = http_client()
        .get(format!("{}/healthz", sparta.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
}
