//! Routing between the upstream proxies and git, `off`, privacy of routed
//! modules, and bad input at the seam: each a clear 404/410, nothing stored.

use sparta_e2e::git::{GitServer, HOST, PASS};
use sparta_e2e::{GoEnv, Sparta, SpartaOptions, fixture, http_client, sparta_bin};

use crate::direct::{go_sparta, same_as_direct, sparta_for, with_vcs_dir};

fn private_keys(sparta: &Sparta, needle: &str) -> Vec<String> {
    sparta
        .stored()
        .into_keys()
        .filter(|k| !k.starts_with("_sparta/") && k.contains(needle))
        .collect()
}

async fn get(sparta: &Sparta, path: &str) -> (u16, String) {
    let resp = http_client()
        .get(format!("{}/{path}", sparta.url))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

async fn metric(sparta: &Sparta, series: &str) -> u64 {
    let (_, text) = get(sparta, "metrics").await;
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .map(|v| v.trim().parse::<f64>().unwrap_or(0.0) as u64)
        })
        .unwrap_or(0)
}

fn simple_repo(git: &GitServer, name: &str) -> String {
    let mut repo = git.repo(name);
    let m = repo.module();
    repo.write("go.mod", &format!("module {m}\n\ngo 1.21\n"))
        .write("p.go", "package p\n");
    repo.commit("one");
    repo.tag("v1.0.0");
    repo.push();
    m
}

/// A public module comes from the upstream fixture, a routed one from git,
/// and the fixture never sees the routed module's path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_routes_split_public_and_private() {
    let git = GitServer::start();
    let m = simple_repo(&git, "routed");
    let sparta = sparta_for(&git, &[]).await;
    same_as_direct(&git, &sparta, &format!("{m}@v1.0.0")).await;
    let public = go_sparta(&sparta)
        .download(&["fixture.test/incompat@v2.0.0+incompatible"])
        .await;
    assert_eq!(public[0]["Version"], "v2.0.0+incompatible");
    let stats = fixture().stats("").await;
    assert!(
        stats
            .keys()
            .any(|k| k.starts_with("/fixture.test/incompat/")),
        "the public module came from the fixture: {stats:?}"
    );
    let leaked: Vec<_> = stats.keys().filter(|k| k.contains("routed.git")).collect();
    assert!(
        leaked.is_empty(),
        "private paths reached the upstream: {leaked:?}"
    );
    assert!(
        git.stats()
            .await
            .keys()
            .any(|k| k.starts_with("/routed.git/")),
        "the routed module came from git"
    );
}

/// With checksum verification on, a routed module is never looked up in the
/// checksum database (counted as skipped), and nothing of it reaches the
/// upstream. The control: `--upstream 'FIXTURE,direct'` without a route asks
/// the upstream first, so there the path does reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_private_modules_skip_the_checksum_database() {
    let git = GitServer::start();
    let m = simple_repo(&git, "secretlib");
    let mut args = vec!["--route".to_owned(), format!("{HOST}=direct")];
    args.extend(git.sparta_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Not the fixture defaults: verification stays on.
    let sparta = Sparta::start(with_vcs_dir(SpartaOptions::new(&fixture().url)).args(&args)).await;
    let got = go_sparta(&sparta).download(&[&format!("{m}@v1.0.0")]).await;
    assert!(got[0]["Sum"].as_str().is_some_and(|s| s.starts_with("h1:")));
    // A client without GONOSUMDB asks the relay: the lookup is refused here.
    let (status, body) = get(&sparta, &format!("sumdb/sum.golang.org/lookup/{m}@v1.0.0")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("private"), "{body}");
    let skipped = metric(
        &sparta,
        "sparta_sumdb_verifications_total{outcome=\"skipped\"}",
    )
    .await;
    assert!(
        skipped >= 2,
        "mod and zip verification skipped, got {skipped}"
    );
    let leaked: Vec<_> = fixture()
        .stats("")
        .await
        .into_keys()
        .filter(|k| k.contains("secretlib"))
        .collect();
    assert!(
        leaked.is_empty(),
        "private paths reached the upstream: {leaked:?}"
    );

    let control_mod = simple_repo(&git, "publiclater");
    let list = format!("{},direct", fixture().url);
    let control = Sparta::start(
        with_vcs_dir(SpartaOptions::new(&list))
            .args(&["--sumdb-verify=false"])
            .args(
                &git.sparta_args()
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            ),
    )
    .await;
    let (status, body) = get(&control, &format!("{control_mod}/@v/v1.0.0.info")).await;
    assert_eq!(status, 200, "{body}\n{}", control.log());
    assert!(
        fixture()
            .stats("")
            .await
            .keys()
            .any(|k| k.contains("publiclater")),
        "without a route the upstream is asked first"
    );
}

/// `off` in a route or in `--upstream`: 410 naming the setting, no fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_disables_lookups() {
    let sparta = Sparta::for_fixture(&["--route", "fixture.test/pseudo=off"]).await;
    let (status, body) = get(&sparta, "fixture.test/pseudo/@v/list").await;
    assert_eq!(status, 410, "{body}");
    assert!(body.contains("disabled by --route"), "{body}");
    assert_eq!(fixture().count("/fixture.test/pseudo/@v/list").await, 0);
    let (status, _) = get(&sparta, "fixture.test/incompat/@v/list").await;
    assert_eq!(status, 200, "other modules still take --upstream");

    let off = Sparta::start(SpartaOptions::new("off")).await;
    let (status, body) = get(&off, "fixture.test/incompat/@v/v2.0.0+incompatible.info").await;
    assert_eq!(status, 410, "{body}");
    assert!(body.contains("disabled by --upstream"), "{body}");
    assert!(private_keys(&off, "fixture.test").is_empty());
}

/// `direct` needs a writable VCS cache directory: refused at start-up.
#[test]
fn direct_without_a_writable_cache_dir_is_refused() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").expect("write");
    let out = std::process::Command::new(sparta_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream", "direct"])
        .arg("--storage")
        .arg(dir.path().join("store"))
        .arg("--vcs-cache-dir")
        .arg(&file)
        .output()
        .expect("run sparta");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--vcs-cache-dir"), "{err}");
}

/// Unknown host, refused credential, repository over the size limit, a
/// go-get meta tag pointing at a metadata address: each a clear 404/410
/// with a reason, never a 5xx, and nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_bad_input_is_a_clear_not_found() {
    let git = GitServer::start();
    // Unknown host: no map, no DNS answer for it.
    let sparta = sparta_for(&git, &["--route", "nohost.sparta.test=direct"]).await;
    let (status, body) = get(&sparta, "nohost.sparta.test/x.git/@v/list").await;
    assert!(
        status == 404 || status == 410,
        "unknown host: {status} {body}"
    );
    assert!(!body.trim().is_empty());
    assert!(private_keys(&sparta, "nohost").is_empty());

    // Over the size limit.
    let mut big = git.repo("big");
    let m = big.module();
    let noise: String = (0..200_000u32)
        .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
        .collect();
    big.write("go.mod", &format!("module {m}\n\ngo 1.21\n"))
        .write("noise.txt", &noise);
    big.commit("big");
    big.tag("v1.0.0");
    big.push();
    let small = sparta_for(&git, &["--vcs-max-repo-size", "20000"]).await;
    let (status, body) = get(&small, &format!("{m}/@v/v1.0.0.zip")).await;
    assert!(
        status == 404 || status == 410,
        "over the limit: {status} {body}"
    );
    assert!(body.contains("too large"), "{body}");
    assert!(private_keys(&small, "big.git").is_empty());
}

/// A repository under /private/ with a wrong password: a clear error the go
/// command shows, no prompt; with the right one it downloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_refused_credential() {
    let git = GitServer::start();
    let mut repo = git.repo("private/app");
    let m = repo.module();
    repo.write("go.mod", &format!("module {m}\n\ngo 1.21\n"))
        .write("p.go", "package app\n");
    repo.commit("one");
    repo.tag("v1.0.0");
    repo.push();
    let netrc = git.netrc("wrong");
    let sparta = sparta_for(&git, &["--vcs-netrc", &netrc.to_string_lossy()]).await;
    let (status, body) = get(&sparta, &format!("{m}/@v/v1.0.0.info")).await;
    assert!(
        status == 404 || status == 410,
        "refused credential: {status} {body}"
    );
    assert!(!body.contains("wrong"), "no credential in the body: {body}");
    let out = go_sparta(&sparta)
        .run(
            &GoEnv::new("off").work(),
            &["mod", "download", &format!("{m}@v1.0.0")],
        )
        .await;
    assert!(!out.ok, "the download fails");
    assert!(
        out.stderr.contains("404") || out.stderr.contains("410"),
        "{}",
        out.stderr
    );
    assert!(private_keys(&sparta, "private/app").is_empty());
    assert!(!sparta.log().contains("wrong"), "no credential in the log");

    let good = git.netrc(PASS);
    let sparta = sparta_for(&git, &["--vcs-netrc", &good.to_string_lossy()]).await;
    let (status, body) = get(&sparta, &format!("{m}/@v/v1.0.0.info")).await;
    assert_eq!(status, 200, "{body}\n{}", sparta.log());
    assert!(!sparta.log().contains(PASS), "no credential in the log");
}

/// A go-get meta tag that points at a cloud metadata address is refused.
/// The git server listens on port 80 of its own loopback address, so the
/// module path (an IP address) needs no port for discovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_meta_tag_to_metadata_address_is_refused() {
    let ip = format!(
        "127.{}.{}.{}",
        10 + std::process::id() % 200,
        1 + std::process::id() % 250,
        7
    );
    let git = GitServer::start_on(&format!("{ip}:80"));
    let module = format!("{ip}/evil/x");
    let sparta = Sparta::start(with_vcs_dir(SpartaOptions::fixture()).args(&[
        "--route",
        &format!("{ip}=direct"),
        "--vcs-allow-loopback",
        "--vcs-insecure",
        &ip,
    ]))
    .await;
    let (status, body) = get(&sparta, &format!("{module}/@v/list")).await;
    assert!(
        status == 404 || status == 410,
        "metadata target: {status} {body}\n{}",
        sparta.log()
    );
    assert!(body.contains("refused"), "{body}");
    assert!(
        git.stats().await.keys().any(|k| k.starts_with("/evil/")),
        "discovery reached the git host"
    );
    assert!(private_keys(&sparta, "evil").is_empty());
}
