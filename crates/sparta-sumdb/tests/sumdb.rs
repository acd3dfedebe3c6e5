//! sparta-sumdb against the Go fixture checksum database on loopback, with a
//! real (in-memory) store.

mod common;

use bytes::Bytes;
use common::{FixtureDb, TestModule, closed_port_url};
use sparta_storage::{S3Options, Store};
use sparta_sumdb::{Database, Sumdb, SumdbConfig, SumdbError, Tier, Verdict, verify_store};

const NAME: &str = "sumdb.sparta.test";

/// The modules the database knows, and what it signs for them.
struct World {
    good: TestModule,
    /// The database signs other hashes for it than its real content has.
    evil: TestModule,
    /// Not in the database at all.
    private: TestModule,
    db: FixtureDb,
}

/// A database over good, evil (with rewritten lines, as if upstream served
/// something else than was first published) and 600 fillers, so the tree
/// spans full and partial tiles on two tile levels.
fn world() -> World {
    let good = TestModule::new("example.com/good", "v1.0.0", "good");
    let evil = TestModule::new("example.com/evil", "v1.2.0", "evil");
    let private = TestModule::new("corp.example.com/private", "v0.1.0", "private");
    let published = TestModule::new("example.com/evil", "v1.2.0", "what was first published");
    let mut sums = good.sums() + &published.sums();
    for i in 0..600 {
        sums += &TestModule::new(&format!("filler.example.com/m{i:03}"), "v1.0.0", "f").sums();
    }
    let db = FixtureDb::start(NAME, &sums);
    World {
        good,
        evil,
        private,
        db,
    }
}

fn config(db: &FixtureDb, source: &str) -> SumdbConfig {
    SumdbConfig {
        databases: vec![Database {
            name: NAME.into(),
            verifier_key: db.vkey.clone(),
            sources: vec![source.to_owned()],
        }],
        nosumdb: vec![],
        verify: true,
        fail_open: false,
    }
}

async fn memory_store() -> Store {
    Store::open("memory://", &S3Options::default())
        .await
        .unwrap()
}

async fn sumdb(config: SumdbConfig, store: &Store) -> Sumdb {
    Sumdb::new(config, store.clone()).unwrap()
}

#[tokio::test]
async fn good_module_verifies_through_tiles() {
    let w = world();
    let store = memory_store().await;
    let s = sumdb(config(&w.db, &w.db.url), &store).await;
    let (m, v) = (w.good.module(), w.good.ver());
    assert_eq!(
        s.verify_zip(&m, &v, &w.good.zip_h1).await.unwrap(),
        Verdict::Verified
    );
    assert_eq!(
        s.verify_mod(&m, &v, &w.good.gomod).await.unwrap(),
        Verdict::Verified
    );
    // One lookup for both checks; the proof used tiles of the signed tree.
    let stats = w.db.stats().await;
    assert_eq!(
        stats.get("/lookup/example.com/good@v1.0.0"),
        Some(&1),
        "{stats:?}"
    );
    assert!(
        stats.keys().any(|k| k.starts_with("/tile/8/1/")),
        "{stats:?}"
    );
    // The lookup and the full tile are stored for good.
    assert!(
        store
            .get("_sparta/sumdb/sumdb.sparta.test/lookup/example.com/good@v1.0.0")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get("_sparta/sumdb/sumdb.sparta.test/tile/8/0/000")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn wrong_tile_breaks_the_inclusion_proof() {
    let w = world();
    let store = memory_store().await;
    // A full tile with one hash changed, as if a source had served it.
    let key = format!("_sparta/sumdb/{NAME}/tile/8/0/000");
    let (_, _, mut tile) = w.db.raw("tile/8/0/000").await;
    tile[0] ^= 1;
    store.put_once(&key, Bytes::from(tile)).await.unwrap();
    let s = sumdb(config(&w.db, &w.db.url), &store).await;
    let err = s
        .verify_zip(&w.good.module(), &w.good.ver(), &w.good.zip_h1)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SumdbError::Invalid(r) if r.contains("not in its signed tree")),
        "{err:?}"
    );
}

#[tokio::test]
async fn upstream_style_source_works_too() {
    let w = world();
    let store = memory_store().await;
    let db = Sumdb::parse_database(&w.db.vkey, std::slice::from_ref(&w.db.url)).unwrap();
    assert_eq!(db.sources, [format!("{}/sumdb/{NAME}", w.db.url)]);
    let mut cfg = config(&w.db, "");
    cfg.databases = vec![db];
    let s = sumdb(cfg, &store).await;
    let (m, v) = (w.good.module(), w.good.ver());
    assert_eq!(
        s.verify_zip(&m, &v, &w.good.zip_h1).await.unwrap(),
        Verdict::Verified
    );
    assert_eq!(
        w.db.count("/sumdb/sumdb.sparta.test/lookup/example.com/good@v1.0.0")
            .await,
        1
    );
}

#[tokio::test]
async fn mismatch_is_refused_naming_both_hashes() {
    let w = world();
    let store = memory_store().await;
    let s = sumdb(config(&w.db, &w.db.url), &store).await;
    let (m, v) = (w.evil.module(), w.evil.ver());
    let published = TestModule::new("example.com/evil", "v1.2.0", "what was first published");
    let err = s.verify_zip(&m, &v, &w.evil.zip_h1).await.unwrap_err();
    assert_eq!(
        err,
        SumdbError::Mismatch {
            module: "example.com/evil".into(),
            version: "v1.2.0".into(),
            expected: published.zip_h1.clone(),
            got: w.evil.zip_h1.clone(),
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("example.com/evil@v1.2.0")
            && msg.contains(&published.zip_h1)
            && msg.contains(&w.evil.zip_h1)
    );
    // A go.mod other than the signed one is refused the same way.
    let err = s
        .verify_mod(&m, &v, b"module example.com/evil\n\ngo 1.22\n")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SumdbError::Mismatch { version, expected, .. }
        if version == "v1.2.0/go.mod" && *expected == published.mod_h1),
        "{err:?}"
    );
    // Fail-open never lets a mismatch through.
    let mut cfg = config(&w.db, &w.db.url);
    cfg.fail_open = true;
    let s = sumdb(cfg, &store).await;
    assert!(matches!(
        s.verify_zip(&m, &v, &w.evil.zip_h1).await,
        Err(SumdbError::Mismatch { .. })
    ));
}

#[tokio::test]
async fn missing_record_fails_unless_nosumdb_or_off() {
    let w = world();
    let store = memory_store().await;
    let (m, v) = (w.private.module(), w.private.ver());
    let s = sumdb(config(&w.db, &w.db.url), &store).await;
    let err = s.verify_zip(&m, &v, &w.private.zip_h1).await.unwrap_err();
    assert!(
        matches!(&err, SumdbError::NotFound(r) if r.contains("corp.example.com/private@v0.1.0")),
        "{err:?}"
    );

    let mut cfg = config(&w.db, &w.db.url);
    cfg.nosumdb = vec!["other.example,corp.example.com".into()];
    let s = sumdb(cfg, &store).await;
    let before = w.db.stats().await.values().sum::<u64>();
    assert_eq!(
        s.verify_zip(&m, &v, &w.private.zip_h1).await.unwrap(),
        Verdict::Skipped
    );
    assert_eq!(
        s.verify_mod(&m, &v, &w.private.gomod).await.unwrap(),
        Verdict::Skipped
    );
    // Others are still checked.
    assert!(
        s.verify_zip(&w.evil.module(), &w.evil.ver(), &w.evil.zip_h1)
            .await
            .is_err()
    );
    // Only the first instance asked; the skipping one did not.
    assert_eq!(
        w.db.count("/lookup/corp.example.com/private@v0.1.0").await,
        1
    );
    assert!(w.db.stats().await.values().sum::<u64>() > before);

    let mut cfg = config(&w.db, &w.db.url);
    cfg.verify = false;
    let s = sumdb(cfg, &store).await;
    assert_eq!(
        s.verify_zip(&w.evil.module(), &w.evil.ver(), &w.evil.zip_h1)
            .await
            .unwrap(),
        Verdict::Skipped
    );
}

#[tokio::test]
async fn unreachable_database_fails_closed_or_open() {
    let w = world();
    let store = memory_store().await;
    let (m, v) = (w.good.module(), w.good.ver());
    let s = sumdb(config(&w.db, &closed_port_url()), &store).await;
    let err = s.verify_zip(&m, &v, &w.good.zip_h1).await.unwrap_err();
    assert!(matches!(err, SumdbError::Unavailable(_)), "{err:?}");

    let mut cfg = config(&w.db, &closed_port_url());
    cfg.fail_open = true;
    let s = sumdb(cfg, &store).await;
    assert_eq!(
        s.verify_zip(&m, &v, &w.good.zip_h1).await.unwrap(),
        Verdict::Skipped
    );

    // A dead first source falls through to a live one.
    let mut cfg = config(&w.db, &closed_port_url());
    cfg.databases[0].sources.push(w.db.url.clone());
    let s = sumdb(cfg, &store).await;
    assert_eq!(
        s.verify_zip(&m, &v, &w.good.zip_h1).await.unwrap(),
        Verdict::Verified
    );
}

#[tokio::test]
async fn impostor_database_is_refused_and_nothing_stored() {
    let w = world();
    // Same name, same records, but signed with another key.
    let impostor = FixtureDb::start(NAME, &(w.good.sums() + &w.evil.sums()));
    let store = memory_store().await;
    let mut cfg = config(&w.db, &impostor.url);
    cfg.fail_open = true;
    let s = sumdb(cfg, &store).await;
    let (m, v) = (w.evil.module(), w.evil.ver());
    let err = s.verify_zip(&m, &v, &w.evil.zip_h1).await.unwrap_err();
    assert!(
        matches!(&err, SumdbError::Invalid(r) if r.contains("no signature by")),
        "{err:?}"
    );
    let err = s
        .proxy(NAME, "lookup/example.com/evil@v1.2.0")
        .await
        .unwrap_err();
    assert!(matches!(err, SumdbError::Invalid(_)), "{err:?}");
    assert!(store.list("_sparta/").await.unwrap().is_empty());
}

#[tokio::test]
async fn proxy_relays_byte_for_byte_and_serves_immutables_from_storage() {
    let w = world();
    let store = memory_store().await;
    let s = sumdb(config(&w.db, &w.db.url), &store).await;

    let lookup = "lookup/example.com/good@v1.0.0";
    let full = "tile/8/0/000";
    let partial = "tile/8/0/002.p/90";
    let data = "tile/8/data/000";
    let mut raw = std::collections::HashMap::new();
    for path in [lookup, full, partial, "latest", data] {
        let (status, ctype, body) = w.db.raw(path).await;
        assert_eq!(status, 200, "{path}");
        raw.insert(path, (ctype, Bytes::from(body)));
    }
    w.db.reset().await;
    // Mutable files first: proving a lookup or a full tile fetches `latest`
    // and the tiles beside it, and they would then come from memory.
    for (path, immutable) in [
        (partial, false),
        ("latest", false),
        (full, true),
        (data, true),
        (lookup, true),
    ] {
        let (ctype, body) = &raw[path];
        let got = s.proxy(NAME, path).await.unwrap();
        assert_eq!(got.body, body, "{path}");
        assert_eq!(got.content_type, ctype, "{path}");
        assert_eq!(got.immutable, immutable, "{path}");
        assert_eq!(got.tier, Tier::Upstream, "{path}");
        // Again: from memory, no new request.
        assert_eq!(
            s.proxy(NAME, path).await.unwrap().tier,
            Tier::Memory,
            "{path}"
        );
    }
    for path in [lookup, full, partial, "latest", data] {
        assert_eq!(w.db.count(&format!("/{path}")).await, 1, "{path}");
    }

    // A fresh instance (another replica, or after a restart) on the same
    // store: immutables come from storage, the rest from the database.
    let s2 = sumdb(config(&w.db, &w.db.url), &store).await;
    for (path, tier, count) in [
        (lookup, Tier::Storage, 1),
        (full, Tier::Storage, 1),
        (data, Tier::Storage, 1),
        (partial, Tier::Upstream, 2),
        ("latest", Tier::Upstream, 2),
    ] {
        let got = s2.proxy(NAME, path).await.unwrap();
        assert_eq!(got.tier, tier, "{path}");
        assert_eq!(got.body, raw[path].1, "{path}");
        assert_eq!(w.db.count(&format!("/{path}")).await, count, "{path}");
    }

    let sup = s.proxy(NAME, "supported").await.unwrap();
    assert!(sup.body.is_empty());
    assert!(matches!(
        s.proxy("sum.golang.org", "supported").await,
        Err(SumdbError::NotFound(_))
    ));
    // Not-found answers pass through and are not stored.
    let missing = "lookup/corp.example.com/private@v0.1.0";
    assert!(matches!(
        s.proxy(NAME, missing).await,
        Err(SumdbError::NotFound(_))
    ));
    assert!(
        store
            .get(&format!("_sparta/sumdb/{NAME}/{missing}"))
            .await
            .unwrap()
            .is_none()
    );
    // Paths outside the protocol are refused without a request.
    let before = w.db.stats().await;
    for bad in [
        "lookup/example.com/good@v1.0.0/../../x",
        "tile/8/0/0",
        "../latest",
        "lookup/Example.com/good@v1.0.0",
        "http://127.0.0.1:1/x",
        "",
    ] {
        assert!(
            matches!(s.proxy(NAME, bad).await, Err(SumdbError::NotFound(_))),
            "{bad:?}"
        );
    }
    assert_eq!(w.db.stats().await, before);
}

#[tokio::test]
async fn verify_store_finds_corrupt_and_mismatching_files() {
    let w = world();
    let store = memory_store().await;
    let put = |key: String, data: Vec<u8>| {
        let store = store.clone();
        async move { store.put_overwrite(&key, Bytes::from(data)).await.unwrap() }
    };
    for m in [&w.good, &w.evil, &w.private] {
        let base = format!("{}/@v/{}", m.module().escaped(), m.ver().escaped());
        put(format!("{base}.zip"), m.zip.clone()).await;
        put(format!("{base}.mod"), m.gomod.clone()).await;
        put(format!("{base}.info"), b"{}".to_vec()).await;
    }
    let mut cfg = config(&w.db, &w.db.url);
    cfg.nosumdb = vec!["corp.example.com".into()];
    let s = sumdb(cfg, &store).await;

    // Everything but evil's zip is fine so far.
    let report = verify_store(&store, &s, false, |_| {}).await.unwrap();
    assert_eq!((report.total, report.verified, report.skipped), (6, 3, 2));
    let failed: Vec<&str> = report.failures.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(failed, ["example.com/evil/@v/v1.2.0.zip"]);

    // Corrupt good's zip directly in the store: one byte of a file changes.
    let tampered = TestModule::new("example.com/good", "v1.0.0", "tampered");
    put(
        "example.com/good/@v/v1.0.0.zip".into(),
        tampered.zip.clone(),
    )
    .await;
    put("example.com/good/@v/v1.0.0.mod".into(), b"garbage".to_vec()).await;
    let mut seen = Vec::new();
    let report = verify_store(&store, &s, true, |p| seen.push((p.done, p.total)))
        .await
        .unwrap();
    assert_eq!(seen.len(), 6);
    assert_eq!(seen.last(), Some(&(6, 6)));
    let failed: Vec<&str> = report.failures.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        failed,
        [
            "example.com/evil/@v/v1.2.0.zip",
            "example.com/good/@v/v1.0.0.mod",
            "example.com/good/@v/v1.0.0.zip"
        ]
    );
    let zip_failure = &report.failures[2];
    assert!(
        zip_failure.reason.contains(&tampered.zip_h1)
            && zip_failure.reason.contains(&w.good.zip_h1)
    );
    assert!(report.failures.iter().all(|f| f.deleted));
    for key in failed {
        assert!(store.head(key).await.unwrap().is_none(), "{key} deleted");
    }
    assert!(
        store
            .head("example.com/evil/@v/v1.2.0.mod")
            .await
            .unwrap()
            .is_some()
    );

    // A zip that is not a zip at all is a failure too, not an abort.
    put(
        "example.com/good/@v/v1.0.0.zip".into(),
        b"not a zip".to_vec(),
    )
    .await;
    let report = verify_store(&store, &s, false, |_| {}).await.unwrap();
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.key == "example.com/good/@v/v1.0.0.zip" && f.reason.contains("unreadable"))
    );

    // With the database gone the run stops rather than judging anything.
    let s = sumdb(config(&w.db, &closed_port_url()), &store).await;
    let err = verify_store(&store, &s, true, |_| {}).await.unwrap_err();
    assert!(matches!(err, SumdbError::Unavailable(_)), "{err:?}");
    assert!(
        store
            .head("example.com/good/@v/v1.0.0.zip")
            .await
            .unwrap()
            .is_some()
    );
}
