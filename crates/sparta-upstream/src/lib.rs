//! Fetching from upstream Go module proxies with GOPROXY-list semantics.
//!
//! A [`Upstream`] walks its proxy list in order: after a not-found answer it
//! always tries the next proxy; after any other failure it tries the next one
//! only when the separator after the failed proxy was `|`. Only whole, checked
//! bodies come out: a truncated body or a timeout is an error, never data.
//!
//! Limits (docs/CONTRACTS.md lists them): redirects are never followed (a 3xx
//! is a failure); a body that sends nothing for the idle timeout fails; a zip
//! fetch is bounded by the fetch timeout as a whole, a small file by the
//! shorter of that and [`SMALL_FETCH_TIMEOUT`]; an error body is read at most
//! [`client::ERROR_BODY_LIMIT`] bytes deep; a 429 or 503 with a
//! `Retry-After` of at most `retry_after_max` is retried once on the same
//! proxy after that wait, otherwise it is a failure like any other.

pub mod answers;
pub mod client;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sparta_core::proxylist::{Fallthrough, ProxyEntry};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tracing::debug;

pub use client::{error_chain, http_client};

/// Bound on one whole fetch of a small file (`.info`, `.mod`, list, latest).
pub const SMALL_FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// The one error type of the upstream layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Every proxy said not found (400, 404 or 410); `status` is the last one's
    /// answer mapped to 404 or 410.
    #[error("{reason}")]
    NotFound { status: u16, reason: String },
    /// A proxy did not answer in time.
    #[error("upstream timed out: {0}")]
    Timeout(String),
    /// A proxy failed: 5xx, refused connection, truncated or oversized body.
    #[error("upstream failed: {0}")]
    Failed(String),
}

/// Settings for the upstream client.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The proxy list, in order.
    pub proxies: Vec<ProxyEntry>,
    /// Limit for one whole fetch from one proxy, body included (zips; small
    /// files use the shorter of this and [`SMALL_FETCH_TIMEOUT`]).
    pub timeout: Duration,
    /// Longest wait for the next body chunk before the fetch fails.
    pub idle_timeout: Duration,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Longest `Retry-After` waited for once after a 429 or 503.
    pub retry_after_max: Duration,
}

/// An HTTP client for a list of upstream proxies.
#[derive(Debug, Clone)]
pub struct Upstream {
    proxies: Vec<ProxyEntry>,
    client: reqwest::Client,
    timeout: Duration,
    idle: Duration,
    retry_after_max: Duration,
}

impl Upstream {
    /// Builds the client; fails only if the TLS stack cannot start.
    pub fn new(config: UpstreamConfig) -> Result<Self, UpstreamError> {
        let client = http_client(config.connect_timeout)
            .map_err(|e| UpstreamError::Failed(format!("cannot build http client: {e}")))?;
        Ok(Upstream {
            proxies: config.proxies,
            client,
            timeout: config.timeout,
            idle: config.idle_timeout,
            retry_after_max: config.retry_after_max,
        })
    }

    /// The proxy base URLs, for logs.
    pub fn describe(&self) -> String {
        self.proxies
            .iter()
            .map(|p| p.url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The `host[:port]` of the first proxy, which most fetches go to (the
    /// per-host fetch limit's key).
    pub fn first_host(&self) -> String {
        self.proxies
            .first()
            .and_then(|p| url::Url::parse(&p.url).ok())
            .map(|u| match (u.host_str(), u.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                _ => String::new(),
            })
            .unwrap_or_default()
    }

    /// Fetches a small file (`.info`, `.mod`, list, latest) whole, refusing
    /// bodies over `limit` bytes. `path` is an escaped proxy path without a
    /// leading slash, e.g. `github.com/!azure/x/@v/list`.
    pub async fn fetch_bytes(&self, path: &str, limit: u64) -> Result<Bytes, UpstreamError> {
        let bound = self.timeout.min(SMALL_FETCH_TIMEOUT);
        self.walk(path, bound, |proxy| async move {
            let url = format!("{}/{}", proxy.url, path);
            let mut buf = BytesMut::new();
            let started = Instant::now();
            let response = self.send(&url).await?;
            let expected = declared_length(&url, &response, limit)?;
            let mut body = response.bytes_stream();
            while let Some(chunk) = self.next_chunk(&url, &mut body).await? {
                if buf.len() as u64 + chunk.len() as u64 > limit {
                    return Err(UpstreamError::Failed(format!(
                        "{url}: body is over the {limit}-byte limit"
                    )));
                }
                buf.extend_from_slice(&chunk);
            }
            check_length(&url, expected, buf.len() as u64)?;
            debug!(url = %url, bytes = buf.len(), elapsed_ms = started.elapsed().as_millis() as u64, "fetched");
            Ok(buf.freeze())
        })
        .await
    }

    /// Streams a large file (`.zip`) into `file`, refusing bodies over `limit`
    /// bytes. On failure the file is emptied before the next proxy is tried.
    /// Returns the number of bytes written.
    pub async fn fetch_to_file(
        &self,
        path: &str,
        file: &mut tokio::fs::File,
        limit: u64,
    ) -> Result<u64, UpstreamError> {
        self.fetch_to_file_sized(path, file, limit, |_| async { Ok(()) })
            .await
    }

    /// [`Upstream::fetch_to_file`], calling `sized` with the announced length
    /// (`None` without a Content-Length) after each proxy's headers and before
    /// its body is read: the caller reserves room for it, or fails the attempt.
    pub async fn fetch_to_file_sized<S, SF>(
        &self,
        path: &str,
        file: &mut tokio::fs::File,
        limit: u64,
        sized: S,
    ) -> Result<u64, UpstreamError>
    where
        S: Fn(Option<u64>) -> SF,
        SF: std::future::Future<Output = Result<(), UpstreamError>>,
    {
        // The closure borrows `file` mutably per attempt; attempts never
        // overlap. Only an attempt after one that may have written resets
        // it (each reset is two trips to a blocking thread).
        let file = tokio::sync::Mutex::new((file, false));
        let sized = &sized;
        self.walk(path, self.timeout, |proxy| {
            let file = &file;
            async move {
                let url = format!("{}/{}", proxy.url, path);
                let mut held = file.lock().await;
                let (file, used) = &mut *held;
                if *used {
                    reset_file(file).await?;
                }
                *used = true;
                let response = self.send(&url).await?;
                let expected = declared_length(&url, &response, limit)?;
                sized(expected).await?;
                let mut written: u64 = 0;
                let mut body = response.bytes_stream();
                // Chunks arrive a few KiB at a time; each write to a tokio
                // file is a trip to a blocking thread.
                let mut out = tokio::io::BufWriter::with_capacity(SPOOL_WRITE_BUFFER, &mut **file);
                while let Some(chunk) = self.next_chunk(&url, &mut body).await? {
                    written += chunk.len() as u64;
                    if written > limit {
                        return Err(UpstreamError::Failed(format!(
                            "{url}: body is over the {limit}-byte limit"
                        )));
                    }
                    out.write_all(&chunk)
                        .await
                        .map_err(|e| UpstreamError::Failed(format!("spool write failed: {e}")))?;
                }
                check_length(&url, expected, written)?;
                out.flush()
                    .await
                    .map_err(|e| UpstreamError::Failed(format!("spool flush failed: {e}")))?;
                Ok(written)
            }
        })
        .await
    }

    /// Runs `attempt` against each proxy in turn, following GOPROXY fallthrough
    /// The next body chunk, failing after the idle timeout without one.
    async fn next_chunk(
        &self,
        url: &str,
        body: &mut (impl futures::Stream<Item = reqwest::Result<Bytes>> + Unpin),
    ) -> Result<Option<Bytes>, UpstreamError> {
        match tokio::time::timeout(self.idle, body.next()).await {
            Ok(None) => Ok(None),
            Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
            Ok(Some(Err(e))) => Err(body_error(url, &e)),
            Err(_) => Err(UpstreamError::Timeout(format!(
                "{url}: body stalled, nothing for {:?}",
                self.idle
            ))),
        }
    }

    /// Runs `attempt` against each proxy in turn, following GOPROXY fallthrough
    /// rules, each attempt bounded by `bound`.
    async fn walk<'a, T, F, Fut>(
        &'a self,
        path: &str,
        bound: Duration,
        attempt: F,
    ) -> Result<T, UpstreamError>
    where
        F: Fn(&'a ProxyEntry) -> Fut,
        Fut: std::future::Future<Output = Result<T, UpstreamError>>,
    {
        let mut last = UpstreamError::NotFound {
            status: 404,
            reason: format!("not found: {path}"),
        };
        for proxy in &self.proxies {
            let result = match tokio::time::timeout(bound, attempt(proxy)).await {
                Ok(result) => result,
                Err(_) => Err(UpstreamError::Timeout(format!(
                    "{}/{path}: no complete answer within {bound:?}",
                    proxy.url
                ))),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(err @ UpstreamError::NotFound { .. }) => last = err,
                Err(err) => {
                    debug!(proxy = %proxy.url, error = %err, "upstream attempt failed");
                    if proxy.fallthrough == Fallthrough::OnAnyError {
                        last = err;
                    } else {
                        return Err(err);
                    }
                }
            }
        }
        Err(last)
    }

    /// Sends a GET and sorts the status: 2xx passes, 400/404/410 are not found,
    /// a 429 or 503 is retried once after a short enough `Retry-After`,
    /// anything else (redirects included) is a failure.
    async fn send(&self, url: &str) -> Result<reqwest::Response, UpstreamError> {
        let mut retried = false;
        loop {
            // The current span is the fetch's `source` span: the upstream
            // sees it as the parent of its own.
            let response = self
                .client
                .get(url)
                .headers(sparta_trace::headers())
                .send()
                .await
                .map_err(|e| {
                    if e.is_timeout() {
                        UpstreamError::Timeout(format!("{url}: {e}"))
                    } else {
                        UpstreamError::Failed(format!("{url}: {}", error_chain(&e)))
                    }
                })?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let code = status.as_u16();
            if status.is_redirection() {
                return Err(UpstreamError::Failed(format!(
                    "{url}: status {code}: redirects are not followed"
                )));
            }
            if matches!(code, 429 | 503) {
                let wait = client::retry_after(&response);
                match wait {
                    Some(wait) if !retried && wait <= self.retry_after_max => {
                        drop(response);
                        debug!(
                            url,
                            wait_ms = wait.as_millis() as u64,
                            code,
                            "upstream asks to retry later"
                        );
                        tokio::time::sleep(wait).await;
                        retried = true;
                        continue;
                    }
                    Some(wait) => {
                        return Err(UpstreamError::Failed(format!(
                            "{url}: status {code}, retry after {}s",
                            wait.as_secs()
                        )));
                    }
                    None => return Err(UpstreamError::Failed(format!("{url}: status {code}"))),
                }
            }
            return match code {
                400 | 404 | 410 => {
                    // Keep upstream's short reason: the go command shows it to users.
                    let body = client::bounded_error_body(response, self.idle).await;
                    let reason = client::reason_line(&body);
                    let reason = if reason.is_empty() {
                        format!("not found: {url}")
                    } else {
                        reason
                    };
                    Err(UpstreamError::NotFound {
                        status: if code == 410 { 410 } else { 404 },
                        reason,
                    })
                }
                code => Err(UpstreamError::Failed(format!("{url}: status {code}"))),
            };
        }
    }
}

/// The body length upstream announced, refused early when over `limit`.
fn declared_length(
    url: &str,
    response: &reqwest::Response,
    limit: u64,
) -> Result<Option<u64>, UpstreamError> {
    match response.content_length() {
        Some(n) if n > limit => Err(UpstreamError::Failed(format!(
            "{url}: body of {n} bytes is over the {limit}-byte limit"
        ))),
        declared => Ok(declared),
    }
}

fn check_length(url: &str, expected: Option<u64>, got: u64) -> Result<(), UpstreamError> {
    match expected {
        Some(n) if n != got => Err(UpstreamError::Failed(format!(
            "{url}: body has {got} bytes, Content-Length said {n}"
        ))),
        _ => Ok(()),
    }
}

fn body_error(url: &str, e: &reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout(format!("{url}: {e}"))
    } else {
        UpstreamError::Failed(format!("{url}: body incomplete: {}", error_chain(e)))
    }
}

/// Bytes of a spooled body gathered before each write to the spool file.
const SPOOL_WRITE_BUFFER: usize = 64 << 10;

async fn reset_file(file: &mut tokio::fs::File) -> Result<(), UpstreamError> {
    let io = |e: std::io::Error| UpstreamError::Failed(format!("spool reset failed: {e}"));
    file.set_len(0).await.map_err(io)?;
    file.seek(std::io::SeekFrom::Start(0)).await.map_err(io)?;
    Ok(())
}
