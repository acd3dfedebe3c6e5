//! Bad input and hostile places: unknown repositories, refused credentials
//! (no prompt), repositories over the size limit, remotes at link-local or
//! metadata addresses; and credentials never in errors or mirror files.

mod support;

use std::time::Duration;

use sparta_core::ModulePath;
use sparta_vcs::VcsError;
use support::{Repo, Server, vcs};

fn m(p: &str) -> ModulePath {
    ModulePath::parse(p).unwrap()
}

fn small_repo(root: &std::path::Path, name: &str) -> Repo {
    let mut r = Repo::init(root, name);
    r.write("go.mod", &format!("module example.test/{name}\n"))
        .write("a.go", "package a\n");
    r.commit("one");
    r.tag("v1.0.0");
    r
}

/// Every file under `dir`, as bytes.
fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.extend(b);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_repository_is_not_found() {
    let root = tempfile::tempdir().unwrap();
    small_repo(root.path(), "here.git");
    let server = Server::start(root.path(), None, None);
    let cache = tempfile::tempdir().unwrap();
    let v = vcs(cache.path(), &server.addr, |_| {});
    let err = v.list(&m("example.test/nothere.git")).await.unwrap_err();
    assert!(matches!(err, VcsError::NotFound(_)), "{err}");
    let err = v
        .query(&m("example.test/here.git"), "nosuchbranch")
        .await
        .unwrap_err();
    assert!(matches!(err, VcsError::NotFound(_)), "{err}");
    assert!(err.to_string().contains("nosuchbranch"), "{err}");
    // A repository without commits has nothing to offer.
    Repo::init(root.path(), "empty.git");
    let err = v.list(&m("example.test/empty.git")).await.unwrap_err();
    assert!(matches!(err, VcsError::NotFound(_)), "{err}");
    let ops = v
        .metrics()
        .operations
        .with_label_values(&["list", "not_found"])
        .get();
    assert_eq!(ops, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_used_refused_cleanly_and_never_leak() {
    let root = tempfile::tempdir().unwrap();
    small_repo(root.path(), "private.git");
    let server = Server::start(root.path(), Some("alice:correct-horse-battery"), None);
    let secrets = tempfile::tempdir().unwrap();
    let host = server.addr.split(':').next().unwrap().to_owned();

    // Wrong password: refused, promptly (a prompt would hang until the bound).
    let netrc = secrets.path().join("netrc");
    std::fs::write(
        &netrc,
        format!("machine {host} login alice password wrong-staple-xyz\n"),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let v = vcs(cache.path(), &server.addr, |c| {
        c.netrc = Some(netrc.clone())
    });
    let err = tokio::time::timeout(
        Duration::from_secs(100),
        v.list(&m("example.test/private.git")),
    )
    .await
    .expect("no prompt: the call returns")
    .unwrap_err();
    assert!(matches!(err, VcsError::Refused(_)), "{err}");
    assert!(!err.to_string().contains("wrong-staple-xyz"), "{err}");

    // No credentials at all: refused too.
    let cache2 = tempfile::tempdir().unwrap();
    let anon = vcs(cache2.path(), &server.addr, |_| {});
    let err = anon.list(&m("example.test/private.git")).await.unwrap_err();
    assert!(matches!(err, VcsError::Refused(_)), "{err}");

    // A token file for the host wins over the netrc, and works.
    let tokens = secrets.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    std::fs::write(tokens.join(&host), "alice:correct-horse-battery\n").unwrap();
    let cache3 = tempfile::tempdir().unwrap();
    let ok = vcs(cache3.path(), &server.addr, |c| {
        c.netrc = Some(netrc.clone());
        c.token_dir = Some(tokens.clone());
    });
    let list = ok.list(&m("example.test/private.git")).await.unwrap();
    assert_eq!(list.len(), 1);
    let zip = cache3.path().join("out.zip");
    ok.zip_to_file(&m("example.test/private.git"), &list[0], &zip)
        .await
        .unwrap();
    let stored = all_bytes(cache3.path());
    assert!(!stored.is_empty());
    for secret in ["correct-horse-battery", "wrong-staple-xyz"] {
        assert!(
            !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} found in the mirror cache"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_over_the_size_limit_is_refused_and_not_kept() {
    let root = tempfile::tempdir().unwrap();
    let mut r = small_repo(root.path(), "big.git");
    // Incompressible content, so the pack stays large.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: String = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect();
    r.write("blob.txt", &noise);
    r.commit("big");
    let server = Server::start(root.path(), None, None);
    let cache = tempfile::tempdir().unwrap();
    let v = vcs(cache.path(), &server.addr, |c| c.max_repo_size = 64 << 10);
    let err = v.list(&m("example.test/big.git")).await.unwrap_err();
    assert!(matches!(err, VcsError::TooLarge(_)), "{err}");
    let mirrors: Vec<_> = std::fs::read_dir(cache.path().join("mirrors"))
        .unwrap()
        .flatten()
        .collect();
    assert!(mirrors.is_empty(), "nothing kept: {mirrors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remotes_at_metadata_or_loopback_addresses_are_refused() {
    let cache = tempfile::tempdir().unwrap();
    let v = vcs(cache.path(), "169.254.169.254", |_| {});
    let err = v.list(&m("example.test/x.git")).await.unwrap_err();
    assert!(matches!(err, VcsError::Refused(_)), "{err}");
    assert!(err.to_string().contains("link-local"), "{err}");
    // Loopback needs the explicit allowance.
    let root = tempfile::tempdir().unwrap();
    small_repo(root.path(), "lo.git");
    let server = Server::start(root.path(), None, None);
    let cache = tempfile::tempdir().unwrap();
    let strict = vcs(cache.path(), &server.addr, |c| c.net.allow_loopback = false);
    let err = strict.list(&m("example.test/lo.git")).await.unwrap_err();
    assert!(matches!(err, VcsError::Refused(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_fetch_incrementally_share_fetches_and_evict() {
    let root = tempfile::tempdir().unwrap();
    let mut a = small_repo(root.path(), "a.git");
    small_repo(root.path(), "b.git");
    let server = Server::start(root.path(), None, None);
    let cache = tempfile::tempdir().unwrap();
    let v = vcs(cache.path(), &server.addr, |_| {});
    let ma = m("example.test/a.git");
    // Concurrent misses of one repository: one mirror, every answer the same.
    let (x, y, z) = tokio::join!(v.list(&ma), v.list(&ma), v.latest(&ma));
    assert_eq!(x.unwrap(), y.unwrap());
    assert_eq!(z.unwrap().version.as_str(), "v1.0.0");
    let fetches = v
        .metrics()
        .operations
        .with_label_values(&["fetch", "ok"])
        .get();
    assert_eq!(fetches, 1, "concurrent misses share one fetch");
    let dirs = std::fs::read_dir(cache.path().join("mirrors"))
        .unwrap()
        .count();
    assert_eq!(dirs, 1);
    // A new tag is found by the next list through the same mirror.
    a.write("n.go", "package a\n");
    a.commit("next");
    a.tag("v1.1.0");
    let list = v.list(&ma).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        std::fs::read_dir(cache.path().join("mirrors"))
            .unwrap()
            .count(),
        1
    );
    // A bound smaller than two mirrors evicts the older one.
    let cache2 = tempfile::tempdir().unwrap();
    let tight = vcs(cache2.path(), &server.addr, |c| c.cache_size = 1);
    tight.list(&ma).await.unwrap();
    tight.list(&m("example.test/b.git")).await.unwrap();
    assert_eq!(tight.metrics().evictions.get(), 1);
    assert_eq!(
        std::fs::read_dir(cache2.path().join("mirrors"))
            .unwrap()
            .count(),
        1
    );
}
