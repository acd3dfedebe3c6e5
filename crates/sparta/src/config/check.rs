//! Start-up checks across settings, and the defaults that depend on the
//! environment (`$GOPROXY`, the temp dir).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

use super::Settings;

/// Fills environment-derived defaults, normalizes, and refuses settings that
/// cannot work; returns warnings for ones that work badly.
pub(super) fn finish(
    s: &mut Settings,
    sources: &mut BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    if s.upstream.is_none() {
        s.upstream = Some(default_upstream(env.get("GOPROXY").map(String::as_str))?);
        sources.insert("upstream".into(), "env GOPROXY".into());
    }
    sparta_core::proxylist::parse(s.upstream()).context("invalid upstream")?;
    sparta_core::routes::Routes::parse(&s.route).context("invalid route")?;
    let modes = sparta_core::download::DownloadModes::parse(&s.download_mode)
        .context("invalid download mode")?;
    if s.presign_ttl.is_zero() || s.presign_ttl > sparta_storage::MAX_PRESIGN_TTL {
        bail!(
            "presign_ttl must be longer than zero and at most 7 days (presigned URLs allow no more)"
        );
    }
    if modes.presigns() && !sparta_storage::url_can_presign(&s.storage) {
        bail!(
            "download_mode presigned needs storage that can presign URLs (s3://, gs:// or az://), not {:?}",
            s.storage
        );
    }

    let prefix = s.path_prefix.trim_end_matches('/').to_owned();
    if !prefix.is_empty() && !prefix.starts_with('/') {
        bail!("path_prefix must start with '/': {prefix:?}");
    }
    s.path_prefix = prefix;

    for (name, d) in [
        ("upstream_timeout", s.upstream_timeout),
        ("upstream_idle_timeout", s.upstream_idle_timeout),
        ("lease_ttl", s.lease_ttl),
        ("header_read_timeout", s.header_read_timeout),
        ("idle_timeout", s.idle_timeout),
    ] {
        if d.is_zero() {
            bail!("{name} must be longer than zero");
        }
    }
    if s.max_connections == 0 {
        bail!("max_connections must be at least 1");
    }
    if s.connection_workers.is_some_and(|n| n > 1024) {
        bail!("connection_workers must be at most 1024 (one per CPU is the default)");
    }
    let min_head = sparta_server::serve::MIN_HEADER_BYTES as u64;
    if s.max_header_bytes.as_u64() < min_head {
        bail!("max_header_bytes must be at least {min_head} bytes");
    }
    let is_s3 = s.storage.starts_with("s3://");
    if !is_s3 && (s.s3_endpoint.is_some() || s.s3_region.is_some() || s.s3_path_style) {
        warnings.push(format!(
            "s3_* settings are ignored: storage {:?} is not s3://",
            s.storage
        ));
    }
    if !s.sumdb_verify && s.sumdb_fail_open {
        warnings.push("sumdb_fail_open has no effect while sumdb_verify is false".into());
    }
    s.sumdb_config()?;
    s.access()?;

    if s.spool_dir.is_none() {
        s.spool_dir = Some(std::env::temp_dir());
    }
    let spool = s.spool_dir();
    std::fs::create_dir_all(&spool)
        .with_context(|| format!("spool_dir {} cannot be created", spool.display()))?;
    tempfile::tempfile_in(&spool)
        .with_context(|| format!("spool_dir {} is not writable", spool.display()))?;

    if let Some(ready) = &s.ready_file {
        let parent = ready.parent().filter(|p| !p.as_os_str().is_empty());
        if parent.is_some_and(|p| !p.is_dir()) {
            bail!(
                "ready_file {}: its directory does not exist",
                ready.display()
            );
        }
    }
    Ok(warnings)
}

/// The proxies of `$GOPROXY`, less `direct` and `off`, which Sparta cannot
/// serve; each kept entry keeps the separator that followed it.
pub(super) fn default_upstream(goproxy: Option<&str>) -> Result<String> {
    let goproxy = goproxy.unwrap_or_default();
    let mut out = String::new();
    let mut pending_sep = None;
    let mut start = 0;
    let ends = goproxy
        .char_indices()
        .chain(std::iter::once((goproxy.len(), ',')));
    for (i, c) in ends.filter(|(_, c)| *c == ',' || *c == '|') {
        let entry = goproxy[start..i].trim();
        start = i + 1;
        if entry.is_empty() || entry == "direct" || entry == "off" {
            continue;
        }
        if let Some(sep) = pending_sep {
            out.push(sep);
        }
        out.push_str(entry);
        pending_sep = Some(c);
    }
    if out.is_empty() {
        bail!(
            "no upstream: pass --upstream (GOPROXY syntax, e.g. https://proxy.example.com) or set SPARTA_UPSTREAM or GOPROXY"
        );
    }
    Ok(out)
}
