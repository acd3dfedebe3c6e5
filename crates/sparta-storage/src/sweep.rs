//! Start-up sweeps of what a killed process leaves behind: spool files
//! (`sparta-zip-*` in the spool directory) and staging objects of multipart
//! uploads (`_sparta/staging/`). Only old enough entries go (a live upload
//! of another replica is never that old), and each listing is bounded, so a
//! huge backlog is worked off over several start-ups.

use std::path::Path;
use std::time::{Duration, SystemTime};

use futures::StreamExt;

use object_store::ObjectStoreExt;

use crate::{STAGING_PREFIX, StorageError, Store, key_of, obj_path};

/// Spool files older than this are a dead process's.
pub const SPOOL_MAX_AGE: Duration = Duration::from_secs(3600);
/// Staging objects older than this are a dead upload's.
pub const STAGING_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Entries looked at per sweep.
pub const SWEEP_LIMIT: usize = 10_000;
/// Name prefix of spool files.
pub const SPOOL_PREFIX: &str = "sparta-zip-";

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Entries looked at (at most [`SWEEP_LIMIT`]).
    pub seen: usize,
    pub removed: usize,
    /// Removals that failed (logged).
    pub failed: usize,
}

/// Removes spool files older than `max_age` from `dir`.
pub fn sweep_spool(dir: &Path, max_age: Duration) -> std::io::Result<Swept> {
    let mut swept = Swept::default();
    let now = SystemTime::now();
    for entry in std::fs::read_dir(dir)?.take(SWEEP_LIMIT) {
        let Ok(entry) = entry else { continue };
        swept.seen += 1;
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(SPOOL_PREFIX) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > max_age);
        if !meta.is_file() || !old {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => swept.removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %entry.path().display(), error = %e, "could not remove stale spool file");
                swept.failed += 1;
            }
        }
    }
    Ok(swept)
}

impl Store {
    /// Removes staging objects last modified more than `max_age` ago (by
    /// the store's own timestamps), looking at most at [`SWEEP_LIMIT`].
    pub async fn sweep_staging(&self, max_age: Duration) -> Result<Swept, StorageError> {
        let mut swept = Swept::default();
        let cutoff = chrono_cutoff(max_age);
        let prefix = obj_path(STAGING_PREFIX);
        let mut listing = self.inner.list(Some(&prefix)).take(SWEEP_LIMIT);
        let mut old = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            swept.seen += 1;
            if meta.last_modified.timestamp_millis() < cutoff {
                old.push(meta.location);
            }
        }
        for path in old {
            match self.inner.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => swept.removed += 1,
                Err(e) => {
                    tracing::warn!(key = %key_of(&path), error = %e, "could not remove stale staging object");
                    swept.failed += 1;
                }
            }
        }
        Ok(swept)
    }
}

/// Unix milliseconds `max_age` ago.
fn chrono_cutoff(max_age: Duration) -> i64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    now.saturating_sub(max_age).as_millis() as i64
}
