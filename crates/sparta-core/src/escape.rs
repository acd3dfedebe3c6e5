//! The `!` case escaping of module paths and versions (golang.org/x/mod/module EscapePath).

use crate::CoreError;

fn refuse(s: &str, reason: &str) -> CoreError {
    CoreError::InvalidPath {
        path: s.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Escapes every uppercase letter `X` as `!x`. Fails on a `!` or a non-ASCII
/// character in the input, which the escaping cannot represent.
pub fn escape(s: &str) -> Result<String, CoreError> {
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    for c in s.chars() {
        match c {
            '!' => return Err(refuse(s, "'!' cannot be escaped")),
            'A'..='Z' => {
                out.push('!');
                out.push(c.to_ascii_lowercase());
            }
            c if c.is_ascii() => out.push(c),
            _ => return Err(refuse(s, "non-ASCII characters cannot be escaped")),
        }
    }
    Ok(out)
}

/// Reverses [`escape`]: `!x` -> `X`. Fails on raw uppercase, `!` not followed
/// by a lowercase ASCII letter, a trailing `!`, or non-ASCII input.
pub fn unescape(s: &str) -> Result<String, CoreError> {
    let mut out = String::with_capacity(s.len());
    let mut bang = false;
    for c in s.chars() {
        if !c.is_ascii() {
            return Err(refuse(s, "non-ASCII character in escaped form"));
        }
        if bang {
            bang = false;
            if !c.is_ascii_lowercase() {
                return Err(refuse(s, "'!' not followed by a lowercase letter"));
            }
            out.push(c.to_ascii_uppercase());
        } else if c == '!' {
            bang = true;
        } else if c.is_ascii_uppercase() {
            return Err(refuse(s, "raw uppercase letter in escaped form"));
        } else {
            out.push(c);
        }
    }
    if bang {
        return Err(refuse(s, "trailing '!'"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_uppercase() {
        assert_eq!(escape("github.com/Azure/x").unwrap(), "github.com/!azure/x");
        assert_eq!(
            escape("github.com/BurntSushi/toml").unwrap(),
            "github.com/!burnt!sushi/toml"
        );
        assert_eq!(escape("v1.0.0-RC1").unwrap(), "v1.0.0-!r!c1");
        assert_eq!(escape("plain").unwrap(), "plain");
    }

    #[test]
    fn escape_refuses_bang_and_non_ascii() {
        assert!(escape("a!b").is_err());
        assert!(escape("gött.example/x").is_err());
    }

    #[test]
    fn unescape_rules() {
        assert_eq!(
            unescape("github.com/!azure/x").unwrap(),
            "github.com/Azure/x"
        );
        assert!(unescape("github.com/Azure/x").is_err(), "raw uppercase");
        assert!(
            unescape("github.com/!Azure/x").is_err(),
            "! before uppercase"
        );
        assert!(unescape("github.com/!1/x").is_err(), "! before a digit");
        assert!(unescape("github.com/!!a").is_err(), "double !");
        assert!(unescape("github.com/x!").is_err(), "trailing !");
        assert!(unescape("gött.example/x").is_err(), "non-ASCII");
    }

    proptest! {
        #[test]
        fn round_trip(s in "[ -~&&[^!]]{0,64}") {
            let e = escape(&s).unwrap();
            prop_assert!(!e.chars().any(|c| c.is_ascii_uppercase()));
            prop_assert_eq!(unescape(&e).unwrap(), s);
        }

        #[test]
        fn unescape_then_escape_is_identity(s in "[ -~]{0,64}") {
            if let Ok(u) = unescape(&s) {
                prop_assert_eq!(escape(&u).unwrap(), s);
            }
        }
    }
}
