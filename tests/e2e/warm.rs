//! `sparta warm` with the real binary, then an offline build: the store is
//! filled from a fixture project's go.sum (65+ modules), verified against
//! the fixture checksum database; with the upstream and the database both
//! stopped, `--network offline` serves the go command everything it needs,
//! checksum-database lookups and tiles included.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use sparta_e2e::sumdb::SumdbFixture;
use sparta_e2e::{Fixture, GoEnv, Sparta, SpartaOptions, sparta_bin};
use tempfile::TempDir;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A project needing every wide module and the graph chain.
fn project(dir: &Path) {
    write(
        &dir.join("go.mod"),
        "module example.test/app\n\ngo 1.21\n\nrequire (\n\
         \tfixture.test/wide/root v1.0.0\n\
         \tfixture.test/graph/a v1.2.0\n)\n",
    );
    write(
        &dir.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"fixture.test/graph/a\"\n\t\"fixture.test/wide/root\"\n)\n\n\
         func main() {\n\tfmt.Println(root.Sum())\n\tfmt.Println(a.Describe())\n}\n",
    );
}

/// `sparta warm` with the store in `dir`; returns (success, stderr).
fn warm(dir: &Path, upstream: &str, extra: &[&str]) -> (bool, String) {
    let out = Command::new(sparta_bin())
        .arg("warm")
        .arg("--storage")
        .arg(dir.join("store"))
        .arg("--spool-dir")
        .arg(dir.join("spool"))
        .args(["--upstream", upstream])
        .args(extra)
        .env_remove("SPARTA_LOG")
        .output()
        .expect("run sparta warm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_from_gosum_then_build_offline() {
    let fx = Fixture::start(&["--large-size", "4KiB", "--wide", "64"]);
    let db = SumdbFixture::start("sumdb.sparta.test", &format!("{}/_fixture/sums", fx.url));
    let sumdb_flag = db.sparta_flag();

    // The project's go.sum, made by the go command straight from the fixture.
    let tidy = GoEnv::new(&fx.url);
    let app = tidy.work().join("app");
    project(&app);
    tidy.ok(&app, &["mod", "tidy"]).await;
    let gosum = std::fs::read_to_string(app.join("go.sum")).expect("go.sum");
    let zips = gosum.lines().filter(|l| !l.contains("/go.mod ")).count();
    assert!(zips >= 60, "the project needs only {zips} module zips");

    let dir = Arc::new(TempDir::new().expect("tempdir"));
    std::fs::create_dir_all(dir.path().join("spool")).expect("spool");
    let before = fx.stats("/fixture.test/").await;
    let gosum_path = app.join("go.sum");
    let (ok, report) = warm(
        dir.path(),
        &fx.url,
        &[&sumdb_flag, gosum_path.to_str().expect("path")],
    );
    assert!(ok, "warm failed:\n{report}");
    assert!(report.contains(" 0 failed"), "{report}");
    let after = fx.stats("/fixture.test/").await;
    let zip_fetches: u64 = after
        .iter()
        .filter(|(p, _)| p.ends_with(".zip"))
        .map(|(p, n)| n - before.get(p).copied().unwrap_or(0))
        .sum();
    assert_eq!(zip_fetches as usize, zips, "each zip fetched exactly once");
    assert!(
        db.stats().await.keys().any(|p| p.contains("lookup/")),
        "warm did not consult the checksum database"
    );

    // Warming again fetches nothing: everything is stored.
    let (ok, report) = warm(
        dir.path(),
        &fx.url,
        &[&sumdb_flag, gosum_path.to_str().expect("path")],
    );
    assert!(ok, "second warm failed:\n{report}");
    assert_eq!(
        fx.stats("/fixture.test/").await,
        after,
        "second warm fetched"
    );

    // A version the upstream does not have fails the warm, named.
    let bad = dir.path().join("bad.txt");
    write(&bad, "fixture.test/wide/m0001@v1.9.9\n");
    let (ok, report) = warm(
        dir.path(),
        &fx.url,
        &["--sumdb-verify=false", bad.to_str().expect("path")],
    );
    assert!(!ok, "a missing version did not fail the warm");
    assert!(
        report.contains("failed: fixture.test/wide/m0001@v1.9.9"),
        "{report}"
    );

    // Nothing reachable any more.
    let upstream = fx.url.clone();
    let verifier_key = db.verifier_key.clone();
    drop(fx);
    drop(db);
    let sparta = Sparta::start(SpartaOptions::new(&upstream).with_dir(dir.clone()).args(&[
        "--network",
        "offline",
        &sumdb_flag,
    ]))
    .await;

    // An empty module cache, no go.sum: every hash comes from the checksum
    // database through Sparta, and must agree with the one made online.
    let mut go = GoEnv::new(&sparta.url);
    go.set("GOSUMDB", &verifier_key);
    let offline_app = go.work().join("app");
    project(&offline_app);
    go.ok(&offline_app, &["mod", "tidy"]).await;
    let rebuilt = std::fs::read_to_string(offline_app.join("go.sum")).expect("go.sum");
    assert_eq!(sorted_lines(&rebuilt), sorted_lines(&gosum));
    go.ok(&offline_app, &["build", "-o", "app", "."]).await;
    let out = Command::new(offline_app.join("app"))
        .output()
        .expect("run app");
    let expected_sum: u32 = (0..64).sum();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{expected_sum}\na v1.2.0 -> b v1.1.0 -> c v1.2.0\n")
    );
    assert!(sparta.log().contains("network=offline"), "{}", sparta.log());
}

/// `POST /warm` on the admin address and `sparta warm --server`, both
/// behind token authentication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_through_the_admin_endpoint_and_a_running_server() {
    const TOKEN: &str = "warm-test-token-0123456789";
    let fx = Fixture::start(&["--large-size", "4KiB", "--wide", "8"]);
    let dir = TempDir::new().expect("tempdir");
    let tokens = dir.path().join("tokens");
    write(
        &tokens,
        &format!("ci:{}\n", sparta_e2e::sha256_hex(TOKEN.as_bytes())),
    );
    let token_file = dir.path().join("token");
    write(&token_file, &format!("{TOKEN}\n"));
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .to_string();
    let sparta = Sparta::start(SpartaOptions::new(&fx.url).args(&[
        "--sumdb-verify=false",
        "--auth-tokens",
        tokens.to_str().expect("path"),
        "--admin-listen",
        &admin,
    ]))
    .await;
    let client = sparta_e2e::http_client();
    let warm_url = format!("http://{admin}/warm");
    let zip =
        |n: u32| sparta_e2e::version_path(&format!("fixture.test/wide/m{n:04}"), "v1.0.0", "zip");

    let list = "fixture.test/wide/m0000@v1.0.0\nfixture.test/wide/m0001@v1.0.0\n";
    let r = client
        .post(&warm_url)
        .body(list)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401, "an unauthenticated warm was accepted");
    let r = client
        .post(&warm_url)
        .bearer_auth(TOKEN)
        .body("this is not a list")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let r = client
        .post(&warm_url)
        .bearer_auth(TOKEN)
        .body(list)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 202);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        let status: serde_json::Value = client
            .get(&warm_url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if status["state"] == "done" {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "warm job never finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        (status["done"].as_u64(), status["failed"].as_u64()),
        (Some(2), Some(0)),
        "{status}"
    );
    for n in [0, 1] {
        assert_eq!(fx.count(&zip(n)).await, 1);
        assert!(sparta.stored().contains_key(&zip(n)[1..]));
    }

    // The CLI against the running server: refused without the token,
    // fetched through it with the token.
    let list_file = dir.path().join("list.txt");
    write(
        &list_file,
        "fixture.test/wide/m0002@v1.0.0\nfixture.test/wide/m0003 v1.0.0\n",
    );
    let run = |with_token: bool| {
        let mut cmd = Command::new(sparta_bin());
        cmd.args(["warm", "--server", &sparta.url])
            .env_remove("SPARTA_WARM_TOKEN")
            .env("NETRC", dir.path().join("no-netrc"));
        if with_token {
            cmd.arg("--token-file").arg(&token_file);
        }
        cmd.arg(&list_file).output().expect("run sparta warm")
    };
    let out = run(false);
    assert!(!out.status.success());
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        report.contains("failed: fixture.test/wide/m0002@v1.0.0: 401"),
        "{report}"
    );
    let out = run(true);
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("warm: 2/2 done"), "{report}");
    for n in [2, 3] {
        assert_eq!(fx.count(&zip(n)).await, 1);
        assert!(sparta.stored().contains_key(&zip(n)[1..]));
    }
    assert!(!report.contains(TOKEN));
}
