//! One id per request: taken from a sane incoming `x-request-id` (a load
//! balancer's), else made here. It is returned in the response header, is a
//! field of the request's tracing span (so every log line of the request
//! carries it), goes into the audit line, and is quoted in error bodies so
//! a client's report leads to the log lines with the detail.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// The header that carries the id both ways.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming id kept; a longer one is replaced.
const MAX_LEN: usize = 64;

/// A request id: 1 to 64 characters of `[A-Za-z0-9._:-]`. Kept as the
/// header value it is answered with: an incoming one is shared, not copied,
/// and no second copy is made for the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The incoming id when it is sane, else a new one.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get(&HEADER)
            .filter(|v| Self::sane(v.as_bytes()))
            .map(|v| RequestId(v.clone()))
            .unwrap_or_else(Self::generate)
    }

    /// An id from a client, if it is short and plain enough to log and echo.
    pub fn parse(s: &str) -> Option<Self> {
        if !Self::sane(s.as_bytes()) {
            return None;
        }
        HeaderValue::from_str(s).ok().map(RequestId)
    }

    fn sane(s: &[u8]) -> bool {
        !s.is_empty()
            && s.len() <= MAX_LEN
            && s.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    }

    /// A fresh id: 16 hex digits, unique within the process and unlikely
    /// to repeat across replicas (randomly keyed hash of a counter).
    pub fn generate() -> Self {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        static KEY: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
        let mut h = KEY.get_or_init(RandomState::new).build_hasher();
        h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
        // Not `format!`, which cost a tenth of serving a warm file; the
        // digits' buffer becomes the header value without a copy.
        let digits = sparta_core::hash::hex(&h.finish().to_be_bytes());
        RequestId(
            HeaderValue::from_maybe_shared(bytes::Bytes::from(digits))
                .expect("hex digits are a valid header"),
        )
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only `[A-Za-z0-9._:-]` ever gets in (checked where it is made).
        self.0.to_str().unwrap_or("invalid")
    }

    /// The id as a header value.
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

tokio::task_local! {
    static CURRENT: RequestId;
}

/// `fut` with `id` as the current request's id. Not an `async fn`: that
/// would hold `fut` twice (as its argument and as what it awaits), and a
/// request's future is copied whole into its box.
pub fn scope<F: Future>(id: RequestId, fut: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(id, fut)
}

/// `fut` with the current request's id, if any, for running on another
/// task: lines it logs name the request that started it.
pub fn carried<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let id = current();
    async move {
        match id {
            Some(id) => CURRENT.scope(id, fut).await,
            None => fut.await,
        }
    }
}

/// The id of the request being served on this task, if any.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_incoming_id_is_kept() {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static("lb-7f3a:01.x_y"));
        assert_eq!(RequestId::from_headers(&h).as_str(), "lb-7f3a:01.x_y");
    }

    #[test]
    fn an_odd_incoming_id_is_replaced() {
        for bad in ["", "has space", "a\"quote", "new\nline", &"x".repeat(65)] {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(bad) {
                h.insert(HEADER, v);
            }
            let id = RequestId::from_headers(&h);
            assert_ne!(id.as_str(), bad);
            assert_eq!(id.as_str().len(), 16, "{id}");
        }
    }

    #[test]
    fn generated_ids_differ() {
        let ids: std::collections::HashSet<_> = (0..1000)
            .map(|_| RequestId::generate().as_str().to_owned())
            .collect();
        assert_eq!(ids.len(), 1000);
    }

    #[tokio::test]
    async fn the_current_id_is_seen_inside_its_scope_only() {
        let id = RequestId::parse("abc").unwrap();
        assert_eq!(scope(id.clone(), async { current() }).await, Some(id));
        assert_eq!(current(), None);
    }

    #[tokio::test]
    async fn a_carried_future_keeps_the_id_on_another_task() {
        let id = RequestId::parse("abc").unwrap();
        // The spawned task has task-locals of its own: it sees the id only
        // because it was carried.
        let seen = scope(id.clone(), async {
            tokio::spawn(carried(async { current() })).await.unwrap()
        })
        .await;
        assert_eq!(seen, Some(id));
        assert_eq!(
            tokio::spawn(carried(async { current() })).await.unwrap(),
            None
        );
    }
}
