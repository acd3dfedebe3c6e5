//! Fetching checksum database files from their sources. The client is the
//! upstream one (no redirects, guarded name resolution); each answer is
//! bounded in size, in total time and in time between body chunks, and a
//! 429 or 503 with a short `Retry-After` is retried once.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sparta_upstream::client;
use tracing::{Instrument, debug};

use crate::{Db, Sumdb, SumdbError};

/// Largest answer accepted from a database (tiles are at most 8 KiB at
/// height 8; lookups a few hundred bytes).
pub(crate) const MAX_BODY: usize = 4 << 20;
/// Bound on one whole request to a source.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest silence between body chunks.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest `Retry-After` waited for, once.
pub(crate) const RETRY_AFTER_MAX: Duration = Duration::from_secs(5);

impl Sumdb {
    /// GET `<source>/<rel>` from each source in turn. Not found only when no
    /// source failed otherwise; a failure of every source is Unavailable.
    pub(crate) async fn fetch(&self, db: &Db, rel: &str) -> Result<Bytes, SumdbError> {
        let mut failures = Vec::new();
        let mut not_found = None;
        for source in &db.config.sources {
            let url = format!("{source}/{rel}");
            let answer = match tokio::time::timeout(REQUEST_TIMEOUT, self.fetch_one(&url)).await {
                Ok(answer) => answer,
                Err(_) => Err(format!(
                    "{url}: no complete answer within {REQUEST_TIMEOUT:?}"
                )),
            };
            match answer {
                Ok(Some(body)) => return Ok(body),
                Ok(None) => not_found = Some(url),
                Err(e) => {
                    debug!(url, error = %e, "checksum database source failed");
                    failures.push(e);
                }
            }
        }
        match not_found {
            Some(url) if failures.is_empty() => {
                Err(SumdbError::NotFound(format!("{url}: not found")))
            }
            _ => Err(SumdbError::Unavailable(failures.join("; "))),
        }
    }

    async fn fetch_one(&self, url: &str) -> Result<Option<Bytes>, String> {
        let mut retried = false;
        let mut resp = loop {
            let span = sparta_trace::client_span("sumdb fetch");
            let resp = self
                .inner
                .http
                .get(url)
                .headers(span.in_scope(sparta_trace::headers))
                .send()
                .instrument(span)
                .await
                .map_err(|e| format!("{url}: {}", client::error_chain(&e)))?;
            let status = resp.status();
            match status.as_u16() {
                200 => break resp,
                404 | 410 => return Ok(None),
                429 | 503 if !retried => match client::retry_after(&resp) {
                    Some(wait) if wait <= RETRY_AFTER_MAX => {
                        drop(resp);
                        tokio::time::sleep(wait).await;
                        retried = true;
                    }
                    _ => return Err(format!("{url}: status {status}")),
                },
                _ if status.is_redirection() => {
                    return Err(format!(
                        "{url}: status {}: redirects are not followed",
                        status.as_u16()
                    ));
                }
                s => return Err(format!("{url}: status {s}")),
            }
        };
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(format!("{url}: answer larger than {MAX_BODY} bytes"));
        }
        let mut body = BytesMut::new();
        loop {
            let chunk = tokio::time::timeout(IDLE_TIMEOUT, resp.chunk())
                .await
                .map_err(|_| format!("{url}: body stalled, nothing for {IDLE_TIMEOUT:?}"))?
                .map_err(|e| format!("{url}: body incomplete: {}", client::error_chain(&e)))?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("{url}: answer larger than {MAX_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body.freeze()))
    }
}
