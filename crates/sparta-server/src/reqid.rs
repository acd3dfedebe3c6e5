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

use crate::audit::{Tier, TierSlot};

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

/// What a request's task knows of the request: its id and, when it is
/// audited, the slot the service notes its cache tier in. One task-local
/// for both: a request pays for one scope, not one per fact.
#[derive(Clone)]
struct Scope {
    id: RequestId,
    tier: Option<TierSlot>,
}

tokio::task_local! {
    static CURRENT: Scope;
}

/// `fut` as the request `id`, its tier noted in `tier` when audited. Not
/// an `async fn`: that would hold `fut` twice (as its argument and as what
/// it awaits), and a request's future is copied whole into its box.
pub fn scope<F: Future>(
    id: RequestId,
    tier: Option<TierSlot>,
    fut: F,
) -> impl Future<Output = F::Output> {
    CURRENT.scope(Scope { id, tier }, fut)
}

/// `fut` with the current request's id and tier slot, if any, for running
/// on another task: lines it logs name the request that started it, and
/// the tier it finds is that request's.
pub fn carried<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let scope = CURRENT.try_with(Clone::clone).ok();
    async move {
        match scope {
            Some(scope) => CURRENT.scope(scope, fut).await,
            None => fut.await,
        }
    }
}

/// The id of the request being served on this task, if any.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(|s| s.id.clone()).ok()
}

/// The tier noted for the current request; `None` when it is not audited.
pub(crate) fn noted_tier() -> Option<Tier> {
    CURRENT
        .try_with(|s| {
            s.tier
                .as_ref()
                .map(|t| Tier::from_slot(t.load(Ordering::Relaxed)))
        })
        .ok()
        .flatten()
}

/// Notes where the current request's file came from, if it is audited.
pub(crate) fn note_tier(tier: Tier) {
    let _ = CURRENT.try_with(|s| {
        if let Some(slot) = &s.tier {
            slot.store(tier as u8, Ordering::Relaxed);
        }
    });
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
        assert_eq!(scope(id.clone(), None, async { current() }).await, Some(id));
        assert_eq!(current(), None);
    }

    #[tokio::test]
    async fn a_carried_future_keeps_the_id_and_tier_slot_on_another_task() {
        let id = RequestId::parse("abc").unwrap();
        let slot = TierSlot::default();
        // The spawned task has task-locals of its own: it sees the id, and
        // notes its tier in the request's slot, only because it was carried.
        let seen = scope(id.clone(), Some(slot.clone()), async {
            tokio::spawn(carried(async {
                note_tier(Tier::Upstream);
                current()
            }))
            .await
            .unwrap()
        })
        .await;
        assert_eq!(seen, Some(id));
        assert_eq!(
            Tier::from_slot(slot.load(Ordering::Relaxed)),
            Tier::Upstream
        );
        // Unaudited (no slot), a note is dropped.
        scope(RequestId::generate(), None, async {
            note_tier(Tier::Storage);
            assert_eq!(noted_tier(), None);
        })
        .await;
        assert_eq!(
            tokio::spawn(carried(async { current() })).await.unwrap(),
            None
        );
    }
}
