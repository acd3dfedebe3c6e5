//! How sizes, durations and lists are written in flags, env vars and TOML.

use std::time::Duration;

/// A duration: `500ms`, `60s`, `2m`, `1h 30m` (humantime), or whole seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(Duration::from_secs)
            .map_err(|e| format!("{s:?}: {e}"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 500ms, 60s, 2m, 1h"))
}

/// A byte size: `256MiB`, `1GiB`, `500kB` or a plain number of bytes.
pub fn parse_size(s: &str) -> Result<bytesize::ByteSize, String> {
    let s = s.trim();
    if !s.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "{s:?} is not a size; write e.g. 1048576, 500kB, 256MiB, 1GiB"
        ));
    }
    s.parse::<bytesize::ByteSize>()
        .map_err(|e| format!("{s:?} is not a size ({e}); write e.g. 1048576, 500kB, 256MiB, 1GiB"))
}

/// Serde for durations: written as humantime text, read from text or seconds.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match super::Scalar::deserialize(d)? {
            super::Scalar::Int(n) => Ok(Duration::from_secs(n)),
            super::Scalar::Text(s) => super::parse_duration(&s).map_err(D::Error::custom),
        }
    }
}

/// Serde for sizes: written like `256.0 MiB`, read from text or bytes.
pub mod size {
    use bytesize::ByteSize;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(b: &ByteSize, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(b)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        match super::Scalar::deserialize(d)? {
            super::Scalar::Int(n) => Ok(ByteSize::b(n)),
            super::Scalar::Text(s) => super::parse_size(&s).map_err(D::Error::custom),
        }
    }
}

/// A number or a text, as env vars and TOML may give either.
#[derive(serde::Deserialize)]
#[serde(untagged, expecting = "a number or a string")]
enum Scalar {
    Int(u64),
    Text(String),
}

/// A list written as a TOML array or, from one env var, a single value.
pub fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged, expecting = "a string or a list of strings")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match serde::Deserialize::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Hides the password of every `scheme://user:password@host` in `s`.
pub fn redact_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(['/', ',', '|', ' ', '?', '#'])
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let user = &authority[..at];
                match user.find(':') {
                    Some(colon) => {
                        out.push_str(&user[..colon]);
                        out.push_str(":<redacted>");
                    }
                    // A lone user name can be a token (`https://TOKEN@host`).
                    None => out.push_str("<redacted>"),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}
