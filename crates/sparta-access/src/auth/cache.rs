//! Credentials verified lately, so that a client sending the same header on
//! every request pays for its check once.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::Principal;

/// How long a verified credential is remembered (bcrypt costs ~50-250 ms).
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(300);
/// How many verified credentials are remembered.
pub(crate) const CACHE_ENTRIES: usize = 4096;

/// Credentials that passed lately, keyed by the SHA-256 of the whole
/// `Authorization` value: a netrc client sends the same header on every
/// request, so a hit costs one hash and no parsing, bcrypt or token scan.
/// Only successes are kept, so bad credentials cannot grow it.
#[derive(Default)]
pub(crate) struct VerifiedCache {
    /// By the digest's first 8 bytes; the whole digest is compared in
    /// constant time on a hit.
    entries: HashMap<u64, Verified, BuildHasherDefault<DigestBits>>,
    /// Bumped (and the entries dropped) whenever a credential file reloads.
    generation: u64,
}

struct Verified {
    digest: [u8; 32],
    principal: Principal,
    at: Instant,
}

/// What the cache says of an `Authorization` value.
pub(crate) enum Lookup {
    Hit(Principal),
    Miss { key: [u8; 32], generation: u64 },
}

/// The cache key of an `Authorization` value.
pub(crate) fn digest(value: &[u8]) -> [u8; 32] {
    Sha256::digest(value).into()
}

/// Whether two digests are equal, in time that does not depend on where
/// they differ.
pub(crate) fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let word = |d: &[u8; 32], i: usize| {
        u64::from_le_bytes(d[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
    };
    (0..4).fold(0, |diff, i| diff | (word(a, i) ^ word(b, i))) == 0
}

/// The map's hash of a slot: the digest's bits as they are. They are
/// SHA-256 output, and only credentials that passed are ever inserted,
/// so nobody can pick keys that collide.
#[derive(Default)]
pub(crate) struct DigestBits(u64);

impl Hasher for DigestBits {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn slot(digest: &[u8; 32]) -> u64 {
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

impl VerifiedCache {
    /// The generation a verification starting now decides under.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Forgets everything: a credential file reloaded, and what was
    /// verified against the old one must not outlive it.
    pub(crate) fn reloaded(&mut self) {
        self.entries.clear();
        self.generation += 1;
    }

    /// How many credentials are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The principal verified for `digest`, and when, while fresh.
    pub(crate) fn hit(&self, digest: &[u8; 32], now: Instant) -> Option<(&Principal, Instant)> {
        let e = self.entries.get(&slot(digest))?;
        let fresh = now.saturating_duration_since(e.at) < CACHE_TTL;
        (same_digest(&e.digest, digest) && fresh).then_some((&e.principal, e.at))
    }

    /// Remembers a success decided under `generation`; a file reloaded
    /// since then makes it stale, so it is not kept.
    pub(crate) fn insert(
        &mut self,
        digest: [u8; 32],
        principal: Principal,
        generation: u64,
        now: Instant,
    ) {
        if generation != self.generation {
            return;
        }
        if self.entries.len() >= CACHE_ENTRIES {
            self.entries
                .retain(|_, e| now.saturating_duration_since(e.at) < CACHE_TTL);
            if self.entries.len() >= CACHE_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries.insert(
            slot(&digest),
            Verified {
                digest,
                principal,
                at: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_bounded() {
        let mut c = VerifiedCache::default();
        let now = Instant::now();
        for i in 0..(CACHE_ENTRIES * 2) {
            let k = digest(i.to_string().as_bytes());
            c.insert(k, Principal::User("u".into()), 0, now);
            assert!(c.entries.len() <= CACHE_ENTRIES);
        }
    }

    #[test]
    fn digests_compare_whole() {
        let a = digest(b"x");
        for i in 0..32 {
            let mut b = a;
            b[i] ^= 1;
            assert!(!same_digest(&a, &b), "byte {i}");
        }
        assert!(same_digest(&a, &digest(b"x")));
    }

    #[test]
    fn entries_expire() {
        let mut c = VerifiedCache::default();
        let t0 = Instant::now();
        let k = digest(b"Bearer tok");
        c.insert(k, Principal::Token("ci".into()), 0, t0);
        assert!(c.hit(&k, t0).is_some());
        assert!(c.hit(&digest(b"Bearer tol"), t0).is_none());
        assert!(c.hit(&k, t0 + CACHE_TTL).is_none());
    }
}
