//! The disk tier on a real directory: fills, LRU by bytes, checks, restarts.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use futures::StreamExt;
use sparta_storage::{ObjectInfo, ObjectStream};

use super::*;

fn tier(dir: &Path, capacity: u64) -> Arc<DiskTier> {
    Arc::new(DiskTier::open(dir, capacity, &Metrics::new()).expect("open tier"))
}

/// Writes `bytes` to a spool-like file and fills the tier from it.
async fn fill(tier: &Arc<DiskTier>, spool: &Path, key: &str, bytes: &[u8]) {
    let src = spool.join(key_digest(key));
    std::fs::write(&src, bytes).unwrap();
    tier.fill_from_file(key, &src).await;
}

async fn read(tier: &Arc<DiskTier>, key: &str) -> Option<Vec<u8>> {
    let mut f = tier.open_file(key).await?;
    let mut out = Vec::new();
    f.file.read_to_end(&mut out).unwrap();
    assert_eq!(out.len() as u64, f.size);
    Some(out)
}

fn tier_path(dir: &Path, key: &str) -> PathBuf {
    let digest = key_digest(key);
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&digest)
        })
        .unwrap_or_else(|| panic!("no tier file for {key}"))
}

#[tokio::test]
async fn filled_files_are_served_and_counted() {
    let (dir, spool) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t = tier(dir.path(), 1 << 20);
    assert!(read(&t, "a/@v/v1.0.0.zip").await.is_none());
    fill(&t, spool.path(), "a/@v/v1.0.0.zip", b"zip bytes of a").await;
    assert_eq!(
        read(&t, "a/@v/v1.0.0.zip").await.unwrap(),
        b"zip bytes of a"
    );
    assert_eq!(t.usage(), (14, 1));
    // Served twice: the second serve checks the stamp, not the hash.
    assert_eq!(
        read(&t, "a/@v/v1.0.0.zip").await.unwrap(),
        b"zip bytes of a"
    );
    assert!(read(&t, "b/@v/v1.0.0.zip").await.is_none());
}

#[tokio::test]
async fn least_recently_used_bytes_go_first() {
    let (dir, spool) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t = tier(dir.path(), 250);
    fill(&t, spool.path(), "a", &[b'a'; 100]).await;
    fill(&t, spool.path(), "b", &[b'b'; 100]).await;
    // a is used again, so b is now the least recently used.
    assert!(read(&t, "a").await.is_some());
    fill(&t, spool.path(), "c", &[b'c'; 100]).await;
    assert!(read(&t, "b").await.is_none(), "b should have been evicted");
    assert!(read(&t, "a").await.is_some());
    assert!(read(&t, "c").await.is_some());
    assert_eq!(t.usage(), (200, 2));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "b's file is gone"
    );
    // A file larger than the whole tier is never kept.
    fill(&t, spool.path(), "huge", &[b'h'; 300]).await;
    assert!(read(&t, "huge").await.is_none());
    assert_eq!(t.usage(), (200, 2));
}

#[tokio::test]
async fn a_changed_file_is_rehashed_and_dropped() {
    let (dir, spool) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t = tier(dir.path(), 1 << 20);
    fill(&t, spool.path(), "k", b"the right bytes").await;
    assert!(read(&t, "k").await.is_some());
    // File times are coarse: make sure the write lands on a later tick.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let path = tier_path(dir.path(), "k");
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(4)).unwrap();
    f.write_all(b"w").unwrap();
    drop(f);
    assert!(
        read(&t, "k").await.is_none(),
        "a flipped byte must not be served"
    );
    assert!(!path.exists(), "the wrong copy is removed");
    assert_eq!(t.usage(), (0, 0));
    assert_eq!(t.metrics.corrupt.get(), 1);
}

#[tokio::test]
async fn a_truncated_file_is_dropped() {
    let (dir, spool) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t = tier(dir.path(), 1 << 20);
    fill(&t, spool.path(), "k", b"the right bytes").await;
    let path = tier_path(dir.path(), "k");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(3)
        .unwrap();
    assert!(read(&t, "k").await.is_none());
    assert_eq!(t.metrics.corrupt.get(), 1);
}

#[tokio::test]
async fn the_index_survives_a_restart_and_is_hashed_again() {
    let (dir, spool) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    {
        let t = tier(dir.path(), 1 << 20);
        fill(&t, spool.path(), "good", b"good bytes").await;
        fill(&t, spool.path(), "bad", b"bad bytes!").await;
    }
    // Corrupted while the process was down, without time to tell it apart,
    // and a temp file left by a killed fill.
    std::fs::write(tier_path(dir.path(), "bad"), b"BAD bytes!").unwrap();
    std::fs::write(dir.path().join(".tmp-leftover"), b"partial").unwrap();
    std::fs::write(dir.path().join("not-ours.txt"), b"keep").unwrap();
    let t = tier(dir.path(), 1 << 20);
    assert_eq!(t.usage(), (20, 2));
    assert!(!dir.path().join(".tmp-leftover").exists());
    assert!(dir.path().join("not-ours.txt").exists());
    assert_eq!(read(&t, "good").await.unwrap(), b"good bytes");
    assert!(read(&t, "bad").await.is_none());
    assert_eq!(t.usage(), (10, 1));
}

#[tokio::test]
async fn a_restart_over_capacity_keeps_the_newest() {
    let (dir, spool) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    {
        let t = tier(dir.path(), 1 << 20);
        fill(&t, spool.path(), "old", &[1; 100]).await;
        // Whole seconds: the rebuild orders by modification time.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        fill(&t, spool.path(), "new", &[2; 100]).await;
    }
    let t = tier(dir.path(), 150);
    assert!(read(&t, "old").await.is_none());
    assert!(read(&t, "new").await.is_some());
}

fn object(bytes: &'static [u8], chunk: usize) -> ObjectStream {
    let size = bytes.len() as u64;
    let chunks: Vec<Result<Bytes, sparta_storage::StorageError>> = bytes
        .chunks(chunk)
        .map(|c| Ok(Bytes::from_static(c)))
        .collect();
    ObjectStream {
        info: ObjectInfo { size, etag: None },
        range: 0..size,
        body: futures::stream::iter(chunks).boxed(),
    }
}

/// Waits for a background fill to publish (or not) `key`.
async fn settle(t: &Arc<DiskTier>, key: &str) {
    let digest = key_digest(key);
    for _ in 0..200 {
        if !t.index.lock().unwrap().filling.contains(&digest) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fill of {key} did not finish");
}

#[tokio::test]
async fn a_read_from_storage_fills_the_tier_only_when_complete() {
    let dir = tempfile::tempdir().unwrap();
    let t = tier(dir.path(), 1 << 20);
    const BODY: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    // Served whole: the copy is published.
    let mut s = t.tee("whole", object(BODY, 5));
    let mut got = Vec::new();
    while let Some(c) = s.body.next().await {
        got.extend_from_slice(&c.unwrap());
    }
    drop(s);
    assert_eq!(got, BODY);
    settle(&t, "whole").await;
    assert_eq!(read(&t, "whole").await.unwrap(), BODY);
    // A client that goes away after two chunks: nothing is published.
    let mut s = t.tee("partial", object(BODY, 5));
    s.body.next().await.unwrap().unwrap();
    s.body.next().await.unwrap().unwrap();
    drop(s);
    settle(&t, "partial").await;
    assert!(read(&t, "partial").await.is_none());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temp file is left behind"
    );
    // A byte range is never a fill.
    let mut ranged = object(BODY, 5);
    ranged.range = 0..10;
    let s = t.tee("ranged", ranged);
    drop(s);
    assert!(
        !t.index
            .lock()
            .unwrap()
            .filling
            .contains(&key_digest("ranged"))
    );
}

#[test]
fn only_our_names_parse() {
    let d = "0123456789abcdef0123456789abcdef";
    let sha = "a".repeat(64);
    assert_eq!(
        parse_name(&format!("{d}-12-{sha}.zip")),
        Some((d.to_owned(), 12, sha.clone()))
    );
    for bad in [
        format!("{d}-12-{sha}"),
        format!("{d}-x-{sha}.zip"),
        format!("{d}-12-{sha}-1.zip"),
        format!("{}-12-{sha}.zip", &d[1..]),
        ".tmp-abc".to_owned(),
        "../etc.zip".to_owned(),
    ] {
        assert_eq!(parse_name(&bad), None, "{bad}");
    }
}
