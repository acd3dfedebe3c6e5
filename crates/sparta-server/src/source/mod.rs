//! Where modules come from. The service asks a [`Source`] for list, latest,
//! queries, `.info`, `.mod` and zips; the upstream proxy chain is one source,
//! the VCS fetcher another, and [`Sources`] picks one per module by route.
//! Sources only fetch: checks, verification, caching and the write-once
//! store stay in the service, the same for every source.

mod chain;
mod upstream;
mod vcs;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sparta_core::proxylist::{ListEntry, ProxyEntry};
use sparta_core::routes::Routes;
use sparta_core::{ModulePath, Version};
use sparta_upstream::{Upstream, UpstreamConfig};

pub use chain::{Chain, Off};
pub use upstream::UpstreamSource;
pub use vcs::VcsSource;

/// The one error type of every source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The source has no such module or version (404, or 410 when gone).
    #[error("{reason}")]
    NotFound { status: u16, reason: String },
    /// The source will not serve it: lookups disabled, a credential or an
    /// address refused. Answered as not found with this short reason.
    #[error("{0}")]
    Refused(String),
    /// Over a size limit; never stored.
    #[error("{0}")]
    TooLarge(String),
    /// The source did not answer in time.
    #[error("{0}")]
    Timeout(String),
    /// The source failed or broke the protocol.
    #[error("{0}")]
    Failed(String),
}

impl SourceError {
    /// Whether the go command would try the next entry after a `,`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SourceError::NotFound { .. })
    }

    /// The metrics outcome label.
    pub fn outcome(&self) -> &'static str {
        match self {
            SourceError::NotFound { .. } => "not_found",
            SourceError::Refused(_) => "refused",
            SourceError::TooLarge(_) => "too_large",
            SourceError::Timeout(_) => "timeout",
            SourceError::Failed(_) => "error",
        }
    }
}

/// A place modules are fetched from. Bodies are whole and bounded; zips are
/// written to a file, never held in memory.
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// `@v/list`: the body as the go command expects it.
    async fn list(&self, module: &ModulePath) -> Result<Bytes, SourceError>;
    /// `@latest`: an `.info` JSON body.
    async fn latest(&self, module: &ModulePath) -> Result<Bytes, SourceError>;
    /// `@v/<query>.info` for a non-canonical version, `query` unescaped.
    async fn query(&self, module: &ModulePath, query: &str) -> Result<Bytes, SourceError>;
    /// `.info` of a canonical version.
    async fn info(&self, module: &ModulePath, version: &Version) -> Result<Bytes, SourceError>;
    /// `.mod` of a canonical version.
    async fn gomod(&self, module: &ModulePath, version: &Version) -> Result<Bytes, SourceError>;
    /// Writes the module zip to `out` (created or truncated), returns its size.
    /// A source that spools reserves room first with [`crate::limits::reserve_spool`].
    async fn zip_to_file(
        &self,
        module: &ModulePath,
        version: &Version,
        out: &Path,
    ) -> Result<u64, SourceError>;

    /// The host a fetch of `module` goes to first, for the per-host fetch
    /// limit; by default the module path's first element (its VCS host).
    fn host(&self, module: &ModulePath) -> String {
        let path = module.as_str();
        path.split('/').next().unwrap_or(path).to_owned()
    }
}

/// The source picked for one module, and whether its path must stay here.
#[derive(Clone)]
pub struct Picked {
    pub source: Arc<dyn Source>,
    /// Routed to `direct`: never verified against a public checksum database.
    pub private: bool,
}

/// Builds the sources a GOPROXY list names.
pub trait SourceFactory {
    /// A source for a run of proxy entries.
    fn upstream(&self, proxies: Vec<ProxyEntry>) -> Result<Arc<dyn Source>, String>;
    /// The VCS source, or `None` when it is not configured.
    fn direct(&self) -> Option<Arc<dyn Source>>;
}

/// The factory the binary uses: upstream clients with these limits, and
/// one shared VCS source.
pub struct Origins {
    /// Limit for one whole upstream fetch.
    pub upstream_timeout: Duration,
    /// Longest silence between upstream body chunks.
    pub upstream_idle_timeout: Duration,
    /// Limit for connecting to an upstream.
    pub connect_timeout: Duration,
    /// The VCS fetcher, when `direct` appears anywhere.
    pub direct: Option<Arc<dyn Source>>,
}

impl SourceFactory for Origins {
    fn upstream(&self, proxies: Vec<ProxyEntry>) -> Result<Arc<dyn Source>, String> {
        let upstream = Upstream::new(UpstreamConfig {
            proxies,
            timeout: self.upstream_timeout,
            idle_timeout: self.upstream_idle_timeout,
            connect_timeout: self.connect_timeout,
            retry_after_max: Duration::from_secs(10),
        })
        .map_err(|e| e.to_string())?;
        Ok(Arc::new(UpstreamSource(upstream)))
    }

    fn direct(&self) -> Option<Arc<dyn Source>> {
        self.direct.clone()
    }
}

/// The routing table: per-route sources and the default one.
#[derive(Clone)]
pub struct Sources {
    routes: Routes,
    by_route: Vec<Picked>,
    default: Picked,
}

impl Sources {
    /// Builds one source chain per route and one for the default list.
    pub fn new(
        default: &[ListEntry],
        routes: Routes,
        factory: &dyn SourceFactory,
    ) -> Result<Sources, String> {
        let by_route = routes
            .routes()
            .iter()
            .map(|r| {
                Ok(Picked {
                    source: Chain::build(&r.list, factory, "--route")
                        .map_err(|e| format!("route {:?}: {e}", r.spec))?,
                    private: r.is_private(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let default = Picked {
            source: Chain::build(default, factory, "--upstream")
                .map_err(|e| format!("--upstream: {e}"))?,
            private: false,
        };
        Ok(Sources {
            routes,
            by_route,
            default,
        })
    }

    /// A table where every module takes one source (tests, simple setups).
    pub fn single(source: Arc<dyn Source>) -> Sources {
        Sources {
            routes: Routes::default(),
            by_route: Vec::new(),
            default: Picked {
                source,
                private: false,
            },
        }
    }

    /// The source for `module`: the first matching route's, else the default.
    pub fn pick(&self, module: &ModulePath) -> &Picked {
        match self.routes.pick(module.as_str()) {
            Some(i) => &self.by_route[i],
            None => &self.default,
        }
    }
}
