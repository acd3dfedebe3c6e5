//! Client authentication over reloadable credential files.
//!
//! [`Authenticator::refresh`] is the only part that touches the disk: it
//! re-reads a file whose modification time or size changed, at most once a
//! second. [`Authenticator::authenticate`] decides from what is loaded.
//! A file that fails to parse on reload leaves the previous one in force.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::AccessError;
use crate::credentials::{
    AuthFailure, Credential, Htpasswd, MAX_AUTHORIZATION, Tokens, parse_authorization,
};

mod cache;
mod memo;
mod watched;

use cache::{Lookup, VerifiedCache, digest};
use watched::Watched;

/// Who a request was authenticated as. Never holds the secret. The name
/// is shared: every request of a cached credential clones it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User(Arc<str>),
    Token(Arc<str>),
}

impl Principal {
    /// `user:NAME` or `token:NAME`, for the audit log.
    pub fn describe(&self) -> String {
        match self {
            Principal::User(n) => format!("user:{n}"),
            Principal::Token(n) => format!("token:{n}"),
        }
    }
}

/// The answer of [`Authenticator::check_cached`].
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// Decided without hashing a password.
    Done(Result<Principal, AuthFailure>),
    /// A password must go through bcrypt or SHA-crypt: call
    /// [`Authenticator::authenticate`] off the async threads.
    NeedsHash,
}

/// Checks `Authorization` headers against an htpasswd file, a token file,
/// or both.
pub struct Authenticator {
    htpasswd: Option<Watched<Htpasswd>>,
    tokens: Option<Watched<Tokens>>,
    cache: Mutex<VerifiedCache>,
    /// Tells this authenticator's entries in the threads' memos apart.
    id: u64,
    /// The cache's generation, readable without its lock.
    generation: AtomicU64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Authenticator {
    /// Loads the files; `None` when neither is given (authentication off).
    pub fn open(
        htpasswd: Option<&Path>,
        tokens: Option<&Path>,
    ) -> Result<Option<Self>, AccessError> {
        if htpasswd.is_none() && tokens.is_none() {
            return Ok(None);
        }
        Ok(Some(Authenticator {
            htpasswd: htpasswd
                .map(|p| Watched::open(p, Htpasswd::parse))
                .transpose()?,
            tokens: tokens
                .map(|p| Watched::open(p, Tokens::parse))
                .transpose()?,
            cache: Mutex::new(VerifiedCache::default()),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
        }))
    }

    /// Re-reads changed files (at most once a second each). Errors are for
    /// the log; the previous contents stay in force.
    pub fn refresh(&self, now: Instant) -> Vec<AccessError> {
        let mut errors = Vec::new();
        let mut reloaded = false;
        let mut note = |r: Option<Result<bool, AccessError>>| match r {
            Some(Ok(r)) => reloaded |= r,
            Some(Err(e)) => errors.push(e),
            None => {}
        };
        note(self.htpasswd.as_ref().map(|w| w.refresh(now)));
        note(self.tokens.as_ref().map(|w| w.refresh(now)));
        if reloaded {
            // A removed user, token or changed password must not outlive
            // the file: drop what was verified against the old one.
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.reloaded();
            self.generation.store(cache.generation(), Ordering::Release);
        }
        errors
    }

    /// (users, tokens) loaded now.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.htpasswd.as_ref().map_or(0, |w| w.current().len()),
            self.tokens.as_ref().map_or(0, |w| w.current().len()),
        )
    }

    /// Decides who `authorization` (the header's value) is. May run bcrypt:
    /// call it off the async threads.
    pub fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        now: Instant,
    ) -> Result<Principal, AuthFailure> {
        let value = authorization.ok_or(AuthFailure::Missing)?;
        let (key, generation) = match self.lookup(value, now)? {
            Lookup::Hit(p) => return Ok(p),
            Lookup::Miss { key, generation } => (key, generation),
        };
        let result = match parse_authorization(value)? {
            Credential::Bearer(token) => self.token(&token),
            Credential::Basic { user, password } => {
                let htpasswd = self.htpasswd.as_ref().map(Watched::current);
                match htpasswd {
                    Some(h) if h.has_user(&user) => {
                        if h.verify(&user, &password) {
                            Ok(Principal::User(user.into()))
                        } else {
                            Err(AuthFailure::Rejected)
                        }
                    }
                    // A netrc line may carry a token as its password; if it
                    // is none, the dummy hash makes an unknown user cost as
                    // much as a wrong password (no user enumeration by time).
                    Some(h) => self.token(&password).inspect_err(|_| {
                        h.verify(&user, &password);
                    }),
                    None => self.token(&password),
                }
            }
        };
        self.remember(result, key, generation, now)
    }

    /// Decides whatever needs no password hashing: credentials verified
    /// lately, tokens, and malformed headers.
    pub fn check_cached(&self, authorization: Option<&[u8]>, now: Instant) -> Check {
        let Some(value) = authorization else {
            return Check::Done(Err(AuthFailure::Missing));
        };
        let (key, generation) = match self.lookup(value, now) {
            Err(e) => return Check::Done(Err(e)),
            Ok(Lookup::Hit(p)) => return Check::Done(Ok(p)),
            Ok(Lookup::Miss { key, generation }) => (key, generation),
        };
        let token = match parse_authorization(value) {
            Err(e) => return Check::Done(Err(e)),
            Ok(Credential::Bearer(token)) => token,
            Ok(Credential::Basic { user, password }) => {
                if let Some(htpasswd) = self.htpasswd.as_ref().map(Watched::current)
                    && htpasswd.has_user(&user)
                {
                    return Check::NeedsHash;
                }
                let found = self.token(&password);
                if found.is_err() && self.htpasswd.is_some() {
                    // Refused only after the dummy hash, off the async threads.
                    return Check::NeedsHash;
                }
                return Check::Done(self.remember(found, key, generation, now));
            }
        };
        Check::Done(self.remember(self.token(&token), key, generation, now))
    }

    /// The start of every check: the size bound, then a success cached
    /// under the value's digest. On a miss, the digest and the cache
    /// generation, read before the files' contents are: a reload from here
    /// on makes the answer stale, and `remember` then drops it.
    fn lookup(&self, value: &[u8], now: Instant) -> Result<Lookup, AuthFailure> {
        if value.len() > MAX_AUTHORIZATION {
            return Err(AuthFailure::Malformed);
        }
        let key = digest(value);
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(p) = memo::hit((self.id, generation), &key, now) {
            return Ok(Lookup::Hit(p));
        }
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        Ok(match cache.hit(&key, now) {
            Some((p, at)) => {
                memo::keep((self.id, cache.generation()), key, p, at);
                Lookup::Hit(p.clone())
            }
            None => Lookup::Miss {
                key,
                generation: cache.generation(),
            },
        })
    }

    /// Keeps a success in the cache (unless a file reloaded since
    /// `generation`), and passes the result on.
    fn remember(
        &self,
        result: Result<Principal, AuthFailure>,
        key: [u8; 32],
        generation: u64,
        now: Instant,
    ) -> Result<Principal, AuthFailure> {
        if let Ok(p) = &result {
            self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
                key,
                p.clone(),
                generation,
                now,
            );
        }
        result
    }

    fn token(&self, token: &str) -> Result<Principal, AuthFailure> {
        let tokens = self.tokens.as_ref().ok_or(AuthFailure::Rejected)?.current();
        tokens
            .verify(token)
            .map(|name| Principal::Token(name.into()))
            .ok_or(AuthFailure::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::watched::CHECK_EVERY;
    use super::*;
    use crate::credentials::hash_token;
    use base64::Engine;
    use std::path::PathBuf;
    use std::time::Duration;

    fn basic(user: &str, pw: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
        )
        .into_bytes()
    }

    #[test]
    fn authenticates_users_and_tokens_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("htpasswd");
        let tokens = dir.path().join("tokens");
        std::fs::write(
            &users,
            format!("alice:{}\n", bcrypt::hash("pw1", 4).unwrap()),
        )
        .unwrap();
        std::fs::write(&tokens, format!("ci:{}\n", hash_token("tok"))).unwrap();
        let a = Authenticator::open(Some(&users), Some(&tokens))
            .unwrap()
            .unwrap();
        let t0 = Instant::now();
        assert_eq!(
            a.authenticate(Some(&basic("alice", "pw1")), t0),
            Ok(Principal::User("alice".into()))
        );
        assert_eq!(
            a.check_cached(Some(&basic("alice", "pw2")), t0),
            Check::NeedsHash
        );
        assert_eq!(
            a.check_cached(Some(&basic("alice", "pw1")), t0),
            Check::Done(Ok(Principal::User("alice".into())))
        );
        assert_eq!(
            a.check_cached(Some(b"Bearer tok"), t0),
            Check::Done(Ok(Principal::Token("ci".into())))
        );
        // Cached now; still right.
        assert_eq!(
            a.authenticate(Some(&basic("alice", "pw1")), t0),
            Ok(Principal::User("alice".into()))
        );
        assert_eq!(
            a.authenticate(Some(&basic("alice", "pw2")), t0),
            Err(AuthFailure::Rejected)
        );
        assert_eq!(
            a.authenticate(Some(b"Bearer tok"), t0),
            Ok(Principal::Token("ci".into()))
        );
        assert_eq!(
            a.authenticate(Some(&basic("x", "tok")), t0),
            Ok(Principal::Token("ci".into()))
        );
        assert_eq!(
            a.check_cached(Some(&basic("x", "tok")), t0),
            Check::Done(Ok(Principal::Token("ci".into())))
        );
        // An unknown user with a password that is no token is refused only
        // after a hash, like a wrong password (off the async threads).
        assert_eq!(
            a.check_cached(Some(&basic("mallory", "pw1")), t0),
            Check::NeedsHash
        );
        assert_eq!(
            a.authenticate(Some(&basic("mallory", "pw1")), t0),
            Err(AuthFailure::Rejected)
        );
        assert_eq!(
            a.authenticate(Some(b"Bearer nope"), t0),
            Err(AuthFailure::Rejected)
        );
        assert_eq!(a.authenticate(None, t0), Err(AuthFailure::Missing));

        // Change alice's password: after a second the old one fails, also
        // though it was cached.
        std::fs::write(
            &users,
            format!(
                "alice:{}\nbob:{}\n",
                bcrypt::hash("pw2", 4).unwrap(),
                bcrypt::hash("b", 4).unwrap()
            ),
        )
        .unwrap();
        assert!(a.refresh(t0).is_empty());
        let t1 = t0 + Duration::from_secs(2);
        assert!(a.refresh(t1).is_empty());
        assert_eq!(
            a.authenticate(Some(&basic("alice", "pw1")), t1),
            Err(AuthFailure::Rejected)
        );
        assert_eq!(
            a.authenticate(Some(&basic("alice", "pw2")), t1),
            Ok(Principal::User("alice".into()))
        );
        assert_eq!(a.counts(), (2, 1));

        // A broken file leaves the last good one in force.
        std::fs::write(
            &tokens,
            "garbage without colon, longer to change the size\n",
        )
        .unwrap();
        let t2 = t1 + Duration::from_secs(2);
        let errors = a.refresh(t2);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            a.authenticate(Some(b"Bearer tok"), t2),
            Ok(Principal::Token("ci".into()))
        );
    }

    #[test]
    fn off_without_files_and_errors_for_missing_ones() {
        assert!(Authenticator::open(None, None).unwrap().is_none());
        assert!(Authenticator::open(Some(Path::new("/nonexistent/htpasswd")), None).is_err());
    }

    fn files(dir: &Path) -> (PathBuf, PathBuf) {
        let users = dir.join("htpasswd");
        let tokens = dir.join("tokens");
        std::fs::write(
            &users,
            format!("alice:{}\n", bcrypt::hash("pw1", 4).unwrap()),
        )
        .unwrap();
        std::fs::write(&tokens, format!("ci:{}\n", hash_token("tok"))).unwrap();
        (users, tokens)
    }

    /// An authenticator over fresh files in `dir`, and the two files.
    fn opened(dir: &Path) -> (Authenticator, PathBuf, PathBuf) {
        let (users, tokens) = files(dir);
        let a = Authenticator::open(Some(&users), Some(&tokens))
            .unwrap()
            .unwrap();
        (a, users, tokens)
    }

    #[test]
    fn bad_credentials_are_never_cached() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _, _) = opened(dir.path());
        let t0 = Instant::now();
        for i in 0..5000 {
            let bearer = format!("Bearer bad-{i}");
            assert_eq!(
                a.check_cached(Some(bearer.as_bytes()), t0),
                Check::Done(Err(AuthFailure::Rejected))
            );
            let basic = basic("x", &format!("bad-{i}"));
            assert_eq!(a.check_cached(Some(&basic), t0), Check::NeedsHash);
        }
        assert_eq!(
            a.authenticate(Some(&basic("alice", "wrong")), t0),
            Err(AuthFailure::Rejected)
        );
        assert_eq!(a.cache.lock().unwrap().len(), 0);
        assert!(a.authenticate(Some(&basic("alice", "pw1")), t0).is_ok());
        assert!(a.authenticate(Some(b"Bearer tok"), t0).is_ok());
        assert_eq!(a.cache.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_cached_credential_dies_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, users, tokens) = opened(dir.path());
        let t0 = Instant::now();
        let alice = basic("alice", "pw1");
        let ci = b"Bearer tok".to_vec();
        assert_eq!(
            a.authenticate(Some(&alice), t0),
            Ok(Principal::User("alice".into()))
        );
        assert_eq!(
            a.check_cached(Some(&ci), t0),
            Check::Done(Ok(Principal::Token("ci".into())))
        );
        // Both are served from the cache now.
        assert_eq!(a.cache.lock().unwrap().len(), 2);
        assert_eq!(
            a.check_cached(Some(&alice), t0),
            Check::Done(Ok(Principal::User("alice".into())))
        );

        // alice's password changes and the token is revoked: at the next
        // check of the files neither works, cached or not.
        std::fs::write(
            &users,
            format!("alice:{}\n", bcrypt::hash("pw2", 4).unwrap()),
        )
        .unwrap();
        std::fs::write(&tokens, format!("other:{}\n", hash_token("tok2"))).unwrap();
        let t1 = t0 + CHECK_EVERY;
        assert!(a.refresh(t1).is_empty());
        assert_eq!(a.check_cached(Some(&alice), t1), Check::NeedsHash);
        assert_eq!(a.authenticate(Some(&alice), t1), Err(AuthFailure::Rejected));
        assert_eq!(
            a.check_cached(Some(&ci), t1),
            Check::Done(Err(AuthFailure::Rejected))
        );
        assert_eq!(a.authenticate(Some(&ci), t1), Err(AuthFailure::Rejected));
        assert_eq!(
            a.authenticate(Some(&basic("alice", "pw2")), t1),
            Ok(Principal::User("alice".into()))
        );
    }

    #[test]
    fn a_success_decided_before_a_reload_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _, tokens) = opened(dir.path());
        let t0 = Instant::now();
        // A verification that read the old file, finishing after a reload.
        let Ok(Lookup::Miss { generation, .. }) = a.lookup(b"Bearer tok", t0) else {
            panic!("nothing verified yet, so nothing cached");
        };
        std::fs::write(&tokens, format!("ci:{}\n# revoked\n", hash_token("x"))).unwrap();
        assert!(a.refresh(t0 + CHECK_EVERY).is_empty());
        let key = digest(b"Bearer tok");
        let late = a.remember(Ok(Principal::Token("ci".into())), key, generation, t0);
        assert!(late.is_ok());
        assert!(matches!(
            a.lookup(b"Bearer tok", t0),
            Ok(Lookup::Miss { .. })
        ));
        assert_eq!(
            a.check_cached(Some(b"Bearer tok"), t0 + CHECK_EVERY),
            Check::Done(Err(AuthFailure::Rejected))
        );
    }
}
