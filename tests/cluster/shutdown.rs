//! Graceful shutdown: SIGTERM lets a zip download in progress finish, stops
//! accepting, and exits 0 within the grace period.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sparta_e2e::{fixture, http_client, sha256_hex, version_path};

use crate::support::{Replica, ReplicaSpec, fixture_truth, get, serial};

const GRACE_SECS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown() {
    let _serial = serial().await;
    let fx = fixture();
    let dir = tempfile::TempDir::new().expect("tempdir");
    let spec = ReplicaSpec::local("a", &dir.path().join("store"), &fx.url)
        .arg(&["--shutdown-grace", &format!("{GRACE_SECS}s")]);
    let mut sparta = Replica::start(spec).await;
    let zip = version_path("fixture.test/large", "v1.0.0", "zip");
    let url = format!("{}{zip}", sparta.url);
    let truth = fixture_truth(&zip).await;
    // Store it first, so the slow download below streams from storage.
    let (status, _, body) = get(&http_client(), &url).await;
    assert_eq!(status, 200, "warm-up download");
    assert!(body == truth, "warm-up download: other bytes");
    drop(body);

    // A client reading about 4 MiB/s: 40 MiB take about 10 s.
    let read = Arc::new(AtomicU64::new(0));
    let download = {
        let (url, read) = (url.clone(), read.clone());
        tokio::spawn(async move {
            let mut resp = http_client()
                .get(&url)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let mut hasher = Sha256::new();
            let mut total = 0u64;
            let deadline = Instant::now() + Duration::from_secs(60);
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| format!("after {total} bytes: {e}"))?
            {
                total += chunk.len() as u64;
                hasher.update(&chunk);
                read.store(total, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_micros(chunk.len() as u64 / 4)).await;
                if Instant::now() > deadline {
                    return Err(format!("still reading after 60s ({total} bytes)"));
                }
            }
            Ok::<_, String>((status, hex::encode(hasher.finalize()), total))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while read.load(Ordering::Relaxed) < 4 << 20 {
        assert!(Instant::now() < deadline, "the download did not start");
        assert!(
            !download.is_finished(),
            "the download ended early: {:?}",
            download.await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let at_signal = read.load(Ordering::Relaxed);
    sparta.sigterm();
    let signalled = Instant::now();

    // New connections are refused soon after the signal.
    let mut refused = None;
    while signalled.elapsed() < Duration::from_secs(3) {
        match tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(sparta.addr),
        )
        .await
        {
            Ok(Err(_)) => {
                refused = Some(signalled.elapsed());
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let refused = refused.unwrap_or_else(|| {
        panic!(
            "new connections still accepted 3s after SIGTERM; log:\n{}",
            sparta.log()
        )
    });
    assert!(
        !download.is_finished() || read.load(Ordering::Relaxed) == truth.len() as u64,
        "download broke right after SIGTERM"
    );

    let (status, sha, len) = download
        .await
        .expect("download task")
        .unwrap_or_else(|e| panic!("download broken by SIGTERM: {e}\nlog:\n{}", sparta.log()));
    let finished = signalled.elapsed();
    assert_eq!(status, 200);
    assert_eq!(
        (sha, len),
        (sha256_hex(&truth), truth.len() as u64),
        "bytes of the download across SIGTERM"
    );
    let exit = sparta
        .wait_exit(Duration::from_secs(GRACE_SECS + 5))
        .await
        .unwrap_or_else(|| panic!("still running {GRACE_SECS}s + 5s after SIGTERM"));
    let exited = signalled.elapsed();
    assert!(
        exit.success(),
        "exit status after SIGTERM: {exit}\nlog:\n{}",
        sparta.log()
    );
    assert!(
        exited < Duration::from_secs(GRACE_SECS),
        "exit took {exited:?}, more than the {GRACE_SECS}s grace"
    );
    let log = sparta.log();
    assert!(
        log.contains("shutdown requested"),
        "no shutdown log line:\n{log}"
    );
    assert!(
        !log.contains("grace period over"),
        "requests were dropped at the end of the grace period:\n{log}"
    );
    eprintln!(
        "SIGTERM after {at_signal} of {} bytes; connections refused after {refused:?}; \
         download done after {finished:?}; exit 0 after {exited:?}",
        truth.len()
    );
}
