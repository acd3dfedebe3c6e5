//! Shared freshness of mutable answers: one fetch per answer per TTL across
//! every replica on a store.
//!
//! Next to each stored answer (list, latest, query) lies a small record,
//! `_sparta/fresh/<answer key>`, with the time the answer was fetched and
//! the hash of its body. A replica whose memory tier has no fresh answer
//! reads that record before it asks the source: a fresh record whose hash
//! matches the stored answer is served as is. After a fetch, the answer is
//! written only when its hash differs from the record's, then the record.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use sparta_core::hash::hex;
use sparta_core::key;
use tracing::warn;

use super::checks::check_mutable;
use super::{Kind, Proxy};

/// A record written this far in the future (by a replica whose clock runs
/// ahead) still counts as fresh from now; further out it counts as stale.
const SKEW_TOLERANCE: Duration = Duration::from_secs(5);

/// When an answer was fetched and what its body hashes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Freshness {
    pub fetched_ms: u64,
    pub sha256: String,
}

impl Freshness {
    /// A record for `body` fetched now.
    pub fn now(body: &[u8]) -> Freshness {
        Freshness {
            fetched_ms: now_ms(),
            sha256: body_hash(body),
        }
    }

    fn encode(&self) -> Bytes {
        Bytes::from(format!("v1 {} {}\n", self.fetched_ms, self.sha256))
    }

    fn decode(raw: &[u8]) -> Option<Freshness> {
        let text = std::str::from_utf8(raw).ok()?;
        let mut parts = text.trim_end().split(' ');
        if parts.next()? != "v1" {
            return None;
        }
        let fetched_ms = parts.next()?.parse().ok()?;
        let sha256 = parts.next()?.to_owned();
        if parts.next().is_some() || sha256.len() != 64 {
            return None;
        }
        Some(Freshness { fetched_ms, sha256 })
    }

    /// How much of `ttl` is left at `now_ms`; `None` once stale.
    fn remaining(&self, ttl: Duration, now_ms: u64) -> Option<Duration> {
        let skew = SKEW_TOLERANCE.as_millis() as u64;
        if self.fetched_ms > now_ms.saturating_add(skew) {
            return None;
        }
        let age = Duration::from_millis(now_ms.saturating_sub(self.fetched_ms));
        ttl.checked_sub(age).filter(|left| !left.is_zero())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The hex sha256 of an answer's body.
pub(super) fn body_hash(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

impl Proxy {
    /// The stored freshness record of `answer_key`; `None` when absent,
    /// unreadable or unreachable (the caller then fetches).
    pub(super) async fn freshness(&self, answer_key: &str) -> Option<Freshness> {
        if self.inner.config.list_ttl.is_zero() {
            return None;
        }
        let raw = self
            .timed_storage("get", self.inner.store.get(&key::freshness(answer_key)))
            .await
            .ok()??;
        Freshness::decode(&raw)
    }

    /// Whether `record` is within the TTL now.
    pub(super) fn is_fresh(&self, record: &Freshness) -> bool {
        record
            .remaining(self.inner.config.list_ttl, now_ms())
            .is_some()
    }

    /// The stored answer under `answer_key` if `record` says it is fresh
    /// and the answer passes its checks: its body and the TTL left.
    pub(super) async fn fresh_stored(
        &self,
        kind: Kind,
        answer_key: &str,
        record: &Freshness,
    ) -> Option<(Bytes, Duration)> {
        let left = record.remaining(self.inner.config.list_ttl, now_ms())?;
        let body = self.stored(kind, answer_key).await.ok()??;
        let valid = body_hash(&body) == record.sha256 && check_mutable(kind, &body).is_ok();
        valid.then_some((body, left))
    }

    /// Persists a fetched answer: the body only when it differs from what
    /// `previous` says is stored, then the record of this fetch. Failures
    /// are logged, never returned: the answer is still served.
    pub(super) async fn persist_answer(
        &self,
        answer_key: &str,
        body: &Bytes,
        previous: Option<&Freshness>,
    ) {
        let record = Freshness::now(body);
        if previous.map(|p| &p.sha256) != Some(&record.sha256) {
            let put = self.inner.store.put_overwrite(answer_key, body.clone());
            if let Err(e) = self.timed_storage("put", put).await {
                warn!(key = %answer_key, error = %e, "could not persist answer");
                return;
            }
        }
        if self.inner.config.list_ttl.is_zero() {
            return;
        }
        let record_key = key::freshness(answer_key);
        let put = self.inner.store.put_overwrite(&record_key, record.encode());
        if let Err(e) = self.timed_storage("put", put).await {
            warn!(key = %answer_key, error = %e, "could not record when the answer was fetched");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_junk_is_refused() {
        let r = Freshness::now(b"v1.0.0\n");
        assert_eq!(Freshness::decode(&r.encode()), Some(r));
        for junk in [
            &b""[..],
            b"v1 12",
            b"v2 12 aa",
            b"v1 x 0000000000000000000000000000000000000000000000000000000000000000",
            b"v1 1 00",
            b"\xff\xfe",
        ] {
            assert_eq!(Freshness::decode(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn freshness_follows_the_ttl_and_tolerates_some_skew() {
        let ttl = Duration::from_secs(60);
        let at = |fetched_ms| Freshness {
            fetched_ms,
            sha256: String::new(),
        };
        let now = 1_000_000_000;
        assert_eq!(at(now).remaining(ttl, now), Some(ttl));
        assert_eq!(
            at(now - 10_000).remaining(ttl, now),
            Some(Duration::from_secs(50))
        );
        assert_eq!(at(now - 60_000).remaining(ttl, now), None);
        assert_eq!(at(now - 600_000).remaining(ttl, now), None);
        // A writer a little ahead: fresh for the whole TTL from now.
        assert_eq!(at(now + 2_000).remaining(ttl, now), Some(ttl));
        // Far ahead: not to be trusted.
        assert_eq!(at(now + 60_000).remaining(ttl, now), None);
        assert_eq!(at(now).remaining(Duration::ZERO, now), None);
    }
}
