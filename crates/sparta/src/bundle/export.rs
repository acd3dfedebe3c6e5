//! `sparta export`: the stored module files (optionally since a time, of
//! modules matching a glob list) and the checksum-database lookups and tiles
//! that prove them, as one compressed tar with a manifest first.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use sparta_core::glob::GlobList;
use sparta_core::{ModulePath, Version};
use sparta_storage::Store;
use sparta_sumdb::Sumdb;
use tokio::io::AsyncWriteExt;

use super::manifest::{self, FileEntry, MANIFEST, Manifest, Part};
use crate::progress::Progress;

/// What to export.
pub struct ExportOptions {
    pub output: PathBuf,
    /// Only files stored at or after this time.
    pub since: Option<SystemTime>,
    /// Only modules matching this GOPRIVATE-style glob list.
    pub modules: Option<GlobList>,
}

/// The compression an output name asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    None,
}

impl Compression {
    /// By file name: `.tar.gz`/`.tgz` or `.tar`.
    pub fn of(path: &Path) -> Result<Compression> {
        let name = path.to_string_lossy();
        if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Ok(Compression::Gzip)
        } else if name.ends_with(".tar") {
            Ok(Compression::None)
        } else {
            bail!("{name}: the bundle name must end in .tar.gz, .tgz or .tar")
        }
    }
}

/// Writes the bundle; returns how many files it holds.
pub async fn export(store: &Store, sumdb: &Sumdb, opts: &ExportOptions) -> Result<usize> {
    let compression = Compression::of(&opts.output)?;
    let listed = store
        .list_with_meta("")
        .await
        .context("cannot list the store")?;
    let mut selected: BTreeSet<(String, String)> = BTreeSet::new();
    let mut keys = Vec::new();
    for object in &listed {
        if manifest::part_of(&object.key) != Some(Part::Module) {
            continue;
        }
        if opts.since.is_some_and(|t| object.modified < t) {
            continue;
        }
        let Some((module, version)) = module_version(&object.key) else {
            continue;
        };
        if opts
            .modules
            .as_ref()
            .is_some_and(|g| !g.matches(module.as_str()))
        {
            continue;
        }
        selected.insert((module.escaped().to_owned(), version.escaped().to_owned()));
        keys.push(object.key.clone());
    }
    for object in &listed {
        match manifest::part_of(&object.key) {
            Some(Part::Tile) => keys.push(object.key.clone()),
            Some(Part::Lookup) => {
                let wanted = manifest::sumdb_rel(&object.key)
                    .and_then(|(_, rel)| rel.strip_prefix("lookup/"))
                    .and_then(|mv| mv.rsplit_once('@'))
                    .is_some_and(|(m, v)| selected.contains(&(m.to_owned(), v.to_owned())));
                if wanted {
                    keys.push(object.key.clone());
                }
            }
            _ => {}
        }
    }
    // The tiles that prove each lookup, partial ones too (never stored, so
    // asked of the database now): an importer has nothing to fetch.
    let mut extra: BTreeMap<String, Bytes> = BTreeMap::new();
    for key in keys
        .iter()
        .filter(|k| manifest::part_of(k) == Some(Part::Lookup))
    {
        let Some((name, _)) = manifest::sumdb_rel(key) else {
            continue;
        };
        let Some(body) = store.get(key).await? else {
            continue;
        };
        match sumdb.proof_tiles(name, &body).await {
            Ok(tiles) => {
                for (rel, data) in tiles {
                    extra.insert(format!("_sparta/sumdb/{name}/{rel}"), data);
                }
            }
            Err(e) => eprintln!("warning: {key}: cannot gather the tiles that prove it: {e}"),
        }
    }
    let stored: BTreeSet<String> = keys.iter().cloned().collect();
    extra.retain(|k, _| !stored.contains(k));
    keys.extend(extra.keys().cloned());
    let keys: Vec<String> = manifest::ordered(&keys).into_iter().cloned().collect();

    // Pass one: the manifest, so it can go first and an importer can check
    // each file as it streams past.
    let progress = Progress::new("export (hashing)", keys.len() as u64);
    let mut files = BTreeMap::new();
    for key in &keys {
        let spool = spool(store, &extra, key).await?;
        let entry = describe(key, spool.path()).await?;
        progress.item_done(entry.size);
        files.insert(key.clone(), entry);
    }
    progress.finish();
    let manifest = Manifest {
        format: manifest::FORMAT,
        created: sparta_catalog::index::format_time(SystemTime::now()),
        files,
    };

    // Pass two: the tar, written to a temporary name and renamed when whole.
    let partial = opts.output.with_extension("partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let writer: Box<dyn Write + Send> = match compression {
        Compression::Gzip => Box::new(flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::default(),
        )),
        Compression::None => Box::new(std::io::BufWriter::new(file)),
    };
    let mut tar = tar::Builder::new(writer);
    let body = serde_json::to_vec_pretty(&manifest)?;
    append(&mut tar, MANIFEST, body.len() as u64, &body[..])?;
    let progress = Progress::new("export", keys.len() as u64);
    for key in &keys {
        let spool = spool(store, &extra, key).await?;
        let want = &manifest.files[key];
        let file = std::fs::File::open(spool.path())?;
        let size = file.metadata()?.len();
        if size != want.size {
            bail!("{key} changed while exporting");
        }
        tokio::task::block_in_place(|| append(&mut tar, key, size, file))?;
        progress.item_done(size);
    }
    let summary = progress.finish();
    eprintln!("{}", summary.report());
    let writer = tar.into_inner()?;
    tokio::task::block_in_place(|| finish(writer))?;
    std::fs::rename(&partial, &opts.output)
        .with_context(|| format!("cannot rename to {}", opts.output.display()))?;
    Ok(keys.len())
}

fn finish(mut writer: Box<dyn Write + Send>) -> std::io::Result<()> {
    writer.flush()
}

fn append(
    tar: &mut tar::Builder<Box<dyn Write + Send>>,
    name: &str,
    size: u64,
    data: impl std::io::Read,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, data)
        .with_context(|| format!("cannot write {name} to the bundle"))
}

/// The module and version a module file's key names.
pub fn module_version(key: &str) -> Option<(ModulePath, Version)> {
    let (module, file) = key.rsplit_once("/@v/")?;
    let version = file.rsplit_once('.')?.0;
    Some((
        ModulePath::from_escaped(module).ok()?,
        Version::from_escaped(version).ok()?,
    ))
}

/// A stored object (or a gathered tile) copied to a temporary file.
async fn spool(
    store: &Store,
    extra: &BTreeMap<String, Bytes>,
    key: &str,
) -> Result<tempfile::NamedTempFile> {
    if let Some(data) = extra.get(key) {
        let tmp = tempfile::NamedTempFile::new()?;
        tokio::fs::write(tmp.path(), data).await?;
        return Ok(tmp);
    }
    let Some(mut stream) = store
        .get_stream(key, None)
        .await
        .with_context(|| format!("cannot read {key}"))?
    else {
        bail!("{key} vanished while exporting");
    };
    let tmp = tempfile::NamedTempFile::new()?;
    let mut out = tokio::fs::File::create(tmp.path()).await?;
    while let Some(chunk) = stream.body.next().await {
        out.write_all(&chunk.with_context(|| format!("cannot read {key}"))?)
            .await?;
    }
    out.flush().await?;
    Ok(tmp)
}

/// Size, sha256 and (for module files) `h1:` of a spooled file.
pub async fn describe(key: &str, path: &Path) -> Result<FileEntry> {
    let (key, path) = (key.to_owned(), path.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let mut sha = Sha256::new();
        let size = std::io::copy(&mut file, &mut sha)?;
        let h1 = if key.ends_with(".mod") {
            Some(sparta_core::hash::gomod_h1(&std::fs::read(&path)?))
        } else if key.ends_with(".zip") && !key.starts_with("_sparta/") {
            let file = std::io::BufReader::new(std::fs::File::open(&path)?);
            Some(
                sparta_core::hash::zip_h1(file)
                    .with_context(|| format!("{key}: unreadable zip"))?,
            )
        } else {
            None
        };
        Ok(FileEntry {
            size,
            sha256: hex::encode(sha.finalize()),
            h1,
        })
    })
    .await?
}
