use super::*;
use proptest::prelude::*;

fn v(s: &str) -> Version {
    Version::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn canonical_and_pseudo_helpers() {
    assert_eq!(canonical("v1").as_deref(), Some("v1.0.0"));
    assert_eq!(canonical("v1.2").as_deref(), Some("v1.2.0"));
    assert_eq!(canonical("v1.2.3+meta").as_deref(), Some("v1.2.3"));
    assert_eq!(canonical("v1.2.3-pre").as_deref(), Some("v1.2.3-pre"));
    assert_eq!(canonical("v1.2-pre"), None);
    assert_eq!(canonical("1.2.3"), None);
    assert_eq!(canonical("master"), None);
    let ts = "20240102030405";
    let rev = "abcdefabcdef";
    assert_eq!(
        pseudo_version("", "", ts, rev),
        "v0.0.0-20240102030405-abcdefabcdef"
    );
    assert_eq!(
        pseudo_version("v2", "", ts, rev),
        "v2.0.0-20240102030405-abcdefabcdef"
    );
    assert_eq!(
        pseudo_version("", "v1.2.9", ts, rev),
        "v1.2.10-0.20240102030405-abcdefabcdef"
    );
    assert_eq!(
        pseudo_version("", "v1.2.3-rc.1", ts, rev),
        "v1.2.3-rc.1.0.20240102030405-abcdefabcdef"
    );
    assert_eq!(
        pseudo_version("", "v2.0.0+incompatible", ts, rev),
        "v2.0.1-0.20240102030405-abcdefabcdef+incompatible"
    );
    for (pv, base) in [
        ("v0.0.0-20240102030405-abcdefabcdef", ""),
        ("v1.2.10-0.20240102030405-abcdefabcdef", "v1.2.9"),
        ("v1.2.1-0.20240102030405-abcdefabcdef", "v1.2.0"),
        ("v1.2.3-rc.1.0.20240102030405-abcdefabcdef", "v1.2.3-rc.1"),
        (
            "v2.0.1-0.20240102030405-abcdefabcdef+incompatible",
            "v2.0.0",
        ),
    ] {
        let parts = v(pv).pseudo_parts().unwrap();
        assert_eq!(parts.base, base, "{pv}");
        assert_eq!(parts.timestamp, ts);
        assert_eq!(parts.rev, rev);
    }
    assert_eq!(v("v1.2.3").pseudo_parts(), None);
    // Nothing precedes patch 0 of a `-0.` form.
    assert_eq!(
        v("v1.3.0-0.20240102030405-abcdefabcdef").pseudo_parts(),
        None
    );
}

#[test]
fn canonical_only() {
    for ok in [
        "v0.0.0",
        "v1.2.3",
        "v1.2.3-pre",
        "v1.2.3-pre.1",
        "v1.2.3-0.20190510104115-cbcb75029529",
        "v2.0.0+incompatible",
        "v2.0.0-rc.1+incompatible",
        "v1.0.0-RC1",
        "v10.200.3000",
        "v1.2.3-0a",
        "v1.2.3-01a",
    ] {
        assert_eq!(v(ok).as_str(), ok);
    }
    for bad in [
        "",
        "v",
        "1.2.3",
        "v1",
        "v1.2",
        "v1.2.3.4",
        "v01.2.3",
        "v1.02.3",
        "v1.2.03",
        "master",
        "latest",
        "v1.2.3+meta",
        "v1.2.3+incompatible.x",
        "v1.2.3-",
        "v1.2.3-a..b",
        "v1.2.3-01",
        "v1.2.3-a_b",
        "V1.2.3",
        "v1.2.3 ",
        "v1.2.3+",
        "v1.2.3-a+",
        "v1.2.3-pré",
    ] {
        assert!(Version::parse(bad).is_err(), "{bad:?} should be refused");
    }
    assert!(Version::parse(&format!("v1.2.3-{}", "a".repeat(300))).is_err());
}

#[test]
fn escaped_versions() {
    let x = v("v1.0.0-RC1");
    assert_eq!(x.escaped(), "v1.0.0-!r!c1");
    assert_eq!(Version::from_escaped("v1.0.0-!r!c1").unwrap(), x);
    assert!(
        Version::from_escaped("v1.0.0-RC1").is_err(),
        "raw uppercase"
    );
    assert!(
        Version::from_escaped("v1.0.0-!1").is_err(),
        "! before a digit"
    );
    assert!(Version::from_escaped("v1.0.0-rc!").is_err(), "trailing !");
    assert_eq!(v("v2.0.0+incompatible").escaped(), "v2.0.0+incompatible");
}

#[test]
fn majors_and_kinds() {
    assert_eq!(v("v0.1.2").major(), "v0");
    assert_eq!(v("v12.0.0+incompatible").major(), "v12");
    assert!(v("v1.0.0-pre").is_prerelease());
    assert!(!v("v1.0.0").is_prerelease());
    assert!(!v("v2.0.0+incompatible").is_prerelease());
    assert!(v("v2.0.0+incompatible").is_incompatible());
}

#[test]
fn pseudo_versions() {
    for p in [
        "v0.0.0-20190510104115-cbcb75029529",
        "v1.0.0-20190510104115-cbcb75029529",
        "v1.2.3-pre.0.20190510104115-cbcb75029529",
        "v1.2.4-0.20190510104115-cbcb75029529",
        "v2.0.0-20190510104115-cbcb75029529+incompatible",
        "v1.2.4-0.20190510104115-cbcb75029529+incompatible",
        "v1.2.3-a-b.c.0.20190510104115-ABCDEF",
        // x/mod's pseudo.go test table.
        "v0.0.0-20060102150405-hash",
        "v1.0.0-20060102150405-hash",
        "v2.0.0-20060102150405-hash",
        "v0.0.1-0.20060102150405-hash",
        "v1.2.4-0.20060102150405-hash",
        "v1.2.100000000000000000-0.20060102150405-hash",
        "v1.2.3-pre.0.20060102150405-hash",
        "v1.3.0-pre.0.20060102150405-hash",
        "v0.0.0--.0.20060102150405-hash",
        "v2.0.1-0.20060102150405-hash+incompatible",
        "v2.3.0-pre.0.20060102150405-hash+incompatible",
    ] {
        assert!(v(p).is_pseudo(), "{p} is a pseudo-version");
        assert!(v(p).is_prerelease());
    }
    for p in [
        "v1.2.3",
        "v1.2.3-pre",
        "v1.2.3-20190510104115-cbcb75029529",
        "v1.0.0-2019051010411-cbcb75029529",
        "v1.0.0-201905101041155-cbcb75029529",
        "v1.2.4-1.20190510104115-cbcb75029529",
        "v1.2.3-pre.1.20190510104115-cbcb75029529",
        "v0.0.0-20190510104115-cbcb-75029529",
        "v0.0.0-2019051010411a-cbcb75029529",
    ] {
        assert!(!v(p).is_pseudo(), "{p} is not a pseudo-version");
    }
    // Other build metadata is not a Version, but the rule still reads it.
    assert!(is_pseudo("v1.0.1-0.20060102150405-hash+metadata"));
    assert!(!is_pseudo("v1.0.1-0.20060102150405-hash+"));
}

#[test]
fn precedence() {
    let ordered = [
        "v0.0.0-20190510104115-cbcb75029529",
        "v0.0.0",
        "v0.1.0",
        "v1.0.0-0.20190510104115-cbcb75029529",
        "v1.0.0-alpha",
        "v1.0.0-alpha.1",
        "v1.0.0-alpha.beta",
        "v1.0.0-beta",
        "v1.0.0-beta.2",
        "v1.0.0-beta.11",
        "v1.0.0-rc.1",
        "v1.0.0",
        "v1.2.3",
        "v1.10.0",
        "v2.0.0",
        "v10.0.0",
    ];
    for (i, a) in ordered.iter().enumerate() {
        for (j, b) in ordered.iter().enumerate() {
            assert_eq!(compare(&v(a), &v(b)), i.cmp(&j), "{a} vs {b}");
        }
    }
    assert_eq!(
        compare(&v("v2.0.0+incompatible"), &v("v2.0.0")),
        Ordering::Equal
    );
}

proptest! {
    #[test]
    fn parse_never_panics(s in "\\PC{0,40}") {
        let _ = Version::parse(&s);
        let _ = Version::from_escaped(&s);
    }

    #[test]
    fn valid_versions_round_trip(
        major in 0u32..100, minor in 0u32..100, patch in 0u32..100,
        pre in proptest::option::of("[0-9A-Za-z-]{1,8}(\\.[0-9A-Za-z-]{1,8}){0,3}"),
        incompatible in any::<bool>(),
    ) {
        let mut s = format!("v{major}.{minor}.{patch}");
        if let Some(pre) = &pre {
            s.push('-');
            s.push_str(pre);
        }
        if incompatible {
            s.push_str("+incompatible");
        }
        let leading_zero = pre.as_deref().is_some_and(|p| p.split('.').any(|id|
            id.len() > 1 && id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit())));
        match Version::parse(&s) {
            Ok(parsed) => {
                prop_assert!(!leading_zero);
                prop_assert_eq!(Version::from_escaped(parsed.escaped()).unwrap(), parsed.clone());
                prop_assert_eq!(compare(&parsed, &parsed), Ordering::Equal);
                prop_assert_eq!(parsed.major(), format!("v{major}"));
            }
            Err(_) => prop_assert!(leading_zero),
        }
    }
}
