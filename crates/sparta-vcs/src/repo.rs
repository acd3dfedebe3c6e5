//! Reading a mirror at a revision: refs, commits, files, trees. Streamed
//! (`git cat-file --batch`, `git ls-tree -r -l -z`), never a checkout.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::Stdio;

use sparta_core::modzip::{EntryKind, RepoEntry};

use crate::VcsError;
use crate::git::{CallCreds, Git, kill_group};

/// Largest listing read from git (refs, trees): generous, but bounded.
const MAX_LISTING: usize = 256 << 20;

/// A commit as the go command's codehost.RevInfo sees it.
#[derive(Debug, Clone)]
pub(crate) struct Commit {
    /// Full hash.
    pub name: String,
    /// Committer time, Unix seconds.
    pub time: i64,
    /// Tags pointing at it, sorted.
    pub tags: Vec<String>,
}

impl Commit {
    /// The 12-digit short hash pseudo-versions use.
    pub fn short(&self) -> &str {
        &self.name[..12.min(self.name.len())]
    }
}

/// The refs of a mirror, each peeled to its commit.
pub(crate) type Refs = BTreeMap<String, String>;

pub(crate) async fn refs(git: &Git, dir: &Path) -> Result<Refs, VcsError> {
    let out = git
        .run(
            Some(dir),
            &[
                "for-each-ref",
                "--format=%(objectname) %(*objectname) %(refname)",
            ],
            &CallCreds::default(),
            MAX_LISTING,
        )
        .await?;
    if !out.success {
        return Err(VcsError::Failed(format!(
            "git for-each-ref: {}",
            out.stderr.trim()
        )));
    }
    let mut refs = Refs::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.split(' ');
        let (Some(obj), Some(peeled), Some(name)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let hash = if peeled.is_empty() { obj } else { peeled };
        let name = if name == "refs/sparta/HEAD" {
            "HEAD"
        } else {
            name
        };
        refs.insert(name.to_owned(), hash.to_owned());
    }
    Ok(refs)
}

/// The commit `rev` names (a full hash, a hash prefix or a ref), or None.
pub(crate) async fn commit(
    git: &Git,
    dir: &Path,
    rev: &str,
    refs: &Refs,
) -> Result<Option<Commit>, VcsError> {
    let spec = format!("{rev}^{{commit}}");
    let out = git
        .run(
            Some(dir),
            &[
                "log",
                "--no-decorate",
                "-n1",
                "--format=format:%H %ct",
                "--end-of-options",
                &spec,
                "--",
            ],
            &CallCreds::default(),
            1 << 16,
        )
        .await?;
    if !out.success {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = text.split_whitespace();
    let (Some(name), Some(time)) = (f.next(), f.next()) else {
        return Ok(None);
    };
    let time = time
        .parse()
        .map_err(|_| VcsError::Failed(format!("git log gave the time {time:?}")))?;
    let mut tags: Vec<String> = refs
        .iter()
        .filter(|(_, h)| h.as_str() == name)
        .filter_map(|(r, _)| r.strip_prefix("refs/tags/").map(str::to_owned))
        .collect();
    tags.sort();
    Ok(Some(Commit {
        name: name.to_owned(),
        time,
        tags,
    }))
}

/// The content of `path` at commit `hash`, or None if there is no such file;
/// more than `max` bytes is TooLarge.
pub(crate) async fn read_file(
    git: &Git,
    dir: &Path,
    hash: &str,
    path: &str,
    max: u64,
) -> Result<Option<Vec<u8>>, VcsError> {
    let spec = format!("{hash}:{path}");
    let size = git
        .run(
            Some(dir),
            &["cat-file", "-s", "--end-of-options", &spec],
            &CallCreds::default(),
            1 << 10,
        )
        .await?;
    if !size.success {
        return Ok(None);
    }
    let n: u64 = String::from_utf8_lossy(&size.stdout)
        .trim()
        .parse()
        .unwrap_or(u64::MAX);
    if n > max {
        return Err(VcsError::TooLarge(format!(
            "{path} is {n} bytes, over the limit of {max}"
        )));
    }
    let out = git
        .run(
            Some(dir),
            &["cat-file", "blob", "--end-of-options", &spec],
            &CallCreds::default(),
            max as usize + 1,
        )
        .await?;
    // A tree at that path is not a file.
    Ok(out.success.then_some(out.stdout))
}

/// Every entry matching `pathspec` (None for all) at commit `hash`, with
/// blob hashes for reading: `(entry, object)`.
pub(crate) async fn ls_tree(
    git: &Git,
    dir: &Path,
    hash: &str,
    pathspec: Option<&str>,
) -> Result<Vec<(RepoEntry, String)>, VcsError> {
    let mut args = vec![
        "ls-tree",
        "-r",
        "-l",
        "-z",
        "--full-tree",
        "--end-of-options",
        hash,
    ];
    let literal;
    if let Some(p) = pathspec {
        // Literal pathspec: no globbing or magic from repository names.
        literal = format!(":(literal){p}");
        args.extend(["--", literal.as_str()]);
    }
    let out = git
        .run(Some(dir), &args, &CallCreds::default(), MAX_LISTING)
        .await?;
    if !out.success {
        return Err(VcsError::Failed(format!(
            "git ls-tree: {}",
            out.stderr.trim()
        )));
    }
    let mut entries = Vec::new();
    for rec in out.stdout.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let rec = String::from_utf8_lossy(rec);
        let Some((meta, path)) = rec.split_once('\t') else {
            continue;
        };
        let f: Vec<&str> = meta.split_whitespace().collect();
        let [mode, kind, object, size] = f[..] else {
            continue;
        };
        let kind = match (kind, mode) {
            ("blob", "120000") => EntryKind::Symlink,
            ("blob", "100644" | "100755" | "100664") => EntryKind::File,
            ("blob", _) => EntryKind::Irregular,
            ("commit", _) => EntryKind::Submodule,
            ("tree", _) => EntryKind::Dir,
            _ => EntryKind::Irregular,
        };
        entries.push((
            RepoEntry {
                path: path.to_owned(),
                kind,
                size: size.parse().unwrap_or(0),
            },
            object.to_owned(),
        ));
    }
    Ok(entries)
}

/// Tags (without `refs/tags/`) reachable from `hash`.
pub(crate) async fn merged_tags(
    git: &Git,
    dir: &Path,
    hash: &str,
) -> Result<Vec<String>, VcsError> {
    let merged = format!("--merged={hash}");
    let out = git
        .run(
            Some(dir),
            &["for-each-ref", "--format=%(refname)", &merged, "refs/tags/"],
            &CallCreds::default(),
            MAX_LISTING,
        )
        .await?;
    if !out.success {
        return Err(VcsError::Failed(format!(
            "git for-each-ref: {}",
            out.stderr.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("refs/tags/").map(str::to_owned))
        .collect())
}

/// Whether commit `hash` descends from (or is) the commit `tag` names.
pub(crate) async fn descends_from(
    git: &Git,
    dir: &Path,
    hash: &str,
    tag: &str,
) -> Result<bool, VcsError> {
    let tag = format!("refs/tags/{tag}");
    let out = git
        .run(
            Some(dir),
            &["merge-base", "--is-ancestor", &tag, hash],
            &CallCreds::default(),
            1 << 10,
        )
        .await?;
    Ok(out.success)
}

/// Streams blobs out of one `git cat-file --batch` process; for blocking
/// threads (the zip writer pulls bytes synchronously).
pub(crate) struct BlobReader {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl BlobReader {
    pub fn start(git: &Git, dir: &Path) -> Result<Self, VcsError> {
        let cmd = git.command(Some(dir), &["cat-file", "--batch"], &CallCreds::default());
        let mut cmd = cmd.into_std();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| VcsError::Failed(format!("starting git cat-file: {e}")))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::with_capacity(64 << 10, child.stdout.take().expect("piped stdout"));
        Ok(BlobReader {
            child,
            stdin,
            stdout,
        })
    }

    /// A reader of exactly the blob `object`'s bytes; consume it fully
    /// before asking for the next blob.
    pub fn open(&mut self, object: &str) -> std::io::Result<BlobStream<'_>> {
        writeln!(self.stdin, "{object}")?;
        self.stdin.flush()?;
        let mut header = String::new();
        self.stdout.read_line(&mut header)?;
        let f: Vec<&str> = header.split_whitespace().collect();
        let size: u64 = match f[..] {
            [_, "blob", size] => size.parse().map_err(std::io::Error::other)?,
            _ => {
                return Err(std::io::Error::other(format!(
                    "git cat-file: {}",
                    header.trim()
                )));
            }
        };
        Ok(BlobStream {
            inner: (&mut self.stdout).take(size),
            left_newline: true,
        })
    }
}

impl Drop for BlobReader {
    fn drop(&mut self) {
        kill_group(Some(self.child.id()));
        let _ = self.child.wait();
    }
}

/// One blob's bytes; eats the newline that follows it on the batch stream.
pub(crate) struct BlobStream<'a> {
    inner: std::io::Take<&'a mut BufReader<std::process::ChildStdout>>,
    left_newline: bool,
}

impl Read for BlobStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.inner.limit() == 0 && self.left_newline {
            self.left_newline = false;
            let mut nl = [0u8; 1];
            self.inner.get_mut().read_exact(&mut nl)?;
        }
        Ok(n)
    }
}
