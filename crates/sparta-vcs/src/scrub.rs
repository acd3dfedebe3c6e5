//! Removing credentials from text before it reaches an error or a log.

/// Replaces the userinfo of every URL in `text` (`https://user:pw@host`)
/// with `***`.
pub(crate) fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace or quote.
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***@");
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Scrubs URLs and removes each of `secrets` from `text`.
pub(crate) fn scrub_secrets(text: &str, secrets: &[&str]) -> String {
    let mut s = scrub(text);
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        s = s.replace(secret, "***");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_removed() {
        assert_eq!(
            scrub("fatal: unable to access 'https://bob:s3cret@git.example.test/r.git/': 401"),
            "fatal: unable to access 'https://***@git.example.test/r.git/': 401"
        );
        assert_eq!(
            scrub("ssh://git@h:22/x and http://h/y"),
            "ssh://***@h:22/x and http://h/y"
        );
        assert_eq!(scrub("no url here"), "no url here");
        assert_eq!(
            scrub_secrets("token abcd1234 in text", &["abcd1234"]),
            "token *** in text"
        );
    }
}
