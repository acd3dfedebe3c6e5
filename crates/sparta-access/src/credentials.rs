//! Credential files and the `Authorization` header, parsed and checked.
//!
//! htpasswd lines are `user:hash` with a bcrypt (`$2y$`, `$2a$`, `$2b$`) or
//! SHA-256 crypt (`$5$`) hash, as `htpasswd -B` and `openssl passwd -5`
//! write them. Token files hold `name:sha256hex` lines, the hex SHA-256 of
//! the token (`printf %s "$TOKEN" | sha256sum`, or `sparta token hash`).
//! `#` starts a comment line in both.

use std::collections::HashMap;

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AccessError;

/// The longest `Authorization` value read; longer ones are refused unread.
pub const MAX_AUTHORIZATION: usize = 4096;

/// What a client presented.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential {
    Basic { user: String, password: String },
    Bearer(String),
}

/// Why a request is not authenticated. None of these carries what the
/// client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// Too long, not text, bad base64, no `:` in Basic, or control characters.
    Malformed,
    /// A scheme other than Basic or Bearer.
    UnknownScheme,
    /// Well-formed, but no user or token matches.
    Rejected,
}

impl AuthFailure {
    /// A stable label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed => "malformed",
            AuthFailure::UnknownScheme => "unknown_scheme",
            AuthFailure::Rejected => "rejected",
        }
    }
}

/// Parses an `Authorization` header value.
pub fn parse_authorization(value: &[u8]) -> Result<Credential, AuthFailure> {
    if value.len() > MAX_AUTHORIZATION {
        return Err(AuthFailure::Malformed);
    }
    let text = std::str::from_utf8(value).map_err(|_| AuthFailure::Malformed)?;
    let text = text.trim();
    let (scheme, rest) = text.split_once(' ').ok_or(AuthFailure::Malformed)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| AuthFailure::Malformed)?;
        let raw = String::from_utf8(raw).map_err(|_| AuthFailure::Malformed)?;
        let (user, password) = raw.split_once(':').ok_or(AuthFailure::Malformed)?;
        if user.is_empty() || raw.chars().any(char::is_control) {
            return Err(AuthFailure::Malformed);
        }
        Ok(Credential::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() || rest.chars().any(|c| c.is_control() || c == ' ') {
            return Err(AuthFailure::Malformed);
        }
        Ok(Credential::Bearer(rest.to_owned()))
    } else {
        Err(AuthFailure::UnknownScheme)
    }
}

#[derive(Debug, Clone)]
enum PasswordHash {
    Bcrypt(String),
    Sha256Crypt(String),
}

/// The users of an htpasswd file.
#[derive(Debug, Clone, Default)]
pub struct Htpasswd {
    users: HashMap<String, PasswordHash>,
    /// Checked for unknown users, so an unknown user costs as much as a
    /// wrong password (the file's first entry: same algorithm, same cost).
    dummy: Option<PasswordHash>,
}

impl Htpasswd {
    /// Parses htpasswd text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, AccessError> {
        let mut users = HashMap::new();
        let mut dummy = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| AccessError::Invalid(format!("{origin} line {}: {why}", n + 1));
            let (user, hash) = line.split_once(':').ok_or_else(|| bad("want user:hash"))?;
            if user.is_empty() {
                return Err(bad("empty user name"));
            }
            let hash = if ["$2y$", "$2a$", "$2b$"].iter().any(|p| hash.starts_with(p)) {
                PasswordHash::Bcrypt(hash.to_owned())
            } else if hash.starts_with("$5$") {
                PasswordHash::Sha256Crypt(hash.to_owned())
            } else {
                return Err(bad(
                    "unsupported hash: use bcrypt (htpasswd -B) or SHA-256 crypt (openssl passwd -5)",
                ));
            };
            dummy.get_or_insert_with(|| hash.clone());
            users.insert(user.to_owned(), hash);
        }
        Ok(Htpasswd { users, dummy })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file names no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether the file names this user (no secret involved).
    pub fn has_user(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Checks a password; both algorithms compare in constant time, and an
    /// unknown user is checked against a real hash too (same cost).
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let (hash, known) = self.hash_for(user);
        let matched = hash.is_some_and(|h| h.check(password));
        known && std::hint::black_box(matched)
    }

    /// The hash a password for `user` is checked against, and whether the
    /// user is known; unknown users get the dummy.
    fn hash_for(&self, user: &str) -> (Option<&PasswordHash>, bool) {
        match self.users.get(user) {
            Some(h) => (Some(h), true),
            None => (self.dummy.as_ref(), false),
        }
    }
}

impl PasswordHash {
    fn check(&self, password: &str) -> bool {
        match self {
            PasswordHash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            PasswordHash::Sha256Crypt(h) => sha_crypt::sha256_check(password, h).is_ok(),
        }
    }
}

/// The named tokens of a token file.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<(String, [u8; 32])>,
}

impl Tokens {
    /// Parses `name:sha256hex` lines; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, AccessError> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| AccessError::Invalid(format!("{origin} line {}: {why}", n + 1));
            let (name, hex) = line
                .split_once(':')
                .ok_or_else(|| bad("want name:sha256hex"))?;
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err(bad("bad token name"));
            }
            let mut hash = [0u8; 32];
            decode_hex(hex.trim(), &mut hash)
                .ok_or_else(|| bad("want 64 hex digits, the SHA-256 of the token"))?;
            entries.push((name.to_owned(), hash));
        }
        Ok(Tokens { entries })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file names no token.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The name of the token, when it is one of ours. Every entry is
    /// compared, in constant time, so the answer's timing tells nothing.
    pub fn verify(&self, token: &str) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (name, hash) in &self.entries {
            if bool::from(hash.ct_eq(&digest)) && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// The hex SHA-256 of a token: the second half of its token-file line.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_hex(s: &str, out: &mut [u8; 32]) -> Option<()> {
    if s.len() != 64 {
        return None;
    }
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn parses_basic_and_bearer() {
        let h = format!("Basic {}", b64("alice:pa:ss"));
        assert_eq!(
            parse_authorization(h.as_bytes()),
            Ok(Credential::Basic {
                user: "alice".into(),
                password: "pa:ss".into()
            })
        );
        assert_eq!(
            parse_authorization(b"bearer abc.def"),
            Ok(Credential::Bearer("abc.def".into()))
        );
    }

    #[test]
    fn refuses_hostile_headers() {
        let long = format!("Bearer {}", "a".repeat(MAX_AUTHORIZATION));
        let cases: Vec<(Vec<u8>, AuthFailure)> = vec![
            (long.into_bytes(), AuthFailure::Malformed),
            (b"Basic !!!notbase64".to_vec(), AuthFailure::Malformed),
            (
                format!("Basic {}", b64("nocolon")).into_bytes(),
                AuthFailure::Malformed,
            ),
            (
                format!("Basic {}", b64(":empty")).into_bytes(),
                AuthFailure::Malformed,
            ),
            (
                format!("Basic {}", b64("eve\r\nX-Admin: 1:pw")).into_bytes(),
                AuthFailure::Malformed,
            ),
            (b"Basic".to_vec(), AuthFailure::Malformed),
            (b"Digest username=x".to_vec(), AuthFailure::UnknownScheme),
            (b"Bearer \xff\xfe".to_vec(), AuthFailure::Malformed),
            (b"Bearer a b".to_vec(), AuthFailure::Malformed),
        ];
        for (value, want) in cases {
            assert_eq!(parse_authorization(&value), Err(want), "{value:?}");
        }
    }

    #[test]
    fn htpasswd_bcrypt_and_sha256_crypt() {
        let bc = bcrypt::hash("s3cret", 4).unwrap();
        // `openssl passwd -5 -salt saltstring 'Hello world!'`
        let sha = "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5";
        let text = format!(
            "# users\nalice:{bc}\nbob:{sha}\ncarol:{}\n",
            bc.replacen("$2b$", "$2y$", 1)
        );
        let h = Htpasswd::parse(&text, "test").unwrap();
        assert_eq!(h.len(), 3);
        assert!(h.verify("alice", "s3cret"));
        assert!(!h.verify("alice", "s3cret!"));
        assert!(h.verify("carol", "s3cret"), "$2y$ is the same algorithm");
        assert!(h.verify("bob", "Hello world!"));
        assert!(!h.verify("bob", "hello world!"));
        assert!(!h.verify("nobody", "s3cret"));
        // An unknown user is checked against a real entry (same algorithm
        // and cost as a known user), never answered early.
        let (dummy, known) = h.hash_for("nobody");
        assert!(!known);
        assert!(
            matches!(dummy, Some(PasswordHash::Bcrypt(d)) if d[..7] == bc[..7]),
            "{dummy:?}"
        );
        // Even the dummy's own password does not let an unknown user in.
        assert!(!h.verify("nobody", "s3cret"));
        assert_eq!(Htpasswd::default().hash_for("x").0.map(|_| ()), None);
    }

    #[test]
    fn htpasswd_errors_name_lines_not_secrets() {
        let err =
            Htpasswd::parse("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", "users").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("users line 1"), "{msg}");
        assert!(!msg.contains("W6ph5"), "{msg}");
        assert!(Htpasswd::parse("nocolon\n", "f").is_err());
    }

    #[test]
    fn tokens_by_hash() {
        let text = format!(
            "ci:{}\n# old\ndev:{}\n",
            hash_token("tok-1"),
            hash_token("tok-2")
        );
        let t = Tokens::parse(&text, "tokens").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.verify("tok-1"), Some("ci"));
        assert_eq!(t.verify("tok-2"), Some("dev"));
        assert_eq!(t.verify("tok-3"), None);
        assert_eq!(
            hash_token(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(Tokens::parse("ci:1234\n", "t").is_err());
        assert!(Tokens::parse(&format!("ci:{}", "g".repeat(64)), "t").is_err());
    }

    proptest::proptest! {
        #[test]
        fn header_parsing_never_panics(v in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_authorization(&v);
        }

        #[test]
        fn basic_round_trips(user in "[a-zA-Z0-9._-]{1,20}", pw in "[ -~]{0,40}") {
            let h = format!("Basic {}", b64(&format!("{user}:{pw}")));
            proptest::prop_assert_eq!(
                parse_authorization(h.as_bytes()),
                Ok(Credential::Basic { user, password: pw })
            );
        }
    }
}
