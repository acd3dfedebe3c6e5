//! Background fetches for `--download-mode ...=async`: the client got a
//! 404 at once; the file is fetched through the usual path for next time,
//! at most [`MAX_BACKGROUND`] at a time (more are dropped, not queued).

use std::sync::Arc;

use sparta_core::download::{Action, DownloadModes};
use sparta_core::{FileKind, InfoVersion, ProxyRequest};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::Proxy;

/// Background fetches running at once, per replica.
pub const MAX_BACKGROUND: usize = 16;

/// The permits of background fetches.
pub(super) fn permits() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MAX_BACKGROUND))
}

impl Proxy {
    /// The download-mode decision for one parsed request.
    pub fn download_action(&self, request: &ProxyRequest, path: &str) -> Action {
        let modes: &DownloadModes = &self.inner.config.download_modes;
        let action = modes.decide(request, path);
        let label = modes.mode(request.module().as_str()).label();
        self.inner
            .metrics
            .download_mode_requests
            .with_label_values(&[label])
            .inc();
        action
    }

    /// Counts a 302 a download mode sent (`redirect` or `presigned`).
    pub fn count_redirect(&self, mode: &'static str) {
        self.inner
            .metrics
            .download_redirects
            .with_label_values(&[mode])
            .inc();
    }

    /// Starts fetching `request` in the background unless too many already
    /// run; returns whether it started.
    pub fn fetch_in_background(&self, request: ProxyRequest) -> bool {
        let Ok(permit) = Arc::clone(&self.inner.background).try_acquire_owned() else {
            self.count_background("dropped");
            return false;
        };
        self.count_background("started");
        let this = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let result = match &request {
                ProxyRequest::List(m) => this.list(m).await.map(drop),
                ProxyRequest::Latest(m) => this.latest(m).await.map(drop),
                ProxyRequest::Info(m, InfoVersion::Query(q)) => this.query(m, q).await.map(drop),
                ProxyRequest::Info(m, InfoVersion::Canonical(v)) => {
                    this.small_file(m, v, FileKind::Info).await.map(drop)
                }
                ProxyRequest::Mod(m, v) => this.small_file(m, v, FileKind::Mod).await.map(drop),
                ProxyRequest::Zip(m, v) => this.zip(m, v, None).await.map(drop),
            };
            match result {
                Ok(()) => debug!(module = %request.module(), "fetched in the background"),
                Err(e) => warn!(module = %request.module(), error = %e, "background fetch failed"),
            }
        });
        true
    }

    fn count_background(&self, outcome: &'static str) {
        self.inner
            .metrics
            .background_fetches
            .with_label_values(&[outcome])
            .inc();
    }
}
