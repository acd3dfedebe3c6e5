//! `sparta catalog`: prints the stored module versions from the catalog;
//! `--rebuild` first rebuilds it from a listing of the whole store.

use std::io::Write;

use anyhow::{Context, Result};
use sparta_catalog::Catalog;
use sparta_storage::Store;

use crate::config::Settings;

/// Prints one line per stored version: module, version, first-stored time.
pub async fn run(settings: Settings, rebuild: bool) -> Result<()> {
    let store = Store::open(&settings.storage, &settings.s3())
        .await
        .with_context(|| format!("cannot open storage {}", settings.storage))?;
    let catalog = Catalog::new(store, &format!("cli-{}", std::process::id()));
    if rebuild {
        let found = catalog
            .rebuild()
            .await
            .context("cannot rebuild the catalog")?;
        eprintln!("rebuilt the catalog from the store's listing: {found} versions");
    }
    catalog.refresh().await.context("cannot read the catalog")?;
    let index = catalog.read().await;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for r in index.records() {
        writeln!(out, "{}\t{}\t{}", r.path, r.version, r.time)?;
    }
    out.flush()?;
    eprintln!("{} versions of {} modules", index.len(), index.modules());
    Ok(())
}
