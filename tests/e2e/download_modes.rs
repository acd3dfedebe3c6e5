//! `--download-mode` per pattern, with the real go command: statuses and the
//! fixture's request counts for sync, async, redirect, none and none:403.

use std::time::{Duration, Instant};

use sparta_e2e::{Fixture, GoEnv, Sparta, SpartaOptions, version_path, within};

fn client() -> reqwest::Client {
    sparta_e2e::no_redirect_client()
}

async fn get(url: &str) -> (u16, String, Option<String>) {
    let resp = client().get(url).send().await.expect("request");
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, resp.text().await.unwrap_or_default(), location)
}

fn m(n: u32) -> String {
    format!("fixture.test/wide/m{n:04}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_download_mode_with_the_go_command() {
    let fx = Fixture::start(&["--large-size", "4KiB", "--wide", "8"]);
    let rules = [
        format!("--download-mode={},{}=async", m(0), m(4)),
        format!("--download-mode={}=none", m(1)),
        format!("--download-mode={}=none:403", m(2)),
        format!("--download-mode={}=redirect:{}", m(3), fx.url),
    ];
    let mut args: Vec<&str> = rules.iter().map(String::as_str).collect();
    args.push("--sumdb-verify=false");
    let sparta = Sparta::start(SpartaOptions::new(&fx.url).args(&args)).await;
    let zip = |n: u32| version_path(&m(n), "v1.0.0", "zip");

    // async: a 404 at once, then the fetch happens in the background.
    let (status, body, _) = get(&format!("{}{}", sparta.url, zip(0))).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("background"), "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, _) = get(&format!("{}{}", sparta.url, zip(0))).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the background fetch never landed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        fx.count(&zip(0)).await,
        1,
        "fetched once, in the background"
    );
    // The go command falls through to its next proxy on that first 404.
    let go = GoEnv::new(&format!("{},{}", sparta.url, fx.url));
    go.download(&[&format!("{}@v1.0.0", m(4))]).await;
    assert!(fx.count(&zip(4)).await >= 1);

    // none: 404, never fetched, and the go command cannot get it here.
    let (status, body, _) = get(&format!("{}{}", sparta.url, zip(1))).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("--download-mode none"), "{body}");
    let only_sparta = GoEnv::new(&sparta.url);
    let out = only_sparta
        .run(
            &only_sparta.work(),
            &["mod", "download", &format!("{}@v1.0.0", m(1))],
        )
        .await;
    assert!(!out.ok, "a none-mode module was downloaded");
    assert!(fx.stats(&format!("/{}/", m(1))).await.is_empty());

    // none:403: refused, and the 403 stops the go command's `,` fallback.
    assert_eq!(get(&format!("{}{}", sparta.url, zip(2))).await.0, 403);
    let out = go
        .run(
            &go.work(),
            &["mod", "download", &format!("{}@v1.0.0", m(2))],
        )
        .await;
    assert!(!out.ok, "the 403 did not stop the fallback: {}", out.stdout);
    assert!(fx.stats(&format!("/{}/", m(2))).await.is_empty());

    // redirect: a 302 to the other proxy, which the go command follows;
    // Sparta neither fetches nor stores.
    let (status, _, location) = get(&format!("{}{}", sparta.url, zip(3))).await;
    assert_eq!(status, 302);
    assert_eq!(location, Some(format!("{}{}", fx.url, zip(3))));
    assert_eq!(fx.count(&zip(3)).await, 0);
    only_sparta.download(&[&format!("{}@v1.0.0", m(3))]).await;
    assert_eq!(
        fx.count(&zip(3)).await,
        1,
        "the go command followed the redirect"
    );
    assert!(
        !sparta.stored().keys().any(|k| k.starts_with(&m(3))),
        "a redirected module was stored"
    );

    // sync (no rule): fetched while the client waits.
    only_sparta.download(&[&format!("{}@v1.0.0", m(5))]).await;
    assert_eq!(fx.count(&zip(5)).await, 1);
    // Stored a moment after the answer.
    let stored = within(Duration::from_secs(10), || async {
        sparta.stored().contains_key(&zip(5)[1..])
    })
    .await;
    assert!(stored, "{} not stored", zip(5));
}
