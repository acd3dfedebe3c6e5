//! `/sumdb/...`: the checksum database relay, its answers from what is
//! stored when offline or asked for `cached-only`.

use axum::http::Method;
use axum::response::Response;

use super::bytes_response;
use crate::AppState;
use crate::cache::{IMMUTABLE, REVALIDATE};
use crate::error::ProxyError;

/// `/sumdb/<name>/<path>`: the checksum database relay.
pub(super) async fn relay(
    state: &AppState,
    method: &Method,
    path: &str,
) -> Result<Response, ProxyError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ProxyError::MethodNotAllowed);
    }
    let rest = path.strip_prefix("sumdb/").unwrap_or(path);
    let Some((name, file)) = rest.split_once('/') else {
        return Err(ProxyError::Invalid(format!(
            "not a checksum database path: {path}"
        )));
    };
    let (cached_only, looked_up) = match file.strip_prefix("cached-only/") {
        Some(rest) => (true, rest),
        None => (false, file),
    };
    // A private module's name never leaves: no lookup of it is relayed.
    if let Some(module) = looked_up
        .strip_prefix("lookup/")
        .and_then(|l| l.rsplit_once('@'))
        .and_then(|(m, _)| sparta_core::ModulePath::from_escaped(m).ok())
        && state.proxy.is_private(&module)
    {
        return Err(ProxyError::NotFound {
            status: 404,
            reason: format!("{module} is private: not looked up in a checksum database"),
        });
    }
    // Offline, the checksum database is answered from what is stored.
    let found = if cached_only || state.proxy.offline() {
        state.proxy.sumdb().cached(name, looked_up).await
    } else {
        state.proxy.sumdb().proxy(name, file).await
    };
    let file = match found {
        Ok(file) => file,
        Err(sparta_sumdb::SumdbError::NotFound(reason)) => {
            return Err(ProxyError::NotFound {
                status: 404,
                reason,
            });
        }
        Err(e) => return Err(ProxyError::Upstream(e.to_string())),
    };
    state
        .metrics
        .cache_lookups
        .with_label_values(&[file.tier.as_str(), "sumdb", "hit"])
        .inc();
    let cache_control = if file.immutable {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    Ok(bytes_response(file.body, file.content_type, cache_control))
}
