//! A credential file held parsed, re-read when its modification time or
//! size changes (looked at most once every [`CHECK_EVERY`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::AccessError;

/// How often a credential file's metadata is looked at, at most.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// A file parsed with the metadata it had when read.
struct Loaded<T> {
    value: Arc<T>,
    stamp: Option<(SystemTime, u64)>,
}

/// One credential file, reloaded when it changes.
pub(crate) struct Watched<T> {
    path: PathBuf,
    loaded: RwLock<Loaded<T>>,
    /// When the metadata was last looked at, in milliseconds since
    /// `opened`: an atomic, so the common answer (not yet) takes no lock.
    checked: AtomicU64,
    opened: Instant,
    parse: fn(&str, &str) -> Result<T, AccessError>,
}

fn stamp(path: &Path) -> Result<(SystemTime, u64), AccessError> {
    let meta = std::fs::metadata(path).map_err(|source| AccessError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok((
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        meta.len(),
    ))
}

impl<T> Watched<T> {
    pub(crate) fn open(
        path: &Path,
        parse: fn(&str, &str) -> Result<T, AccessError>,
    ) -> Result<Self, AccessError> {
        let (value, st) = Self::read(path, parse)?;
        Ok(Watched {
            path: path.to_owned(),
            loaded: RwLock::new(Loaded {
                value: Arc::new(value),
                stamp: Some(st),
            }),
            checked: AtomicU64::new(0),
            opened: Instant::now(),
            parse,
        })
    }

    fn read(
        path: &Path,
        parse: fn(&str, &str) -> Result<T, AccessError>,
    ) -> Result<(T, (SystemTime, u64)), AccessError> {
        let st = stamp(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| AccessError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok((parse(&text, &path.display().to_string())?, st))
    }

    pub(crate) fn current(&self) -> Arc<T> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .value
            .clone()
    }

    /// Re-reads the file if it changed; `Ok(true)` when it was reloaded.
    pub(crate) fn refresh(&self, now: Instant) -> Result<bool, AccessError> {
        let at = now.saturating_duration_since(self.opened).as_millis() as u64;
        let last = self.checked.load(Ordering::Relaxed);
        if at < last + CHECK_EVERY.as_millis() as u64
            // Another thread looks this time.
            || self
                .checked
                .compare_exchange(last, at, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(false);
        }
        let st = stamp(&self.path)?;
        let old = self.loaded.read().unwrap_or_else(|e| e.into_inner()).stamp;
        if old == Some(st) {
            return Ok(false);
        }
        let (value, st) = Self::read(&self.path, self.parse)?;
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Loaded {
            value: Arc::new(value),
            stamp: Some(st),
        };
        Ok(true)
    }
}
