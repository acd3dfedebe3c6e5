//! The start-up sweep: spool files and staging objects a killed process left.

use std::path::Path;

use sparta_storage::{SPOOL_MAX_AGE, STAGING_MAX_AGE, Store, sweep_spool};
use tracing::{info, warn};

/// Sweeps the spool directory and the store's staging area once, logging
/// what went; a failing sweep is logged and never stops start-up.
pub async fn at_start(store: &Store, spool_dir: &Path) {
    let dir = spool_dir.to_owned();
    match tokio::task::spawn_blocking(move || sweep_spool(&dir, SPOOL_MAX_AGE)).await {
        Ok(Ok(s)) => info!(
            dir = %spool_dir.display(),
            seen = s.seen,
            removed = s.removed,
            failed = s.failed,
            "swept stale spool files"
        ),
        Ok(Err(e)) => {
            warn!(dir = %spool_dir.display(), error = %e, "could not sweep the spool directory")
        }
        Err(e) => warn!(error = %e, "spool sweep task failed"),
    }
    match store.sweep_staging(STAGING_MAX_AGE).await {
        Ok(s) => info!(
            seen = s.seen,
            removed = s.removed,
            failed = s.failed,
            "swept stale staging objects"
        ),
        Err(e) => warn!(error = %e, "could not sweep staging objects"),
    }
}
