use super::*;

#[test]
fn glob_prefixes() {
    assert_eq!(match_prefix("git.corp.example.com/*", "git.corp.example.com/a/b"), Some("git.corp.example.com/a"));
    assert_eq!(match_prefix("git.corp.example.com", "git.corp.example.com/a/b"), Some("git.corp.example.com"));
    assert_eq!(match_prefix("*.corp.example.com", "git.corp.example.com/a"), Some("git.corp.example.com"));
    assert_eq!(match_prefix("git.corp.example.com/*", "git.corp.example.com"), None);
    assert_eq!(match_prefix("git.corp.example.com/*", "other.example.com/a"), None);
    assert_eq!(match_prefix("x.test/[ab]?", "x.test/bz/q"), Some("x.test/bz"));
    assert_eq!(match_prefix("x.test/[^ab]?", "x.test/bz/q"), None);
}

#[test]
fn templates_and_static_rules() {
    let maps = vec![VcsMap::parse("git.corp.example.com/*/*=https://git.corp.example.com/{rest}.git").unwrap()];
    let r = static_root("git.corp.example.com/team/lib/v2", &maps, &[]).unwrap();
    assert_eq!(r.root, "git.corp.example.com/team/lib");
    assert_eq!(r.url, "https://git.corp.example.com/team/lib.git");
    assert_eq!(fill_template("ssh://git@{host}/{rest}", "h.test/a/b"), "ssh://git@h.test/a/b");
    let r = static_root("github.com/o/r/sub/v3", &[], &[]).unwrap();
    assert_eq!((r.root.as_str(), r.url.as_str()), ("github.com/o/r", "https://github.com/o/r"));
    let r = static_root("example.test/repo.git/sub", &[], &[]).unwrap();
    assert_eq!((r.root.as_str(), r.url.as_str()), ("example.test/repo.git", "https://example.test/repo.git"));
    let r = static_root("example.test/repo.git", &[], &["example.test".into()]).unwrap();
    assert_eq!(r.url, "http://example.test/repo.git");
    assert_eq!(static_root("gitlab.com/group/sub/repo", &[], &[]), None, "subgroups need go-get");
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
    assert!(err.to_string().contains("module proxy https://proxy.test"), "{err}");
    let git_only: Vec<_> = metas.iter().filter(|m| m.vcs != "mod").cloned().collect();
    let r = match_meta("gitlab.test/group/sub/repo/pkg", &git_only).unwrap();
    assert_eq!(r.root, "gitlab.test/group/sub/repo");
    assert_eq!(r.url, "https://gitlab.test/group/sub/repo.git");
    assert!(match_meta("gitlab.test/group/sub/repository", &git_only).is_err(), "prefix is by element");
    assert!(match_meta("late.test/y", &metas).is_err(), "tags after <body> do not count");
    let two = parse_meta(r#"<meta name="go-import" content="a.test/x git https://a.test/x"><meta name="go-import" content="a.test/x/y git https://a.test/y">"#);
    assert!(match_meta("a.test/x/y/z", &two).unwrap_err().to_string().contains("multiple"));
    let hg = parse_meta(r#"<meta name="go-import" content="h.test/x hg https://h.test/x">"#);
    assert!(match_meta("h.test/x", &hg).unwrap_err().to_string().contains("only git"));
}
