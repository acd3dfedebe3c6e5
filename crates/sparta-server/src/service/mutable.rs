//! Mutable answers: list, latest and queries. Fresh from the source, cached
//! for the list TTL, persisted so the last good answer survives an outage.

use std::sync::Arc;

use sparta_core::network::NetworkMode;
use sparta_core::{ModulePath, key};
use tracing::warn;

use super::checks::check_mutable;
use super::coordination::Leased;
use super::freshness::Freshness;
use super::{JSON, Kind, Proxy, TEXT};
use crate::cache::CachedFile;
use crate::error::ProxyError;

/// Which mutable answer to ask a source for.
enum Ask {
    List,
    Latest,
    /// Unescaped, as the client meant it.
    Query(String),
}

impl Proxy {
    /// `$module/@v/list`.
    pub async fn list(&self, module: &ModulePath) -> Result<Arc<CachedFile>, ProxyError> {
        self.mutable(Kind::List, key::list(module), module, Ask::List, TEXT)
            .await
    }

    /// `$module/@latest`.
    pub async fn latest(&self, module: &ModulePath) -> Result<Arc<CachedFile>, ProxyError> {
        self.mutable(Kind::Latest, key::latest(module), module, Ask::Latest, JSON)
            .await
    }

    /// `$module/@v/$query.info` for a non-canonical version, `query` unescaped.
    pub async fn query(
        &self,
        module: &ModulePath,
        query: &str,
    ) -> Result<Arc<CachedFile>, ProxyError> {
        let escaped = sparta_core::request::escape_query(query);
        self.mutable(
            Kind::Query,
            key::query(module, &escaped),
            module,
            Ask::Query(query.to_owned()),
            JSON,
        )
        .await
    }

    /// The mutable-answer path shared by list, latest and queries.
    async fn mutable(
        &self,
        kind: Kind,
        storage_key: String,
        module: &ModulePath,
        ask: Ask,
        content_type: &'static str,
    ) -> Result<Arc<CachedFile>, ProxyError> {
        if let Some(hit) = self.memory_lookup(kind, &storage_key).await {
            return Ok(hit);
        }
        self.check_negative(kind, &storage_key).await?;
        let this = self.clone();
        let flight_key = storage_key.clone();
        let module = module.clone();
        self.shared(&self.inner.small_flights, kind, &flight_key, async move {
            this.refresh_mutable(kind, storage_key, &module, ask, content_type)
                .await
        })
        .await
    }

    async fn refresh_mutable(
        &self,
        kind: Kind,
        storage_key: String,
        module: &ModulePath,
        ask: Ask,
        content_type: &'static str,
    ) -> Result<Arc<CachedFile>, ProxyError> {
        if self.offline() {
            let what = match &ask {
                Ask::List => "list".to_owned(),
                Ask::Latest => "@latest".to_owned(),
                Ask::Query(q) => format!("query {q:?}"),
            };
            return self
                .mutable_offline(kind, storage_key, module, content_type, &what)
                .await;
        }
        // Another replica may have fetched it within the TTL.
        let mut record = self.freshness(&storage_key).await;
        if let Some(fresh) = &record {
            if let Some((body, left)) = self.fresh_stored(kind, &storage_key, fresh).await {
                return Ok(self
                    .cache_mutable_for(storage_key, body, content_type, left)
                    .await);
            }
            // A fresh record whose stored answer is gone or different:
            // forget it, so that the answer is written again below.
            if self.is_fresh(fresh) {
                record = None;
            }
        }
        if self.inner.config.list_ttl.is_zero() {
            return self
                .fetch_mutable(kind, storage_key, module, &ask, content_type, record)
                .await;
        }
        // Stale everywhere: one replica refreshes it, the others wait for
        // its record and serve what it stored.
        let found = || async {
            let Some(fresh) = self.freshness(&storage_key).await else {
                return Ok(None);
            };
            Ok(self.fresh_stored(kind, &storage_key, &fresh).await)
        };
        let fetch = || {
            self.fetch_mutable(
                kind,
                storage_key.clone(),
                module,
                &ask,
                content_type,
                record,
            )
        };
        let lease = key::answer_lease(&storage_key);
        match self.leased(lease, kind.label(), found, fetch).await? {
            Leased::Fetched(entry) => Ok(entry),
            Leased::Found((body, left)) => Ok(self
                .cache_mutable_for(storage_key, body, content_type, left)
                .await),
        }
    }

    /// Asks the source; persists and caches a good answer, else falls back
    /// to the last good one (or, in fallback mode, to stored versions).
    async fn fetch_mutable(
        &self,
        kind: Kind,
        storage_key: String,
        module: &ModulePath,
        ask: &Ask,
        content_type: &'static str,
        record: Option<Freshness>,
    ) -> Result<Arc<CachedFile>, ProxyError> {
        let source = &self.pick(module).source;
        let host = source.host(module);
        let fetched = self
            .source_call(kind, &storage_key, &host, async {
                match ask {
                    Ask::List => source.list(module).await,
                    Ask::Latest => source.latest(module).await,
                    Ask::Query(q) => source.query(module, q).await,
                }
            })
            .await
            .and_then(|body| {
                check_mutable(kind, &body).inspect_err(|_| {
                    self.inner
                        .metrics
                        .upstream_fetches
                        .with_label_values(&[kind.label(), "invalid"])
                        .inc();
                })?;
                Ok(body)
            });
        match fetched {
            Ok(body) => {
                // For other replicas within the TTL and for stale-if-error;
                // a failure here must not fail the request.
                self.persist_answer(&storage_key, &body, record.as_ref())
                    .await;
                Ok(self.cache_mutable(storage_key, body, content_type).await)
            }
            Err(e @ ProxyError::NotFound { .. }) => Err(e),
            Err(e) => {
                if let Ok(Some(body)) = self.stored(kind, &storage_key).await
                    && check_mutable(kind, &body).is_ok()
                {
                    warn!(key = %storage_key, error = %e, "source failed, serving the last good answer");
                    if self.network() == NetworkMode::Fallback {
                        self.count_fallback(kind);
                    }
                    return Ok(self.cache_mutable(storage_key, body, content_type).await);
                }
                if self.network() != NetworkMode::Fallback {
                    return Err(e);
                }
                // Fallback: what the store holds answers for the source.
                match self.mutable_from_store(kind, module).await {
                    Ok(Some(body)) if check_mutable(kind, &body).is_ok() => {
                        warn!(key = %storage_key, error = %e, "source failed, answering from stored versions");
                        self.count_fallback(kind);
                        Ok(self.cache_mutable(storage_key, body, content_type).await)
                    }
                    _ => Err(e),
                }
            }
        }
    }
}
