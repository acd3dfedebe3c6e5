//! The real go command through the real sparta binary, with the fixture
//! upstream and the fixture checksum database (reachable only through
//! Sparta: its name does not resolve). Needs the server and binary wiring
//! of the flags `--sumdb "<name>+<hash>+<key> <url>"`, `--nosumdb`,
//! `--sumdb-verify`, `--sumdb-fail-open` and the `sparta verify` command.

mod common;

use std::path::Path;
use std::time::Duration;

use common::FixtureDb;
use sparta_e2e::{Fixture, Sparta, SpartaOptions};

const NAME: &str = "sumdb.sparta.test";
/// Whose zip line the database signs differently from what upstream serves.
const BAD_ZIP: (&str, &str) = ("fixture.test/graph/c", "v1.0.0");
/// Whose go.mod line the database signs differently.
const BAD_MOD: (&str, &str) = ("fixture.test/graph/c", "v1.1.0");
/// Left out of the database, listed in --nosumdb.
const PRIVATE: &str = "fixture.test/major";

struct Setup {
    upstream: Fixture,
    db: FixtureDb,
    sparta: Sparta,
    /// Fixture's own sums, unchanged.
    truth: String,
}

/// The fixture's sums with the two bad lines rewritten (to another module's
/// hashes) and the private module left out.
fn doctored(truth: &str) -> String {
    let other = "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    truth
        .lines()
        .filter(|l| {
            !l.starts_with(&format!("{PRIVATE} ")) && !l.starts_with(&format!("{PRIVATE}/"))
        })
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let [m, v, _] = f[..] else {
                return format!("{l}\n");
            };
            let bad_mod = v.strip_suffix("/go.mod").is_some_and(|v| (m, v) == BAD_MOD);
            if (m, v) == BAD_ZIP || bad_mod {
                format!("{m} {v} {other}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

async fn setup(extra: &[&str]) -> Setup {
    let upstream = Fixture::start(&["--large-size", "1KiB"]);
    let truth = reqwest::get(format!("{}/_fixture/sums", upstream.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let db = FixtureDb::start(NAME, &doctored(&truth));
    let spec = format!("{} {}", db.vkey, db.url);
    let mut args = vec!["--sumdb", &spec, "--nosumdb", PRIVATE];
    args.extend_from_slice(extra);
    let sparta = Sparta::start(SpartaOptions::new(&upstream.url).args(&args)).await;
    Setup {
        upstream,
        db,
        sparta,
        truth,
    }
}

/// Runs the go command in `dir` with Sparta as its only proxy and the fixture
/// database as GOSUMDB; bounded to two minutes.
async fn go(s: &Setup, dir: &Path, nosumdb: &str, args: &[&str]) -> (bool, String) {
    let home = dir.join(".home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = tokio::process::Command::new("go");
    cmd.args(args)
        .current_dir(dir)
        .env("GOENV", "off")
        .env("GOPROXY", &s.sparta.url)
        .env("GOSUMDB", &s.db.vkey)
        .env("GONOSUMDB", nosumdb)
        .env("GOPRIVATE", "")
        .env("GONOPROXY", "")
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GOPATH", home.join("gopath"))
        .env("GOMODCACHE", home.join("modcache"))
        .env("GOCACHE", home.join("cache"))
        .env("HOME", &home)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("go command within 2 minutes")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn stored(s: &Setup, module: &str, version: &str, ext: &str) -> bool {
    s.sparta
        .storage
        .join(format!("{module}/@v/{version}.{ext}"))
        .exists()
}

#[tokio::test]
async fn go_command_verifies_through_sparta() {
    let s = setup(&[]).await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(dir.join("go.mod"), "module example.com/client\n\ngo 1.21\n").unwrap();
    std::fs::write(
        dir.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"fixture.test/graph/a\"\n)\n\nfunc main() { fmt.Println(a.Describe()) }\n",
    )
    .unwrap();
    let (ok, out) = go(&s, dir, "", &["get", "fixture.test/graph/a@v1.2.0"]).await;
    assert!(ok, "go get failed:\n{out}");
    let (ok, out) = go(&s, dir, "", &["build", "-o", "client", "."]).await;
    assert!(ok, "go build failed:\n{out}");
    // go.sum has exactly the published lines.
    let gosum = std::fs::read_to_string(dir.join("go.sum")).unwrap();
    for line in gosum.lines() {
        assert!(
            s.truth.lines().any(|t| t == line),
            "go.sum line not published: {line}"
        );
    }
    assert!(gosum.contains("fixture.test/graph/a v1.2.0 h1:"), "{gosum}");
    // The client reached the database only through Sparta.
    let stats = s.db.stats().await;
    assert!(
        stats
            .keys()
            .any(|k| k.starts_with("/lookup/fixture.test/graph/a@")),
        "{stats:?}"
    );
    assert!(stored(&s, "fixture.test/graph/a", "v1.2.0", "zip"));
    let _ = &s.upstream;
}

#[tokio::test]
async fn mismatching_zip_and_gomod_are_refused_and_not_stored() {
    let s = setup(&[]).await;
    let work = tempfile::tempdir().unwrap();
    let sums = sparta_e2e::Sums::parse(&s.truth);

    let (m, v) = BAD_ZIP;
    let (ok, out) = go(
        &s,
        work.path(),
        "",
        &["mod", "download", "-json", &format!("{m}@{v}")],
    )
    .await;
    assert!(!ok, "download of a tampered zip succeeded:\n{out}");
    let (zip_h1, _) = sums.get(m, v);
    assert!(
        out.contains(&zip_h1) && out.contains("h1:AAAAAAAAAAAA"),
        "Sparta's reason not visible:\n{out}"
    );
    assert!(!stored(&s, m, v, "zip"));

    let (m, v) = BAD_MOD;
    let (ok, out) = go(
        &s,
        work.path(),
        "",
        &["mod", "download", "-json", &format!("{m}@{v}")],
    )
    .await;
    assert!(!ok, "download of a tampered go.mod succeeded:\n{out}");
    let (_, mod_h1) = sums.get(m, v);
    assert!(out.contains(&mod_h1), "Sparta's reason not visible:\n{out}");
    assert!(!stored(&s, m, v, "mod") && !stored(&s, m, v, "zip"));
}

#[tokio::test]
async fn nosumdb_module_is_served_without_a_record() {
    let s = setup(&[]).await;
    let work = tempfile::tempdir().unwrap();
    let (ok, out) = go(
        &s,
        work.path(),
        PRIVATE,
        &["mod", "download", "-json", &format!("{PRIVATE}@v1.0.0")],
    )
    .await;
    assert!(ok, "nosumdb module refused:\n{out}");
    assert!(stored(&s, PRIVATE, "v1.0.0", "zip"));
    assert_eq!(s.db.count(&format!("/lookup/{PRIVATE}@v1.0.0")).await, 0);
}

#[tokio::test]
async fn sparta_verify_finds_a_zip_corrupted_in_the_store() {
    let s = setup(&[]).await;
    let work = tempfile::tempdir().unwrap();
    let (ok, out) = go(
        &s,
        work.path(),
        "",
        &["mod", "download", "fixture.test/graph/b@v1.0.0"],
    )
    .await;
    assert!(ok, "{out}");
    let zip = s.sparta.storage.join("fixture.test/graph/b/@v/v1.0.0.zip");
    // Another valid module zip in its place: only the hash can tell.
    let other = s.sparta.storage.join("fixture.test/graph/c/@v/v1.2.0.zip");
    let (ok, out) = go(
        &s,
        work.path(),
        "",
        &["mod", "download", "fixture.test/graph/c@v1.2.0"],
    )
    .await;
    assert!(ok, "{out}");
    std::fs::copy(&other, &zip).unwrap();

    let spec = format!("{} {}", s.db.vkey, s.db.url);
    let run = |delete: bool| {
        let mut cmd = std::process::Command::new(sparta_e2e::sparta_bin());
        cmd.arg("verify")
            .arg("--storage")
            .arg(&s.sparta.storage)
            .args([
                "--upstream",
                &s.upstream.url,
                "--sumdb",
                &spec,
                "--nosumdb",
                PRIVATE,
            ]);
        if delete {
            cmd.arg("--delete");
        }
        cmd.output().unwrap()
    };
    let out = run(false);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "verify passed a corrupted zip:\n{text}"
    );
    assert!(
        text.contains("fixture.test/graph/b/@v/v1.0.0.zip"),
        "{text}"
    );
    assert!(zip.exists());
    let out = run(true);
    assert!(!out.status.success());
    assert!(!zip.exists(), "--delete left the corrupted zip");
    assert!(other.exists());
}

#[test]
fn doctored_sums_change_exactly_the_bad_lines() {
    let truth = "fixture.test/graph/c v1.0.0 h1:zip0=\nfixture.test/graph/c v1.0.0/go.mod h1:mod0=\n\
                 fixture.test/graph/c v1.1.0 h1:zip1=\nfixture.test/graph/c v1.1.0/go.mod h1:mod1=\n\
                 fixture.test/major v1.0.0 h1:p=\nfixture.test/major v1.0.0/go.mod h1:q=\n\
                 fixture.test/major/v2 v2.0.0 h1:r=\n";
    let got = doctored(truth);
    let other = "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    assert_eq!(
        got,
        format!(
            "fixture.test/graph/c v1.0.0 {other}\nfixture.test/graph/c v1.0.0/go.mod h1:mod0=\n\
             fixture.test/graph/c v1.1.0 h1:zip1=\nfixture.test/graph/c v1.1.0/go.mod {other}\n"
        )
    );
}
