//! Module zip creation (golang.org/x/mod/zip Create as the go command feeds
//! it from a repository, cmd/go/internal/modfetch codeRepo.Zip): which files
//! of a repository tree go into a module zip, under what name, and why the
//! others stay out. [`plan`] decides with no I/O; [`write_zip`] writes the
//! planned files through a caller's `open` closure.

use std::io::{Seek, Write};

use crate::zipcheck::{Collisions, MAX_GOMOD_SIZE, MAX_LICENSE_SIZE, MAX_ZIP_SIZE};
use crate::{CoreError, ModulePath, Version, module::check_file_path};

/// What a repository tree entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (executable or not).
    File,
    /// A symbolic link.
    Symlink,
    /// A directory.
    Dir,
    /// A submodule (git link).
    Submodule,
    /// Anything else a tree can hold.
    Irregular,
}

/// One entry of a repository tree, by its path from the repository root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoEntry {
    pub path: String,
    pub kind: EntryKind,
    pub size: u64,
}

/// Why an entry stays out of the zip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Omission {
    /// A directory or submodule: zips hold files only.
    Directory,
    /// A file of a vendored package (`vendor/` rules of the `go` directive).
    Vendored,
    /// A file of a nested module (a directory with its own go.mod).
    NestedModule,
    /// A file inside a `.git` directory.
    VcsDir,
    /// `.hg_archival.txt`, which `hg archive` inserts.
    HgArchival,
    /// A symbolic link.
    Symlink,
    /// Not a regular file.
    NotRegular,
}

/// One file of the zip: read from `source` (a repository path), stored as
/// `prefix + name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    pub source: String,
    pub name: String,
    pub size: u64,
}

/// The zip to write: its files in order, and every omitted entry with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipPlan {
    /// `path@version/`.
    pub prefix: String,
    pub files: Vec<PlannedFile>,
    /// Module-relative names of the entries left out.
    pub omitted: Vec<(String, Omission)>,
    /// Sum of the planned files' sizes.
    pub total: u64,
}

/// Decides the zip of `module@version` whose root is `subdir` of the
/// repository (`""` for the root). `root_gomod` is the content of the
/// module's go.mod when it is a regular file: its `go` directive picks the
/// vendor rules. Invalid names, case-fold collisions and sizes over the
/// limits refuse the whole zip, as the go command does.
pub fn plan(
    module: &ModulePath,
    version: &Version,
    subdir: &str,
    entries: &[RepoEntry],
    root_gomod: Option<&[u8]>,
) -> Result<ZipPlan, CoreError> {
    module.check_version(version)?;
    let subdir = subdir.trim_matches('/');
    let mut omitted = Vec::new();
    // (source, name, kind, size) of the candidate files, module-relative.
    let mut files: Vec<(&str, String, EntryKind, u64)> = Vec::new();
    let mut have_license = false;
    for e in entries {
        let name = if subdir.is_empty() {
            e.path.as_str()
        } else {
            match e
                .path
                .strip_prefix(subdir)
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(rest) => rest,
                None => continue,
            }
        };
        if name.is_empty() {
            continue;
        }
        if matches!(e.kind, EntryKind::Dir | EntryKind::Submodule) {
            omitted.push((name.to_owned(), Omission::Directory));
            continue;
        }
        have_license |= name == "LICENSE";
        files.push((&e.path, name.to_owned(), e.kind, e.size));
    }
    if !have_license && !subdir.is_empty() {
        // The go command reads the root LICENSE blob whatever its mode.
        if let Some(root) = entries
            .iter()
            .find(|e| e.path == "LICENSE" && matches!(e.kind, EntryKind::File | EntryKind::Symlink))
        {
            files.push((&root.path, "LICENSE".into(), EntryKind::File, root.size));
        }
    }

    // Directories (with a trailing slash) holding another module's go.mod.
    let nested: std::collections::HashSet<String> = files
        .iter()
        .filter(|(_, name, kind, _)| *kind == EntryKind::File && is_gomod_name(name))
        .filter_map(|(_, name, _, _)| name.rsplit_once('/').map(|(dir, _)| format!("{dir}/")))
        .collect();
    let in_nested = |p: &str| {
        let mut p = p;
        while let Some((dir, _)) = p.rsplit_once('/') {
            if nested.contains(&format!("{dir}/")) {
                return true;
            }
            p = dir;
        }
        false
    };
    let new_vendor_rules = root_gomod.is_some_and(go_at_least_1_24);

    let mut invalid: Vec<String> = Vec::new();
    let mut collisions = Collisions::default();
    let mut planned = Vec::new();
    let mut total = 0u64;
    let mut too_large = false;
    for (source, name, kind, size) in files {
        let omit = if is_vendored(&name, new_vendor_rules) {
            Some(Omission::Vendored)
        } else if in_nested(&name) {
            Some(Omission::NestedModule)
        } else if name.split('/').any(|e| e == ".git") {
            Some(Omission::VcsDir)
        } else if name == ".hg_archival.txt" {
            Some(Omission::HgArchival)
        } else {
            None
        };
        if let Some(why) = omit {
            omitted.push((name, why));
            continue;
        }
        if let Err(e) = check_file_path(&name) {
            invalid.push(e.to_string());
            continue;
        }
        if name.eq_ignore_ascii_case("go.mod") && name != "go.mod" {
            invalid.push(format!(
                "{name:?}: go.mod file not in module root directory"
            ));
            continue;
        }
        if let Err(e) = collisions.check(&name, false) {
            invalid.push(e);
            continue;
        }
        match kind {
            EntryKind::Symlink => {
                omitted.push((name, Omission::Symlink));
                continue;
            }
            EntryKind::File => {}
            _ => {
                omitted.push((name, Omission::NotRegular));
                continue;
            }
        }
        total = total.saturating_add(size);
        too_large |= total > MAX_ZIP_SIZE;
        if name == "go.mod" && size > MAX_GOMOD_SIZE {
            invalid.push(format!(
                "go.mod file too large (max size is {MAX_GOMOD_SIZE} bytes)"
            ));
            continue;
        }
        if name == "LICENSE" && size > MAX_LICENSE_SIZE {
            invalid.push(format!(
                "LICENSE file too large (max size is {MAX_LICENSE_SIZE} bytes)"
            ));
            continue;
        }
        planned.push(PlannedFile {
            source: source.to_owned(),
            name,
            size,
        });
    }
    if !invalid.is_empty() {
        let shown: Vec<_> = invalid.iter().take(5).cloned().collect();
        let more = invalid.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        return Err(CoreError::InvalidZip(format!("{}{tail}", shown.join("; "))));
    }
    if too_large {
        return Err(CoreError::InvalidZip(format!(
            "module source tree too large (max size is {MAX_ZIP_SIZE} bytes)"
        )));
    }
    Ok(ZipPlan {
        prefix: format!("{}@{}/", module.as_str(), version.as_str()),
        files: planned,
        omitted,
        total,
    })
}

fn is_gomod_name(name: &str) -> bool {
    name.rsplit('/')
        .next()
        .is_some_and(|b| b.eq_ignore_ascii_case("go.mod"))
}

/// x/mod/zip isVendoredPackage. From go 1.24 on, `vendor/modules.txt` is
/// left out too, and a nested `a/vendor/` skips its whole prefix (so
/// `a/vendor/x.go` stays, as a package of its own); before, the check looked
/// at the name after the first `len("/vendor/")` bytes (golang.org/issue/37397).
pub fn is_vendored(name: &str, go_1_24: bool) -> bool {
    if go_1_24 && name == "vendor/modules.txt" {
        return true;
    }
    let start = if name.starts_with("vendor/") {
        "vendor/".len()
    } else if let Some(j) = name.find("/vendor/") {
        if go_1_24 {
            j + "/vendor/".len()
        } else {
            "/vendor/".len()
        }
    } else {
        return false;
    };
    name.get(start..).is_some_and(|rest| rest.contains('/'))
}

/// Whether a go.mod's `go` directive is 1.24 or later (the newer vendor
/// rules); a missing, repeated or malformed directive means the older ones,
/// as x/mod's lax parse gives no version then.
pub fn go_at_least_1_24(gomod: &[u8]) -> bool {
    let text = String::from_utf8_lossy(gomod);
    let mut found = None;
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut words = line.split_whitespace();
        if words.next() != Some("go") {
            continue;
        }
        let (Some(v), None) = (words.next(), words.next()) else {
            return false;
        };
        if found.is_some() {
            return false;
        }
        found = Some(v.trim_matches('"').to_owned());
    }
    let Some(v) = found else { return false };
    match parse_go_lang(&v) {
        Some((major, minor)) => (major, minor) >= (1, 24),
        None => false,
    }
}

/// `major.minor` of a go version `1.N`, `1.N.P` or `1.NrcK`; None if malformed.
fn parse_go_lang(v: &str) -> Option<(u64, u64)> {
    let num = |s: &str| -> Option<u64> {
        if s.is_empty()
            || !s.bytes().all(|b| b.is_ascii_digit())
            || (s.len() > 1 && s.starts_with('0'))
        {
            return None;
        }
        s.parse().ok()
    };
    let mut parts = v.splitn(3, '.');
    let major = num(parts.next()?)?;
    if major == 0 {
        return None;
    }
    let second = parts.next()?;
    let digits = second.bytes().take_while(u8::is_ascii_digit).count();
    let (minor, pre) = second.split_at(digits);
    let minor = num(minor)?;
    let pre_ok = |p: &str| {
        let letters = p.bytes().take_while(u8::is_ascii_lowercase).count();
        p.is_empty() || (letters > 0 && num(&p[letters..]).is_some())
    };
    match parts.next() {
        None => pre_ok(pre).then_some((major, minor)),
        Some(patch) => {
            if !pre.is_empty() {
                return None;
            }
            let d = patch.bytes().take_while(u8::is_ascii_digit).count();
            (num(&patch[..d]).is_some() && pre_ok(&patch[d..])).then_some((major, minor))
        }
    }
}

/// Files up to this size are read whole and compressed on worker threads;
/// larger ones stream through the writer, so memory stays bounded.
const PARALLEL_MAX_FILE: u64 = 256 << 10;
/// Small files read ahead of the one being written, at most.
const PARALLEL_WINDOW: usize = 8;

/// Writes the planned zip to `out`. `copy` writes one file's bytes into the
/// writer it is given (streamed from wherever the caller keeps them); each
/// file must come to exactly its planned size. Returns the zip's size.
///
/// Deflate is most of the time a zip takes to build: small files are
/// compressed on a few threads, in order, while `copy` reads the next ones.
pub fn write_zip<W, F>(
    out: W,
    plan: &ZipPlan,
    max_zip_size: u64,
    mut copy: F,
) -> Result<u64, CoreError>
where
    W: Write + Seek,
    F: FnMut(&PlannedFile, &mut dyn Write) -> std::io::Result<()>,
{
    let small = plan
        .files
        .iter()
        .filter(|f| f.size <= PARALLEL_MAX_FILE)
        .count();
    let workers = crate::zipcheck::worker_count(small);
    let mut zw = zip::ZipWriter::new(out);
    if workers < 2 {
        for f in &plan.files {
            stream_file(&mut zw, plan, f, &mut copy)?;
        }
    } else {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(PARALLEL_WINDOW);
        let queue = std::sync::Mutex::new(queue);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let queue = &queue;
                scope.spawn(move || {
                    // Ends when the writer drops its sender. The lock is
                    // let go before compressing, so the workers overlap.
                    loop {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(job) = next else { break };
                        let _ = job.done.send(compress(job.name, &job.data));
                    }
                });
            }
            write_ordered(&mut zw, plan, &mut copy, jobs)
        })?;
    }
    let mut out = zw.finish().map_err(zip_error)?;
    let size = out.stream_position().map_err(io_error)?;
    if size > max_zip_size {
        return Err(CoreError::InvalidZip(format!(
            "module zip file is too large ({size} bytes; limit is {max_zip_size} bytes)"
        )));
    }
    Ok(size)
}

fn io_error(e: std::io::Error) -> CoreError {
    CoreError::InvalidZip(format!("writing module zip: {e}"))
}

fn zip_error(e: zip::result::ZipError) -> CoreError {
    CoreError::InvalidZip(format!("writing module zip: {e}"))
}

fn file_options() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(false)
}

/// One small file for a worker to compress, and where its entry goes.
struct Job {
    name: String,
    data: Vec<u8>,
    done: std::sync::mpsc::SyncSender<zip::result::ZipResult<zip::write::PreparedZipFile>>,
}

fn compress(name: String, data: &[u8]) -> zip::result::ZipResult<zip::write::PreparedZipFile> {
    let mut entry = zip::write::ZipFileBuilder::new(name, file_options())?;
    entry.write_all(data)?;
    entry.finish()
}

/// The writer's side: reads each small file whole and hands it to the
/// workers, adds their entries in plan order, and streams large files
/// itself once the entries before them are in.
fn write_ordered<W: Write + Seek, F>(
    zw: &mut zip::ZipWriter<W>,
    plan: &ZipPlan,
    copy: &mut F,
    jobs: std::sync::mpsc::SyncSender<Job>,
) -> Result<(), CoreError>
where
    F: FnMut(&PlannedFile, &mut dyn Write) -> std::io::Result<()>,
{
    type Pending = std::sync::mpsc::Receiver<zip::result::ZipResult<zip::write::PreparedZipFile>>;
    let mut pending: std::collections::VecDeque<Pending> = Default::default();
    let add = |zw: &mut zip::ZipWriter<W>, done: Pending| -> Result<(), CoreError> {
        let entry = done
            .recv()
            .map_err(|_| CoreError::InvalidZip("a zip worker stopped".into()))?
            .map_err(zip_error)?;
        zw.add_prepared_file(entry).map_err(zip_error)
    };
    for f in &plan.files {
        if f.size > PARALLEL_MAX_FILE {
            while let Some(done) = pending.pop_front() {
                add(zw, done)?;
            }
            stream_file(zw, plan, f, copy)?;
            continue;
        }
        let mut data = Vec::with_capacity(f.size as usize);
        read_exactly(f, &mut data, copy)?;
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        let job = Job {
            name: format!("{}{}", plan.prefix, f.name),
            data,
            done: done_tx,
        };
        jobs.send(job)
            .map_err(|_| CoreError::InvalidZip("the zip workers stopped".into()))?;
        pending.push_back(done);
        if pending.len() >= PARALLEL_WINDOW
            && let Some(done) = pending.pop_front()
        {
            add(zw, done)?;
        }
    }
    drop(jobs);
    while let Some(done) = pending.pop_front() {
        add(zw, done)?;
    }
    Ok(())
}

/// One file straight through the zip writer's compressor.
fn stream_file<W: Write + Seek, F>(
    zw: &mut zip::ZipWriter<W>,
    plan: &ZipPlan,
    f: &PlannedFile,
    copy: &mut F,
) -> Result<(), CoreError>
where
    F: FnMut(&PlannedFile, &mut dyn Write) -> std::io::Result<()>,
{
    zw.start_file(format!("{}{}", plan.prefix, f.name), file_options())
        .map_err(zip_error)?;
    read_exactly(f, zw, copy)
}

/// `copy` of one file into `out`, which must come to its planned size.
fn read_exactly<O: Write, F>(f: &PlannedFile, out: &mut O, copy: &mut F) -> Result<(), CoreError>
where
    F: FnMut(&PlannedFile, &mut dyn Write) -> std::io::Result<()>,
{
    let mut bounded = Bounded {
        inner: out,
        left: f.size,
        over: false,
    };
    let res = copy(f, &mut bounded);
    if bounded.over {
        return Err(CoreError::InvalidZip(format!(
            "file {:?} is larger than declared",
            f.name
        )));
    }
    res.map_err(io_error)?;
    if bounded.left != 0 {
        return Err(CoreError::InvalidZip(format!(
            "file {:?} is shorter than declared",
            f.name
        )));
    }
    Ok(())
}

/// Passes at most `left` bytes on; more fails the write.
struct Bounded<'a, W: Write> {
    inner: &'a mut W,
    left: u64,
    over: bool,
}

impl<W: Write> Write for Bounded<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() as u64 > self.left {
            self.over = true;
            return Err(std::io::Error::other("file larger than declared"));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
#[path = "modzip_tests.rs"]
mod tests;
