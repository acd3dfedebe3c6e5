//! The catalog's objects in the store: segments written on each stored
//! file, snapshots written by compaction or a rebuild, and the in-memory
//! index each replica keeps from them.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sparta_core::{ModulePath, Version};
use sparta_storage::{PutOutcome, StorageError, Store};
use tokio::sync::{Mutex, RwLock, RwLockReadGuard};
use tracing::{info, warn};

use crate::index::{self, File, Index, Record};

/// Where segments live.
pub const SEGMENT_PREFIX: &str = "_sparta/catalog/seg/";
/// Where snapshots live.
pub const SNAPSHOT_PREFIX: &str = "_sparta/catalog/snap/";
/// A replica compacts once it sees more segments than this.
pub const COMPACT_AFTER: usize = 256;
/// How stale a replica's view of other replicas' writes may be.
pub const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// The catalog's one error type.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The store failed.
    #[error("catalog storage: {0}")]
    Storage(#[from] StorageError),
}

/// A replica's catalog: the merged index and the objects behind it. Cheap
/// to clone.
#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    holder: String,
    seq: AtomicU64,
    state: RwLock<State>,
    /// Held while refreshing; holds when the last refresh finished.
    refreshed: Mutex<Option<Instant>>,
    compacting: AtomicBool,
    /// Records noted but not yet in a segment.
    pending: std::sync::Mutex<Pending>,
    /// Wakes [`Catalog::flush`] when a write of pending records ends.
    written: tokio::sync::Notify,
}

#[derive(Default)]
struct Pending {
    records: Vec<Record>,
    /// A task is writing segments; records noted meanwhile join its next one.
    writing: bool,
}

#[derive(Default)]
struct State {
    index: Index,
    /// Segment and snapshot keys already merged.
    applied: HashSet<String>,
}

/// What a refresh found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refreshed {
    pub objects_read: usize,
    pub segments: usize,
    pub snapshots: usize,
    pub bad_lines: usize,
}

impl Catalog {
    /// A catalog over `store`; `holder` names this replica in object keys.
    pub fn new(store: Store, holder: &str) -> Catalog {
        let holder: String = holder
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        Catalog {
            inner: Arc::new(Inner {
                store,
                holder,
                seq: AtomicU64::new(0),
                state: RwLock::default(),
                refreshed: Mutex::new(None),
                compacting: AtomicBool::new(false),
                pending: Default::default(),
                written: tokio::sync::Notify::new(),
            }),
        }
    }

    fn object_key(&self, prefix: &str) -> String {
        let n = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        format!(
            "{prefix}{:024}-{}-{n}.ndjson",
            index::unix_nanos(SystemTime::now()),
            self.inner.holder
        )
    }

    /// Notes that one file of a version was stored now: merged in memory at
    /// once, and written for the other replicas by a task of its own, so the
    /// request that stored the file does not wait for a second storage
    /// write. Records noted while a segment is being written go into the
    /// next one together. A failed write is logged; `sparta catalog
    /// --rebuild` recovers what it missed.
    pub async fn stored(
        &self,
        module: &ModulePath,
        version: &Version,
        file: File,
        size: u64,
        h1: Option<&str>,
    ) {
        let r = Record::stored(
            module.as_str(),
            version.as_str(),
            file,
            size,
            h1,
            SystemTime::now(),
        );
        self.inner.state.write().await.index.apply(&r);
        let start = {
            let mut p = self.pending();
            p.records.push(r);
            !std::mem::replace(&mut p.writing, true)
        };
        if start {
            let this = self.clone();
            tokio::spawn(async move { this.write_pending().await });
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.inner.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes pending records, a segment at a time, until none are left.
    async fn write_pending(&self) {
        loop {
            let records = {
                let mut p = self.pending();
                if p.records.is_empty() {
                    p.writing = false;
                    drop(p);
                    self.inner.written.notify_waiters();
                    return;
                }
                std::mem::take(&mut p.records)
            };
            if let Err(e) = self.write_segment(&records).await {
                warn!(records = records.len(), error = %e, "could not write a catalog segment");
            }
        }
    }

    /// Waits until every record noted so far is written (or failed).
    pub async fn flush(&self) {
        loop {
            let written = self.inner.written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            {
                let p = self.pending();
                if p.records.is_empty() && !p.writing {
                    return;
                }
            }
            written.await;
        }
    }

    /// Merges `records` and writes them as one segment.
    pub async fn record(&self, records: &[Record]) -> Result<(), CatalogError> {
        if records.is_empty() {
            return Ok(());
        }
        {
            let mut state = self.inner.state.write().await;
            for r in records {
                state.index.apply(r);
            }
        }
        self.write_segment(records).await
    }

    /// One segment of `records` (already in the index) in the store.
    async fn write_segment(&self, records: &[Record]) -> Result<(), CatalogError> {
        let key = self.object_key(SEGMENT_PREFIX);
        self.inner.state.write().await.applied.insert(key.clone());
        let body = Bytes::from(index::encode_records(records));
        self.inner.store.put_once(&key, body).await?;
        Ok(())
    }

    /// The index, refreshed from the store when older than
    /// [`REFRESH_EVERY`]; a failed refresh serves what is known.
    pub async fn read(&self) -> RwLockReadGuard<'_, Index> {
        {
            let mut last = self.inner.refreshed.lock().await;
            if last.is_none_or(|t| t.elapsed() >= REFRESH_EVERY) {
                if let Err(e) = self.refresh_locked().await {
                    warn!(error = %e, "catalog refresh failed; serving what is known");
                }
                *last = Some(Instant::now());
            }
        }
        RwLockReadGuard::map(self.inner.state.read().await, |s| &s.index)
    }

    /// Reads every segment and snapshot not merged yet.
    pub async fn refresh(&self) -> Result<Refreshed, CatalogError> {
        let mut last = self.inner.refreshed.lock().await;
        let found = self.refresh_locked().await?;
        *last = Some(Instant::now());
        Ok(found)
    }

    async fn refresh_locked(&self) -> Result<Refreshed, CatalogError> {
        let mut found = Refreshed::default();
        // An object listed but gone when read was compacted into a snapshot
        // written before it was deleted: list again to find that snapshot.
        for _attempt in 0..4 {
            let segments = self.inner.store.list(SEGMENT_PREFIX).await?;
            let snapshots = self.inner.store.list(SNAPSHOT_PREFIX).await?;
            found.segments = segments.len();
            found.snapshots = snapshots.len();
            let listed: HashSet<&String> = segments.iter().chain(&snapshots).collect();
            let new: Vec<String> = {
                let mut state = self.inner.state.write().await;
                state.applied.retain(|k| listed.contains(k));
                listed
                    .iter()
                    .filter(|k| !state.applied.contains(k.as_str()))
                    .map(|k| (*k).clone())
                    .collect()
            };
            let store = &self.inner.store;
            let bodies: Vec<(String, Option<Bytes>)> = futures::stream::iter(new)
                .map(|key| async move {
                    let body = store.get(&key).await?;
                    Ok::<_, StorageError>((key, body))
                })
                .buffer_unordered(16)
                .try_collect()
                .await?;
            let mut missing = false;
            let mut state = self.inner.state.write().await;
            for (key, body) in bodies {
                let Some(body) = body else {
                    missing = true;
                    continue;
                };
                let (records, bad) = index::parse_records(&body);
                found.bad_lines += bad;
                for r in &records {
                    state.index.apply(r);
                }
                state.applied.insert(key);
                found.objects_read += 1;
            }
            drop(state);
            if !missing {
                break;
            }
        }
        if found.bad_lines > 0 {
            warn!(
                bad_lines = found.bad_lines,
                "catalog objects held lines that do not parse"
            );
        }
        if found.segments > COMPACT_AFTER && !self.inner.compacting.swap(true, Ordering::AcqRel) {
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.compact().await {
                    warn!(error = %e, "catalog compaction failed");
                }
                this.inner.compacting.store(false, Ordering::Release);
            });
        }
        Ok(found)
    }

    /// Writes one snapshot of everything merged, then deletes the segments
    /// and snapshots it covers. Returns the snapshot's key.
    pub async fn compact(&self) -> Result<String, CatalogError> {
        let (body, covered) = {
            let state = self.inner.state.read().await;
            let records: Vec<Record> = state.index.records().collect();
            (
                Bytes::from(index::encode_records(&records)),
                state.applied.iter().cloned().collect::<Vec<_>>(),
            )
        };
        let key = self.object_key(SNAPSHOT_PREFIX);
        if self.inner.store.put_once(&key, body).await? == PutOutcome::Created {
            self.inner.state.write().await.applied.insert(key.clone());
        }
        for old in covered.iter().filter(|k| **k != key) {
            self.inner.store.delete(old).await?;
        }
        info!(snapshot = %key, covered = covered.len(), "catalog compacted");
        Ok(key)
    }

    /// Rebuilds the catalog from a listing of the whole store (for stores
    /// filled before the catalog existed): one snapshot of every stored
    /// version, with listing times as first-stored times. Returns how many
    /// versions the listing named.
    pub async fn rebuild(&self) -> Result<usize, CatalogError> {
        let listed = self.inner.store.list_with_meta("").await?;
        let mut fresh = Index::default();
        for object in &listed {
            if let Some(r) = record_of_key(&object.key, object.size, object.modified) {
                fresh.apply(&r);
            }
        }
        let records: Vec<Record> = fresh.records().collect();
        {
            let mut state = self.inner.state.write().await;
            for r in &records {
                state.index.apply(r);
            }
        }
        let key = self.object_key(SNAPSHOT_PREFIX);
        self.inner
            .store
            .put_once(&key, Bytes::from(index::encode_records(&records)))
            .await?;
        self.inner.state.write().await.applied.insert(key);
        Ok(fresh.len())
    }
}

/// The record a stored file's key stands for:
/// `<escaped module>/@v/<escaped version>.(info|mod|zip)` outside `_sparta/`.
pub fn record_of_key(key: &str, size: u64, modified: SystemTime) -> Option<Record> {
    if key.starts_with("_sparta/") {
        return None;
    }
    let (module, file) = key.rsplit_once("/@v/")?;
    let (version, kind) = [("info", File::Info), ("mod", File::Mod), ("zip", File::Zip)]
        .into_iter()
        .find_map(|(ext, kind)| {
            file.strip_suffix(ext)
                .and_then(|v| v.strip_suffix('.'))
                .map(|v| (v, kind))
        })?;
    let module = ModulePath::from_escaped(module).ok()?;
    let version = Version::from_escaped(version).ok()?;
    Some(Record::stored(
        module.as_str(),
        version.as_str(),
        kind,
        size,
        None,
        modified,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_stored_files_name_their_version() {
        let t = SystemTime::UNIX_EPOCH;
        let r = record_of_key("github.com/!azure/x/@v/v1.2.0.zip", 7, t).unwrap();
        assert_eq!(
            (r.path.as_str(), r.version.as_str(), r.zip),
            ("github.com/Azure/x", "v1.2.0", Some(7))
        );
        assert!(record_of_key("github.com/x/@v/list", 1, t).is_none());
        assert!(record_of_key("_sparta/query/x/@v/v1.0.0.info", 1, t).is_none());
        assert!(record_of_key("github.com/x/@v/v1.0.0.lock", 1, t).is_none());
    }

    async fn memory() -> Store {
        Store::open("memory://", &Default::default()).await.unwrap()
    }

    #[tokio::test]
    async fn records_noted_together_share_segments_and_flush_writes_them_all() {
        let store = memory().await;
        let a = Catalog::new(store.clone(), "a");
        let m = ModulePath::parse("example.com/m").unwrap();
        // Noted one after the other on this one thread: the writer task
        // runs only once this task waits, and takes them all in one go.
        for i in 0..50 {
            let v = Version::parse(&format!("v1.{i}.0")).unwrap();
            a.stored(&m, &v, File::Info, 1, None).await;
        }
        // This replica knows at once; the store once flushed.
        assert_eq!(a.read().await.len(), 50);
        a.flush().await;
        let b = Catalog::new(store.clone(), "b");
        let found = b.refresh().await.unwrap();
        assert_eq!(b.read().await.len(), 50);
        assert!(
            found.segments >= 1 && found.segments < 50,
            "{} segments for 50 records noted at once",
            found.segments
        );
        // Nothing pending: flush returns at once.
        a.flush().await;
    }

    #[tokio::test]
    async fn replicas_see_each_others_records_and_compaction_loses_nothing() {
        let store = memory().await;
        let a = Catalog::new(store.clone(), "a");
        let b = Catalog::new(store.clone(), "b");
        let m = ModulePath::parse("example.com/m").unwrap();
        for i in 0..5 {
            let v = Version::parse(&format!("v1.{i}.0")).unwrap();
            a.stored(&m, &v, File::Mod, 3, None).await;
        }
        a.flush().await;
        b.refresh().await.unwrap();
        assert_eq!(b.read().await.len(), 5);
        // Both compact at once from what they hold; a third replica sees all.
        let v = Version::parse("v2.0.0").unwrap();
        b.stored(&m, &v, File::Zip, 9, Some("h1:z=")).await;
        b.flush().await;
        a.compact().await.unwrap();
        b.compact().await.unwrap();
        let c = Catalog::new(store.clone(), "c");
        let found = c.refresh().await.unwrap();
        assert_eq!(found.segments, 0, "compaction deletes what it covers");
        let ix = c.read().await;
        assert_eq!(ix.len(), 6);
        let e = &ix.versions("example.com/m").unwrap()["v2.0.0"];
        assert_eq!(e.h1.as_deref(), Some("h1:z="));
    }
}
