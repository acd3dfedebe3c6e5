//! `go mod download -json` of each kind of fixture module: the hashes the go
//! command computed over what Sparta served must be the fixture's.

use sparta_e2e::{GoEnv, Sparta, fixture, sha256_hex, version_path};

async fn download_and_check(module: &str, version: &str) {
    let fx = fixture();
    let sparta = Sparta::for_fixture(&[]).await;
    let go = GoEnv::new(&sparta.url);
    let target = format!("{module}@{version}");
    let out = go.download(&[&target]).await;
    assert_eq!(out.len(), 1, "one JSON object for {target}: {out:?}");
    let d = &out[0];
    let (sum, mod_sum) = fx.sums().await.get(module, version);
    assert_eq!(d["Path"], module);
    assert_eq!(d["Version"], version);
    assert_eq!(d["Sum"], sum.as_str(), "zip hash of {target}");
    assert_eq!(d["GoModSum"], mod_sum.as_str(), "go.mod hash of {target}");
    // The zip the go command kept is byte for byte the fixture's.
    let zip_file = d["Zip"].as_str().expect("Zip in JSON");
    let got = std::fs::read(zip_file).expect("read downloaded zip");
    let want = fx.truth(&version_path(module, version, "zip")).await;
    assert_eq!(sha256_hex(&got), sha256_hex(&want), "zip bytes of {target}");
    assert!(
        sparta.corrupt_objects(fx).await.is_empty(),
        "storage differs from the fixture"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uppercase_path() {
    download_and_check("fixture.test/Upper/Case", "v1.1.0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incompatible_version() {
    download_and_check("fixture.test/incompat", "v2.0.0+incompatible").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pseudo_version() {
    download_and_check("fixture.test/pseudo", "v0.0.0-20240102030405-0123456789ab").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn major_version_module() {
    download_and_check("fixture.test/major/v2", "v2.1.0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_zip() {
    download_and_check("fixture.test/large", "v1.1.0").await;
}

/// A commit hash is a query: resolved through Sparta to the pseudo-version,
/// and never stored under the query's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_query_resolves_to_pseudo_version() {
    let fx = fixture();
    let sparta = Sparta::for_fixture(&[]).await;
    let go = GoEnv::new(&sparta.url);
    let out = go.download(&["fixture.test/pseudo@0123456789ab"]).await;
    assert_eq!(out[0]["Version"], "v0.0.0-20240102030405-0123456789ab");
    let (sum, _) = fx
        .sums()
        .await
        .get("fixture.test/pseudo", "v0.0.0-20240102030405-0123456789ab");
    assert_eq!(out[0]["Sum"], sum.as_str());
    let stored = sparta.stored();
    assert!(
        !stored
            .keys()
            .any(|k| !k.starts_with("_sparta/") && k.contains("/@v/0123456789ab")),
        "a query was stored under its own name: {:?}",
        stored.keys().collect::<Vec<_>>()
    );
}
