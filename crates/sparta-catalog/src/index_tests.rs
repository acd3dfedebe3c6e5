use super::*;
use proptest::prelude::*;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn rec(path: &str, version: &str, file: File, secs: u64) -> Record {
    Record::stored(path, version, file, 10, None, at(secs))
}

#[test]
fn merging_keeps_the_first_time_and_every_size() {
    let mut ix = Index::default();
    assert!(ix.apply(&rec("example.com/a", "v1.0.0", File::Mod, 20)));
    assert!(ix.apply(&Record::stored(
        "example.com/a",
        "v1.0.0",
        File::Zip,
        99,
        Some("h1:x="),
        at(10)
    )));
    assert!(ix.apply(&rec("example.com/a", "v1.0.0", File::Info, 30)));
    assert_eq!(ix.len(), 1);
    let e = &ix.versions("example.com/a").unwrap()["v1.0.0"];
    assert_eq!(e.time, at(10));
    assert_eq!((e.info, e.gomod, e.zip), (Some(10), Some(10), Some(99)));
    assert_eq!(e.h1.as_deref(), Some("h1:x="));
    // by_time holds the version once, under its first time.
    assert_eq!(
        ix.since(at(0), 10),
        vec![(at(10), "example.com/a", "v1.0.0")]
    );
}

#[test]
fn a_record_with_a_bad_time_is_dropped() {
    let mut ix = Index::default();
    let mut r = rec("example.com/a", "v1.0.0", File::Mod, 20);
    r.time = "yesterday".into();
    assert!(!ix.apply(&r));
    assert!(ix.is_empty());
}

#[test]
fn records_round_trip_through_ndjson() {
    let rs = vec![
        rec("example.com/a", "v1.0.0", File::Mod, 1),
        Record::stored(
            "example.com/b",
            "v0.1.0",
            File::Zip,
            5,
            Some("h1:y="),
            at(2),
        ),
    ];
    let mut body = encode_records(&rs);
    body.extend_from_slice(b"{not json\n\n");
    let (back, bad) = parse_records(&body);
    assert_eq!(back, rs);
    assert_eq!(bad, 1);
}

#[test]
fn since_is_inclusive_and_ordered_by_time() {
    let mut ix = Index::default();
    ix.apply(&rec("b", "v1.0.0", File::Mod, 3));
    ix.apply(&rec("a", "v1.0.0", File::Mod, 1));
    ix.apply(&rec("c", "v1.0.0", File::Mod, 2));
    let got: Vec<_> = ix.since(at(2), 10).into_iter().map(|e| e.1).collect();
    assert_eq!(got, ["c", "b"]);
    assert_eq!(ix.since(at(0), 1).len(), 1);
}

#[test]
fn search_pages_over_matching_modules() {
    let mut ix = Index::default();
    for p in ["example.com/Foo", "example.com/bar", "other.org/foo2"] {
        ix.apply(&rec(p, "v1.0.0", File::Mod, 1));
    }
    let (hits, total) = ix.search("FOO", 0, 10);
    assert_eq!(total, 2);
    assert_eq!(hits[0].path, "example.com/Foo");
    let (hits, total) = ix.search("", 1, 1);
    assert_eq!((hits.len(), total), (1, 3));
    assert_eq!(hits[0].path, "example.com/bar");
}

proptest! {
    /// Paging with any page size visits every version exactly once, in order.
    #[test]
    fn catalog_pages_cover_everything_once(
        versions in proptest::collection::btree_set((0u8..20, 0u8..5), 0..80),
        page in 1usize..7,
    ) {
        let mut ix = Index::default();
        for (m, v) in &versions {
            ix.apply(&rec(&format!("example.com/m{m:02}"), &format!("v1.{v}.0"), File::Mod, 1));
        }
        let mut seen = Vec::new();
        let mut token = String::new();
        for _ in 0..200 {
            let (items, next) = ix.catalog_page(&token, page);
            prop_assert!(items.len() <= page);
            seen.extend(items.iter().map(|(p, v)| format!("{p}@{v}")));
            if next.is_empty() {
                break;
            }
            token = next;
        }
        let want: Vec<_> = ix.records().map(|r| format!("{}@{}", r.path, r.version)).collect();
        prop_assert_eq!(seen, want);
    }

    /// Merging is order-independent.
    #[test]
    fn merge_order_does_not_matter(
        recs in proptest::collection::vec((0u8..4, 0u8..3, 0u64..50), 0..30),
    ) {
        let records: Vec<Record> = recs
            .iter()
            .map(|(m, v, t)| rec(&format!("m{m}"), &format!("v1.{v}.0"), File::Mod, *t))
            .collect();
        let mut a = Index::default();
        let mut b = Index::default();
        for r in &records {
            a.apply(r);
        }
        for r in records.iter().rev() {
            b.apply(r);
        }
        prop_assert_eq!(a.records().collect::<Vec<_>>(), b.records().collect::<Vec<_>>());
        prop_assert_eq!(a.since(UNIX_EPOCH, 100), b.since(UNIX_EPOCH, 100));
    }
}
