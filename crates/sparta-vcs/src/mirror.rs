//! Bare git mirrors on disk, one per repository URL, updated incrementally
//! (`git fetch` into the existing mirror), one fetch at a time per
//! repository (later callers reuse a fetch that finished after they asked),
//! and evicted least recently used once their bytes pass the cache bound.
//!
//! As the go command does, a request for one tagged version fetches only
//! that tag, shallow (`--depth=1`): a cold private module costs one commit's
//! tree, not the whole history; the mirror is then completed in the
//! background (`--unshallow` and every ref), and whatever needs history or
//! the full list of refs (lists, queries, pseudo-versions) waits for that.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tracing::info;

use crate::batch::Batch;
use crate::credentials::Credentials;
use crate::git::{CallCreds, Git};
use crate::metrics::VcsMetrics;
use crate::netcheck::resolve_checked;
use crate::repo::{self, Refs};
use crate::scrub::scrub_secrets;
use crate::{NetPolicy, VcsError};

/// `find_dir` answers (commit, module directory, go.mod) by module path
/// and version, for the refs of one generation: the go command asks .info,
/// .mod and .zip of a version one after the other, and each needs them.
#[derive(Default)]
pub(crate) struct Memo(Mutex<HashMap<(String, String), FoundDir>>);

/// What `find_dir` answers.
pub(crate) type FoundDir = (String, String, Option<Vec<u8>>);

impl Memo {
    pub fn get(&self, module: &str, version: &str) -> Option<FoundDir> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&(module.to_owned(), version.to_owned())).cloned()
    }

    pub fn put(&self, module: &str, version: &str, found: &FoundDir) {
        // Bounded: a few hundred small entries per mirror.
        if found.2.as_ref().is_some_and(|g| g.len() > 64 << 10) {
            return;
        }
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= 256 {
            m.clear();
        }
        m.insert((module.to_owned(), version.to_owned()), found.clone());
    }
}

/// What requests share while a mirror's refs stay as they are (one fetch
/// generation): the refs, what was resolved with them, and running
/// `cat-file --batch` readers.
#[derive(Clone)]
pub(crate) struct Reading {
    pub refs: Arc<Refs>,
    pub memo: Arc<Memo>,
    pub batch: Arc<Batch>,
}

/// Mirrors that keep a `Reading` at a time (the most recently used ones):
/// it holds up to two idle git processes.
const MAX_READINGS: usize = 16;

/// A mirror ready to read: its directory and the URL it mirrors.
#[derive(Clone)]
pub(crate) struct Mirror {
    pub dir: PathBuf,
    pub url: String,
    /// Held while reading, so eviction skips this mirror.
    pub _guard: Arc<tokio::sync::Mutex<Slot>>,
}

/// Per-repository state behind the per-repository lock.
#[derive(Default)]
pub(crate) struct Slot {
    /// When the last complete (all refs, full history) fetch finished.
    last_fetch: Option<Instant>,
}

/// What one fetch brings in.
#[derive(Clone, Copy)]
enum Fetch<'a> {
    /// Every ref with its whole history.
    Complete,
    /// One tag, shallow.
    Tag(&'a str),
}

struct Entry {
    slot: Arc<tokio::sync::Mutex<Slot>>,
    bytes: u64,
    used: u64,
    /// Bumped by every fetch: refs read at an older one are stale.
    generation: u64,
    /// What was read at a generation.
    reading: Option<(u64, Reading)>,
}

impl Entry {
    fn new(bytes: u64) -> Self {
        Entry {
            slot: Arc::default(),
            bytes,
            used: 0,
            generation: 0,
            reading: None,
        }
    }
}

pub(crate) struct Mirrors {
    pub git: Git,
    root: PathBuf,
    cache_size: u64,
    max_repo_size: u64,
    net: NetPolicy,
    creds: Arc<Credentials>,
    metrics: Arc<VcsMetrics>,
    entries: Mutex<(u64, HashMap<PathBuf, Entry>)>,
}

/// Refs a mirror keeps: branches, tags and the remote's default branch.
const REFSPECS: [&str; 3] = [
    "+refs/heads/*:refs/heads/*",
    "+refs/tags/*:refs/tags/*",
    "+HEAD:refs/sparta/HEAD",
];

impl Mirrors {
    pub fn new(
        git: Git,
        root: PathBuf,
        cache_size: u64,
        max_repo_size: u64,
        net: NetPolicy,
        creds: Arc<Credentials>,
        metrics: Arc<VcsMetrics>,
    ) -> Result<Self, VcsError> {
        std::fs::create_dir_all(&root)
            .map_err(|e| VcsError::Failed(format!("creating the mirror cache: {e}")))?;
        let mut map = HashMap::new();
        // Mirrors left by an earlier run count against the bound too.
        if let Ok(dir) = std::fs::read_dir(&root) {
            for e in dir.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "git") {
                    let bytes = dir_size(&p);
                    map.insert(p, Entry::new(bytes));
                }
            }
        }
        let total: u64 = map.values().map(|e| e.bytes).sum();
        metrics.mirror_bytes.set(total as i64);
        Ok(Mirrors {
            git,
            root,
            cache_size,
            max_repo_size,
            net,
            creds,
            metrics,
            entries: Mutex::new((0, map)),
        })
    }

    fn dir_for(&self, url: &str) -> PathBuf {
        let h = Sha256::digest(url.as_bytes());
        self.root
            .join(format!("{}.git", sparta_core::hash::hex(&h[..16])))
    }

    fn slot(&self, dir: &Path) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        let tick = g.0;
        let e = g.1.entry(dir.to_owned()).or_insert_with(|| Entry::new(0));
        e.used = tick;
        e.slot.clone()
    }

    /// The refs of the mirror in `dir`, read once per fetch rather than once
    /// per request: only a fetch changes them, and each one bumps the
    /// mirror's generation. With them, the memo of what was resolved at the
    /// same refs and the readers to resolve more.
    pub async fn reading(&self, dir: &Path) -> Result<Reading, VcsError> {
        let generation = {
            let g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            match g.1.get(dir) {
                Some(e) => match &e.reading {
                    Some((at, r)) if *at == e.generation => return Ok(r.clone()),
                    _ => e.generation,
                },
                None => 0,
            }
        };
        let reading = Reading {
            refs: Arc::new(repo::refs(&self.git, dir).await?),
            memo: Arc::default(),
            batch: Arc::new(Batch::new(self.git.clone(), dir.to_owned())),
        };
        let mut g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Kept only if no fetch ended while they were read.
        if g.1.get(dir).is_some_and(|e| e.generation == generation) {
            let held = || {
                g.1.iter()
                    .filter(|(p, e)| e.reading.is_some() && p.as_path() != dir)
            };
            if held().count() >= MAX_READINGS
                && let Some(oldest) = held().min_by_key(|(_, e)| e.used).map(|(p, _)| p.clone())
                && let Some(e) = g.1.get_mut(&oldest)
            {
                e.reading = None;
            }
            if let Some(e) = g.1.get_mut(dir) {
                e.reading = Some((generation, reading.clone()));
            }
        }
        Ok(reading)
    }

    /// After a fetch that worked: the next request finds the refs read and a
    /// reader running (the request after a background fetch need not wait
    /// for either).
    async fn warm(&self, dir: &Path) {
        match self.reading(dir).await {
            Ok(r) => {
                if let Err(e) = r.batch.warm() {
                    tracing::warn!(error = %e, "starting a reader after a fetch failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading refs after a fetch failed"),
        }
    }

    /// After a fetch (whatever its outcome): refs read before are stale.
    fn fetched(&self, dir: &Path) {
        let mut g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = g.1.get_mut(dir) {
            e.generation += 1;
            e.reading = None;
        }
    }

    /// Credentials and address pins for one call against `url`; checks the
    /// remote host against the address policy first.
    pub async fn call_creds(&self, url: &str) -> Result<(CallCreds, Vec<String>), VcsError> {
        let parsed = url::Url::parse(url)
            .map_err(|_| VcsError::NotFound("invalid repository URL".into()))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| VcsError::NotFound("repository URL has no host".into()))?
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(22);
        let addrs = resolve_checked(&host, port, self.net).await?;
        let (mut creds, secrets) = self.creds.for_url(&parsed);
        if matches!(parsed.scheme(), "http" | "https") {
            let list: Vec<String> = addrs
                .iter()
                .map(|a| match a.ip() {
                    std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                    v4 => v4.to_string(),
                })
                .collect();
            creds
                .resolve
                .push(format!("{host}:{port}:{}", list.join(",")));
        }
        Ok((creds, secrets))
    }

    /// The mirror of `url`. With `tag`, one tagged version is all the caller
    /// needs: a mirror that has it is used as it is, and a cold one fetches
    /// just that tag. Without, the mirror is made complete, and fetched
    /// again if `refresh` (a complete fetch that finished after this call
    /// began is reused).
    pub async fn get(
        &self,
        url: &str,
        refresh: bool,
        tag: Option<&str>,
    ) -> Result<Mirror, VcsError> {
        if !matches!(url.split("://").next(), Some("https" | "http" | "ssh")) {
            return Err(VcsError::Refused(
                "only https, http and ssh remotes are allowed".into(),
            ));
        }
        let dir = self.dir_for(url);
        let slot = self.slot(&dir);
        // A tag already here needs no fetch, so no wait for one in progress
        // (the background completion). Holding `slot` keeps eviction off.
        if let Some(t) = tag
            && dir.join("HEAD").exists()
            && has_tag(&dir, t)
        {
            return Ok(Mirror {
                dir,
                url: url.to_owned(),
                _guard: slot,
            });
        }
        let asked = Instant::now();
        let mut state = slot.clone().lock_owned().await;
        let exists = dir.join("HEAD").exists();
        let shallow = exists && is_shallow(&dir);
        let fresh = state.last_fetch.is_some_and(|t| t >= asked);
        let fetch = match tag {
            Some(t) if !exists || (shallow && !has_tag(&dir, t)) => Some(Fetch::Tag(t)),
            Some(_) => None,
            None if !exists || shallow || (refresh && !fresh) => Some(Fetch::Complete),
            None => None,
        };
        if let Some(what) = fetch {
            let started = Instant::now();
            let mut result = self.fetch(&dir, url, exists, what).await;
            self.fetched(&dir);
            if matches!(what, Fetch::Tag(_))
                && matches!(result, Err(VcsError::NotFound(_) | VcsError::Failed(_)))
            {
                // No such tag (or a server that refuses shallow fetches):
                // the complete fetch decides.
                let exists = dir.join("HEAD").exists();
                result = self.fetch(&dir, url, exists, Fetch::Complete).await;
                self.fetched(&dir);
                if result.is_ok() {
                    state.last_fetch = Some(Instant::now());
                }
            } else if result.is_ok() && matches!(what, Fetch::Complete) {
                state.last_fetch = Some(Instant::now());
            }
            let took = started.elapsed();
            let bytes = result.is_ok().then(|| dir_size(&dir));
            if bytes.is_some_and(|b| b <= self.max_repo_size) {
                // Before the fetch counts as done: whoever waits for it finds
                // the mirror ready to read.
                self.warm(&dir).await;
            }
            self.metrics.observe_took("fetch", took, &result);
            if matches!(result, Err(VcsError::TooLarge(_))) {
                self.set_bytes(&dir, 0);
            }
            result?;
            let bytes = bytes.unwrap_or_default();
            if bytes > self.max_repo_size {
                let _ = std::fs::remove_dir_all(&dir);
                self.set_bytes(&dir, 0);
                return Err(VcsError::TooLarge(format!(
                    "repository is {bytes} bytes, over the limit of {} bytes",
                    self.max_repo_size
                )));
            }
            self.set_bytes(&dir, bytes);
            drop(state);
            self.evict(&dir);
        } else {
            drop(state);
        }
        Ok(Mirror {
            dir,
            url: url.to_owned(),
            _guard: slot,
        })
    }

    async fn fetch(
        &self,
        dir: &Path,
        url: &str,
        exists: bool,
        what: Fetch<'_>,
    ) -> Result<(), VcsError> {
        let (creds, secrets) = self.call_creds(url).await?;
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        if !exists {
            let tmp = dir.with_extension("init");
            let _ = std::fs::remove_dir_all(&tmp);
            let tmp_s = tmp.to_string_lossy().into_owned();
            let out = self
                .git
                .run(
                    None,
                    &["init", "--bare", "--quiet", &tmp_s],
                    &CallCreds::default(),
                    1 << 16,
                )
                .await?;
            if !out.success {
                return Err(VcsError::Failed(format!("git init: {}", out.stderr.trim())));
            }
            std::fs::rename(&tmp, dir)
                .map_err(|e| VcsError::Failed(format!("placing mirror: {e}")))?;
        }
        let tag_spec;
        let mut args = vec!["fetch", "--no-tags", "--quiet", "--no-write-fetch-head"];
        match what {
            Fetch::Complete => {
                args.push("--prune");
                if is_shallow(dir) {
                    args.push("--unshallow");
                }
                args.extend(["--", url]);
                args.extend(REFSPECS);
            }
            Fetch::Tag(t) => {
                tag_spec = format!("+refs/tags/{t}:refs/tags/{t}");
                args.extend(["--depth=1", "--", url, &tag_spec]);
            }
        }
        // The size bound holds during the fetch too: a watcher stops it.
        let watch = async {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                let bytes = dir_size(dir);
                if bytes > self.max_repo_size {
                    return bytes;
                }
            }
        };
        let out = tokio::select! {
            out = self.git.run(Some(dir), &args, &creds, 1 << 20) => out,
            bytes = watch => Err(VcsError::TooLarge(format!(
                "repository passed {bytes} bytes while fetching, over the limit of {} bytes",
                self.max_repo_size
            ))),
        };
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                if !exists || matches!(e, VcsError::TooLarge(_)) {
                    let _ = std::fs::remove_dir_all(dir);
                }
                return Err(e);
            }
        };
        if !out.success {
            if !exists {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(classify(&scrub_secrets(&out.stderr, &secrets)));
        }
        match what {
            Fetch::Complete => {
                info!(repository = %crate::scrub::scrub(url), "fetched repository")
            }
            Fetch::Tag(t) => {
                info!(repository = %crate::scrub::scrub(url), tag = %t, "fetched one tag (shallow)")
            }
        }
        Ok(())
    }

    fn set_bytes(&self, dir: &Path, bytes: u64) {
        let mut g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = g.1.get_mut(dir) {
            e.bytes = bytes;
        }
        let total: u64 = g.1.values().map(|e| e.bytes).sum();
        self.metrics.mirror_bytes.set(total as i64);
    }

    /// Removes least recently used mirrors (never `keep`, never one in use)
    /// until the total fits the bound.
    fn evict(&self, keep: &Path) {
        let mut g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let total: u64 = g.1.values().map(|e| e.bytes).sum();
            self.metrics.mirror_bytes.set(total as i64);
            if total <= self.cache_size {
                return;
            }
            let mut order: Vec<(&PathBuf, u64)> =
                g.1.iter()
                    .filter(|(p, e)| p.as_path() != keep && e.bytes > 0)
                    .map(|(p, e)| (p, e.used))
                    .collect();
            order.sort_by_key(|(_, used)| *used);
            let victim = order.into_iter().map(|(p, _)| p.clone()).find(|p| {
                // Arc count 1: nobody holds it; try_lock: nobody fetches it.
                let e = &g.1[p];
                Arc::strong_count(&e.slot) == 1 && e.slot.try_lock().is_ok()
            });
            let Some(victim) = victim else { return };
            let _ = std::fs::remove_dir_all(&victim);
            g.1.remove(&victim);
            self.metrics.evictions.inc();
            info!(mirror = %victim.display(), "evicted mirror");
        }
    }
}

/// Whether a mirror holds only part of its history (git's `shallow` file).
pub(crate) fn is_shallow(dir: &Path) -> bool {
    dir.join("shallow").exists()
}

/// Whether the mirror has `refs/tags/<tag>` (loose or packed).
fn has_tag(dir: &Path, tag: &str) -> bool {
    let name = format!("refs/tags/{tag}");
    if dir.join(&name).is_file() {
        return true;
    }
    std::fs::read_to_string(dir.join("packed-refs")).is_ok_and(|p| {
        p.lines()
            .any(|l| l.split_once(' ').is_some_and(|(_, r)| r == name))
    })
}

/// Sorts a failed fetch's (scrubbed) stderr into an error kind.
fn classify(stderr: &str) -> VcsError {
    let s = stderr.to_ascii_lowercase();
    let msg = stderr
        .trim()
        .lines()
        .last()
        .unwrap_or("git fetch failed")
        .to_owned();
    if s.contains("authentication failed")
        || s.contains("could not read username")
        || s.contains("could not read password")
        || s.contains("permission denied")
        || s.contains(" 401")
        || s.contains(" 403")
    {
        VcsError::Refused(format!(
            "the repository host refused the credentials: {msg}"
        ))
    } else if s.contains("couldn't find remote ref") {
        if s.contains("couldn't find remote ref head") {
            return VcsError::NotFound("repository has no default branch (no commits)".into());
        }
        VcsError::NotFound(format!("no such ref: {msg}"))
    } else if s.contains("not found")
        || s.contains(" 404")
        || s.contains("does not appear to be a git repository")
    {
        VcsError::NotFound(format!("repository not found: {msg}"))
    } else if s.contains("could not resolve host")
        || s.contains("failed to connect")
        || s.contains("connection refused")
    {
        VcsError::NotFound(format!("repository host unreachable: {msg}"))
    } else {
        VcsError::Failed(format!("git fetch: {msg}"))
    }
}

/// Bytes under `dir` (files only; a mirror holds no symlinks).
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}
