//! Building a module zip from a mirror: list the tree, plan with
//! `sparta_core::modzip`, stream the blobs through the mirror's
//! `git cat-file --batch` readers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sparta_core::modzip::{self, EntryKind};
use sparta_core::{CoreError, Version};

use crate::VcsError;
use crate::batch::Batch;
use crate::repo;
use crate::versions::CodeRepo;

fn zip_error(e: CoreError) -> VcsError {
    let msg = e.to_string();
    if msg.contains("too large") {
        VcsError::TooLarge(msg)
    } else {
        VcsError::NotFound(msg)
    }
}

/// Writes the zip of `module@version` to `out`, from what `find_dir`
/// found: its commit `hash`, directory `subdir` and the go.mod there.
pub(crate) async fn build(
    code: &CodeRepo,
    version: &Version,
    (hash, subdir, gomod): (&str, &str, Option<Vec<u8>>),
    max_zip_size: u64,
    out: &Path,
) -> Result<u64, VcsError> {
    let (git, dir, module) = (&code.git, &code.dir, &code.mod_path);
    // A subdirectory module's tree, and the root LICENSE it may inherit: one listing.
    let spec = format!("{subdir}/");
    let specs: &[&str] = if subdir.is_empty() {
        &[]
    } else {
        &[&spec, "LICENSE"]
    };
    let listed = repo::ls_tree(git, dir, hash, specs).await?;
    let gomod_path = if subdir.is_empty() {
        "go.mod".to_owned()
    } else {
        format!("{subdir}/go.mod")
    };
    // find_dir read that go.mod; the zip's rules want it only as a regular file.
    let root_gomod = listed
        .iter()
        .any(|(e, _)| e.path == gomod_path && e.kind == EntryKind::File)
        .then_some(gomod)
        .flatten();
    let objects: HashMap<String, String> = listed
        .iter()
        .map(|(e, o)| (e.path.clone(), o.clone()))
        .collect();
    let entries: Vec<_> = listed.into_iter().map(|(e, _)| e).collect();
    let plan = modzip::plan(module, version, subdir, &entries, root_gomod.as_deref())
        .map_err(zip_error)?;
    if plan.total > max_zip_size {
        return Err(VcsError::TooLarge(format!(
            "module source tree is {} bytes, over the limit of {max_zip_size}",
            plan.total
        )));
    }
    let (batch, out): (Arc<Batch>, PathBuf) = (code.batch.clone(), out.to_owned());
    let target = out.clone();
    let rt = tokio::runtime::Handle::current();
    let written = tokio::task::spawn_blocking(move || {
        let mut blobs = batch.blobs(rt)?;
        let file = std::fs::File::create(&out)
            .map_err(|e| VcsError::Failed(format!("creating {}: {e}", out.display())))?;
        let mut file = std::io::BufWriter::with_capacity(256 << 10, file);
        let size = modzip::write_zip(&mut file, &plan, max_zip_size, |f, w| {
            let object = objects
                .get(&f.source)
                .ok_or_else(|| std::io::Error::other(format!("no object for {}", f.source)))?;
            let mut blob = blobs.open(object)?;
            std::io::copy(&mut blob, w)?;
            // Eat the batch separator so the next header lines up.
            std::io::copy(&mut blob, &mut std::io::sink())?;
            Ok(())
        })
        .map_err(zip_error)?;
        use std::io::Write;
        file.flush()
            .map_err(|e| VcsError::Failed(format!("writing zip: {e}")))?;
        Ok(size)
    })
    .await
    .map_err(|e| VcsError::Failed(format!("zip task: {e}")))
    .and_then(|r| r);
    if written.is_err() {
        // No half-written zip is left for anyone to pick up.
        let _ = std::fs::remove_file(&target);
    }
    written
}
