//! The server's one error type and its one mapping to HTTP.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sparta_core::CoreError;
use sparta_storage::StorageError;
use sparta_upstream::UpstreamError;

/// Why a request could not be answered with content. Cheap to clone, so one
/// singleflight result can be handed to every waiter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The path is not a valid proxy request (bad module path, version, escape).
    #[error("{0}")]
    Invalid(String),
    /// A query parameter of a catalog, index or page request is unusable.
    #[error("{0}")]
    BadQuery(String),
    /// Nothing is there: 404, or 410 when upstream said gone.
    #[error("{reason}")]
    NotFound { status: u16, reason: String },
    /// A method other than GET or HEAD.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A byte range beyond the end of the file.
    #[error("range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    /// Upstream failed or sent something that breaks the rules.
    #[error("{0}")]
    Upstream(String),
    /// Upstream sent a file the checksum database contradicts: 502 with that
    /// reason (public hashes, no internal detail), so the client sees why.
    #[error("{0}")]
    Refused(String),
    /// Upstream did not answer in time.
    #[error("{0}")]
    UpstreamTimeout(String),
    /// Storage is unreachable or failed.
    #[error("{0}")]
    Storage(String),
    /// A fetch limit stayed full for the queue wait: try again later.
    #[error("{reason}")]
    Overloaded { reason: String, retry_after: u64 },
}

impl ProxyError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            // The go command falls through to the next proxy only on 404/410,
            // so malformed requests are "not found", never 400.
            ProxyError::Invalid(_) => StatusCode::NOT_FOUND,
            ProxyError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ProxyError::NotFound { status: 410, .. } => StatusCode::GONE,
            // `--download-mode ...=none:403`: stops the go command's `,` fallback.
            ProxyError::NotFound { status: 403, .. } => StatusCode::FORBIDDEN,
            ProxyError::NotFound { .. } => StatusCode::NOT_FOUND,
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ProxyError::Upstream(_) | ProxyError::Refused(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            // The go command does not fall through a `,` list on a 503: the
            // client sees the error (docs/CONTRACTS.md, Fetch limits).
            ProxyError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// What the client is told: the reason for 4xx answers (the go command
    /// shows a 404/410 body to its user), a short fixed text for 5xx ones,
    /// whose detail (storage messages, upstream addresses) stays in the log.
    pub fn public_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            ProxyError::Upstream(_) => "upstream failed or sent an invalid answer".into(),
            ProxyError::UpstreamTimeout(_) => "upstream timed out".into(),
            ProxyError::Storage(_) => "storage unavailable".into(),
            e => e.to_string().into(),
        }
    }

    /// True for the variants whose text is internal detail.
    fn is_internal(&self) -> bool {
        matches!(
            self,
            ProxyError::Upstream(_) | ProxyError::UpstreamTimeout(_) | ProxyError::Storage(_)
        )
    }
}

/// `text` with the current request's id, so a client's report leads to the
/// log lines that hold the detail.
pub fn with_request_id(text: &str) -> String {
    match crate::reqid::current() {
        Some(id) => format!("{text} (request id {id})\n"),
        None => format!("{text}\n"),
    }
}

impl From<CoreError> for ProxyError {
    fn from(e: CoreError) -> Self {
        ProxyError::Invalid(e.to_string())
    }
}

impl From<UpstreamError> for ProxyError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::NotFound { status, reason } => ProxyError::NotFound { status, reason },
            UpstreamError::Timeout(m) => ProxyError::UpstreamTimeout(m),
            UpstreamError::Failed(m) => ProxyError::Upstream(m),
        }
    }
}

impl From<crate::source::SourceError> for ProxyError {
    fn from(e: crate::source::SourceError) -> Self {
        use crate::source::SourceError as S;
        match e {
            S::NotFound { status, reason } => ProxyError::NotFound { status, reason },
            // The go command shows a 404/410 body and may try its next
            // proxy; a refusal is final for this source, never a 5xx.
            S::Refused(reason) | S::TooLarge(reason) => ProxyError::NotFound {
                status: 404,
                reason,
            },
            S::Timeout(m) => ProxyError::UpstreamTimeout(m),
            S::Failed(m) => ProxyError::Upstream(m),
        }
    }
}

impl From<sparta_core::range::Unsatisfiable> for ProxyError {
    fn from(e: sparta_core::range::Unsatisfiable) -> Self {
        ProxyError::RangeNotSatisfiable { size: e.size }
    }
}

impl From<crate::limits::Refused> for ProxyError {
    fn from(r: crate::limits::Refused) -> Self {
        ProxyError::Overloaded {
            reason: format!("sparta is busy: {r}"),
            retry_after: r.retry_after,
        }
    }
}

impl From<StorageError> for ProxyError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::InvalidRange { size } => ProxyError::RangeNotSatisfiable { size },
            e => ProxyError::Storage(e.to_string()),
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = if self.is_internal() {
            // In the request's span: the log line carries its id.
            tracing::warn!(status = status.as_u16(), error = %self, "request failed");
            with_request_id(&self.public_text())
        } else {
            let mut body = self.to_string();
            body.push('\n');
            body
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self {
            ProxyError::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            ProxyError::RangeNotSatisfiable { size } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
            }
            ProxyError::Overloaded { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            _ => {}
        }
        response
    }
}
