//! The go command's everyday verbs through Sparta: list versions, get the
//! latest, build and run a program importing fixture modules.

use sparta_e2e::{GoEnv, Sparta};

fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_versions() {
    let sparta = Sparta::for_fixture(&[]).await;
    let go = GoEnv::new(&sparta.url);
    let out = go
        .ok(
            &go.work(),
            &[
                "list",
                "-m",
                "-versions",
                "fixture.test/graph/c",
                "fixture.test/Upper/Case",
                "fixture.test/major/v2",
                "fixture.test/incompat",
            ],
        )
        .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "fixture.test/graph/c v1.0.0 v1.1.0 v1.2.0 v1.3.0-rc.1",
            "fixture.test/Upper/Case v1.0.0 v1.1.0",
            "fixture.test/major/v2 v2.0.0 v2.1.0",
            "fixture.test/incompat v1.0.0 v2.0.0+incompatible",
        ],
        "go list -m -versions output:\n{out}"
    );
}

/// `go get m@latest` walks the graph: a@v1.2.0 needs b v1.1.0 and c v1.2.0
/// (c above what b asks for), so MVS must pick c v1.2.0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_latest_runs_mvs() {
    let sparta = Sparta::for_fixture(&[]).await;
    let go = GoEnv::new(&sparta.url);
    let dir = go.work().join("getter");
    write(
        &dir.join("go.mod"),
        "module example.test/getter\n\ngo 1.21\n",
    );
    go.ok(&dir, &["get", "fixture.test/graph/a@latest"]).await;
    let list = go.ok(&dir, &["list", "-m", "all"]).await;
    let mods: Vec<&str> = list.lines().collect();
    assert_eq!(
        mods,
        [
            "example.test/getter",
            "fixture.test/graph/a v1.2.0",
            "fixture.test/graph/b v1.1.0",
            "fixture.test/graph/c v1.2.0",
        ],
        "module graph after go get:\n{list}"
    );
    // A semver query with a prefix resolves through the proxy too.
    go.ok(&dir, &["get", "fixture.test/graph/c@v1.1"]).await;
    // Downgrading c below what a@v1.2.0 needs also downgrades a.
    let list = go.ok(&dir, &["list", "-m", "all"]).await;
    let mods: Vec<&str> = list.lines().collect();
    assert_eq!(
        mods,
        [
            "example.test/getter",
            "fixture.test/graph/a v1.1.0",
            "fixture.test/graph/b v1.1.0",
            "fixture.test/graph/c v1.1.0",
        ],
        "module graph after downgrading c:\n{list}"
    );
}

/// Builds and runs a program importing every kind of fixture module: its
/// output names the versions that were compiled in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_and_run_program() {
    let sparta = Sparta::for_fixture(&[]).await;
    let go = GoEnv::new(&sparta.url);
    let dir = go.work().join("app");
    write(
        &dir.join("go.mod"),
        "module example.test/app\n\ngo 1.21\n\nrequire (\n\
         \tfixture.test/graph/a v1.2.0\n\
         \tfixture.test/Upper/Case v1.1.0\n\
         \tfixture.test/major/v2 v2.1.0\n\
         \tfixture.test/incompat v2.0.0+incompatible\n\
         \tfixture.test/pseudo v0.0.0-20240203040506-abcdef012345\n)\n",
    );
    write(
        &dir.join("main.go"),
        r#"package main

import (
	"fmt"

	upcase "fixture.test/Upper/Case"
	"fixture.test/graph/a"
	"fixture.test/incompat"
	major "fixture.test/major/v2"
	"fixture.test/pseudo"
)

func main() {
	fmt.Println(a.Describe())
	fmt.Println(upcase.Hello())
	fmt.Println(major.Version())
	fmt.Println(incompat.Version())
	fmt.Println(pseudo.Version())
}
"#,
    );
    go.ok(&dir, &["mod", "tidy"]).await;
    go.ok(&dir, &["build", "-o", "app", "."]).await;
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::process::Command::new(dir.join("app")).output(),
    )
    .await
    .expect("program timed out")
    .expect("run program");
    assert!(out.status.success(), "program failed: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "a v1.2.0 -> b v1.1.0 -> c v1.2.0\n\
         Upper/Case v1.1.0\n\
         major/v2 v2.1.0\n\
         incompat v2.0.0+incompatible\n\
         pseudo v0.0.0-20240203040506-abcdef012345\n"
    );
}
