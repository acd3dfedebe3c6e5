//! Modules straight from their source: repository discovery (known hosts,
//! VCS suffixes, `?go-get=1`, a static map), bare git mirrors in a bounded
//! on-disk cache, tags to versions and pseudo-versions, credentials, and
//! module zips built by `sparta_core::modzip`. Knows nothing of HTTP serving
//! or storage.

mod batch;
mod config;
mod credentials;
mod discovery;
mod error;
mod git;
mod info;
mod metrics;
mod mirror;
mod netcheck;
mod repo;
mod scrub;
mod timefmt;
mod versions;
mod zipper;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sparta_core::version::compare;
use sparta_core::{ModulePath, Version};
use tracing::info;

pub use config::{NetPolicy, VcsConfig, VcsMap};
pub use error::VcsError;
pub use info::{Origin, RevInfo};
pub use metrics::VcsMetrics;

use discovery::RepoRoot;
use mirror::{Mirror, Mirrors};
use versions::CodeRepo;

type BoxFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, VcsError>> + Send + 'a>>;

/// How long a go-get answer is reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(300);

/// The VCS fetcher; cheap to clone (Arc inside), safe to share.
#[derive(Clone)]
pub struct Vcs {
    inner: Arc<Inner>,
}

struct Inner {
    config: VcsConfig,
    mirrors: Mirrors,
    metrics: Arc<VcsMetrics>,
    roots: Mutex<HashMap<String, (Instant, RepoRoot)>>,
}

impl Vcs {
    /// Builds the fetcher; creates the cache directory.
    pub fn new(config: VcsConfig) -> Result<Vcs, VcsError> {
        let metrics = Arc::new(VcsMetrics::new());
        let home = config.cache_dir.join("home");
        std::fs::create_dir_all(&home)
            .map_err(|e| VcsError::Failed(format!("creating {}: {e}", home.display())))?;
        let creds = credentials::Credentials::new(
            config.netrc.clone(),
            config.token_dir.clone(),
            config.ssh_key.clone(),
            config.cache_dir.join("known_hosts"),
        );
        let git = git::Git {
            timeout: config.op_timeout,
            home,
            allow_file: false,
        };
        let mirrors = Mirrors::new(
            git,
            config.cache_dir.join("mirrors"),
            config.cache_size,
            config.max_repo_size,
            config.net,
            Arc::new(creds),
            metrics.clone(),
        )?;
        Ok(Vcs {
            inner: Arc::new(Inner {
                config,
                mirrors,
                metrics,
                roots: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Registers the VCS metrics on `registry`.
    pub fn with_metrics(self, registry: &prometheus::Registry) -> Result<Vcs, VcsError> {
        self.inner.metrics.register(registry)?;
        Ok(self)
    }

    /// The metrics (for tests and the server's own accounting).
    pub fn metrics(&self) -> &VcsMetrics {
        &self.inner.metrics
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T, VcsError>>,
    ) -> Result<T, VcsError> {
        let started = Instant::now();
        // Boxed: the resolution futures are deep, and debug builds keep them on the stack.
        let r = Box::pin(fut).await;
        self.inner.metrics.observe(op, started, &r);
        r
    }

    /// Where `module`'s repository is.
    async fn discover(&self, module: &ModulePath) -> Result<RepoRoot, VcsError> {
        let c = &self.inner.config;
        let path = module.as_str();
        if let Some(r) = discovery::static_root(path, &c.maps, &c.insecure) {
            return Ok(r);
        }
        if let Some((at, r)) = self
            .inner
            .roots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(r.clone());
        }
        let insecure = |p: &str| {
            c.insecure
                .iter()
                .any(|g| discovery::match_prefix(g, p).is_some())
        };
        let timeout = c.op_timeout.min(Duration::from_secs(30));
        let started = Instant::now();
        let r = async {
            let metas = discovery::go_get(path, insecure(path), c.net, timeout).await?;
            let root = discovery::match_meta(path, &metas)?;
            if root.root != path {
                // The go command checks the prefix answers the same way.
                let again = discovery::go_get(&root.root, insecure(&root.root), c.net, timeout).await?;
                if discovery::match_meta(&root.root, &again)? != root {
                    return Err(VcsError::NotFound(format!(
                        "{path}: go-import meta tags of {} do not match",
                        root.root
                    )));
                }
            }
            if root.url.starts_with("http://") && !insecure(path) {
                return Err(VcsError::Refused(format!(
                    "{path}: repository {} is plain http; list the path in the insecure globs to allow it",
                    root.url
                )));
            }
            Ok(root)
        }
        .await;
        self.inner.metrics.observe("discover", started, &r);
        let root = r?;
        let mut roots = self.inner.roots.lock().unwrap_or_else(|e| e.into_inner());
        if roots.len() > 10_000 {
            roots.clear();
        }
        roots.insert(path.to_owned(), (Instant::now(), root.clone()));
        Ok(root)
    }

    async fn open(
        &self,
        module: &ModulePath,
        refresh: bool,
        version: Option<&Version>,
    ) -> Result<(Mirror, RepoRoot, mirror::Reading), VcsError> {
        let root = self.discover(module).await?;
        // A tagged version needs only its tag; a pseudo-version needs history.
        let tag = match version {
            Some(v) if !refresh && !v.is_pseudo() => Some(
                CodeRepo::new(
                    self.inner.mirrors.git.clone(),
                    Default::default(),
                    String::new(),
                    module.clone(),
                    &root.root,
                    Default::default(),
                )?
                .rev_to_rev(v.as_str()),
            ),
            _ => None,
        };
        let mirror = self
            .inner
            .mirrors
            .get(&root.url, refresh, tag.as_deref())
            .await?;
        if tag.is_some() && mirror::is_shallow(&mirror.dir) {
            // The answer needed one tag; the next version or pseudo-version
            // will need the rest: complete the mirror off the request path.
            let (vcs, url) = (self.clone(), root.url.clone());
            tokio::spawn(async move {
                if let Err(e) = vcs.inner.mirrors.get(&url, false, None).await {
                    tracing::warn!(repository = %scrub::scrub(&url), error = %e, "completing the mirror failed");
                }
            });
        }
        let reading = self.inner.mirrors.reading(&mirror.dir).await?;
        Ok((mirror, root, reading))
    }

    /// Runs `f` on the module's repository as mirrored; if it finds nothing
    /// and the mirror was not just fetched, fetches once and tries again.
    /// Boxed, so callers' futures stay small (debug builds keep deep async
    /// state on the stack).
    fn with_repo<'s, T, F, Fut>(
        &'s self,
        module: &'s ModulePath,
        refresh: bool,
        version: Option<&'s Version>,
        f: F,
    ) -> BoxFuture<'s, T>
    where
        F: Fn(Arc<CodeRepo>) -> Fut + Send + 's,
        Fut: std::future::Future<Output = Result<T, VcsError>> + Send + 's,
        T: Send + 's,
    {
        Box::pin(async move {
            let code = Box::pin(self.code(module, refresh, version)).await?;
            match Box::pin(f(code.1)).await {
                Err(VcsError::NotFound(_)) if !refresh => {
                    drop(code.0);
                    let (_guard, code) = Box::pin(self.code(module, true, None)).await?;
                    Box::pin(f(code)).await
                }
                other => other,
            }
        })
    }

    async fn code(
        &self,
        module: &ModulePath,
        refresh: bool,
        version: Option<&Version>,
    ) -> Result<(Mirror, Arc<CodeRepo>), VcsError> {
        let (mirror, root, reading) = self.open(module, refresh, version).await?;
        let mut code = CodeRepo::new(
            self.inner.mirrors.git.clone(),
            mirror.dir.clone(),
            mirror.url.clone(),
            module.clone(),
            &root.root,
            reading.refs,
        )?;
        code.shallow = mirror::is_shallow(&mirror.dir);
        code.memo = reading.memo;
        code.batch = reading.batch;
        Ok((mirror, Arc::new(code)))
    }

    /// `@v/list`: canonical tagged versions for this module path (no pseudo-versions), sorted.
    pub async fn list(&self, module: &ModulePath) -> Result<Vec<Version>, VcsError> {
        self.timed(
            "list",
            self.with_repo(module, true, None, async |c: Arc<CodeRepo>| {
                c.versions().await
            }),
        )
        .await
    }

    /// `@latest`: highest release, else highest pre-release, else a pseudo-version of the default branch.
    pub async fn latest(&self, module: &ModulePath) -> Result<RevInfo, VcsError> {
        self.timed(
            "latest",
            self.with_repo(module, true, None, async |c: Arc<CodeRepo>| {
                latest_of(&c).await
            }),
        )
        .await
    }

    /// A query as the client sent it, unescaped: branch, tag, commit hash
    /// (full or prefix), or a non-canonical version; answers with the canonical version.
    pub async fn query(&self, module: &ModulePath, query: &str) -> Result<RevInfo, VcsError> {
        if query.is_empty() || query.starts_with(['-', '<', '>', '=', '!']) || query.contains("..")
        {
            return Err(VcsError::NotFound(format!(
                "{module}@{query}: unsupported query"
            )));
        }
        // A canonical version that fits the path is an .info; one that does
        // not (`v3.0.0` for a path without /v3) may still resolve, to
        // `+incompatible`, as a revision.
        if let Ok(v) = Version::parse(query)
            && module.check_version(&v).is_ok()
        {
            return self.info(module, &v).await;
        }
        let q = query.to_owned();
        self.timed(
            "query",
            self.with_repo(module, true, None, |c: Arc<CodeRepo>| {
                let q = q.clone();
                async move {
                    if q == "latest" {
                        return latest_of(&c).await;
                    }
                    let is_prefix = sparta_core::version::canonical(&q).is_some()
                        && Version::parse(&q).is_err()
                        && !q.contains(['-', '+']);
                    if is_prefix {
                        // `v1` or `v1.2`: the highest version it is a prefix of.
                        let dot = format!("{q}.");
                        let list = c.versions().await?;
                        let pick = highest(
                            list.iter()
                                .filter(|v| v.as_str().starts_with(&dot))
                                .cloned()
                                .collect(),
                        );
                        return match pick {
                            Some(v) => c.stat(v.as_str()).await,
                            None => Err(VcsError::NotFound(format!(
                                "{}@{q}: no matching versions",
                                c.mod_path
                            ))),
                        };
                    }
                    c.stat(&q).await
                }
            }),
        )
        .await
    }

    /// `.info` of a canonical version (tag or pseudo-version checked against the repository).
    pub async fn info(&self, module: &ModulePath, version: &Version) -> Result<RevInfo, VcsError> {
        module
            .check_version(version)
            .map_err(|e| VcsError::NotFound(e.to_string()))?;
        let v = version.as_str().to_owned();
        self.timed(
            "info",
            self.with_repo(module, false, Some(version), |c: Arc<CodeRepo>| {
                let v = v.clone();
                async move { c.stat(&v).await }
            }),
        )
        .await
    }

    /// `.mod` at that revision, or a synthesized `module <path>\n` when the repository has none.
    pub async fn gomod(&self, module: &ModulePath, version: &Version) -> Result<Bytes, VcsError> {
        module
            .check_version(version)
            .map_err(|e| VcsError::NotFound(e.to_string()))?;
        let v = version.clone();
        self.timed(
            "mod",
            self.with_repo(module, false, Some(version), |c: Arc<CodeRepo>| {
                let v = v.clone();
                async move {
                    if v.is_pseudo() {
                        c.stat(v.as_str()).await?;
                    }
                    let (_, _, gomod) = c.find_dir(v.as_str()).await?;
                    Ok(match gomod {
                        Some(g) => Bytes::from(g),
                        None => Bytes::from(format!("module {}\n", c.mod_path)),
                    })
                }
            }),
        )
        .await
    }

    /// Writes the module zip (module-zip rules, sparta_core::modzip) to `out`, streamed, returns bytes written.
    pub async fn zip_to_file(
        &self,
        module: &ModulePath,
        version: &Version,
        out: &Path,
    ) -> Result<u64, VcsError> {
        module
            .check_version(version)
            .map_err(|e| VcsError::NotFound(e.to_string()))?;
        let v = version.clone();
        let max = self.inner.config.max_zip_size;
        let out = out.to_owned();
        self.timed(
            "zip",
            self.with_repo(module, false, Some(version), |c: Arc<CodeRepo>| {
                let (v, out) = (v.clone(), out.clone());
                async move {
                if v.is_pseudo() {
                    c.stat(v.as_str()).await?;
                }
                let (hash, dir, gomod) = c.find_dir(v.as_str()).await?;
                info!(repository = %scrub::scrub(&c.url), revision = %hash, subdir = %dir, "building module zip");
                zipper::build(&c, &v, (&hash, &dir, gomod), max, &out).await
                }
            }),
        )
        .await
    }
}

/// Highest release, else highest pre-release.
fn highest(mut list: Vec<Version>) -> Option<Version> {
    list.sort_by(compare);
    list.iter()
        .rev()
        .find(|v| !v.is_prerelease())
        .or_else(|| list.last())
        .cloned()
}

/// `@latest` by the go command's rule: versions retracted by the go.mod of
/// the latest release (else pre-release) are left out; then the highest
/// release, else pre-release, else the default branch's pseudo-version, if
/// that is not retracted either.
async fn latest_of(c: &CodeRepo) -> Result<RevInfo, VcsError> {
    let list = c.versions().await?;
    if list.is_empty() {
        return c.latest_commit().await;
    }
    let retracted = c.retracted().await;
    if retracted.is_empty() {
        return match highest(list) {
            Some(v) => c.stat(v.as_str()).await,
            None => c.latest_commit().await,
        };
    }
    match highest(list.into_iter().filter(|v| !retracted.covers(v)).collect()) {
        Some(v) => c.stat(v.as_str()).await,
        None => {
            let head = c.latest_commit().await?;
            if retracted.covers(&head.version) {
                Err(VcsError::NotFound(format!(
                    "{}@latest: every version is retracted",
                    c.mod_path
                )))
            } else {
                Ok(head)
            }
        }
    }
}

/// The server awaits these futures on a multi-threaded runtime: they must be `Send`.
#[allow(dead_code)]
fn futures_are_send(v: &Vcs, m: &ModulePath, ver: &Version, out: &Path) {
    fn send<T: Send>(_: T) {}
    send(v.list(m));
    send(v.latest(m));
    send(v.query(m, "main"));
    send(v.info(m, ver));
    send(v.gomod(m, ver));
    send(v.zip_to_file(m, ver, out));
}
