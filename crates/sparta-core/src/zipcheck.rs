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
    let bytes: u64 = checked.files.iter().map(|f| f.size).sum();
    let workers = if bytes < min_bytes {
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
mod tests {
    use super::*;
    use crate::hash::tests::{FILES, PREFIX, ZIP_H1, build_zip, module_zip};
    use std::io::{Cursor, Write};
    use zip::CompressionMethod::{Deflated, Stored};

    fn hello() -> (ModulePath, Version) {
        (
            ModulePath::parse("example.com/Hello/v2").unwrap(),
            Version::parse("v2.1.0-RC1").unwrap(),
        )
    }

    /// Both checks, which must agree on every zip (the same summary, or
    /// the same refusal).
    fn check(zip: Vec<u8>) -> Result<ZipSummary, CoreError> {
        let (m, v) = hello();
        let one = check_zip(Cursor::new(zip.as_slice()), &m, &v);
        let many = check_zip_threaded(Cursor::new(zip.as_slice()), &m, &v, 0);
        assert_eq!(
            one.as_ref().map_err(ToString::to_string),
            many.as_ref().map_err(ToString::to_string)
        );
        one
    }

    /// A zip of `(name under PREFIX, content)` entries.
    fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
        let names: Vec<(String, &str)> = entries
            .iter()
            .map(|(n, c)| (format!("{PREFIX}{n}"), *c))
            .collect();
        let refs: Vec<(&str, &str)> = names.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        build_zip(&refs, Deflated)
    }

    fn refused(zip: Vec<u8>, why: &str) {
        match check(zip) {
            Err(CoreError::InvalidZip(msg)) => {
                assert!(msg.contains(why), "{msg:?} should mention {why:?}")
            }
            other => panic!("expected InvalidZip({why}), got {other:?}"),
        }
    }

    #[test]
    fn good_zip_passes_with_known_h1() {
        for method in [Stored, Deflated] {
            let s = check(module_zip(method)).unwrap();
            assert_eq!(s.h1, ZIP_H1);
            assert_eq!(s.files, FILES.len());
            assert_eq!(
                s.uncompressed,
                FILES.iter().map(|(_, c)| c.len() as u64).sum::<u64>()
            );
        }
    }

    #[test]
    fn directory_entries_are_allowed_and_hashed() {
        let p = "example.com/m@v1.0.0/";
        let zip = build_zip(
            &[
                (p, ""),
                (&format!("{p}sub/"), ""),
                (&format!("{p}go.mod"), "module example.com/m\n"),
                (&format!("{p}sub/a.go"), "package sub\n"),
            ],
            Deflated,
        );
        let m = ModulePath::parse("example.com/m").unwrap();
        let v = Version::parse("v1.0.0").unwrap();
        let s = check_zip(Cursor::new(zip.as_slice()), &m, &v).unwrap();
        assert_eq!(
            check_zip_threaded(Cursor::new(zip.as_slice()), &m, &v, 0).unwrap(),
            s
        );
        // Known answer from the go command's dirhash.HashZip on the same zip.
        assert_eq!(s.h1, "h1:hCzx9aGcscj7PyJKtzU7KrFXka14kRas6Z5NwDaoncg=");
        assert_eq!(s.files, 2);
    }

    #[test]
    fn version_must_fit_module() {
        let m = ModulePath::parse("example.com/Hello/v2").unwrap();
        let v = Version::parse("v1.0.0").unwrap();
        assert!(check_zip(Cursor::new(module_zip(Deflated)), &m, &v).is_err());
    }

    #[test]
    fn wrong_prefix() {
        refused(
            build_zip(&[("example.com/Hello/v2@v2.1.0/go.mod", "x")], Deflated),
            "prefix",
        );
        refused(
            build_zip(&[("example.com/hello/v2@v2.1.0-RC1/go.mod", "x")], Deflated),
            "prefix",
        );
        // The escaped form is not the zip's prefix: the real path and version are.
        refused(
            build_zip(
                &[("example.com/!hello/v2@v2.1.0-!r!c1/go.mod", "x")],
                Deflated,
            ),
            "prefix",
        );
        refused(build_zip(&[("go.mod", "x")], Deflated), "prefix");
    }

    #[test]
    fn bad_names() {
        refused(zip_of(&[("a/../b.go", "x")]), "not clean");
        refused(zip_of(&[("./b.go", "x")]), "not clean");
        refused(zip_of(&[("a//b.go", "x")]), "not clean");
        refused(zip_of(&[("a*.go", "x")]), "malformed file path");
        refused(zip_of(&[("con.go", "x")]), "malformed file path");
        refused(zip_of(&[("x:y", "x")]), "malformed file path");
        refused(zip_of(&[("a\\b", "x")]), "malformed file path");
        refused(zip_of(&[("dir./a", "x")]), "malformed file path");
        // Allowed by CheckFilePath.
        check(zip_of(&[
            ("go.mod", "module example.com/Hello/v2\n"),
            ("-x/.y/a b~1(c).go", "x"),
        ]))
        .unwrap();
    }

    #[test]
    fn collisions() {
        refused(zip_of(&[("a.go", "x"), ("A.go", "y")]), "collision");
        refused(zip_of(&[("x/a.go", "x"), ("X/b.go", "y")]), "collision");
        refused(
            zip_of(&[("x", "x"), ("x/b.go", "y")]),
            "both a file and a directory",
        );
        refused(zip_of(&[("é.go", "x"), ("É.go", "y")]), "collision");
        // KELVIN SIGN folds with k.
        refused(zip_of(&[("k.go", "x"), ("\u{212A}.go", "y")]), "collision");
    }

    #[test]
    fn duplicate_entries() {
        // Write two same-length names, then rename the second in both headers.
        let mut zip = zip_of(&[("a.go", "x"), ("b.go", "y")]);
        let needle = format!("{PREFIX}b.go");
        let replacement = format!("{PREFIX}a.go");
        let mut i = 0;
        while let Some(pos) = find(&zip[i..], needle.as_bytes()) {
            zip[i + pos..i + pos + needle.len()].copy_from_slice(replacement.as_bytes());
            i += pos + needle.len();
        }
        assert!(check(zip).is_err());
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn go_mod_rules() {
        refused(
            zip_of(&[("sub/go.mod", "module x\n")]),
            "not in module root",
        );
        refused(zip_of(&[("GO.MOD", "module x\n")]), "lowercase");
        let big = "a".repeat((MAX_GOMOD_SIZE + 1) as usize);
        let names = [(format!("{PREFIX}go.mod"), big.as_str())];
        let zip = build_zip(&[(names[0].0.as_str(), names[0].1)], Deflated);
        refused(zip, "go.mod file too large");
    }

    #[test]
    fn symlinks_refused() {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        w.start_file(format!("{PREFIX}go.mod"), opts).unwrap();
        w.write_all(b"module example.com/Hello/v2\n").unwrap();
        w.add_symlink(format!("{PREFIX}link"), "go.mod", opts)
            .unwrap();
        refused(w.finish().unwrap().into_inner(), "symbolic link");
    }

    /// Sets the uncompressed size field of every local and central header.
    fn patch_sizes(zip: &mut [u8], size: u32) {
        let mut i = 0;
        while i + 4 <= zip.len() {
            match &zip[i..i + 4] {
                b"PK\x03\x04" => zip[i + 22..i + 26].copy_from_slice(&size.to_le_bytes()),
                b"PK\x01\x02" => zip[i + 24..i + 28].copy_from_slice(&size.to_le_bytes()),
                _ => {}
            }
            i += 1;
        }
    }

    #[test]
    fn sizes_must_not_lie() {
        let content = "0".repeat(1 << 20);
        let name = format!("{PREFIX}data.bin");
        let honest = build_zip(&[(name.as_str(), content.as_str())], Deflated);
        assert_eq!(check(honest.clone()).unwrap().uncompressed, 1 << 20);
        // A header that under-declares what the entry inflates to.
        let mut small = honest.clone();
        patch_sizes(&mut small, 1000);
        refused(small, "data.bin");
        // A header that over-declares it.
        let mut large = honest.clone();
        patch_sizes(&mut large, (1 << 20) + 1);
        refused(large, "does not match its header");
        // Declared sizes beyond the module limit are refused before inflating.
        let mut huge = honest;
        patch_sizes(&mut huge, 600 << 20);
        refused(huge, "too large");
    }

    #[test]
    fn of_many_lying_entries_the_first_is_named() {
        // Every entry lies, and the entries are hashed on several threads:
        // the refusal still names the first one, as the one-thread check does.
        let content = "0".repeat(64 << 10);
        let names: Vec<String> = (0..9).map(|i| format!("{PREFIX}f{i}.bin")).collect();
        let entries: Vec<(&str, &str)> = names
            .iter()
            .map(|n| (n.as_str(), content.as_str()))
            .collect();
        let mut zip = build_zip(&entries, Deflated);
        patch_sizes(&mut zip, 1000);
        let err = check(zip).unwrap_err().to_string();
        assert!(err.contains("f0.bin"), "{err}");
    }

    #[test]
    fn not_a_zip() {
        assert!(matches!(
            check(b"not a zip".to_vec()),
            Err(CoreError::InvalidZip(_))
        ));
        let mut truncated = module_zip(Deflated);
        truncated.truncate(truncated.len() / 2);
        assert!(matches!(check(truncated), Err(CoreError::InvalidZip(_))));
        let mut flipped = module_zip(Stored);
        let pos = find(&flipped, b"space in name").unwrap();
        flipped[pos] ^= 1;
        assert!(
            matches!(check(flipped), Err(CoreError::InvalidZip(_))),
            "CRC mismatch"
        );
    }

    #[test]
    fn fold_is_case_insensitive() {
        assert_eq!(fold("ABC/Def"), "abc/def");
        assert_eq!(fold("É"), fold("é"));
        assert_eq!(fold("\u{212A}"), "k");
        assert_eq!(fold("\u{17F}"), "s");
        assert_ne!(fold("a"), fold("b"));
    }
}
