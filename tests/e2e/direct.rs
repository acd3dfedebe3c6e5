//! Modules straight from git through Sparta (`--route ...=direct`): for each
//! case the go command's own `GOPROXY=direct` download of the same
//! repository is the reference, and the `h1:` of zip and go.mod through
//! Sparta must equal it; `go build` through Sparta must succeed.
//!
//! The repositories are made here and served by `git http-backend`
//! (tests/support/git.rs explains how both clients reach it).

use std::path::Path;
use std::time::Duration;

use sparta_e2e::git::{GitServer, HOST, Repo};
use sparta_e2e::{GoEnv, Sparta, SpartaOptions, fixture, within};

/// Options with the VCS mirrors in the instance's own temporary directory.
pub fn with_vcs_dir(opts: SpartaOptions) -> SpartaOptions {
    let dir = std::sync::Arc::new(tempfile::TempDir::new().expect("tempdir"));
    let vcs = dir.path().join("vcs").to_string_lossy().into_owned();
    opts.with_dir(dir).args(&["--vcs-cache-dir", &vcs])
}

/// Sparta routing every `HOST` module to git, in front of the fixture.
pub async fn sparta_for(git: &GitServer, extra: &[&str]) -> Sparta {
    let route = format!("{HOST}=direct");
    let mut args = vec!["--route".to_owned(), route];
    args.extend(git.sparta_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Sparta::start(with_vcs_dir(SpartaOptions::fixture()).args(&args)).await
}

/// The go command fetching straight from the git server.
pub fn go_direct(git: &GitServer, auth: bool) -> GoEnv {
    let mut go = GoEnv::new("direct");
    go.set("GIT_CONFIG_GLOBAL", &git.gitconfig(auth).to_string_lossy());
    go.set("GOPRIVATE", HOST);
    go.set("GIT_TERMINAL_PROMPT", "0");
    go
}

/// The go command through Sparta only (GONOSUMDB: the modules are private).
pub fn go_sparta(sparta: &Sparta) -> GoEnv {
    let mut go = GoEnv::new(&sparta.url);
    go.set("GONOSUMDB", HOST);
    go.set("GIT_TERMINAL_PROMPT", "0");
    go
}

/// A download through Sparta: its JSON, and the environment that holds
/// the extracted module (dropping it removes the files).
pub struct Downloaded {
    pub json: serde_json::Value,
    _go: GoEnv,
}

impl std::ops::Index<&str> for Downloaded {
    type Output = serde_json::Value;
    fn index(&self, field: &str) -> &serde_json::Value {
        &self.json[field]
    }
}

/// Downloads `target` both ways; asserts equal version and hashes; returns
/// the download through Sparta.
pub async fn same_as_direct(git: &GitServer, sparta: &Sparta, target: &str) -> Downloaded {
    let want = go_direct(git, false).download(&[target]).await.remove(0);
    let go = go_sparta(sparta);
    let got = go.download(&[target]).await.remove(0);
    for field in ["Path", "Version", "Sum", "GoModSum"] {
        assert_eq!(
            got[field],
            want[field],
            "{field} of {target}: through Sparta {got}\ndirect {want}\nsparta log:\n{}",
            sparta.log()
        );
    }
    assert!(
        got["Sum"].as_str().is_some_and(|s| s.starts_with("h1:")),
        "{got}"
    );
    Downloaded { json: got, _go: go }
}

/// Builds a program importing `import` at `module@version` through Sparta.
pub async fn builds_through(sparta: &Sparta, module: &str, version: &str, import: &str) {
    let go = go_sparta(sparta);
    let app = go
        .work()
        .join(format!("app-{}", version.replace(['/', '+'], "_")));
    std::fs::create_dir_all(&app).expect("mkdir app");
    std::fs::write(
        app.join("go.mod"),
        format!("module example.test/app\n\ngo 1.21\n\nrequire {module} {version}\n"),
    )
    .expect("go.mod");
    std::fs::write(
        app.join("main.go"),
        format!("package main\n\nimport p \"{import}\"\n\nfunc main() {{ println(p.Name()) }}\n"),
    )
    .expect("main.go");
    go.ok(&app, &["build", "-mod=mod", "-o", "app", "."]).await;
    assert!(app.join("app").exists());
}

fn package(name: &str) -> String {
    format!("package {name}\n\nfunc Name() string {{ return \"{name}\" }}\n")
}

fn extracted(got: &Downloaded) -> &Path {
    let dir = Path::new(got["Dir"].as_str().expect("Dir in JSON"));
    assert!(dir.join("go.mod").is_file(), "module extracted at {dir:?}");
    dir
}

/// Root module, a subdirectory module with a tag prefix and an inherited
/// LICENSE, a nested module left out, symlinks left out, pseudo-versions from
/// a branch and from a commit hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_root_subdir_nested_symlinks_pseudo() {
    let git = GitServer::start();
    let mut repo: Repo = git.repo("lib");
    let m = repo.module();
    repo.write("go.mod", &format!("module {m}\n\ngo 1.21\n"))
        .write("lib.go", &package("lib"))
        .write("LICENSE", "Test license\n")
        .write("nested/go.mod", &format!("module {m}/nested\n\ngo 1.21\n"))
        .write("nested/n.go", &package("nested"))
        .write("sub/go.mod", &format!("module {m}/sub\n\ngo 1.21\n"))
        .write("sub/sub.go", &package("sub"))
        .symlink("alias.go", "lib.go")
        .symlink("sub/link.txt", "../LICENSE");
    repo.commit("first");
    repo.tag("v1.0.0").tag("sub/v0.2.0");
    repo.write("lib.go", &format!("{}\n// two\n", package("lib")));
    repo.commit("second");
    repo.tag("v1.1.0");
    repo.branch("dev").write("dev.go", "package lib\n");
    let dev_commit = repo.commit("on dev");
    repo.checkout("main");
    repo.push();
    let sparta = sparta_for(&git, &[]).await;

    let root = same_as_direct(&git, &sparta, &format!("{m}@v1.0.0")).await;
    assert!(
        !extracted(&root).join("nested").exists(),
        "nested module left out"
    );
    assert!(
        !extracted(&root).join("alias.go").exists(),
        "symlinks left out"
    );
    same_as_direct(&git, &sparta, &format!("{m}@v1.1.0")).await;
    let sub = same_as_direct(&git, &sparta, &format!("{m}/sub@v0.2.0")).await;
    let files: Vec<_> = std::fs::read_dir(extracted(&sub))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        extracted(&sub).join("LICENSE").exists(),
        "root LICENSE inherited: {files:?} in {}",
        sub.json
    );
    let latest = same_as_direct(&git, &sparta, &format!("{m}@latest")).await;
    assert_eq!(latest["Version"], "v1.1.0");
    let dev = same_as_direct(&git, &sparta, &format!("{m}@dev")).await;
    let pseudo = dev["Version"].as_str().expect("Version");
    assert!(
        pseudo.starts_with("v1.1.1-0.") && pseudo.ends_with(&dev_commit[..12]),
        "{pseudo}"
    );
    let by_hash = same_as_direct(&git, &sparta, &format!("{m}@{}", &dev_commit[..12])).await;
    assert_eq!(by_hash["Version"], pseudo);

    builds_through(&sparta, &m, "v1.1.0", &m).await;
    builds_through(&sparta, &format!("{m}/sub"), "v0.2.0", &format!("{m}/sub")).await;
}

/// `/v2` on a major-version branch and in a major-version subdirectory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_major_versions() {
    let git = GitServer::start();
    let mut branch = git.repo("major");
    let m = branch.module();
    branch
        .write("go.mod", &format!("module {m}\n\ngo 1.21\n"))
        .write("a.go", &package("major"));
    branch.commit("v1");
    branch.tag("v1.0.0");
    branch
        .branch("v2")
        .write("go.mod", &format!("module {m}/v2\n\ngo 1.21\n"));
    branch.commit("v2");
    branch.tag("v2.0.0");
    branch.checkout("main").push();

    let mut subdir = git.repo("majsub");
    let s = subdir.module();
    subdir
        .write("go.mod", &format!("module {s}\n\ngo 1.21\n"))
        .write("a.go", &package("majsub"))
        .write("v2/go.mod", &format!("module {s}/v2\n\ngo 1.21\n"))
        .write("v2/a.go", &package("majsub"));
    subdir.commit("both");
    subdir.tag("v1.0.0").tag("v2.0.0");
    subdir.push();

    let sparta = sparta_for(&git, &[]).await;
    same_as_direct(&git, &sparta, &format!("{m}@v1.0.0")).await;
    same_as_direct(&git, &sparta, &format!("{m}/v2@v2.0.0")).await;
    same_as_direct(&git, &sparta, &format!("{s}/v2@v2.0.0")).await;
    builds_through(&sparta, &format!("{m}/v2"), "v2.0.0", &format!("{m}/v2")).await;
    builds_through(&sparta, &format!("{s}/v2"), "v2.0.0", &format!("{s}/v2")).await;
}

/// A repository without go.mod: a synthesized `.mod`, and `+incompatible`
/// for a v2+ tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_no_gomod_and_incompatible() {
    let git = GitServer::start();
    let mut repo = git.repo("legacy");
    let m = repo.module();
    repo.write("legacy.go", &package("legacy"));
    repo.commit("one");
    repo.tag("v1.0.0");
    repo.write("more.go", "package legacy\n");
    repo.commit("two");
    repo.tag("v3.0.0");
    repo.push();
    let sparta = sparta_for(&git, &[]).await;
    same_as_direct(&git, &sparta, &format!("{m}@v1.0.0")).await;
    same_as_direct(&git, &sparta, &format!("{m}@v3.0.0+incompatible")).await;
    builds_through(&sparta, &m, "v3.0.0+incompatible", &m).await;
}

/// vendor/ directories under both go-directive rules (before and since 1.24).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_vendor_rules() {
    let git = GitServer::start();
    for (name, go) in [("vendold", "1.21"), ("vendnew", "1.24")] {
        let mut repo = git.repo(name);
        let m = repo.module();
        repo.write("go.mod", &format!("module {m}\n\ngo {go}\n"))
            .write("v.go", &package("v"))
            .write("vendor/modules.txt", "# example.test/dep v1.0.0\n")
            .write("vendor/example.test/dep/dep.go", "package dep\n")
            .write("pkg/vendor/inner/inner.go", "package inner\n")
            .write("pkg/p.go", "package pkg\n");
        repo.commit("vendored");
        repo.tag("v1.0.0");
        repo.push();
    }
    let sparta = sparta_for(&git, &[]).await;
    for name in ["vendold", "vendnew"] {
        let m = format!("{HOST}/{name}.git");
        same_as_direct(&git, &sparta, &format!("{m}@v1.0.0")).await;
        builds_through(&sparta, &m, "v1.0.0", &m).await;
    }
}

/// A tag moved after Sparta stored the version: Sparta keeps serving what
/// it stored; the go command's own direct download now differs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_retagged_version_keeps_the_stored_one() {
    let git = GitServer::start();
    let mut repo = git.repo("retag");
    let m = repo.module();
    repo.write("go.mod", &format!("module {m}\n\ngo 1.21\n"))
        .write("r.go", &package("retag"));
    repo.commit("first");
    repo.tag("v1.0.0");
    repo.push();
    let sparta = sparta_for(&git, &[]).await;
    let target = format!("{m}@v1.0.0");
    let first = same_as_direct(&git, &sparta, &target).await;
    // Stored a moment after the answers.
    let zip_and_mod = |k: &String| k.ends_with(".zip") || k.ends_with(".mod");
    within(Duration::from_secs(10), || async {
        sparta.stored().keys().filter(|k| zip_and_mod(k)).count() >= 2
    })
    .await;
    let stored_before: Vec<(String, Vec<u8>)> = sparta
        .stored()
        .into_iter()
        .filter(|(k, _)| k.ends_with(".zip") || k.ends_with(".mod"))
        .map(|(k, p)| (k, std::fs::read(p).expect("read stored")))
        .collect();
    assert!(stored_before.len() >= 2, "zip and mod stored");

    repo.write("r.go", &format!("{}\n// moved\n", package("retag")));
    repo.commit("moved");
    repo.tag("v1.0.0");
    repo.push();
    let moved = go_direct(&git, false).download(&[&target]).await.remove(0);
    assert_ne!(
        moved["Sum"], first["Sum"],
        "the retag changes the direct download"
    );
    let again = go_sparta(&sparta).download(&[&target]).await.remove(0);
    assert_eq!(
        again["Sum"], first["Sum"],
        "Sparta serves the stored version"
    );
    let now = sparta.stored();
    for (key, before) in &stored_before {
        let after = std::fs::read(&now[key]).expect("still stored");
        assert!(after == *before, "{key} was overwritten");
    }
    // Nothing was ever served from the fixture for a routed module.
    let leaked: Vec<_> = fixture()
        .stats("")
        .await
        .into_keys()
        .filter(|k| k.contains(HOST))
        .collect();
    assert!(
        leaked.is_empty(),
        "private paths reached the upstream: {leaked:?}"
    );
}
