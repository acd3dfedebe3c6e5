//! Module zip rules (golang.org/x/mod/zip CheckZip): what a zip must be before it is stored.

use crate::hash::{Hash1, sha256_exact};
use crate::module::check_file_path;
use crate::{CoreError, ModulePath, Version};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::SeekFrom;

/// Largest module zip the go command accepts (500 MiB), both the zip file
/// and the sum of its uncompressed file sizes.
pub const MAX_ZIP_SIZE: u64 = 500 << 20;
/// Largest go.mod file the go command accepts (16 MiB).
pub const MAX_GOMOD_SIZE: u64 = 16 << 20;
/// Largest LICENSE file the go command accepts (16 MiB).
pub const MAX_LICENSE_SIZE: u64 = 16 << 20;

/// What a checked zip contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipSummary {
    /// Number of file entries (directory entries not counted).
    pub files: usize,
    /// Sum of uncompressed file sizes.
    pub uncompressed: u64,
    /// The `h1:` hash of the zip's files.
    pub h1: String,
}

/// Checks a module zip against the module zip rules and computes its `h1:`
/// hash in one pass: every entry under `path@version/`, file names valid
/// (`module.CheckFilePath`), no duplicate case-folded names, sizes in bounds,
/// no symlinks, a go.mod only at the root (a go.mod in a subdirectory means
/// the zip holds another module's files: refused, as CheckZip does). Empty
/// directory entries are allowed, as CheckZip allows them. Each entry is
/// decompressed as a stream and must inflate to exactly its declared size.
pub fn check_zip<R: std::io::Read + std::io::Seek>(
    zip: R,
    module: &ModulePath,
    version: &Version,
) -> Result<ZipSummary, CoreError> {
    let (mut archive, checked) = check_entries(zip, module, version)?;
    let digests = checked.digests(&mut archive)?;
    checked.finish(digests)
}

/// Threads for `items` independent pieces of CPU work: the cores (asked
/// once: the answer reads cgroup files), at most 4, at most one per piece.
pub(crate) fn worker_count(items: usize) -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    cores.min(4).min(items)
}

/// A zip inflating to less than this is checked on the calling thread:
/// starting threads costs more than they save on the small zips most
/// modules are (a cold fetch waits for its check).
const PARALLEL_MIN_BYTES: u64 = 1 << 20;

/// [`check_zip`], with the entries inflated and hashed on a few threads,
/// each reading through its own clone of `zip` (which must read at its own
/// position: a positioned-read file handle, a slice). The rules are checked
/// first, in entry order, as in [`check_zip`]. A small zip is checked on
/// the calling thread alone.
pub fn check_zip_parallel<R>(
    zip: R,
    module: &ModulePath,
    version: &Version,
) -> Result<ZipSummary, CoreError>
where
    R: std::io::Read + std::io::Seek + Clone + Send,
{
    check_zip_threaded(zip, module, version, PARALLEL_MIN_BYTES)
}

/// [`check_zip_parallel`] with threads for zips that inflate to
/// `min_bytes` or more (the tests set it to 0).
fn check_zip_threaded<R>(
    zip: R,
    module: &ModulePath,
    version: &Version,
    min_bytes: u64,
) -> Result<ZipSummary, CoreError>
where
    R: std::io::Read + std::io::Seek + Clone + Send,
{
    let (archive, checked) = check_entries(zip, module, version)?;
    let workers = if checked.total < min_bytes {
        1
    } else {
        worker_count(checked.files.len())
    };
    if workers < 2 {
        let mut archive = archive;
        let digests = checked.digests(&mut archive)?;
        return checked.finish(digests);
    }
    // Entries dealt out round-robin: neighbours are often alike in size.
    // A worker stops at its first refusal and says where it was.
    let parts: Vec<Result<Digests, (usize, CoreError)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let mut archive = archive.clone();
                let files = &checked.files;
                scope.spawn(move || {
                    (w..files.len())
                        .step_by(workers)
                        .map(|i| digest_entry(&mut archive, &files[i]).map_err(|e| (i, e)))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err((usize::MAX, invalid("a zip check worker failed".into())))
                })
            })
            .collect()
    });
    let mut digests = vec![[0u8; 32]; checked.files.len()];
    // The first refusal in entry order, as the one-thread check reports it.
    let mut first_error: Option<(usize, CoreError)> = None;
    for (w, part) in parts.into_iter().enumerate() {
        match part {
            Ok(found) => {
                for (k, d) in found.into_iter().enumerate() {
                    digests[w + k * workers] = d;
                }
            }
            Err((at, e)) => {
                if first_error.as_ref().is_none_or(|(i, _)| at < *i) {
                    first_error = Some((at, e));
                }
            }
        }
    }
    if let Some((_, e)) = first_error {
        return Err(e);
    }
    checked.finish(digests)
}

/// One worker's digests, of the entries it was dealt, in order.
type Digests = Vec<[u8; 32]>;

/// A file entry that passed the rules, to be inflated and hashed.
struct CheckedFile {
    index: usize,
    full: String,
    size: u64,
}

/// What the rules pass found: the files to hash and the directories
/// (hashed as empty files) already in `hash`.
struct Checked {
    files: Vec<CheckedFile>,
    hash: Hash1,
    total: u64,
}

impl Checked {
    /// Every file's digest, in order, on this thread.
    fn digests<R: std::io::Read + std::io::Seek>(
        &self,
        archive: &mut zip::ZipArchive<R>,
    ) -> Result<Vec<[u8; 32]>, CoreError> {
        self.files
            .iter()
            .map(|f| digest_entry(archive, f))
            .collect()
    }

    fn finish(mut self, digests: Vec<[u8; 32]>) -> Result<ZipSummary, CoreError> {
        for (f, d) in self.files.iter().zip(digests) {
            self.hash.add(&f.full, d)?;
        }
        Ok(ZipSummary {
            files: self.files.len(),
            uncompressed: self.total,
            h1: self.hash.finish()?,
        })
    }
}

fn digest_entry<R: std::io::Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    f: &CheckedFile,
) -> Result<[u8; 32], CoreError> {
    let mut entry = archive
        .by_index(f.index)
        .map_err(|e| file_error(&f.full, &e.to_string()))?;
    sha256_exact(&mut entry, f.size, &f.full)
}

/// The rules, entry by entry, reading headers only.
fn check_entries<R: std::io::Read + std::io::Seek>(
    mut zip: R,
    module: &ModulePath,
    version: &Version,
) -> Result<(zip::ZipArchive<R>, Checked), CoreError> {
    module.check_version(version)?;
    let zip_size = zip.seek(SeekFrom::End(0)).map_err(io_error)?;
    if zip_size > MAX_ZIP_SIZE {
        return Err(invalid(format!(
            "module zip file is too large ({zip_size} bytes; limit is {MAX_ZIP_SIZE} bytes)"
        )));
    }
    zip.seek(SeekFrom::Start(0)).map_err(io_error)?;
    let mut archive = zip::ZipArchive::new(zip).map_err(|e| invalid(e.to_string()))?;
    if archive.has_duplicate_names() {
        return Err(invalid("multiple entries for the same file".into()));
    }

    let prefix = format!("{}@{}/", module.as_str(), version.as_str());
    let mut collisions = Collisions::default();
    let mut hash = Hash1::new();
    let mut files = Vec::new();
    let mut total = 0u64;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| invalid(e.to_string()))?;
        let full = std::str::from_utf8(entry.name_raw())
            .map_err(|_| invalid("file name is not UTF-8".into()))?
            .to_owned();
        let Some(rest) = full.strip_prefix(&prefix) else {
            return Err(file_error(
                &full,
                &format!("path does not have prefix {prefix:?}"),
            ));
        };
        let (name, is_dir) = match rest.strip_suffix('/') {
            Some(dir) => (dir, true),
            None => (rest, false),
        };
        if is_dir || name.is_empty() {
            // Go opens directory entries as empty files, and fails on content.
            if entry.compressed_size() != 0 || entry.size() != 0 {
                return Err(file_error(&full, "directory entry has content"));
            }
            if !name.is_empty() {
                check_name(name).map_err(|e| file_error(&full, &e))?;
                collisions
                    .check(name, true)
                    .map_err(|e| file_error(&full, &e))?;
            } else if !rest.is_empty() {
                return Err(file_error(&full, "file path is not clean"));
            }
            hash.add(&full, Sha256::digest([]).into())?;
            continue;
        }
        check_name(name).map_err(|e| file_error(&full, &e))?;
        collisions
            .check(name, false)
            .map_err(|e| file_error(&full, &e))?;
        let base = name.rsplit('/').next().unwrap_or(name);
        if base.eq_ignore_ascii_case("go.mod") {
            if base != name {
                return Err(file_error(
                    &full,
                    "go.mod file not in module root directory",
                ));
            }
            if name != "go.mod" {
                return Err(file_error(&full, "go.mod files must have lowercase names"));
            }
        }
        if entry
            .unix_mode()
            .is_some_and(|mode| mode & 0o170000 == 0o120000)
        {
            return Err(file_error(&full, "file is a symbolic link"));
        }
        let size = entry.size();
        total = match total.checked_add(size) {
            Some(t) if t <= MAX_ZIP_SIZE => t,
            _ => {
                return Err(invalid(format!(
                    "total uncompressed size of module contents too large (max size is {MAX_ZIP_SIZE} bytes)"
                )));
            }
        };
        if name == "go.mod" && size > MAX_GOMOD_SIZE {
            return Err(file_error(
                &full,
                &format!("go.mod file too large (max size is {MAX_GOMOD_SIZE} bytes)"),
            ));
        }
        if name == "LICENSE" && size > MAX_LICENSE_SIZE {
            return Err(file_error(
                &full,
                &format!("LICENSE file too large (max size is {MAX_LICENSE_SIZE} bytes)"),
            ));
        }
        files.push(CheckedFile {
            index: i,
            full,
            size,
        });
    }
    Ok((archive, Checked { files, hash, total }))
}

fn invalid(reason: String) -> CoreError {
    CoreError::InvalidZip(reason)
}

fn file_error(name: &str, reason: &str) -> CoreError {
    CoreError::InvalidZip(format!("{name}: {reason}"))
}

fn io_error(e: std::io::Error) -> CoreError {
    CoreError::InvalidZip(format!("reading zip: {e}"))
}

/// `path.Clean(name) == name` and `module.CheckFilePath(name)`.
fn check_name(name: &str) -> Result<(), String> {
    if name
        .split('/')
        .any(|e| e.is_empty() || e == "." || e == "..")
    {
        return Err("file path is not clean".into());
    }
    check_file_path(name).map_err(|e| match e {
        CoreError::InvalidPath { reason, .. } => format!("malformed file path: {reason}"),
        other => other.to_string(),
    })
}

/// Case-insensitive name collisions, including a file that is also a
/// directory (x/mod/zip collisionChecker).
#[derive(Default)]
pub(crate) struct Collisions {
    seen: HashMap<String, (String, bool)>,
}

impl Collisions {
    pub(crate) fn check(&mut self, path: &str, is_dir: bool) -> Result<(), String> {
        let mut p = path;
        let mut dir = is_dir;
        loop {
            let folded = fold(p);
            match self.seen.get(&folded) {
                Some((other, other_dir)) => {
                    if other != p {
                        return Err(format!(
                            "case-insensitive file name collision: {other:?} and {p:?}"
                        ));
                    }
                    if *other_dir != dir {
                        return Err(format!("entry {p:?} is both a file and a directory"));
                    }
                    if !dir {
                        return Err(format!("multiple entries for file {p:?}"));
                    }
                    // Parents of a known directory are known too.
                    return Ok(());
                }
                None => {
                    self.seen.insert(folded, (p.to_owned(), dir));
                }
            }
            match p.rsplit_once('/') {
                Some((parent, _)) => {
                    p = parent;
                    dir = true;
                }
                None => return Ok(()),
            }
        }
    }
}

/// A case-folded key: each character maps to the smallest character of its
/// simple case-folding orbit (approximated with single-character upper and
/// lower mappings, which covers orbits like `K`/`k`/KELVIN SIGN), then ASCII
/// is lowered, as x/mod's strToFold does.
fn fold(s: &str) -> String {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        return s.to_owned();
    }
    s.chars().map(fold_char).collect()
}

fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let single = |mut it: std::iter::Peekable<std::char::ToLowercase>| -> Option<char> {
        let first = it.next()?;
        it.peek().is_none().then_some(first)
    };
    let single_upper = |c: char| -> Option<char> {
        let mut it = c.to_uppercase();
        let first = it.next()?;
        it.next().is_none().then_some(first)
    };
    // Walk the orbit a few steps; real orbits have at most four members.
    let mut orbit = vec![c];
    let mut i = 0;
    while i < orbit.len() && orbit.len() < 8 {
        let x = orbit[i];
        for y in [single(x.to_lowercase().peekable()), single_upper(x)]
            .into_iter()
            .flatten()
        {
            if !orbit.contains(&y) {
                orbit.push(y);
            }
        }
        i += 1;
    }
    let min = orbit.into_iter().min().unwrap_or(c);
    min.to_ascii_lowercase()
}

#[cfg(test)]
#[path = "zipcheck_tests.rs"]
mod tests;
