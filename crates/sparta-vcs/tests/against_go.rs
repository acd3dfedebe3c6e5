//! Every case resolves the same module through the go command (GOPROXY=direct)
//! and through sparta-vcs against one `git http-backend` server, and asserts
//! equal versions, zip and go.mod `h1:` hashes and times.

mod support;

use support::{GoClient, Repo, Server, same, vcs};

fn lic() -> &'static str {
    "Copyright the authors.\nLicensed as you like.\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_module_tags_branches_and_hashes() {
    let root = tempfile::tempdir().unwrap();
    let mut r = Repo::init(root.path(), "root.git");
    r.write("go.mod", "module example.test/root.git\n\ngo 1.21\n")
        .write("LICENSE", lic())
        .write("a.go", "package root\n")
        .write("dir/b.go", "package dir\n")
        .symlink("link.go", "a.go")
        .symlink("dir/up", "..");
    r.commit("first");
    r.tag("v1.0.0");
    r.write("a.go", "package root\n\nconst X = 1\n");
    r.commit("second");
    r.tag("v1.1.0");
    // Tags that are no versions, or not canonical, or pseudo-version-shaped.
    r.tag("v1.2");
    r.tag("release-1");
    r.write("c.go", "package root\n");
    let untagged = r.commit("third");
    r.git(&["tag", "v0.0.0-20200101000000-abcdefabcdef"]);
    r.git(&["checkout", "-q", "-b", "feature"]);
    r.write("f.go", "package root\n");
    r.commit("feature work");
    r.git(&["checkout", "-q", "main"]);

    let server = Server::start(root.path(), None, None);
    let go = GoClient::new(&server.addr);
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let v = vcs(cache.path(), &server.addr, |_| {});
    let m = "example.test/root.git";

    assert_eq!(
        same(&go, &v, out.path(), m, "v1.0.0").await.version,
        "v1.0.0"
    );
    same(&go, &v, out.path(), m, "v1.1.0").await;
    // A branch past the last tag: a pseudo-version after v1.1.0.
    let main = same(&go, &v, out.path(), m, "main").await;
    assert!(main.version.starts_with("v1.1.1-0."), "{}", main.version);
    assert!(main.version.ends_with(&untagged[..12]));
    // The same commit by hash and by hash prefix.
    same(&go, &v, out.path(), m, &untagged).await;
    same(&go, &v, out.path(), m, &untagged[..10]).await;
    same(&go, &v, out.path(), m, "feature").await;
    // A version prefix and latest.
    same(&go, &v, out.path(), m, "v1").await;
    assert_eq!(
        same(&go, &v, out.path(), m, "latest").await.version,
        "v1.1.0"
    );
    // The pseudo-version itself, as a canonical version.
    same(&go, &v, out.path(), m, &main.version).await;

    let mp = sparta_core::ModulePath::parse(m).unwrap();
    let list: Vec<String> = v
        .list(&mp)
        .await
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(list, go.versions(m));
    assert_eq!(list, ["v1.0.0", "v1.1.0"]);
    // A pseudo-version with the wrong time is refused, as the go command refuses it.
    let bad = main.version.replacen("v1.1.1-0.2023", "v1.1.1-0.2022", 1);
    let bad = sparta_core::Version::parse(&bad).unwrap();
    assert!(matches!(
        v.info(&mp, &bad).await,
        Err(sparta_vcs::VcsError::NotFound(_))
    ));
    assert!(go.download(&format!("{m}@{bad}")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subdirectory_modules_nested_modules_and_inherited_license() {
    let root = tempfile::tempdir().unwrap();
    let mut r = Repo::init(root.path(), "multi.git");
    r.write("go.mod", "module example.test/multi.git\n\ngo 1.21\n")
        .write("LICENSE", lic())
        .write("root.go", "package multi\n")
        .write(
            "sub/go.mod",
            "module example.test/multi.git/sub\n\ngo 1.21\n",
        )
        .write("sub/s.go", "package sub\n")
        .write(
            "sub/inner/go.mod",
            "module example.test/multi.git/sub/inner\n",
        )
        .write("sub/inner/i.go", "package inner\n")
        .write("own/go.mod", "module example.test/multi.git/own\n")
        .write("own/LICENSE", "own license\n")
        .write("own/o.go", "package own\n");
    r.commit("first");
    r.tag("v0.2.0");
    r.tag("sub/v0.1.0");
    r.tag("own/v1.0.0");
    r.write("sub/s.go", "package sub\n\nconst Y = 2\n");
    r.commit("sub moves");

    let server = Server::start(root.path(), None, None);
    let go = GoClient::new(&server.addr);
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let v = vcs(cache.path(), &server.addr, |_| {});

    same(&go, &v, out.path(), "example.test/multi.git", "v0.2.0").await;
    same(&go, &v, out.path(), "example.test/multi.git/sub", "v0.1.0").await;
    let p = same(&go, &v, out.path(), "example.test/multi.git/sub", "main").await;
    assert!(p.version.starts_with("v0.1.1-0."), "{}", p.version);
    same(&go, &v, out.path(), "example.test/multi.git/own", "v1.0.0").await;
    let sub = sparta_core::ModulePath::parse("example.test/multi.git/sub").unwrap();
    let list: Vec<String> = v
        .list(&sub)
        .await
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(list, ["v0.1.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn major_versions_in_a_branch_and_in_a_subdirectory() {
    let root = tempfile::tempdir().unwrap();
    let mut br = Repo::init(root.path(), "major.git");
    br.write("go.mod", "module example.test/major.git\n")
        .write("a.go", "package major\n");
    br.commit("v1");
    br.tag("v1.0.0");
    br.write("go.mod", "module example.test/major.git/v2\n")
        .write("a.go", "package major // v2\n");
    br.commit("v2");
    br.tag("v2.0.0");
    br.write("b.go", "package major\n");
    br.commit("after v2");

    let mut sd = Repo::init(root.path(), "majorsub.git");
    sd.write("go.mod", "module example.test/majorsub.git\n")
        .write("a.go", "package majorsub\n")
        .write("v2/go.mod", "module example.test/majorsub.git/v2\n")
        .write("v2/a.go", "package majorsub // v2\n");
    sd.commit("both");
    sd.tag("v1.0.0");
    sd.tag("v2.1.0");

    let server = Server::start(root.path(), None, None);
    let go = GoClient::new(&server.addr);
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let v = vcs(cache.path(), &server.addr, |_| {});

    same(&go, &v, out.path(), "example.test/major.git", "v1.0.0").await;
    same(&go, &v, out.path(), "example.test/major.git/v2", "v2.0.0").await;
    let p = same(&go, &v, out.path(), "example.test/major.git/v2", "main").await;
    assert!(p.version.starts_with("v2.0.1-0."), "{}", p.version);
    same(
        &go,
        &v,
        out.path(),
        "example.test/majorsub.git/v2",
        "v2.1.0",
    )
    .await;
    same(&go, &v, out.path(), "example.test/majorsub.git", "v1.0.0").await;
    for m in [
        "example.test/major.git/v2",
        "example.test/majorsub.git/v2",
        "example.test/major.git",
    ] {
        let mp = sparta_core::ModulePath::parse(m).unwrap();
        let list: Vec<String> = v
            .list(&mp)
            .await
            .unwrap()
            .iter()
            .map(|v| v.to_string())
            .collect();
        assert_eq!(list, go.versions(m), "{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incompatible_versions_and_a_repository_without_go_mod() {
    let root = tempfile::tempdir().unwrap();
    let mut r = Repo::init(root.path(), "old.git");
    r.write("a.go", "package old\n");
    r.commit("one");
    r.tag("v1.0.0");
    r.write("a.go", "package old // 2\n");
    r.commit("two");
    r.tag("v2.0.0");
    r.write("a.go", "package old // 3\n");
    r.commit("three");
    r.tag("v3.0.0");
    r.write("a.go", "package old // 4\n");
    r.commit("four");

    let server = Server::start(root.path(), None, None);
    let go = GoClient::new(&server.addr);
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let v = vcs(cache.path(), &server.addr, |_| {});
    let m = "example.test/old.git";

    same(&go, &v, out.path(), m, "v1.0.0").await;
    let inc = same(&go, &v, out.path(), m, "v2.0.0+incompatible").await;
    assert_eq!(inc.version, "v2.0.0+incompatible");
    same(&go, &v, out.path(), m, "v3.0.0").await;
    let p = same(&go, &v, out.path(), m, "main").await;
    assert!(p.version.ends_with("+incompatible"), "{}", p.version);
    assert_eq!(
        same(&go, &v, out.path(), m, "latest").await.version,
        "v3.0.0+incompatible"
    );
    let mp = sparta_core::ModulePath::parse(m).unwrap();
    let list: Vec<String> = v
        .list(&mp)
        .await
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(list, go.versions(m));
    let gomod = v
        .gomod(&mp, &sparta_core::Version::parse("v1.0.0").unwrap())
        .await
        .unwrap();
    assert_eq!(&gomod[..], b"module example.test/old.git\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_directories_under_both_go_directive_rules() {
    let root = tempfile::tempdir().unwrap();
    let mut r = Repo::init(root.path(), "vend.git");
    r.write("go.mod", "module example.test/vend.git\n\ngo 1.21\n")
        .write("a.go", "package vend\n")
        .write("vendor/modules.txt", "# example.test/dep v1.0.0\n")
        .write("vendor/example.test/dep/d.go", "package dep\n")
        .write("vendor/top.go", "package vendor\n")
        .write("pkg/vendor/v.go", "package vendor\n")
        .write("pkg/vendor/x/x.go", "package x\n");
    r.commit("old rules");
    r.tag("v1.0.0");
    r.write("go.mod", "module example.test/vend.git\n\ngo 1.24\n");
    r.commit("new rules");
    r.tag("v1.1.0");

    let server = Server::start(root.path(), None, None);
    let go = GoClient::new(&server.addr);
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let v = vcs(cache.path(), &server.addr, |_| {});
    let old = same(&go, &v, out.path(), "example.test/vend.git", "v1.0.0").await;
    let new = same(&go, &v, out.path(), "example.test/vend.git", "v1.1.0").await;
    assert_ne!(old.zip_h1, new.zip_h1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_trees_submodules_executables_and_license_links() {
    let root = tempfile::tempdir().unwrap();
    let mut r = Repo::init(root.path(), "edge.git");
    r.write("go.mod", "module example.test/edge.git\n\ngo 1.22\n")
        .write("LICENSE", lic())
        .write(".hg_archival.txt", "repo: x\n")
        .write("run.sh", "#!/bin/sh\necho hi\n")
        .write("dir with space/a.go", "package a\n")
        .write(
            "sub/go.mod",
            "module example.test/edge.git/sub\n\ngo 1.22\n",
        )
        .symlink("sub/LICENSE", "../LICENSE")
        .write("sub/vendor/dep/d.go", "package dep\n")
        .write("sub/s.go", "package sub\n");
    std::fs::set_permissions(
        r.dir.join("run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let first = r.commit("edge");
    // A submodule entry (a gitlink), with no .gitmodules: both sides skip it.
    r.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("160000,{first},vendored-sub"),
    ]);
    r.git(&["commit", "-q", "-m", "gitlink"]);
    r.tag("v1.0.0");
    r.tag("sub/v1.0.0");

    let mut bad = Repo::init(root.path(), "fold.git");
    bad.write("go.mod", "module example.test/fold.git\n")
        .write("a.go", "package fold\n")
        .write("A.go", "package fold\n");
    bad.commit("collide");
    bad.tag("v1.0.0");

    let server = Server::start(root.path(), None, None);
    let go = GoClient::new(&server.addr);
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let v = vcs(cache.path(), &server.addr, |_| {});
    same(&go, &v, out.path(), "example.test/edge.git", "v1.0.0").await;
    // The module's own LICENSE is a symlink: left out, and nothing inherited.
    same(&go, &v, out.path(), "example.test/edge.git/sub", "v1.0.0").await;

    // Case-fold collisions: the go command refuses the zip, and so do we.
    let go_err = go.download("example.test/fold.git@v1.0.0").unwrap_err();
    assert!(go_err.contains("case-insensitive"), "{go_err}");
    let err = support::ours(&v, out.path(), "example.test/fold.git", "v1.0.0")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("case-insensitive"), "{err}");
    assert!(
        !out.path().join("example.test_fold.git.zip").exists(),
        "no zip left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retagged_version_follows_the_repository_on_refresh() {
    let root = tempfile::tempdir().unwrap();
    let mut r = Repo::init(root.path(), "retag.git");
    r.write("go.mod", "module example.test/retag.git\n")
        .write("a.go", "package a\n");
    r.commit("one");
    r.tag("v1.0.0");
    let server = Server::start(root.path(), None, None);
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let v = vcs(cache.path(), &server.addr, |_| {});
    let m = "example.test/retag.git";
    let before = support::ours(&v, out.path(), m, "v1.0.0").await.unwrap();
    // The first answer fetched only its tag and completes the mirror in the
    // background; a list waits for that, so the tag moves after it (a list
    // that joins a fetch already running shares its answer, as concurrent
    // misses do).
    let mp = sparta_core::ModulePath::parse(m).unwrap();
    v.list(&mp).await.unwrap();
    r.write("a.go", "package a // moved\n");
    r.commit("two");
    r.git(&["tag", "-f", "v1.0.0"]);
    // Immutable answers come from the mirror until something refreshes it
    // (the server stores the first answer write-once and never asks again).
    let cached = support::ours(&v, out.path(), m, "v1.0.0").await.unwrap();
    assert_eq!(cached, before);
    v.list(&mp).await.unwrap();
    let go = GoClient::new(&server.addr);
    let after = same(&go, &v, out.path(), m, "v1.0.0").await;
    assert_ne!(after.zip_h1, before.zip_h1);
}
