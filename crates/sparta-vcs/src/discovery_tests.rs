use super::*;

#[test]
fn glob_prefixes() {
    assert_eq!(
        match_prefix("git.corp.example.com/*", "git.corp.example.com/a/b"),
        Some("git.corp.example.com/a")
    );
    assert_eq!(
        match_prefix("git.corp.example.com", "git.corp.example.com/a/b"),
        Some("git.corp.example.com")
    );
    assert_eq!(
        match_prefix("*.corp.example.com", "git.corp.example.com/a"),
        Some("git.corp.example.com")
    );
    assert_eq!(
        match_prefix("git.corp.example.com/*", "git.corp.example.com"),
        None
    );
    assert_eq!(
        match_prefix("git.corp.example.com/*", "other.example.com/a"),
        None
    );
    assert_eq!(
        match_prefix("x.test/[ab]?", "x.test/bz/q"),
        Some("x.test/bz")
    );
    assert_eq!(match_prefix("x.test/[^ab]?", "x.test/bz/q"), None);
}

#[test]
fn templates_and_static_rules() {
    let maps = vec![
        VcsMap::parse("git.corp.example.com/*/*=https://git.corp.example.com/{rest}.git").unwrap(),
    ];
    let r = static_root("git.corp.example.com/team/lib/v2", &maps, &[]).unwrap();
    assert_eq!(r.root, "git.corp.example.com/team/lib");
    assert_eq!(r.url, "https://git.corp.example.com/team/lib.git");
    assert_eq!(
        fill_template("ssh://git@{host}/{rest}", "h.test/a/b"),
        "ssh://git@h.test/a/b"
    );
    let r = static_root("github.com/o/r/sub/v3", &[], &[]).unwrap();
    assert_eq!(
        (r.root.as_str(), r.url.as_str()),
        ("github.com/o/r", "https://github.com/o/r")
    );
    let r = static_root("example.test/repo.git/sub", &[], &[]).unwrap();
    assert_eq!(
        (r.root.as_str(), r.url.as_str()),
        ("example.test/repo.git", "https://example.test/repo.git")
    );
    let r = static_root("example.test/repo.git", &[], &["example.test".into()]).unwrap();
    assert_eq!(r.url, "http://example.test/repo.git");
    assert_eq!(
        static_root("gitlab.com/group/sub/repo", &[], &[]),
        None,
        "subgroups need go-get"
    );
    assert_eq!(static_root("example.test/.git", &[], &[]), None);
    assert!(VcsMap::parse("nothing").is_err());
    assert!(VcsMap::parse("a.test/*=not-a-url").is_err());
}

#[test]
fn meta_tags() {
    let html = r#"<!DOCTYPE html><html><head>
        <meta name="go-import" content="gitlab.test/group/sub/repo git https://gitlab.test/group/sub/repo.git">
        <META NAME='go-import' CONTENT='gitlab.test/group/sub/repo mod https://proxy.test'/>
        <meta name="go-source" content="ignored">
        <meta name=go-import content="other.test/x git https://other.test/x">
        </head><body><meta name="go-import" content="late.test/y git https://late.test/y"></body></html>"#;
    let metas = parse_meta(html);
    assert_eq!(metas.len(), 3);
    assert_eq!(metas[0].vcs, "mod");
    let err = match_meta("gitlab.test/group/sub/repo/pkg", &metas).unwrap_err();
    assert!(
        err.to_string().contains("module proxy https://proxy.test"),
        "{err}"
    );
    let git_only: Vec<_> = metas.iter().filter(|m| m.vcs != "mod").cloned().collect();
    let r = match_meta("gitlab.test/group/sub/repo/pkg", &git_only).unwrap();
    assert_eq!(r.root, "gitlab.test/group/sub/repo");
    assert_eq!(r.url, "https://gitlab.test/group/sub/repo.git");
    assert!(
        match_meta("gitlab.test/group/sub/repository", &git_only).is_err(),
        "prefix is by element"
    );
    assert!(
        match_meta("late.test/y", &metas).is_err(),
        "tags after <body> do not count"
    );
    let two = parse_meta(
        r#"<meta name="go-import" content="a.test/x git https://a.test/x"><meta name="go-import" content="a.test/x/y git https://a.test/y">"#,
    );
    assert!(
        match_meta("a.test/x/y/z", &two)
            .unwrap_err()
            .to_string()
            .contains("multiple")
    );
    let hg = parse_meta(r#"<meta name="go-import" content="h.test/x hg https://h.test/x">"#);
    assert!(
        match_meta("h.test/x", &hg)
            .unwrap_err()
            .to_string()
            .contains("only git")
    );
}

/// A one-page HTTP server on loopback answering every request with the
/// page `body` makes from its address.
async fn serve_page(body: impl FnOnce(std::net::SocketAddr) -> String) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ln = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = ln.local_addr().unwrap();
    let body = body(addr);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = ln.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_meta_tag_pointing_at_a_metadata_address_is_refused() {
    let policy = NetPolicy {
        allow_loopback: true,
        refuse_private: false,
    };
    let served = serve_page(|addr| {
        format!(r#"<html><head><meta name="go-import" content="{addr}/team/x git http://169.254.169.254/x.git"></head></html>"#)
    })
    .await;
    let path = format!("{served}/team/x/pkg");
    let metas = go_get(&path, true, policy, Duration::from_secs(20))
        .await
        .unwrap();
    let root = match_meta(&path, &metas).unwrap();
    assert_eq!(root.root, format!("{served}/team/x"));
    assert_eq!(root.url, "http://169.254.169.254/x.git");
    // The remote it names is checked before git ever runs.
    let cache = tempfile::tempdir().unwrap();
    let mirrors = crate::mirror::Mirrors::new(
        crate::git::Git {
            timeout: Duration::from_secs(20),
            home: cache.path().to_owned(),
            allow_file: false,
        },
        cache.path().join("mirrors"),
        1 << 30,
        1 << 30,
        policy,
        std::sync::Arc::new(crate::credentials::Credentials::new(
            None,
            None,
            None,
            cache.path().join("kh"),
        )),
        std::sync::Arc::new(crate::VcsMetrics::new()),
    )
    .unwrap();
    let err = mirrors.get(&root.url, true, None).await.err().unwrap();
    assert!(matches!(err, VcsError::Refused(_)), "{err}");
    assert_eq!(
        std::fs::read_dir(cache.path().join("mirrors"))
            .unwrap()
            .count(),
        0
    );
    // A go-get host that is itself such an address is refused before connecting.
    let err = go_get("169.254.169.254/x", true, policy, Duration::from_secs(20))
        .await
        .unwrap_err();
    assert!(matches!(err, VcsError::Refused(_)), "{err}");
    // Loopback go-get hosts need the allowance.
    let err = go_get(&path, true, NetPolicy::default(), Duration::from_secs(20))
        .await
        .unwrap_err();
    assert!(matches!(err, VcsError::Refused(_)), "{err}");
}
