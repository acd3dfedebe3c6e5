//! A GOPROXY list as one source: runs of proxies, `direct` and `off`, tried
//! in order with the list's fall-through rules.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use sparta_core::proxylist::{Fallthrough, ListEntry, ProxyEntry};
use sparta_core::{ModulePath, Version};

use super::{Source, SourceError, SourceFactory};

/// Entries tried in order; after an error the next one is tried when the
/// error is not-found, or when the failed entry was followed by `|`.
pub struct Chain {
    links: Vec<(Arc<dyn Source>, Fallthrough)>,
}

impl Chain {
    /// Turns a parsed list into a source: consecutive proxies become one
    /// upstream client (it walks them itself), `direct` the VCS source, `off`
    /// a source that refuses. `flag` names the setting in error texts.
    pub fn build(
        list: &[ListEntry],
        factory: &dyn SourceFactory,
        flag: &'static str,
    ) -> Result<Arc<dyn Source>, String> {
        type Links = Vec<(Arc<dyn Source>, Fallthrough)>;
        let mut links: Links = Vec::new();
        let mut run: Vec<ProxyEntry> = Vec::new();
        let flush = |run: &mut Vec<ProxyEntry>, links: &mut Links| -> Result<(), String> {
            if let Some(last) = run.last() {
                let fallthrough = last.fallthrough;
                links.push((factory.upstream(std::mem::take(run))?, fallthrough));
            }
            Ok(())
        };
        for entry in list {
            match entry {
                ListEntry::Proxy(p) => run.push(p.clone()),
                ListEntry::Direct { fallthrough } => {
                    flush(&mut run, &mut links)?;
                    let direct = factory.direct().ok_or_else(|| {
                        "\"direct\" needs the VCS fetcher, which is not configured".to_owned()
                    })?;
                    links.push((direct, *fallthrough));
                }
                ListEntry::Off => {
                    flush(&mut run, &mut links)?;
                    links.push((Arc::new(Off(flag)), Fallthrough::OnNotFound));
                    // Nothing after `off` is ever reached.
                    break;
                }
            }
        }
        flush(&mut run, &mut links)?;
        match links.len() {
            0 => Err("the list names no source".to_owned()),
            1 => Ok(links.pop().expect("one link").0),
            _ => Ok(Arc::new(Chain { links })),
        }
    }

    async fn walk<'a, T, F, Fut>(&'a self, call: F) -> Result<T, SourceError>
    where
        F: Fn(&'a dyn Source) -> Fut,
        Fut: Future<Output = Result<T, SourceError>>,
    {
        let mut last = None;
        for (source, fallthrough) in &self.links {
            match call(source.as_ref()).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let next = e.is_not_found() || *fallthrough == Fallthrough::OnAnyError;
                    if !next {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| SourceError::Failed("no source configured".into())))
    }
}

#[async_trait::async_trait]
impl Source for Chain {
    async fn list(&self, module: &ModulePath) -> Result<Bytes, SourceError> {
        self.walk(|s| s.list(module)).await
    }

    async fn latest(&self, module: &ModulePath) -> Result<Bytes, SourceError> {
        self.walk(|s| s.latest(module)).await
    }

    async fn query(&self, module: &ModulePath, query: &str) -> Result<Bytes, SourceError> {
        self.walk(|s| s.query(module, query)).await
    }

    async fn info(&self, module: &ModulePath, version: &Version) -> Result<Bytes, SourceError> {
        self.walk(|s| s.info(module, version)).await
    }

    async fn gomod(&self, module: &ModulePath, version: &Version) -> Result<Bytes, SourceError> {
        self.walk(|s| s.gomod(module, version)).await
    }

    async fn zip_to_file(
        &self,
        module: &ModulePath,
        version: &Version,
        out: &Path,
    ) -> Result<u64, SourceError> {
        self.walk(|s| s.zip_to_file(module, version, out)).await
    }

    fn host(&self, module: &ModulePath) -> String {
        self.links
            .first()
            .map(|(s, _)| s.host(module))
            .unwrap_or_default()
    }
}

/// `off`: every lookup is refused with a 410 naming the setting.
pub struct Off(pub &'static str);

impl Off {
    fn refuse<T>(&self, module: &ModulePath) -> Result<T, SourceError> {
        Err(SourceError::NotFound {
            status: 410,
            reason: format!("module lookup disabled by {}=off for {module}", self.0),
        })
    }
}

#[async_trait::async_trait]
impl Source for Off {
    async fn list(&self, module: &ModulePath) -> Result<Bytes, SourceError> {
        self.refuse(module)
    }

    async fn latest(&self, module: &ModulePath) -> Result<Bytes, SourceError> {
        self.refuse(module)
    }

    async fn query(&self, module: &ModulePath, _query: &str) -> Result<Bytes, SourceError> {
        self.refuse(module)
    }

    async fn info(&self, module: &ModulePath, _version: &Version) -> Result<Bytes, SourceError> {
        self.refuse(module)
    }

    async fn gomod(&self, module: &ModulePath, _version: &Version) -> Result<Bytes, SourceError> {
        self.refuse(module)
    }

    async fn zip_to_file(
        &self,
        module: &ModulePath,
        _version: &Version,
        _out: &Path,
    ) -> Result<u64, SourceError> {
        self.refuse(module)
    }
}
