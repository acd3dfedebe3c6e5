//! A local disk tier for zips in front of object storage.
//!
//! Least-recently-used by bytes, filled when a zip is fetched and when it is
//! first read from storage, and never a source of truth: any doubt about a
//! file (wrong size, wrong hash, unreadable) drops it and the caller reads
//! storage instead. Each file is named `<key digest>-<size>-<sha256>.zip`,
//! so one rename publishes the bytes together with what they must hash to,
//! and the index is rebuilt from the names after a restart. Files are
//! written to `.tmp-*` and renamed: a reader never sees a partial file, and
//! an unlinked file stays readable by whoever has it open.
//!
//! A file is hashed before its first serve by this process (entries found at
//! start-up are unverified) and again whenever its inode, size, mtime or
//! ctime changed since; in between, one `fstat` per serve checks it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};
use sha2::{Digest, Sha256};
use sparta_core::hash::hex;
use sparta_storage::{ObjectInfo, ObjectStream};
use tracing::{debug, info, warn};

use crate::metrics::Metrics;

/// Chunks a tee may queue for its writer before it gives the fill up
/// rather than slow the client down.
const TEE_QUEUE: usize = 64;

/// An opened, checked tier file.
pub struct TierFile {
    pub file: std::fs::File,
    pub size: u64,
}

/// What identifies the on-disk state of a file that was hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

#[derive(Debug)]
struct Entry {
    file_name: String,
    size: u64,
    sha256: String,
    tick: u64,
    /// Set once the file was hashed and matched.
    verified: Option<Stamp>,
}

#[derive(Default)]
struct Index {
    /// By key digest.
    entries: HashMap<String, Entry>,
    /// Recency: tick -> key digest; the first is the least recently used.
    order: BTreeMap<u64, String>,
    used: u64,
    tick: u64,
    /// Key digests being filled now, so concurrent first reads write once.
    filling: HashSet<String>,
}

impl Index {
    fn touch(&mut self, digest: &str) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(e) = self.entries.get_mut(digest) {
            self.order.remove(&e.tick);
            e.tick = tick;
            self.order.insert(tick, digest.to_owned());
        }
    }

    fn remove(&mut self, digest: &str) -> Option<Entry> {
        let e = self.entries.remove(digest)?;
        self.order.remove(&e.tick);
        self.used -= e.size;
        Some(e)
    }

    /// Adds an entry, returning the file names to delete (a replaced entry
    /// under another name, and the least recently used beyond `capacity`).
    fn insert(&mut self, digest: String, mut entry: Entry, capacity: u64) -> Vec<String> {
        let mut victims = Vec::new();
        if let Some(old) = self.remove(&digest)
            && old.file_name != entry.file_name
        {
            victims.push(old.file_name);
        }
        while self.used + entry.size > capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.remove(&oldest) {
                self.used -= e.size;
                victims.push(e.file_name);
            }
        }
        self.tick += 1;
        entry.tick = self.tick;
        self.used += entry.size;
        self.order.insert(entry.tick, digest.clone());
        self.entries.insert(digest, entry);
        victims
    }
}

struct TierMetrics {
    bytes: IntGauge,
    files: IntGauge,
    evictions: IntCounter,
    corrupt: IntCounter,
    fills: IntCounterVec,
}

/// The disk tier; cheap to share behind an `Arc`.
pub struct DiskTier {
    dir: PathBuf,
    capacity: u64,
    index: Mutex<Index>,
    metrics: TierMetrics,
}

impl std::fmt::Debug for DiskTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskTier")
            .field("dir", &self.dir)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// `<32 hex digits of sha256(storage key)>`.
fn key_digest(storage_key: &str) -> String {
    hex(&Sha256::digest(storage_key.as_bytes())[..16])
}

fn file_name(digest: &str, size: u64, sha256: &str) -> String {
    format!("{digest}-{size}-{sha256}.zip")
}

/// `(digest, size, sha256)` of a tier file name, or `None` for anything else.
fn parse_name(name: &str) -> Option<(String, u64, String)> {
    let stem = name.strip_suffix(".zip")?;
    let mut parts = stem.split('-');
    let (digest, size, sha) = (parts.next()?, parts.next()?, parts.next()?);
    let is_hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if parts.next().is_some() || !is_hex(digest, 32) || !is_hex(sha, 64) {
        return None;
    }
    Some((digest.to_owned(), size.parse().ok()?, sha.to_owned()))
}

/// Hashes a whole file: (bytes read, sha256 hex).
fn hash_file(file: &mut std::fs::File) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex(&hasher.finalize())))
}

impl DiskTier {
    /// Opens (or creates) the tier in `dir`, holding at most `capacity`
    /// bytes; rebuilds the index from the files there, oldest first, and
    /// removes temporary files a stopped process left.
    pub fn open(dir: &Path, capacity: u64, metrics: &Metrics) -> std::io::Result<DiskTier> {
        std::fs::create_dir_all(dir)?;
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            metrics.register(Box::new(g.clone()));
            g
        };
        let count = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            metrics.register(Box::new(c.clone()));
            c
        };
        let fills = IntCounterVec::new(
            Opts::new(
                "sparta_disk_tier_fills_total",
                "Zips written to the disk tier, by what filled them (fetch, read).",
            ),
            &["from"],
        )
        .expect("valid metric");
        metrics.register(Box::new(fills.clone()));
        let tier = DiskTier {
            dir: dir.to_owned(),
            capacity,
            index: Mutex::new(Index::default()),
            metrics: TierMetrics {
                bytes: gauge("sparta_disk_tier_bytes", "Bytes of zips in the disk tier."),
                files: gauge("sparta_disk_tier_files", "Zips in the disk tier."),
                evictions: count(
                    "sparta_disk_tier_evictions_total",
                    "Zips removed from the disk tier to make room.",
                ),
                corrupt: count(
                    "sparta_disk_tier_corrupt_total",
                    "Disk tier files dropped because their size or hash was wrong.",
                ),
                fills,
            },
        };
        let mut found = Vec::new();
        for dirent in std::fs::read_dir(dir)? {
            let dirent = dirent?;
            let name = dirent.file_name().to_string_lossy().into_owned();
            let path = dirent.path();
            match parse_name(&name) {
                Some((digest, size, sha)) => {
                    let mtime = dirent.metadata().map(|m| m.mtime()).unwrap_or(0);
                    found.push((mtime, digest, size, sha, name));
                }
                // Our own leftovers go; anything else is not ours to touch.
                None if name.starts_with(".tmp-") => {
                    let _ = std::fs::remove_file(&path);
                }
                None => {}
            }
        }
        found.sort();
        let mut victims = Vec::new();
        {
            let mut index = tier.index.lock().expect("tier index");
            for (_, digest, size, sha256, file_name) in found {
                let entry = Entry {
                    file_name,
                    size,
                    sha256,
                    tick: 0,
                    verified: None,
                };
                victims.extend(index.insert(digest, entry, capacity));
            }
        }
        tier.delete(victims);
        tier.publish_usage();
        let (used, files) = tier.usage();
        info!(dir = %dir.display(), files, bytes = used, capacity, "disk tier opened");
        Ok(tier)
    }

    /// Bytes and files held.
    pub fn usage(&self) -> (u64, u64) {
        let index = self.index.lock().expect("tier index");
        (index.used, index.entries.len() as u64)
    }

    fn publish_usage(&self) {
        let (used, files) = self.usage();
        self.metrics.bytes.set(used as i64);
        self.metrics.files.set(files as i64);
    }

    fn delete(&self, victims: Vec<String>) {
        for name in victims {
            self.metrics.evictions.inc();
            let _ = std::fs::remove_file(self.dir.join(name));
        }
    }

    /// Drops the entry for `digest` (when it still names `file_name`) and
    /// its file.
    fn drop_entry(&self, digest: &str, file_name: &str) {
        let mut index = self.index.lock().expect("tier index");
        if index.entries.get(digest).map(|e| e.file_name.as_str()) == Some(file_name) {
            index.remove(digest);
            drop(index);
            let _ = std::fs::remove_file(self.dir.join(file_name));
            self.publish_usage();
        }
    }

    /// The tier's copy of `storage_key`, checked; `None` when absent or
    /// when the copy was wrong (then it is gone).
    pub async fn open_file(self: &Arc<Self>, storage_key: &str) -> Option<TierFile> {
        let digest = key_digest(storage_key);
        let (file_name, size, sha256, verified) = {
            let mut index = self.index.lock().expect("tier index");
            let e = index.entries.get(&digest)?;
            let found = (e.file_name.clone(), e.size, e.sha256.clone(), e.verified);
            index.touch(&digest);
            found
        };
        let path = self.dir.join(&file_name);
        let tier = Arc::clone(self);
        let name = file_name.clone();
        let checked = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let mut file = std::fs::File::open(&path).map_err(|e| format!("open: {e}"))?;
            let meta = file.metadata().map_err(|e| format!("stat: {e}"))?;
            if meta.len() != size {
                return Err(format!("{} bytes, want {size}", meta.len()));
            }
            let stamp = Stamp::of(&meta);
            if verified != Some(stamp) {
                let (len, got) = hash_file(&mut file).map_err(|e| format!("read: {e}"))?;
                if len != size || got != sha256 {
                    return Err(format!("hash {got} over {len} bytes, want {sha256}"));
                }
                tier.mark_verified(&digest, &name, stamp);
                // Serve from the start: the hash read moved the position.
                file = std::fs::File::open(&path).map_err(|e| format!("reopen: {e}"))?;
            }
            Ok(file)
        })
        .await;
        match checked {
            Ok(Ok(file)) => Some(TierFile { file, size }),
            Ok(Err(why)) => {
                self.metrics.corrupt.inc();
                warn!(key = %storage_key, problem = %why, "disk tier copy is wrong, dropped; reading storage");
                self.drop_entry(&key_digest(storage_key), &file_name);
                None
            }
            Err(e) => {
                warn!(key = %storage_key, error = %e, "disk tier check did not run");
                None
            }
        }
    }

    fn mark_verified(&self, digest: &str, file_name: &str, stamp: Stamp) {
        let mut index = self.index.lock().expect("tier index");
        if let Some(e) = index.entries.get_mut(digest)
            && e.file_name == file_name
        {
            e.verified = Some(stamp);
        }
    }

    /// Starts a fill of `storage_key` unless one runs; `false` if one does.
    fn begin_fill(&self, digest: &str) -> bool {
        let mut index = self.index.lock().expect("tier index");
        if index.entries.contains_key(digest) {
            return false;
        }
        index.filling.insert(digest.to_owned())
    }

    fn end_fill(&self, digest: &str) {
        self.index
            .lock()
            .expect("tier index")
            .filling
            .remove(digest);
    }

    fn temp_file(&self) -> std::io::Result<tempfile::NamedTempFile> {
        tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)
    }

    /// Publishes a complete temp file of `size` bytes hashing to `sha256`.
    fn publish(
        &self,
        digest: String,
        tmp: tempfile::NamedTempFile,
        size: u64,
        sha256: String,
        from: &str,
    ) -> std::io::Result<()> {
        if size > self.capacity {
            return Ok(());
        }
        let name = file_name(&digest, size, &sha256);
        let file = tmp.persist(self.dir.join(&name)).map_err(|e| e.error)?;
        let stamp = Stamp::of(&file.metadata()?);
        let entry = Entry {
            file_name: name,
            size,
            sha256,
            tick: 0,
            verified: Some(stamp),
        };
        let victims = self
            .index
            .lock()
            .expect("tier index")
            .insert(digest, entry, self.capacity);
        self.delete(victims);
        self.metrics.fills.with_label_values(&[from]).inc();
        self.publish_usage();
        Ok(())
    }

    /// Copies a local file (a checked spool file) into the tier.
    pub async fn fill_from_file(self: &Arc<Self>, storage_key: &str, source: &Path) {
        let digest = key_digest(storage_key);
        if !self.begin_fill(&digest) {
            return;
        }
        let tier = Arc::clone(self);
        let source = source.to_owned();
        let d = digest.clone();
        let done = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut input = std::fs::File::open(&source)?;
            let mut tmp = tier.temp_file()?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            loop {
                let n = input.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                tmp.write_all(&buf[..n])?;
                total += n as u64;
            }
            tier.publish(d, tmp, total, hex(&hasher.finalize()), "fetch")
        })
        .await;
        self.end_fill(&digest);
        match done {
            Ok(Ok(())) => debug!(key = %storage_key, "disk tier filled from the fetch"),
            Ok(Err(e)) => warn!(key = %storage_key, error = %e, "could not fill the disk tier"),
            Err(e) => warn!(key = %storage_key, error = %e, "disk tier fill did not run"),
        }
    }

    /// Serves `stream` (a whole object read from storage) and writes a copy
    /// into the tier as it goes by. The copy is published only when every
    /// byte of the object passed; a slow disk, an error or a client that
    /// goes away abandons it without slowing or failing the client.
    pub fn tee(self: &Arc<Self>, storage_key: &str, stream: ObjectStream) -> ObjectStream {
        let size = stream.info.size;
        let whole = stream.range.start == 0 && stream.range.end == size;
        let digest = key_digest(storage_key);
        if !whole || size > self.capacity || !self.begin_fill(&digest) {
            return stream;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(TEE_QUEUE);
        let tier = Arc::clone(self);
        let key = storage_key.to_owned();
        tokio::task::spawn_blocking(move || {
            let written = (|| -> std::io::Result<Option<(tempfile::NamedTempFile, String)>> {
                let mut tmp = tier.temp_file()?;
                let mut hasher = Sha256::new();
                let mut total = 0u64;
                while let Some(chunk) = rx.blocking_recv() {
                    hasher.update(&chunk);
                    tmp.write_all(&chunk)?;
                    total += chunk.len() as u64;
                }
                Ok((total == size).then(|| (tmp, hex(&hasher.finalize()))))
            })();
            let result = match written {
                Ok(Some((tmp, sha))) => tier.publish(digest.clone(), tmp, size, sha, "read"),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            tier.end_fill(&digest);
            if let Err(e) = result {
                warn!(key = %key, error = %e, "could not fill the disk tier");
            }
        });
        let mut sender = Some(tx);
        let body = stream
            .body
            .map(move |chunk| {
                let sent = match (&chunk, sender.as_ref()) {
                    (Ok(bytes), Some(tx)) => tx.try_send(bytes.clone()).is_ok(),
                    _ => false,
                };
                // A full queue or an error gives the copy up (its writer sees
                // too few bytes), never the client.
                if !sent {
                    sender = None;
                }
                chunk
            })
            .boxed();
        ObjectStream {
            info: stream.info,
            range: stream.range,
            body,
        }
    }
}

/// A stream over `range` of a checked tier file.
pub fn stream_file(tier_file: TierFile, range: std::ops::Range<u64>) -> ObjectStream {
    ObjectStream {
        info: ObjectInfo {
            size: tier_file.size,
            etag: None,
        },
        range: range.clone(),
        body: sparta_storage::file_stream(tier_file.file, range),
    }
}

#[cfg(test)]
mod tests;
