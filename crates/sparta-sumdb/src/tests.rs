//! Unit tests with known answers computed with golang.org/x/mod (sumdb/note,
//! sumdb/tlog) by the fixture in tests/sumdb-fixture and a throwaway program.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use crate::note::Verifier;
use crate::path::SumdbPath;
use crate::tlog::*;

/// Key of the fixture run that signed the vectors below.
const VKEY: &str = "vectors.sparta.test+85af0784+Acc8ozXOR4pMbb8PAX/wMdbarJBN8D+hsF9GFz34W4qb";
/// Same name, another key.
const VKEY_SAME_NAME: &str =
    "vectors.sparta.test+d39e0c50+AcxRHUR4KfKxGxoT0PMXCY/OASFYI2XGbWBEY5TwZNQm";
const VKEY_OTHER: &str = "other.sparta.test+b4b43611+AbbXr+V3SeZXIZZcxGPukcxt0NgOqiacaqcqrBMI/BCD";
const TREE_TEXT: &str = "go.sum database tree\n3\ncoiDRh8N4Xos1gZwkNn1bS5CQohvkDlBgRNc3uB5Op0=\n";
const SIG_LINE: &str = "\u{2014} vectors.sparta.test ha8HhIvsWUpz0TeOpE2D5TSkYtBciBcuJP2AILEg2pcuLhOXUMifElliiPrc/O6ySLSifRzTCFuFtQ5ZZb/CgAH8wAE=\n";
const RECORD_B: &str = "example.com/b v1.2.3 h1:CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC=\n\
                        example.com/b v1.2.3/go.mod h1:DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD=\n";
/// tile/8/0/000.p/3 of that tree.
const TILE_000_P3: &str = "eaf2766585fdb0c61527ce7fd244211c1a13ebc2f798ec2eb41cf0c22edf05a6\
                           f0d748ef73e174ec8ce8420c586eb1891f5c800a4eb8da27fd14e3bdbd944ec0\
                           d17c8f343e85993e0356b3b67987b0882d8426d74633d42bc71cbf3dfd3a9b1b";

fn signed_tree() -> String {
    format!("{TREE_TEXT}\n{SIG_LINE}")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn note_opens_with_its_key() {
    let v = Verifier::parse(VKEY).unwrap();
    assert_eq!(v.name(), "vectors.sparta.test");
    assert_eq!(v.open(signed_tree().as_bytes()).unwrap(), TREE_TEXT);
    // Extra signatures by unknown keys are ignored.
    let extra = format!(
        "{}\u{2014} other.sparta.test AAAAAAAAAAAAAAAA\n",
        signed_tree()
    );
    assert_eq!(v.open(extra.as_bytes()).unwrap(), TREE_TEXT);
}

#[test]
fn note_refuses_tampering_and_other_keys() {
    let v = Verifier::parse(VKEY).unwrap();
    let tampered = signed_tree().replace("\n3\n", "\n4\n");
    assert!(
        matches!(v.open(tampered.as_bytes()), Err(sparta_core::CoreError::InvalidSumdb(m)) if m.contains("invalid signature"))
    );
    for other in [VKEY_SAME_NAME, VKEY_OTHER] {
        let err = Verifier::parse(other)
            .unwrap()
            .open(signed_tree().as_bytes())
            .unwrap_err();
        assert!(err.to_string().contains("no signature by"), "{err}");
    }
    for malformed in [
        TREE_TEXT.to_owned(),
        format!("{TREE_TEXT}\n"),
        format!("{TREE_TEXT}\n{}", SIG_LINE.trim_end()),
        format!("{TREE_TEXT}\n- vectors.sparta.test AAAA\n"),
        format!("go.sum\tdatabase tree\n3\nx\n\n{SIG_LINE}"),
    ] {
        assert!(v.open(malformed.as_bytes()).is_err(), "{malformed:?}");
    }
}

#[test]
fn verifier_keys_are_checked() {
    assert!(Verifier::parse(VKEY).is_ok());
    for bad in [
        "vectors.sparta.test+85af0785+Acc8ozXOR4pMbb8PAX/wMdbarJBN8D+hsF9GFz34W4qb",
        "other.name+85af0784+Acc8ozXOR4pMbb8PAX/wMdbarJBN8D+hsF9GFz34W4qb",
        "vectors.sparta.test+85af0784",
        "vectors.sparta.test+85af078+Acc8ozXOR4pMbb8PAX/wMdbarJBN8D+hsF9GFz34W4qb",
        "vectors.sparta.test+85af0784+!!!",
        "",
    ] {
        assert!(Verifier::parse(bad).is_err(), "{bad:?}");
    }
    // The go command's default key parses and names its database.
    assert_eq!(
        Verifier::parse(crate::DEFAULT_KEY).unwrap().name(),
        crate::DEFAULT_NAME
    );
}

#[test]
fn lookup_record_included_in_signed_tree() {
    let lookup = format!("1\n{RECORD_B}\n{}", signed_tree());
    let rec = Record::parse(lookup.as_bytes()).unwrap();
    assert_eq!(rec.id, 1);
    assert_eq!(rec.text, RECORD_B.as_bytes());
    let tree = Tree::parse(
        Verifier::parse(VKEY)
            .unwrap()
            .open(rec.signed_tree)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(tree.size, 3);
    let tiles_needed = proof_tiles(TILE_HEIGHT, rec.id, tree.size).unwrap();
    let tile = Tile::parse("tile/8/0/000.p/3").unwrap();
    assert_eq!(tiles_needed, vec![tile]);
    let tiles = HashMap::from([(tile, bytes::Bytes::from(unhex(TILE_000_P3)))]);
    let mut src = FromTiles {
        h: TILE_HEIGHT,
        size: tree.size,
        tiles: &tiles,
    };
    let root = root_with_leaf(0, tree.size, rec.id, record_hash(rec.text), &mut src).unwrap();
    assert_eq!(root, tree.hash);
    // The same proof does not hold for a record with another hash.
    let forged = RECORD_B.replace("CCCC", "CCCD");
    let root = root_with_leaf(
        0,
        tree.size,
        rec.id,
        record_hash(forged.as_bytes()),
        &mut src,
    )
    .unwrap();
    assert_ne!(root, tree.hash);
    // Nor at another position.
    let root = root_with_leaf(0, tree.size, 2, record_hash(rec.text), &mut src).unwrap();
    assert_ne!(root, tree.hash);
}

#[test]
fn malformed_records_and_trees() {
    for bad in [
        "",
        "x\nrec\n\n",
        "1\nno blank line\n",
        "1\nctl\u{1}\n\nnote",
        "+7\nrec\n\nnote",
        "07\nrec\n\nnote",
    ] {
        assert!(Record::parse(bad.as_bytes()).is_err(), "{bad:?}");
    }
    for bad in [
        "go.sum database tree\n3\ncoiDRh8N4Xos1gZwkNn1bS5CQohvkDlBgRNc3uB5Op0=",
        "go.sum database tree\n03\ncoiDRh8N4Xos1gZwkNn1bS5CQohvkDlBgRNc3uB5Op0=\n",
        "go.sum database tree\n3\nAAAA\n",
        "other tree\n3\ncoiDRh8N4Xos1gZwkNn1bS5CQohvkDlBgRNc3uB5Op0=\n",
    ] {
        assert!(Tree::parse(bad).is_err(), "{bad:?}");
    }
    let with_extra = format!("{TREE_TEXT}extension line\n");
    assert_eq!(Tree::parse(&with_extra).unwrap().size, 3);
}

/// Stored hashes computed straight from the leaves.
struct Naive {
    leaves: Vec<Hash>,
}

impl Naive {
    fn new(n: u64) -> Self {
        Naive {
            leaves: (0..n)
                .map(|i| record_hash(format!("record {i}\n").as_bytes()))
                .collect(),
        }
    }
    fn hash(&self, lo: usize, hi: usize) -> Hash {
        if hi - lo == 1 {
            return self.leaves[lo];
        }
        let mid = lo + (hi - lo) / 2;
        node_hash(&self.hash(lo, mid), &self.hash(mid, hi))
    }
    /// A hash tile's bytes, laid out as the tile format says.
    fn tile(&mut self, t: Tile) -> Vec<u8> {
        let level = t.level.unwrap() * t.h;
        let mut out = Vec::new();
        for i in 0..t.w {
            out.extend_from_slice(&self.stored(level, (t.n << t.h) + i).unwrap());
        }
        out
    }
}

impl StoredHashes for Naive {
    fn stored(&mut self, level: u32, n: u64) -> Result<Hash, sparta_core::CoreError> {
        let lo = (n << level) as usize;
        Ok(self.hash(lo, lo + (1 << level)))
    }
}

// Tree hashes of "record i\n" for i < n, from tlog.TreeHash.
const ROOTS: &[(u64, &str)] = &[
    (1, "hH2/O6WqM8SXbRrP04wkRcdxBnXjSED3frqPG1Slmqo="),
    (2, "iDYylbHW0Tfc8TPv9Zsm3tnGSeG45mXMQ+Eqym5W/aw="),
    (3, "NN1lugKBoC5d4485FURI7Stm1fqIQOgKwtCU4SF6ADo="),
    (7, "VVOPta6muLtr4TjexJLyDN2n5k9t9+4IYo4R6tZk+rQ="),
    (256, "YM4q9B2yxJjQzI3wjS28QSe5lhVenLORq/0HtRJm3q4="),
    (257, "QdJ5V+Qnf4iWgvEVR9xxpPDgVMkVzgEbYXI1DVJk2Kg="),
    (1000, "/OM0wh4QVBZH2yGIJAxlVIH0IqehjKLfQ+JUXW3B0iM="),
    (65836, "XAs7rFECK5F3edpGbX6vUCT8wsGM2TDKrwujCIdM/vY="),
];

#[test]
fn tree_hashes_match_tlog() {
    let mut naive = Naive::new(65836);
    for &(n, want) in ROOTS {
        let got = range_hash(0, n, &mut naive).unwrap();
        assert_eq!(B64.encode(got), want, "size {n}");
    }
}

#[test]
fn tile_layout_matches_tlog() {
    // SHA-256 of tlog.ReadTileData in a tree of 65836 records.
    let want = [
        (
            "tile/8/0/003",
            "4e1502a6fffe5dd58cace5b418bde725d3766612e221c3835ffde1124bdf9ab3",
        ),
        (
            "tile/8/1/000",
            "c02ef5a86dea0de781e38a2df373063bec7c83ea63a2c289840ae5338f88f547",
        ),
        (
            "tile/8/1/001.p/1",
            "25580bb347686498943f37c1a69e7c45b5ced0748f5b3300ac4aab5f681c1abc",
        ),
        (
            "tile/8/2/000.p/1",
            "63994f622235ebc37cb19638742a2c83bceaed93dcb7a0bd9a3815c5b6ad1630",
        ),
        (
            "tile/8/0/256.p/44",
            "d3e3cb0cf58f569463a271f23ebec1b59bdd081dfb78c095d4c725c2d3432e7e",
        ),
    ];
    let mut naive = Naive::new(65836);
    for (path, digest) in want {
        let tile = Tile::parse(path).unwrap();
        let data = naive.tile(tile);
        assert_eq!(data.len(), tile.hash_bytes());
        let got: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(got.to_vec(), unhex(digest), "{path}");
    }
}

#[test]
fn inclusion_proofs_from_tiles_across_levels() {
    let size = 65836;
    let mut naive = Naive::new(size);
    let root = range_hash(0, size, &mut naive).unwrap();
    for index in [0, 1, 255, 256, 1000, 65535, 65536, 65800, size - 1] {
        let needed = proof_tiles(TILE_HEIGHT, index, size).unwrap();
        // Every tile is as wide as this tree has it.
        for t in &needed {
            let level_count = size >> (t.level.unwrap() * t.h);
            assert!(
                t.w == 1 << t.h || (t.n << t.h) + t.w == level_count,
                "{}",
                t.path()
            );
        }
        let tiles: HashMap<Tile, bytes::Bytes> =
            needed.iter().map(|t| (*t, naive.tile(*t).into())).collect();
        let mut src = FromTiles {
            h: TILE_HEIGHT,
            size,
            tiles: &tiles,
        };
        let leaf = record_hash(format!("record {index}\n").as_bytes());
        assert_eq!(
            root_with_leaf(0, size, index, leaf, &mut src).unwrap(),
            root,
            "index {index}"
        );
        let wrong = record_hash(format!("record {}\n", index + 1).as_bytes());
        assert_ne!(
            root_with_leaf(0, size, index, wrong, &mut src).unwrap(),
            root
        );
    }
    // A tree of one record needs no tile: the leaf is the root.
    assert!(proof_tiles(TILE_HEIGHT, 0, 1).unwrap().is_empty());
}

#[test]
fn tile_paths_round_trip_and_reject_others() {
    // Paths as tlog.Tile.Path formats them.
    let t = Tile {
        h: 8,
        level: Some(0),
        n: 1234067,
        w: 5,
    };
    assert_eq!(t.path(), "tile/8/0/x001/x234/067.p/5");
    assert_eq!(Tile::parse(&t.path()), Some(t));
    let d = Tile {
        h: 8,
        level: None,
        n: 1000,
        w: 256,
    };
    assert_eq!(d.path(), "tile/8/data/x001/000");
    assert_eq!(Tile::parse(&d.path()), Some(d));
    for bad in [
        "tile/8/0/1",
        "tile/8/0/0001",
        "tile/8/0/001/002",
        "tile/8/0/x000/002",
        "tile/8/0/000.p/256",
        "tile/8/0/000.p/0",
        "tile/8/0/000.p/05",
        "tile/08/0/000",
        "tile/31/0/000",
        "tile/0/0/000",
        "tile/8/64/000",
        "tile/8/-1/000",
        "tile/8/0/000/",
        "tile/8/0/../000",
        "tile/8/0",
    ] {
        assert_eq!(Tile::parse(bad), None, "{bad}");
    }
}

#[test]
fn sumdb_paths() {
    assert_eq!(SumdbPath::parse("supported"), Some(SumdbPath::Supported));
    assert_eq!(SumdbPath::parse("latest"), Some(SumdbPath::Latest));
    let p = SumdbPath::parse("lookup/github.com/!azure/x@v1.2.3-!r!c1").unwrap();
    assert!(p.immutable());
    assert_eq!(p.to_path(), "lookup/github.com/!azure/x@v1.2.3-!r!c1");
    assert_eq!(p.content_type(), "text/plain; charset=UTF-8");
    let full = SumdbPath::parse("tile/8/1/002").unwrap();
    assert!(full.immutable());
    assert_eq!(full.content_type(), "application/octet-stream");
    assert!(!SumdbPath::parse("tile/8/1/002.p/9").unwrap().immutable());
    assert_eq!(
        SumdbPath::parse("tile/8/data/002").unwrap().content_type(),
        "text/plain; charset=UTF-8"
    );
    for bad in [
        "",
        "lookup",
        "lookup/",
        "lookup/github.com/Azure/x@v1.0.0",
        "lookup/example.com/m@latest",
        "lookup/example.com/m@v1.0",
        "lookup/example.com/m/v2@v1.0.0",
        "lookup/example.com/m@v1.0.0/../../x",
        "latest/",
        "supported/x",
        "http://evil/",
        "../../etc/passwd",
        "tile/8/0/000?x=1",
    ] {
        assert_eq!(SumdbPath::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn parse_database_specs() {
    let ups = [
        "http://127.0.0.1:1/".to_owned(),
        "http://127.0.0.1:2".to_owned(),
    ];
    let db = crate::Sumdb::parse_database(VKEY, &ups).unwrap();
    assert_eq!(db.name, "vectors.sparta.test");
    assert_eq!(db.verifier_key, VKEY);
    assert_eq!(
        db.sources,
        [
            "http://127.0.0.1:1/sumdb/vectors.sparta.test",
            "http://127.0.0.1:2/sumdb/vectors.sparta.test"
        ]
    );
    let db = crate::Sumdb::parse_database(&format!("{VKEY} http://127.0.0.1:9/db/"), &ups).unwrap();
    assert_eq!(db.sources, ["http://127.0.0.1:9/db"]);
    let db = crate::Sumdb::parse_database("sum.golang.org", &ups).unwrap();
    assert_eq!(db, crate::Sumdb::default_database(&ups));
    for bad in [
        "",
        "name-only.example",
        &format!("{VKEY} ftp://x"),
        &format!("{VKEY} http://a http://b"),
    ] {
        assert!(crate::Sumdb::parse_database(bad, &ups).is_err(), "{bad:?}");
    }
}
