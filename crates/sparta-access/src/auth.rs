//! Client authentication over reloadable credential files.
//!
//! [`Authenticator::refresh`] is the only part that touches the disk: it
//! re-reads a file whose modification time or size changed, at most once a
//! second. [`Authenticator::authenticate`] decides from what is loaded.
//! A file that fails to parse on reload leaves the previous one in force.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use crate::AccessError;
use crate::credentials::{AuthFailure, Credential, Htpasswd, Tokens, parse_authorization};

/// How often a credential file's metadata is looked at, at most.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a verified password is remembered (bcrypt costs ~50-250 ms).
const CACHE_TTL: Duration = Duration::from_secs(300);
/// How many verified passwords are remembered.
const CACHE_ENTRIES: usize = 4096;

/// Who a request was authenticated as. Never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User(String),
    Token(String),
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

/// A file parsed with the metadata it had when read.
struct Loaded<T> {
    value: Arc<T>,
    stamp: Option<(SystemTime, u64)>,
}

/// One credential file, reloaded when it changes.
struct Watched<T> {
    path: PathBuf,
    loaded: RwLock<Loaded<T>>,
    checked: Mutex<Instant>,
    parse: fn(&str, &str) -> Result<T, AccessError>,
}

fn stamp(path: &Path) -> Result<(SystemTime, u64), AccessError> {
    let meta = std::fs::metadata(path).map_err(|source| AccessError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok((
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        meta.len(),
    ))
}

impl<T> Watched<T> {
    fn open(
        path: &Path,
        parse: fn(&str, &str) -> Result<T, AccessError>,
    ) -> Result<Self, AccessError> {
        let (value, st) = Self::read(path, parse)?;
        Ok(Watched {
            path: path.to_owned(),
            loaded: RwLock::new(Loaded {
                value: Arc::new(value),
                stamp: Some(st),
            }),
            checked: Mutex::new(Instant::now()),
            parse,
        })
    }

    fn read(
        path: &Path,
        parse: fn(&str, &str) -> Result<T, AccessError>,
    ) -> Result<(T, (SystemTime, u64)), AccessError> {
        let st = stamp(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| AccessError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok((parse(&text, &path.display().to_string())?, st))
    }

    fn current(&self) -> Arc<T> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .value
            .clone()
    }

    /// Re-reads the file if it changed; `Ok(true)` when it was reloaded.
    fn refresh(&self, now: Instant) -> Result<bool, AccessError> {
        {
            let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
            if now.saturating_duration_since(*checked) < CHECK_EVERY {
                return Ok(false);
            }
            *checked = now;
        }
        let st = stamp(&self.path)?;
        let old = self.loaded.read().unwrap_or_else(|e| e.into_inner()).stamp;
        if old == Some(st) {
            return Ok(false);
        }
        let (value, st) = Self::read(&self.path, self.parse)?;
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Loaded {
            value: Arc::new(value),
            stamp: Some(st),
        };
        Ok(true)
    }
}

/// Passwords that passed bcrypt lately, keyed by a hash of user, password
/// and file generation: a netrc client sends the same ones on every request.
#[derive(Default)]
struct VerifiedCache {
    entries: HashMap<[u8; 32], Instant>,
    generation: u64,
}

impl VerifiedCache {
    fn key(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.generation.to_le_bytes());
        h.update((user.len() as u64).to_le_bytes());
        h.update(user.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn hit(&self, key: &[u8; 32], now: Instant) -> bool {
        self.entries
            .get(key)
            .is_some_and(|at| now.saturating_duration_since(*at) < CACHE_TTL)
    }

    fn insert(&mut self, key: [u8; 32], now: Instant) {
        if self.entries.len() >= CACHE_ENTRIES {
            self.entries
                .retain(|_, at| now.saturating_duration_since(*at) < CACHE_TTL);
            if self.entries.len() >= CACHE_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries.insert(key, now);
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
}

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
        }))
    }

    /// Re-reads changed files (at most once a second each). Errors are for
    /// the log; the previous contents stay in force.
    pub fn refresh(&self, now: Instant) -> Vec<AccessError> {
        let mut errors = Vec::new();
        let mut reloaded = false;
        if let Some(w) = &self.htpasswd {
            match w.refresh(now) {
                Ok(r) => reloaded |= r,
                Err(e) => errors.push(e),
            }
        }
        if let Some(w) = &self.tokens
            && let Err(e) = w.refresh(now)
        {
            errors.push(e);
        }
        if reloaded {
            // A removed user or changed password must not outlive the file.
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.entries.clear();
            cache.generation += 1;
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
        match parse_authorization(value)? {
            Credential::Bearer(token) => self.token(&token),
            Credential::Basic { user, password } => {
                let htpasswd = self.htpasswd.as_ref().map(Watched::current);
                match htpasswd {
                    Some(h) if h.has_user(&user) => self.password(&h, &user, &password, now),
                    // A netrc line may carry a token as its password; if it
                    // is none, the dummy hash makes an unknown user cost as
                    // much as a wrong password (no user enumeration by time).
                    Some(h) => self.token(&password).inspect_err(|_| {
                        h.verify(&user, &password);
                    }),
                    None => self.token(&password),
                }
            }
        }
    }

    /// Decides whatever needs no password hashing: tokens, malformed
    /// headers, and passwords verified lately.
    pub fn check_cached(&self, authorization: Option<&[u8]>, now: Instant) -> Check {
        let Some(value) = authorization else {
            return Check::Done(Err(AuthFailure::Missing));
        };
        match parse_authorization(value) {
            Err(e) => Check::Done(Err(e)),
            Ok(Credential::Bearer(token)) => Check::Done(self.token(&token)),
            Ok(Credential::Basic { user, password }) => {
                let Some(htpasswd) = self.htpasswd.as_ref().map(Watched::current) else {
                    return Check::Done(self.token(&password));
                };
                if !htpasswd.has_user(&user) {
                    return match self.token(&password) {
                        Ok(p) => Check::Done(Ok(p)),
                        // Refused only after the dummy hash, off the async threads.
                        Err(_) => Check::NeedsHash,
                    };
                }
                let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                if cache.hit(&cache.key(&user, &password), now) {
                    Check::Done(Ok(Principal::User(user)))
                } else {
                    Check::NeedsHash
                }
            }
        }
    }

    fn token(&self, token: &str) -> Result<Principal, AuthFailure> {
        let tokens = self.tokens.as_ref().ok_or(AuthFailure::Rejected)?.current();
        tokens
            .verify(token)
            .map(|name| Principal::Token(name.to_owned()))
            .ok_or(AuthFailure::Rejected)
    }

    fn password(
        &self,
        h: &Htpasswd,
        user: &str,
        password: &str,
        now: Instant,
    ) -> Result<Principal, AuthFailure> {
        let key = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            let key = cache.key(user, password);
            if cache.hit(&key, now) {
                return Ok(Principal::User(user.to_owned()));
            }
            key
        };
        if !h.verify(user, password) {
            return Err(AuthFailure::Rejected);
        }
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, now);
        Ok(Principal::User(user.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::hash_token;
    use base64::Engine;

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

    #[test]
    fn the_cache_stays_bounded() {
        let mut c = VerifiedCache::default();
        let now = Instant::now();
        for i in 0..(CACHE_ENTRIES * 2) {
            let k = c.key("u", &i.to_string());
            c.insert(k, now);
            assert!(c.entries.len() <= CACHE_ENTRIES);
        }
    }
}
