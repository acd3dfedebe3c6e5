//! `sparta verify`: re-check every stored zip and go.mod against the database.

use futures::StreamExt;
use sparta_core::{ModulePath, Version};
use sparta_storage::Store;
use tokio::io::AsyncWriteExt;
use tracing::warn;

use crate::{Sumdb, SumdbError, Verdict};

/// Progress after each checked object.
#[derive(Debug, Clone)]
pub struct VerifyProgress {
    pub done: usize,
    pub total: usize,
    pub key: String,
}

/// One stored object that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    pub key: String,
    pub reason: String,
    /// Whether it was deleted (with `delete`).
    pub deleted: bool,
}

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Objects checked (`.zip` and `.mod` under `@v/`).
    pub total: usize,
    pub verified: usize,
    /// Skipped by a nosumdb pattern or with verification off.
    pub skipped: usize,
    /// Failures that are the database's fault (answers failing their proof):
    /// reported, never deleted.
    pub unchecked: usize,
    pub failures: Vec<VerifyFailure>,
}

/// Walks the store and re-checks every stored zip and go.mod against the
/// database; with `delete`, removes each object that fails. Fails closed: an
/// unreachable database or a failing store stops the run, whatever fail-open
/// says; a database answer that fails its proof fails that object only (kept,
/// never deleted on that word) and the run goes on.
pub async fn verify_store(
    store: &Store,
    sumdb: &Sumdb,
    delete: bool,
    mut progress: impl FnMut(VerifyProgress),
) -> Result<VerifyReport, SumdbError> {
    let storage = |e: sparta_storage::StorageError| SumdbError::Storage(e.to_string());
    let mut keys: Vec<(String, ModulePath, Version, bool)> = store
        .list("")
        .await
        .map_err(storage)?
        .into_iter()
        .filter_map(|key| {
            let (module, version, gomod) = parse_key(&key)?;
            Some((key, module, version, gomod))
        })
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    let mut report = VerifyReport {
        total: keys.len(),
        ..VerifyReport::default()
    };
    for (done, (key, module, version, gomod)) in keys.into_iter().enumerate() {
        let failure = if !sumdb.should_verify(&module) {
            report.skipped += 1;
            None
        } else {
            match hash_object(store, &key, gomod).await? {
                Err(unreadable) => Some(unreadable),
                Ok(h1) => match sumdb
                    .verify_line(&module, &version, gomod, &h1, false)
                    .await
                {
                    Ok(Verdict::Verified) => {
                        report.verified += 1;
                        None
                    }
                    Ok(Verdict::Skipped) => {
                        report.skipped += 1;
                        None
                    }
                    // The object's own fault: wrong hash, or no record at all.
                    Err(e @ (SumdbError::Mismatch { .. } | SumdbError::NotFound(_))) => {
                        Some(e.to_string())
                    }
                    // A database answer for this object that fails its
                    // proof: the database's fault, so the object is kept,
                    // reported, and the run goes on to the next one.
                    Err(e @ SumdbError::Invalid(_)) => {
                        report.unchecked += 1;
                        Some(format!("checksum database could not check it: {e}"))
                    }
                    // Unreachable database or failing store: judge nothing.
                    Err(e) => return Err(e),
                },
            }
        };
        if let Some(reason) = failure {
            let delete = delete && !reason.starts_with("checksum database could not check");
            if delete {
                store.delete(&key).await.map_err(storage)?;
            }
            warn!(
                key,
                reason,
                deleted = delete,
                "stored file fails verification"
            );
            report.failures.push(VerifyFailure {
                key: key.clone(),
                reason,
                deleted: delete,
            });
        }
        progress(VerifyProgress {
            done: done + 1,
            total: report.total,
            key,
        });
    }
    Ok(report)
}

/// `<escaped module>/@v/<escaped version>.(zip|mod)` outside `_sparta/`.
fn parse_key(key: &str) -> Option<(ModulePath, Version, bool)> {
    if key.starts_with("_sparta/") {
        return None;
    }
    let (module, file) = key.rsplit_once("/@v/")?;
    let (version, gomod) = match (file.strip_suffix(".zip"), file.strip_suffix(".mod")) {
        (Some(v), _) => (v, false),
        (_, Some(v)) => (v, true),
        _ => return None,
    };
    Some((
        ModulePath::from_escaped(module).ok()?,
        Version::from_escaped(version).ok()?,
        gomod,
    ))
}

/// The object's `h1:` hash; the inner error is an unreadable object. Zips are
/// spooled to a temporary file, never held in memory.
async fn hash_object(
    store: &Store,
    key: &str,
    gomod: bool,
) -> Result<Result<String, String>, SumdbError> {
    let storage = |e: sparta_storage::StorageError| SumdbError::Storage(format!("{key}: {e}"));
    if gomod {
        let Some(body) = store.get(key).await.map_err(storage)? else {
            return Err(SumdbError::Storage(format!(
                "{key}: vanished while verifying"
            )));
        };
        return Ok(Ok(sparta_core::hash::gomod_h1(&body)));
    }
    let Some(mut stream) = store.get_stream(key, None).await.map_err(storage)? else {
        return Err(SumdbError::Storage(format!(
            "{key}: vanished while verifying"
        )));
    };
    let io = |e: std::io::Error| SumdbError::Storage(format!("spool file: {e}"));
    let file = tempfile::tempfile().map_err(io)?;
    let mut out = tokio::fs::File::from_std(file);
    while let Some(chunk) = stream.body.next().await {
        out.write_all(&chunk.map_err(storage)?).await.map_err(io)?;
    }
    out.flush().await.map_err(io)?;
    let file = out.into_std().await;
    let hashed = tokio::task::spawn_blocking(move || {
        let mut file = file;
        std::io::Seek::rewind(&mut file)?;
        Ok::<_, std::io::Error>(sparta_core::hash::zip_h1(std::io::BufReader::new(file)))
    })
    .await
    .map_err(|e| SumdbError::Storage(format!("hashing task: {e}")))?
    .map_err(io)?;
    Ok(hashed.map_err(|e| format!("unreadable zip: {e}")))
}
