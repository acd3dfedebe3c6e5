//! Proofs before storage, against a checksum database served over real HTTP
//! on loopback: a generated tree of records, signed with a key made here,
//! whose tiles and lookups can be corrupted on demand.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};
use sparta_core::{ModulePath, Version};
use sparta_storage::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::tlog::{self, Hash, StoredHashes, TILE_HEIGHT, Tile};
use crate::{Database, Sumdb, SumdbConfig, SumdbError, Verdict};

const NAME: &str = "proof.sparta.test";
const RECORDS: u64 = 300;

fn module(i: u64) -> ModulePath {
    ModulePath::parse(&format!("example.com/m{i}")).unwrap()
}

fn gomod(i: u64) -> String {
    format!("module example.com/m{i}\n")
}

fn record_text(i: u64) -> String {
    format!(
        "example.com/m{i} v1.0.0 h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\
         example.com/m{i} v1.0.0/go.mod {}\n",
        sparta_core::hash::gomod_h1(gomod(i).as_bytes())
    )
}

struct Leaves(Vec<Hash>);

impl StoredHashes for Leaves {
    fn stored(&mut self, level: u32, n: u64) -> Result<Hash, sparta_core::CoreError> {
        fn sub(l: &[Hash]) -> Hash {
            if l.len() == 1 {
                return l[0];
            }
            let (a, b) = l.split_at(l.len() / 2);
            tlog::node_hash(&sub(a), &sub(b))
        }
        let lo = (n << level) as usize;
        Ok(sub(&self.0[lo..lo + (1 << level)]))
    }
}

/// What the test database serves wrongly right now.
#[derive(Default)]
struct Faults {
    /// Tile paths served with one byte flipped.
    flip: HashSet<String>,
    /// Lookups answered with this record text instead of the real one.
    forged_lookup: Option<String>,
}

struct TestDb {
    url: String,
    vkey: String,
    faults: Arc<Mutex<Faults>>,
}

fn signer() -> (SigningKey, String, u32) {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let mut raw = vec![1u8];
    raw.extend_from_slice(key.verifying_key().as_bytes());
    let sum = Sha256::new()
        .chain_update(NAME.as_bytes())
        .chain_update(b"\n")
        .chain_update(&raw)
        .finalize();
    let hash = u32::from_be_bytes([sum[0], sum[1], sum[2], sum[3]]);
    (key, format!("{NAME}+{hash:08x}+{}", B64.encode(&raw)), hash)
}

fn sign(key: &SigningKey, hash: u32, text: &str) -> String {
    let mut sig = hash.to_be_bytes().to_vec();
    sig.extend_from_slice(&key.sign(text.as_bytes()).to_bytes());
    format!("{text}\n\u{2014} {NAME} {}\n", B64.encode(sig))
}

/// The answer to one sumdb path, before faults.
fn answer(path: &str, leaves: &mut Leaves, note: &str) -> Option<Vec<u8>> {
    if path == "latest" {
        return Some(note.as_bytes().to_vec());
    }
    if let Some(modver) = path.strip_prefix("lookup/") {
        let (m, _) = modver.split_once('@')?;
        let i: u64 = m.strip_prefix("example.com/m")?.parse().ok()?;
        return (i < RECORDS).then(|| format!("{i}\n{}\n{note}", record_text(i)).into_bytes());
    }
    let tile = Tile::parse(path)?;
    let start = tile.n << TILE_HEIGHT;
    match tile.level {
        None => {
            if start + tile.w > RECORDS {
                return None;
            }
            let mut out = String::new();
            for i in start..start + tile.w {
                out.push_str(&record_text(i));
                out.push('\n');
            }
            Some(out.into_bytes())
        }
        Some(l) => {
            let level = l * TILE_HEIGHT;
            if (start + tile.w) << level > RECORDS {
                return None;
            }
            let mut out = Vec::new();
            for i in start..start + tile.w {
                out.extend_from_slice(&leaves.stored(level, i).unwrap());
            }
            Some(out)
        }
    }
}

async fn test_db() -> TestDb {
    let mut leaves = Leaves(
        (0..RECORDS)
            .map(|i| tlog::record_hash(record_text(i).as_bytes()))
            .collect(),
    );
    let root = tlog::range_hash(0, RECORDS, &mut leaves).unwrap();
    let (key, vkey, hash) = signer();
    let note = sign(
        &key,
        hash,
        &format!("go.sum database tree\n{RECORDS}\n{}\n", B64.encode(root)),
    );
    let faults = Arc::new(Mutex::new(Faults::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (f, key2) = (Arc::clone(&faults), key.clone());
    tokio::spawn(async move {
        let leaves = Arc::new(Mutex::new(leaves));
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let (leaves, faults, note, key) = (
                Arc::clone(&leaves),
                Arc::clone(&f),
                note.clone(),
                key2.clone(),
            );
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head
                    .split(' ')
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/');
                let body = {
                    let mut leaves = leaves.lock().unwrap();
                    let faults = faults.lock().unwrap();
                    let mut body = answer(path, &mut leaves, &note);
                    if let (Some(b), true) = (&mut body, faults.flip.contains(path)) {
                        b[0] ^= 1;
                    }
                    if let (Some(text), true) = (&faults.forged_lookup, path.starts_with("lookup/"))
                    {
                        // A record the database never logged, under a
                        // genuine signed tree head.
                        body = Some(format!("5\n{text}\n{note}").into_bytes());
                    }
                    let _ = &key;
                    body
                };
                let reply = match body {
                    Some(b) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
                            b.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(&b);
                        r
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = conn.write_all(&reply).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    TestDb { url, vkey, faults }
}

async fn sumdb(db: &TestDb, store: &Store) -> Sumdb {
    Sumdb::new(
        SumdbConfig {
            databases: vec![Database {
                name: NAME.into(),
                verifier_key: db.vkey.clone(),
                sources: vec![db.url.clone()],
            }],
            nosumdb: vec![],
            verify: true,
            fail_open: false,
        },
        store.clone(),
    )
    .unwrap()
}

async fn memory_store() -> Store {
    Store::open("memory://", &Default::default()).await.unwrap()
}

fn stored_key(path: &str) -> String {
    sparta_core::key::sumdb(NAME, path)
}

#[tokio::test]
async fn good_tiles_are_proven_and_stored() {
    let db = test_db().await;
    let store = memory_store().await;
    let s = sumdb(&db, &store).await;
    for path in ["tile/8/0/000", "tile/8/data/000"] {
        let file = s.proxy(NAME, path).await.unwrap();
        assert!(file.immutable);
        assert_eq!(
            store.get(&stored_key(path)).await.unwrap(),
            Some(file.body),
            "{path} not stored"
        );
    }
    // Partial tiles are served, never stored.
    s.proxy(NAME, "tile/8/0/001.p/44").await.unwrap();
    assert_eq!(
        store.get(&stored_key("tile/8/0/001.p/44")).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_bad_tile_is_refused_and_not_stored_and_a_later_good_one_is() {
    let db = test_db().await;
    let store = memory_store().await;
    let s = sumdb(&db, &store).await;
    for path in ["tile/8/0/000", "tile/8/data/000"] {
        db.faults.lock().unwrap().flip.insert(path.to_owned());
        let err = s.proxy(NAME, path).await.unwrap_err();
        assert!(
            matches!(&err, SumdbError::Invalid(m) if m.contains("not in its signed tree") || m.contains("malformed")),
            "{path}: {err:?}"
        );
        assert_eq!(
            store.get(&stored_key(path)).await.unwrap(),
            None,
            "{path} stored"
        );
        db.faults.lock().unwrap().flip.clear();
        let good = s.proxy(NAME, path).await.unwrap();
        assert_eq!(store.get(&stored_key(path)).await.unwrap(), Some(good.body));
    }
}

#[tokio::test]
async fn a_bad_helper_tile_fails_the_proof_and_is_not_stored() {
    // tile/8/0/000's proof needs the level-0 partial tile beside it; a
    // corrupt one makes the root differ, and nothing is stored.
    let db = test_db().await;
    let store = memory_store().await;
    let s = sumdb(&db, &store).await;
    db.faults
        .lock()
        .unwrap()
        .flip
        .insert("tile/8/0/001.p/44".into());
    assert!(s.proxy(NAME, "tile/8/0/000").await.is_err());
    assert_eq!(store.get(&stored_key("tile/8/0/000")).await.unwrap(), None);
    db.faults.lock().unwrap().flip.clear();
    s.proxy(NAME, "tile/8/0/000").await.unwrap();
    assert!(
        store
            .get(&stored_key("tile/8/0/000"))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_lookup_is_stored_only_when_its_record_is_in_the_tree() {
    let db = test_db().await;
    let store = memory_store().await;
    let s = sumdb(&db, &store).await;
    let path = "lookup/example.com/m5@v1.0.0";
    let forged = record_text(5).replace("AAAA", "BBBB");
    db.faults.lock().unwrap().forged_lookup = Some(forged);
    let err = s.proxy(NAME, path).await.unwrap_err();
    assert!(
        matches!(&err, SumdbError::Invalid(m) if m.contains("not in its signed tree")),
        "{err:?}"
    );
    assert_eq!(store.get(&stored_key(path)).await.unwrap(), None);
    // Verification refuses it too.
    let v = Version::parse("v1.0.0").unwrap();
    let err = s
        .verify_mod(&module(5), &v, gomod(5).as_bytes())
        .await
        .unwrap_err();
    assert!(matches!(err, SumdbError::Invalid(_)), "{err:?}");
    db.faults.lock().unwrap().forged_lookup = None;
    assert_eq!(
        s.verify_mod(&module(5), &v, gomod(5).as_bytes())
            .await
            .unwrap(),
        Verdict::Verified
    );
    assert!(store.get(&stored_key(path)).await.unwrap().is_some());
}

#[tokio::test]
async fn verify_goes_on_past_a_file_it_cannot_check() {
    let db = test_db().await;
    let store = memory_store().await;
    let v = Version::parse("v1.0.0").unwrap();
    for i in [1u64, 260] {
        let key = sparta_core::key::version_file(&module(i), &v, sparta_core::FileKind::Mod);
        store.put_once(&key, Bytes::from(gomod(i))).await.unwrap();
    }
    // m1's proof needs tile/8/0/000 (corrupt); m260's does not.
    db.faults.lock().unwrap().flip.insert("tile/8/0/000".into());
    let s = sumdb(&db, &store).await;
    let report = crate::verify_store(&store, &s, true, |_| {}).await.unwrap();
    assert_eq!(report.total, 2);
    assert_eq!(report.verified, 1, "{report:?}");
    assert_eq!(report.failures.len(), 1, "{report:?}");
    let failure = &report.failures[0];
    assert!(failure.key.contains("m1/@v/"), "{failure:?}");
    // The database's fault, not the file's: nothing deleted.
    assert!(!failure.deleted);
    assert!(failure.reason.contains("checksum database"), "{failure:?}");
    assert_eq!(store.list("example.com/").await.unwrap().len(), 2);
}
