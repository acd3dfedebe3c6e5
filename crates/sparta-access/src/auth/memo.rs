//! The last few credentials a thread saw verified, in front of the shared
//! cache: a keep-alive client sends the same header on every request, and
//! its connection stays on one thread, so a hit here takes no lock and
//! touches no memory another thread writes.

use std::cell::RefCell;
use std::time::Instant;

use super::Principal;
use super::cache::{CACHE_TTL, same_digest};

/// Entries per thread: a runner's few credentials, not a directory of them.
const ENTRIES: usize = 4;

struct Entry {
    /// Which authenticator, and under which generation of its files.
    owner: (u64, u64),
    digest: [u8; 32],
    /// This thread's own copy: cloning it writes no shared counter.
    principal: Principal,
    /// When the credential was verified (the shared cache's time).
    at: Instant,
}

#[derive(Default)]
struct Memo {
    entries: Vec<Entry>,
    /// The entry replaced next when full.
    next: usize,
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

/// The principal this thread saw verified for `digest` under `owner`,
/// while fresh.
pub(crate) fn hit(owner: (u64, u64), digest: &[u8; 32], now: Instant) -> Option<Principal> {
    MEMO.try_with(|m| {
        m.borrow()
            .entries
            .iter()
            .find(|e| {
                e.owner == owner
                    && same_digest(&e.digest, digest)
                    && now.saturating_duration_since(e.at) < CACHE_TTL
            })
            .map(|e| e.principal.clone())
    })
    .ok()
    .flatten()
}

/// Remembers a credential the shared cache holds, verified at `at`.
pub(crate) fn keep(owner: (u64, u64), digest: [u8; 32], principal: &Principal, at: Instant) {
    let own = match principal {
        Principal::User(n) => Principal::User(n.as_ref().into()),
        Principal::Token(n) => Principal::Token(n.as_ref().into()),
    };
    let entry = Entry {
        owner,
        digest,
        principal: own,
        at,
    };
    let _ = MEMO.try_with(|m| {
        let mut m = m.borrow_mut();
        if let Some(i) = m
            .entries
            .iter()
            .position(|e| e.owner == owner && same_digest(&e.digest, &digest))
        {
            m.entries[i] = entry;
        } else if m.entries.len() < ENTRIES {
            m.entries.push(entry);
        } else {
            let i = m.next;
            m.entries[i] = entry;
            m.next = (i + 1) % ENTRIES;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_credential_hits_until_it_expires_or_its_generation_passes() {
        let now = Instant::now();
        let d = [7u8; 32];
        let p = Principal::User("u".into());
        keep((1, 0), d, &p, now);
        assert_eq!(hit((1, 0), &d, now), Some(p.clone()));
        assert_eq!(hit((1, 1), &d, now), None, "a reload passed");
        assert_eq!(hit((2, 0), &d, now), None, "another authenticator");
        assert_eq!(hit((1, 0), &[8u8; 32], now), None);
        assert_eq!(hit((1, 0), &d, now + CACHE_TTL), None);
    }

    #[test]
    fn the_memo_stays_small() {
        let now = Instant::now();
        let p = Principal::Token("t".into());
        for i in 0..100u8 {
            keep((9, 0), [i; 32], &p, now);
        }
        MEMO.with(|m| assert_eq!(m.borrow().entries.len(), ENTRIES));
        assert!(hit((9, 0), &[99u8; 32], now).is_some());
        assert!(hit((9, 0), &[0u8; 32], now).is_none());
    }
}
