//! `sparta import`: every file of a bundle is checked before it is stored
//! write-once — its size and sha256 against the manifest, a module file's
//! `h1:` against the checksum database's record (proven from the bundle's
//! own lookups and tiles, nothing fetched), a lookup by its signature and
//! inclusion proof, a tile against a signed tree. What is stored and
//! identical is skipped, so a second run changes nothing and an interrupted
//! one resumes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use sparta_catalog::{Catalog, Record};
use sparta_core::ModulePath;
use sparta_storage::{PutOutcome, Store};
use sparta_sumdb::{Imported, Sumdb, SumdbConfig};
use tokio::sync::mpsc;

use super::export::{describe, module_version};
use super::manifest::{self, FileEntry, MANIFEST, Manifest, Part};
use crate::progress::{Progress, Summary};

/// Where the checks find a checksum database that is never reached: the
/// bundle must carry every lookup and tile its proofs need.
const NO_SOURCE: &str = "http://127.0.0.1:9/sumdb-not-reachable-during-import";

/// One entry of the tar, spooled to a temporary file.
struct Spooled {
    key: String,
    file: tempfile::NamedTempFile,
}

/// Imports `bundle` into `store`; the summary lists what was refused.
pub async fn import(
    store: &Store,
    sumdb_config: SumdbConfig,
    catalog: &Catalog,
    bundle: &Path,
) -> Result<Summary> {
    let (tx, mut rx) = mpsc::channel::<Result<Spooled>>(4);
    let path = bundle.to_owned();
    let reader = tokio::task::spawn_blocking(move || read_tar(&path, &tx));
    let manifest: Manifest = match rx.recv().await {
        Some(Ok(first)) if first.key == MANIFEST => {
            let body = std::fs::read(first.file.path())?;
            serde_json::from_slice(&body).context("the bundle's manifest is unreadable")?
        }
        Some(Ok(first)) => bail!(
            "the bundle does not start with {MANIFEST} but {}",
            first.key
        ),
        Some(Err(e)) => return Err(e),
        None => bail!("the bundle is empty"),
    };
    if manifest.format != manifest::FORMAT {
        bail!(
            "bundle format {} is not supported (this build reads {})",
            manifest.format,
            manifest::FORMAT
        );
    }
    let progress = Progress::new("import", manifest.files.len() as u64);
    let mut checked = Checked {
        store,
        manifest: &manifest,
        progress: &progress,
        seen: BTreeMap::new(),
        records: Vec::new(),
        sums: std::collections::HashSet::new(),
    };

    // Checksum-database files come first; they are staged in a memory store
    // that the proofs read, and stored for real once proven.
    let staging = Store::open("memory://", &Default::default()).await?;
    let mut config = sumdb_config;
    config.fail_open = false;
    for db in &mut config.databases {
        db.sources = vec![NO_SOURCE.to_owned()];
    }
    let sumdb =
        Sumdb::new(config, staging.clone()).context("invalid checksum database settings")?;
    let mut sumdb_files: Vec<(String, Bytes)> = Vec::new();
    let mut pending: Option<Spooled> = None;
    while let Some(entry) = rx.recv().await {
        let entry = entry?;
        if manifest::part_of(&entry.key) == Some(Part::Module) {
            pending = Some(entry);
            break;
        }
        let Some(body) = checked.matching(&entry).await? else {
            continue;
        };
        let body = Bytes::from(body);
        staging.put_once(&entry.key, body.clone()).await?;
        sumdb_files.push((entry.key, body));
    }
    checked.sumdb_files(&sumdb, sumdb_files).await?;

    // Module files, streamed one at a time.
    let mut next = pending;
    loop {
        let entry = match next.take() {
            Some(e) => e,
            None => match rx.recv().await {
                Some(e) => e?,
                None => break,
            },
        };
        checked.module_file(&sumdb, entry).await?;
    }
    reader.await??;
    for key in manifest.files.keys() {
        if !checked.seen.contains_key(key) {
            progress.item_failed(key, "listed in the manifest but missing from the bundle");
        }
    }
    catalog
        .record(&checked.records)
        .await
        .context("cannot record the imported versions in the catalog")?;
    Ok(progress.finish())
}

struct Checked<'a> {
    store: &'a Store,
    manifest: &'a Manifest,
    progress: &'a Progress,
    seen: BTreeMap<String, ()>,
    records: Vec<Record>,
    /// `module version h1:` lines of the proven lookups.
    sums: std::collections::HashSet<String>,
}

impl Checked<'_> {
    fn refuse(&self, key: &str, reason: impl std::fmt::Display) {
        self.progress.item_failed(key, &reason.to_string());
    }

    /// The entry's manifest line, if its size and sha256 match it; refused
    /// otherwise.
    async fn check_manifest(&mut self, entry: &Spooled) -> Result<Option<FileEntry>> {
        if self.seen.insert(entry.key.clone(), ()).is_some() {
            self.refuse(&entry.key, "appears twice in the bundle");
            return Ok(None);
        }
        let Some(want) = self.manifest.files.get(&entry.key) else {
            self.refuse(&entry.key, "not listed in the manifest");
            return Ok(None);
        };
        let got = describe(&entry.key, entry.file.path()).await;
        let got = match got {
            Ok(g) => g,
            Err(e) => {
                self.refuse(&entry.key, format!("{e:#}"));
                return Ok(None);
            }
        };
        if got.size != want.size {
            self.refuse(
                &entry.key,
                format!("size {} but the manifest says {}", got.size, want.size),
            );
            return Ok(None);
        }
        if got.sha256 != want.sha256 {
            self.refuse(&entry.key, "sha256 differs from the manifest");
            return Ok(None);
        }
        if got.h1 != want.h1 {
            self.refuse(&entry.key, "h1: differs from the manifest");
            return Ok(None);
        }
        Ok(Some(got))
    }

    /// A small entry's bytes when it matches the manifest.
    async fn matching(&mut self, entry: &Spooled) -> Result<Option<Vec<u8>>> {
        if self.check_manifest(entry).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(std::fs::read(entry.file.path())?))
    }

    /// Whether `key` is stored already: `Some(true)` identical (skip),
    /// `Some(false)` different (refuse), `None` absent.
    async fn stored_same(&self, key: &str, sha256: &str) -> Result<Option<bool>> {
        let Some(mut stream) = self.store.get_stream(key, None).await? else {
            return Ok(None);
        };
        let mut sha = Sha256::new();
        while let Some(chunk) = stream.body.next().await {
            sha.update(&chunk?);
        }
        Ok(Some(hex::encode(sha.finalize()) == sha256))
    }

    /// Stores a checked file unless an identical one is there.
    async fn store(&self, key: &str, entry: &FileEntry, path: &Path) -> Result<bool> {
        match self.stored_same(key, &entry.sha256).await? {
            Some(true) => {
                self.progress.item_skipped();
                return Ok(false);
            }
            Some(false) => {
                self.refuse(key, "a different file is already stored under this key");
                return Ok(false);
            }
            None => {}
        }
        let outcome = self.store.put_once_file(key, path).await?;
        if outcome == PutOutcome::AlreadyExists {
            // Stored meanwhile by someone else: identical or not, it is theirs.
            self.progress.item_skipped();
            return Ok(false);
        }
        self.progress.item_done(entry.size);
        Ok(true)
    }

    /// Proves and stores the bundle's lookups, then its tiles. A partial
    /// tile is stored only when a proven lookup's proof used it.
    async fn sumdb_files(&mut self, sumdb: &Sumdb, files: Vec<(String, Bytes)>) -> Result<()> {
        let mut partials: BTreeMap<String, Bytes> = BTreeMap::new();
        for (key, body) in &files {
            if let Some((name, rel)) = manifest::sumdb_rel(key)
                && rel.contains(".p/")
            {
                sumdb.stage_partial_tile(name, rel, body.clone()).await;
                partials.insert(key.clone(), body.clone());
            }
        }
        // A partial tile is stored once a proven lookup's proof used it, as
        // the proxy keeps the ones its own proofs use (offline they answer
        // the go command's checks of those records).
        let mut used_partials = std::collections::BTreeSet::new();
        let verifying = sumdb.names().next().map(str::to_owned);
        let mut newest: BTreeMap<String, (u64, Bytes)> = BTreeMap::new();
        for (key, body) in files
            .iter()
            .filter(|(k, _)| manifest::part_of(k) == Some(Part::Lookup))
        {
            let Some((name, rel)) = manifest::sumdb_rel(key) else {
                continue;
            };
            match sumdb.prove_imported(name, rel, body, None).await {
                Ok(Imported::Record(text)) => {
                    if let Ok(size) = sumdb.signed_tree_size(name, body)
                        && newest.get(name).is_none_or(|(s, _)| size > *s)
                    {
                        newest.insert(name.to_owned(), (size, body.clone()));
                    }
                    if verifying.as_deref() == Some(name) {
                        self.sums.extend(text.lines().map(str::to_owned));
                    }
                    if let Ok(tiles) = sumdb.proof_tiles(name, body).await {
                        for (rel, data) in tiles {
                            let tile_key = format!("_sparta/sumdb/{name}/{rel}");
                            if partials.get(&tile_key) == Some(&data) {
                                used_partials.insert(tile_key);
                            }
                        }
                    }
                    self.store_bytes(key, body).await?;
                }
                Ok(_) => self.progress.item_skipped(),
                Err(e) => self.refuse(key, e),
            }
        }
        for (key, body) in files
            .iter()
            .filter(|(k, _)| manifest::part_of(k) == Some(Part::Tile))
        {
            let Some((name, rel)) = manifest::sumdb_rel(key) else {
                continue;
            };
            if rel.contains(".p/") {
                if used_partials.contains(key) {
                    self.store_bytes(key, body).await?;
                } else {
                    // Not on any proven record's path: nothing vouches for it.
                    self.progress.item_skipped();
                }
                continue;
            }
            let tree = newest.get(name).map(|(_, b)| b.as_ref());
            match sumdb.prove_imported(name, rel, body, tree).await {
                Ok(Imported::Proven | Imported::Record(_)) => self.store_bytes(key, body).await?,
                Ok(Imported::NotStored) => {
                    self.refuse(key, "not covered by any signed tree in the bundle")
                }
                Err(e) => self.refuse(key, e),
            }
        }
        Ok(())
    }

    /// Whether the proven records name `h1` for this module file (always
    /// true for modules the checksum database does not cover).
    fn signed(
        &self,
        sumdb: &Sumdb,
        module: &ModulePath,
        version: &str,
        h1: &str,
    ) -> Result<(), String> {
        if !sumdb.should_verify(module) {
            return Ok(());
        }
        let line = format!("{module} {version} {h1}");
        if self.sums.contains(&line) {
            return Ok(());
        }
        let prefix = format!("{module} {version} ");
        if self.sums.iter().any(|l| l.starts_with(&prefix)) {
            return Err(format!(
                "checksum mismatch: the checksum database signs another hash than {h1}"
            ));
        }
        Err("the bundle carries no proven checksum database record for it".into())
    }

    async fn store_bytes(&self, key: &str, body: &Bytes) -> Result<()> {
        let entry = &self.manifest.files[key];
        match self.stored_same(key, &entry.sha256).await? {
            Some(true) => self.progress.item_skipped(),
            Some(false) => self.refuse(key, "a different file is already stored under this key"),
            None => match self.store.put_once(key, body.clone()).await? {
                PutOutcome::Created => self.progress.item_done(entry.size),
                PutOutcome::AlreadyExists => self.progress.item_skipped(),
            },
        }
        Ok(())
    }

    /// Checks one module file (manifest, then content, then the checksum
    /// database) and stores it.
    async fn module_file(&mut self, sumdb: &Sumdb, entry: Spooled) -> Result<()> {
        let key = entry.key.clone();
        let Some(got) = self.check_manifest(&entry).await? else {
            return Ok(());
        };
        let Some((module, version)) = module_version(&key) else {
            self.refuse(&key, "not a module file's name");
            return Ok(());
        };
        // What is stored and identical needs no checks: skip it early.
        if self.stored_same(&key, &got.sha256).await? == Some(true) {
            self.progress.item_skipped();
            return Ok(());
        }
        let checked: Result<(), String> = if key.ends_with(".info") {
            let body = std::fs::read(entry.file.path())?;
            check_info(&body, version.as_str())
        } else if key.ends_with(".mod") {
            let h1 = got.h1.clone().unwrap_or_default();
            self.signed(sumdb, &module, &format!("{version}/go.mod"), &h1)
        } else {
            let (m, v, path) = (
                module.clone(),
                version.clone(),
                entry.file.path().to_owned(),
            );
            let summary = tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(&path)?;
                Ok::<_, std::io::Error>(sparta_core::zipcheck::check_zip(
                    std::io::BufReader::new(file),
                    &m,
                    &v,
                ))
            })
            .await??;
            match summary {
                Err(e) => Err(format!("not a valid module zip: {e}")),
                Ok(s) if Some(&s.h1) != got.h1.as_ref() => {
                    Err("h1: differs from the manifest".into())
                }
                Ok(s) => self.signed(sumdb, &module, version.as_str(), &s.h1),
            }
        };
        if let Err(reason) = checked {
            self.refuse(&key, reason);
            return Ok(());
        }
        if self.store(&key, &got, entry.file.path()).await? {
            let file = match key.rsplit_once('.').map(|(_, ext)| ext) {
                Some("info") => sparta_catalog::index::File::Info,
                Some("mod") => sparta_catalog::index::File::Mod,
                _ => sparta_catalog::index::File::Zip,
            };
            let h1 = (file == sparta_catalog::index::File::Zip)
                .then_some(got.h1.as_deref())
                .flatten();
            self.records.push(Record::stored(
                module.as_str(),
                version.as_str(),
                file,
                got.size,
                h1,
                std::time::SystemTime::now(),
            ));
        }
        Ok(())
    }
}

/// A `.info` must be JSON naming the version it is for.
fn check_info(body: &[u8], version: &str) -> Result<(), String> {
    let info: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!(".info is not JSON: {e}"))?;
    match info.get("Version").and_then(|v| v.as_str()) {
        Some(v) if v == version => Ok(()),
        Some(v) => Err(format!(".info names version {v}, not {version}")),
        None => Err(".info has no Version".into()),
    }
}

/// Reads the tar (gzip or plain, by its first bytes) and sends each entry,
/// spooled, to the checker; stops when the checker goes away.
fn read_tar(path: &PathBuf, tx: &mpsc::Sender<Result<Spooled>>) -> Result<()> {
    let result = (|| -> Result<()> {
        let mut file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut magic = [0u8; 2];
        let n = file.read(&mut magic)?;
        std::io::Seek::rewind(&mut file)?;
        let reader: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] {
            Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
        } else {
            Box::new(std::io::BufReader::new(file))
        };
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().context("the bundle is not a tar")? {
            let mut entry = entry.context("the bundle is damaged")?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let key = entry.path()?.to_string_lossy().into_owned();
            let tmp = tempfile::NamedTempFile::new()?;
            std::io::copy(&mut entry, &mut tmp.as_file())
                .with_context(|| format!("the bundle is damaged at {key}"))?;
            if tx.blocking_send(Ok(Spooled { key, file: tmp })).is_err() {
                return Ok(());
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = tx.blocking_send(Err(e));
    }
    Ok(())
}
