//! `Disable-Module-Fetch: true` is answered from memory and storage only;
//! asserted by the fixture's request counts.

use sparta_e2e::{Sparta, fixture, http_client, scratch_module, version_path};

async fn get(url: &str, cached_only: bool) -> (u16, Vec<u8>) {
    let mut req = http_client().get(url);
    if cached_only {
        req = req.header("Disable-Module-Fetch", "true");
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.bytes().await.expect("body").to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_only_never_fetches() {
    let fx = fixture();
    let module = scratch_module();
    let prefix = format!("/{module}/");
    let paths = [
        version_path(&module, "v1.0.0", "info"),
        version_path(&module, "v1.0.0", "mod"),
        version_path(&module, "v1.0.0", "zip"),
        format!("/{module}/@v/list"),
        format!("/{module}/@latest"),
    ];
    let sparta = Sparta::for_fixture(&[]).await;

    // Nothing cached yet: 404 saying why, and upstream never asked.
    for p in &paths {
        let (status, body) = get(&format!("{}{p}", sparta.url), true).await;
        assert_eq!(status, 404, "{p}");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("not cached"), "{p}: {text}");
    }
    assert!(
        fx.stats(&prefix).await.is_empty(),
        "cached-only reached upstream"
    );

    // Fetched normally once, they are served cached-only, from memory and,
    // after a restart, from storage, byte for byte, without upstream.
    for p in &paths {
        assert_eq!(
            get(&format!("{}{p}", sparta.url), false).await.0,
            200,
            "{p}"
        );
    }
    let fetched = fx.stats(&prefix).await;
    assert!(!fetched.is_empty());
    let sparta = sparta.restart(&[]).await;
    for round in 0..2 {
        for p in &paths {
            let (status, body) = get(&format!("{}{p}", sparta.url), true).await;
            assert_eq!(status, 200, "round {round}: {p}");
            if p.ends_with(".mod") || p.ends_with(".zip") {
                assert_eq!(body, fx.truth(p).await, "{p}");
            }
        }
    }
    assert_eq!(
        fx.stats(&prefix).await,
        fetched,
        "cached-only reached upstream"
    );

    // A version never fetched stays a 404, still without asking upstream.
    let other = version_path(&module, "v1.1.0", "zip");
    assert_eq!(get(&format!("{}{other}", sparta.url), true).await.0, 404);
    assert_eq!(fx.stats(&prefix).await, fetched);
    // Without the header the same request fetches: the header made the difference.
    let (status, _) = get(&format!("{}{other}", sparta.url), false).await;
    assert_eq!(status, 200);
    assert!(fx.count(&other).await >= 1);
}
