//! `/sumdb/<name>/cached-only/...`: answers from memory and storage only,
//! asserted by the fixture database's request counts.

mod common;

use common::{FixtureDb, TestModule};
use sparta_storage::{S3Options, Store};
use sparta_sumdb::{Database, Sumdb, SumdbConfig, SumdbError, Tier};

const NAME: &str = "cached.sparta.test";

fn sumdb(db: &FixtureDb, store: &Store) -> Sumdb {
    let config = SumdbConfig {
        databases: vec![Database {
            name: NAME.into(),
            verifier_key: db.vkey.clone(),
            sources: vec![db.url.clone()],
        }],
        nosumdb: vec![],
        verify: true,
        fail_open: false,
    };
    Sumdb::new(config, store.clone()).unwrap()
}

#[tokio::test]
async fn cached_only_never_asks_the_database() {
    let good = TestModule::new("example.com/good", "v1.0.0", "good");
    let db = FixtureDb::start(NAME, &good.sums());
    let store = Store::open("memory://", &S3Options::default())
        .await
        .unwrap();
    let lookup = "lookup/example.com/good@v1.0.0";
    let tile = "tile/8/data/000.p/1";

    let s = sumdb(&db, &store);
    for path in [lookup, tile, "latest"] {
        let err = s.cached(NAME, path).await.unwrap_err();
        assert!(
            matches!(&err, SumdbError::NotFound(r) if r.contains("not stored here")),
            "{path}: {err}"
        );
    }
    assert!(db.stats().await.is_empty(), "{:?}", db.stats().await);

    // Once relayed, the same paths are served cached-only.
    for path in [lookup, tile, "latest"] {
        let fetched = s.proxy(NAME, path).await.unwrap();
        assert_eq!(fetched.tier, Tier::Upstream, "{path}");
        let cached = s.cached(NAME, path).await.unwrap();
        assert_eq!(
            (cached.tier, &cached.body),
            (Tier::Memory, &fetched.body),
            "{path}"
        );
    }
    let counted = db.stats().await;

    // Another replica on the same store: the lookup is stored, `latest` and
    // partial tiles are not, so those stay not found.
    let s2 = sumdb(&db, &store);
    assert_eq!(s2.cached(NAME, lookup).await.unwrap().tier, Tier::Storage);
    for path in [tile, "latest"] {
        assert!(
            matches!(s2.cached(NAME, path).await, Err(SumdbError::NotFound(_))),
            "{path}"
        );
    }
    assert!(s2.cached(NAME, "supported").await.is_ok());
    assert!(matches!(
        s2.cached(NAME, "../x").await,
        Err(SumdbError::NotFound(_))
    ));
    assert!(matches!(
        s2.cached("other.test", lookup).await,
        Err(SumdbError::NotFound(_))
    ));
    assert_eq!(db.stats().await, counted);
}
