//! What a source's answer must look like before it is cached or stored,
//! and the checksum database's verdict on it.

use sparta_core::{ModulePath, Version};
use sparta_sumdb::{SumdbError, Verdict};
use tracing::warn;

use super::{Kind, Proxy};
use crate::error::ProxyError;

impl Proxy {
    /// Checks a go.mod against the checksum database; a private module
    /// (routed to `direct`) is never looked up there and counts as skipped.
    pub(super) async fn verify_mod(
        &self,
        private: bool,
        module: &ModulePath,
        version: &Version,
        body: &[u8],
    ) -> Result<(), ProxyError> {
        let verdict = if private {
            Ok(Verdict::Skipped)
        } else {
            self.inner.sumdb.verify_mod(module, version, body).await
        };
        self.record_verification(module, version, "mod", verdict)
    }

    /// Checks a zip's `h1:` against the checksum database, as [`Self::verify_mod`].
    pub(super) async fn verify_zip(
        &self,
        private: bool,
        module: &ModulePath,
        version: &Version,
        h1: &str,
    ) -> Result<(), ProxyError> {
        let verdict = if private {
            Ok(Verdict::Skipped)
        } else {
            self.inner.sumdb.verify_zip(module, version, h1).await
        };
        self.record_verification(module, version, "zip", verdict)
    }

    /// Counts a checksum verification; any failure refuses the file with a
    /// 502 (never a 404, so the go command does not try another proxy).
    fn record_verification(
        &self,
        module: &ModulePath,
        version: &Version,
        file: &'static str,
        verdict: Result<Verdict, SumdbError>,
    ) -> Result<(), ProxyError> {
        let outcome = match &verdict {
            Ok(Verdict::Verified) => "ok",
            Ok(Verdict::Skipped) => "skipped",
            Err(SumdbError::Mismatch { .. }) => "mismatch",
            Err(_) => "error",
        };
        self.inner
            .metrics
            .sumdb_verifications
            .with_label_values(&[outcome])
            .inc();
        match verdict {
            Ok(_) => Ok(()),
            Err(e) => {
                warn!(module = %module, version = %version, file, error = %e, "refused: checksum database check failed");
                let reason = format!("refusing {module}@{version} .{file}: {e}");
                Err(match e {
                    SumdbError::Mismatch { .. } => ProxyError::Refused(reason),
                    _ => ProxyError::Upstream(reason),
                })
            }
        }
    }
}

/// An upstream `.info` for a canonical version must be JSON naming that version.
pub(super) fn check_info(body: &[u8], version: &Version) -> Result<(), ProxyError> {
    let info: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ProxyError::Upstream(format!("upstream .info is not JSON: {e}")))?;
    match info.get("Version").and_then(|v| v.as_str()) {
        Some(v) if v == version.as_str() => Ok(()),
        Some(v) => Err(ProxyError::Upstream(format!(
            "upstream .info names version {v}, not {version}"
        ))),
        None => Err(ProxyError::Upstream(
            "upstream .info has no Version".to_owned(),
        )),
    }
}

/// An upstream go.mod must be UTF-8 text with a module directive. The path
/// it names may differ from the request (renamed modules), and the go command
/// reports that itself, so only corruption is refused here.
pub(super) fn check_gomod(
    body: &[u8],
    module: &ModulePath,
    version: &Version,
) -> Result<(), ProxyError> {
    let text = std::str::from_utf8(body).map_err(|_| {
        ProxyError::Upstream(format!(
            "upstream go.mod for {module}@{version} is not UTF-8"
        ))
    })?;
    match sparta_core::gomod::module_directive(text) {
        Some(_) => Ok(()),
        None => Err(ProxyError::Upstream(format!(
            "upstream go.mod for {module}@{version} has no module directive"
        ))),
    }
}

pub(super) fn check_mutable(kind: Kind, body: &[u8]) -> Result<(), ProxyError> {
    match kind {
        // Only canonical versions, one per line: anything else is an
        // upstream failing (an error page, a redirect target's answer).
        Kind::List => sparta_upstream::answers::check_list(body).map_err(ProxyError::from),
        _ => {
            let value: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| ProxyError::Upstream(format!("upstream answer is not JSON: {e}")))?;
            match value.get("Version").and_then(|v| v.as_str()) {
                Some(v) if Version::parse(v).is_ok() => Ok(()),
                _ => Err(ProxyError::Upstream(
                    "upstream answer names no canonical Version".to_owned(),
                )),
            }
        }
    }
}
