//! Reading a mirror at a revision: refs, commits, files, trees. Streamed
//! (`git cat-file --batch`, see batch.rs; `git ls-tree -r -l -z`), never a checkout.

use std::collections::BTreeMap;
use std::path::Path;

use sparta_core::modzip::{EntryKind, RepoEntry};

use crate::VcsError;
use crate::batch::Batch;
use crate::git::{CallCreds, Git};

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

/// The committer time (Unix seconds) in a raw commit object.
fn committer_time(raw: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(raw);
    let line = text
        .lines()
        .take_while(|l| !l.is_empty())
        .find(|l| l.starts_with("committer "))?;
    // `committer Name <mail> 1700000000 +0000`: the time is next to last.
    let mut f = line.rsplit(' ');
    let _tz = f.next()?;
    f.next()?.parse().ok()
}

/// The commit `rev` names (a full hash, a hash prefix or a ref), or None.
pub(crate) async fn commit(
    batch: &Batch,
    rev: &str,
    refs: &Refs,
) -> Result<Option<Commit>, VcsError> {
    let spec = format!("{rev}^{{commit}}");
    let Some(found) = batch.get(&spec, 1 << 20).await? else {
        return Ok(None);
    };
    if found.kind != "commit" {
        return Ok(None);
    }
    let time = committer_time(&found.data)
        .ok_or_else(|| VcsError::Failed(format!("commit {rev} has no committer time")))?;
    // The full hash `rev^{commit}` peeled to.
    let name = found.oid;
    let mut tags: Vec<String> = refs
        .iter()
        .filter(|(_, h)| h.as_str() == name)
        .filter_map(|(r, _)| r.strip_prefix("refs/tags/").map(str::to_owned))
        .collect();
    tags.sort();
    Ok(Some(Commit { name, time, tags }))
}

/// The content of `path` at commit `hash`, or None if there is no such file;
/// more than `max` bytes is TooLarge.
pub(crate) async fn read_file(
    batch: &Batch,
    hash: &str,
    path: &str,
    max: u64,
) -> Result<Option<Vec<u8>>, VcsError> {
    let spec = format!("{hash}:{path}");
    match batch.get(&spec, max).await {
        // A tree at that path is not a file.
        Ok(found) => Ok(found.and_then(|f| (f.kind == "blob").then_some(f.data))),
        Err(VcsError::TooLarge(_)) => Err(VcsError::TooLarge(format!(
            "{path} is over the limit of {max} bytes"
        ))),
        Err(e) => Err(e),
    }
}

/// Every entry matching one of `pathspecs` (none: every entry) at commit
/// `hash`, with blob hashes for reading: `(entry, object)`.
pub(crate) async fn ls_tree(
    git: &Git,
    dir: &Path,
    hash: &str,
    pathspecs: &[&str],
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
    // Literal pathspecs: no globbing or magic from repository names.
    let literal: Vec<String> = pathspecs.iter().map(|p| format!(":(literal){p}")).collect();
    if !literal.is_empty() {
        args.push("--");
        args.extend(literal.iter().map(String::as_str));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository with one commit (committer time 1700000000): go.mod, a
    /// directory, and a file of 100 bytes.
    fn repo() -> (tempfile::TempDir, Git, String) {
        let t = tempfile::tempdir().unwrap();
        let work = t.path().join("work");
        let sh = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(args)
                .current_dir(&work)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_COMMITTER_DATE", "1700000000 +0200")
                .env("GIT_AUTHOR_DATE", "1600000000 +0000")
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        std::fs::create_dir_all(work.join("sub")).unwrap();
        std::fs::write(work.join("go.mod"), "module x\n").unwrap();
        std::fs::write(work.join("sub/big.txt"), "x".repeat(100)).unwrap();
        sh(&["init", "-q"]);
        sh(&["add", "."]);
        sh(&[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "one",
        ]);
        let hash = sh(&["rev-parse", "HEAD"]).trim().to_owned();
        let git = Git::for_tests(t.path().join("home"));
        (t, git, hash)
    }

    #[tokio::test]
    async fn one_batch_reads_commits_and_files_and_recovers_after_a_refusal() {
        let (t, git, hash) = repo();
        let batch = Batch::new(git, t.path().join("work/.git"));
        let mut refs = Refs::new();
        refs.insert("refs/tags/v1.0.0".into(), hash.clone());
        // A prefix resolves to the full hash, with the committer's time.
        let c = commit(&batch, &hash[..12], &refs).await.unwrap().unwrap();
        assert_eq!((c.name.as_str(), c.time), (hash.as_str(), 1_700_000_000));
        assert_eq!(c.tags, ["v1.0.0"]);
        assert!(
            commit(&batch, "0123456789ab", &refs)
                .await
                .unwrap()
                .is_none()
        );
        let gomod = read_file(&batch, &hash, "go.mod", 1 << 10).await.unwrap();
        assert_eq!(gomod.as_deref(), Some(&b"module x\n"[..]));
        // No file, a directory: none.
        assert!(
            read_file(&batch, &hash, "nope", 1 << 10)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            read_file(&batch, &hash, "sub", 1 << 10)
                .await
                .unwrap()
                .is_none()
        );
        // Over the bound: refused, and the next read still works.
        let r = read_file(&batch, &hash, "sub/big.txt", 99).await;
        assert!(matches!(r, Err(VcsError::TooLarge(_))), "{:?}", r.err());
        let big = read_file(&batch, &hash, "sub/big.txt", 100).await.unwrap();
        assert_eq!(big.map(|b| b.len()), Some(100));
        assert!(
            read_file(&batch, &hash, "go.mod\nHEAD", 1 << 10)
                .await
                .unwrap()
                .is_none()
        );
    }
}
