//! Sparta mounted under a path prefix and configured from a TOML file, as
//! behind an Ingress at `/go`.

use sparta_e2e::{GoEnv, Sparta, fixture, http_client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_command_through_a_path_prefix() {
    let sparta = Sparta::for_fixture(&["--path-prefix", "/go"]).await;
    let go = GoEnv::new(&format!("{}/go", sparta.url));
    let out = go
        .ok(
            &go.work(),
            &["list", "-m", "-versions", "fixture.test/graph/c"],
        )
        .await;
    assert_eq!(
        out.trim(),
        "fixture.test/graph/c v1.0.0 v1.1.0 v1.2.0 v1.3.0-rc.1"
    );
    let downloads = go.download(&["fixture.test/graph/c@v1.2.0"]).await;
    let sums = fixture().sums().await;
    let (zip_sum, mod_sum) = sums.get("fixture.test/graph/c", "v1.2.0");
    assert_eq!(downloads[0]["Sum"], zip_sum.as_str());
    assert_eq!(downloads[0]["GoModSum"], mod_sum.as_str());

    // Outside the prefix there is no proxy; the probes stay at the root.
    let client = http_client();
    let outside = client
        .get(format!("{}/fixture.test/graph/c/@v/list", sparta.url))
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), 404);
    let health = client
        .get(format!("{}/healthz", sparta.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let index = client
        .get(format!("{}/go/", sparta.url))
        .send()
        .await
        .unwrap();
    assert_eq!(index.status(), 200);
    assert!(index.text().await.unwrap().contains("GOPROXY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sparta.toml");
    std::fs::write(&config, "path_prefix = \"/mirror\"\nlist_ttl = \"1s\"\n").unwrap();
    let sparta = Sparta::for_fixture(&["--config", config.to_str().unwrap()]).await;
    let client = http_client();
    let list = client
        .get(format!(
            "{}/mirror/fixture.test/graph/c/@v/list",
            sparta.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    assert_eq!(
        list.text().await.unwrap(),
        String::from_utf8(fixture().truth("fixture.test/graph/c/@v/list").await).unwrap()
    );
}
