//! GONOSUMDB / GOPRIVATE patterns: comma-separated globs, each matching a
//! prefix of whole path elements of a module path, with `path.Match`
//! semantics (`*`, `?`, `[...]` classes, `\` escapes; `*` and `?` never match
//! `/`).

use crate::SumdbError;

/// A parsed list of prefix globs.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    globs: Vec<Glob>,
}

impl Patterns {
    /// Parses every comma-separated glob in each entry; a malformed glob is an
    /// error here rather than a silently ignored pattern.
    pub fn parse<S: AsRef<str>>(lists: &[S]) -> Result<Self, SumdbError> {
        let mut globs = Vec::new();
        for list in lists {
            for glob in list.as_ref().split(',') {
                let glob = glob.trim();
                let glob = glob.strip_suffix('/').unwrap_or(glob);
                if glob.is_empty() {
                    continue;
                }
                globs.push(Glob::parse(glob)?);
            }
        }
        Ok(Patterns { globs })
    }

    /// Whether any glob matches a leading run of `path`'s elements.
    pub fn matches(&self, path: &str) -> bool {
        self.globs.iter().any(|g| g.matches_prefix(path))
    }
}

#[derive(Debug, Clone)]
enum Token {
    Char(char),
    AnyChar,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Debug, Clone)]
struct Glob {
    tokens: Vec<Token>,
    /// Path elements the glob spans (slashes + 1).
    elements: usize,
}

impl Glob {
    fn parse(glob: &str) -> Result<Glob, SumdbError> {
        let bad = || SumdbError::Invalid(format!("malformed nosumdb pattern {glob:?}"));
        let mut chars = glob.chars().peekable();
        let mut tokens = Vec::new();
        let mut elements = 1;
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::Star,
                '?' => Token::AnyChar,
                '\\' => Token::Char(chars.next().ok_or_else(bad)?),
                '[' => {
                    let negated = chars.next_if_eq(&'^').is_some();
                    let mut ranges = Vec::new();
                    loop {
                        if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
                            break;
                        }
                        let lo = class_char(&mut chars).ok_or_else(bad)?;
                        let hi = if chars.next_if_eq(&'-').is_some() {
                            class_char(&mut chars).ok_or_else(bad)?
                        } else {
                            lo
                        };
                        ranges.push((lo, hi));
                    }
                    Token::Class { negated, ranges }
                }
                c => {
                    if c == '/' {
                        elements += 1;
                    }
                    Token::Char(c)
                }
            });
        }
        Ok(Glob { tokens, elements })
    }

    fn matches_prefix(&self, path: &str) -> bool {
        let mut ends = path.match_indices('/').map(|(i, _)| i).chain([path.len()]);
        match ends.nth(self.elements - 1) {
            Some(end) => {
                let prefix: Vec<char> = path[..end].chars().collect();
                match_tokens(&self.tokens, &prefix)
            }
            None => false,
        }
    }
}

/// One class member, possibly escaped; `-` and `]` must be escaped, and the
/// class must go on after it.
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    let c = match chars.next()? {
        '-' | ']' => return None,
        '\\' => chars.next()?,
        c => c,
    };
    chars.peek()?;
    Some(c)
}

fn match_tokens(tokens: &[Token], s: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    match first {
        Token::Star => {
            // Try every run of non-separators, shortest first.
            let max = s.iter().position(|&c| c == '/').unwrap_or(s.len());
            (0..=max).any(|i| match_tokens(rest, &s[i..]))
        }
        _ => {
            let Some((&c, tail)) = s.split_first() else {
                return false;
            };
            let ok = match first {
                Token::Char(want) => c == *want,
                Token::AnyChar => c != '/',
                Token::Class { negated, ranges } => {
                    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                }
                Token::Star => unreachable!(),
            };
            ok && match_tokens(rest, tail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(list: &str, path: &str) -> bool {
        Patterns::parse(&[list]).unwrap().matches(path)
    }

    #[test]
    fn prefix_of_whole_elements() {
        assert!(m("corp.example.com", "corp.example.com"));
        assert!(m("corp.example.com", "corp.example.com/x/y"));
        assert!(!m("corp.example.com", "corp.example.com.evil/x"));
        assert!(!m("corp.example.com/x", "corp.example.com"));
        assert!(m("corp.example.com/x", "corp.example.com/x/v2"));
        assert!(!m("corp.example.com/x", "corp.example.com/xy"));
        assert!(m("corp.example.com/x/", "corp.example.com/x/v2"));
    }

    #[test]
    fn globs_per_element() {
        assert!(m("*.corp.example.com", "git.corp.example.com/a"));
        assert!(!m("*.corp.example.com", "corp.example.com/a"));
        assert!(m("github.com/acme-*", "github.com/acme-tools/x"));
        assert!(!m("github.com/acme-*", "github.com/other/acme-x"));
        assert!(m("*", "anything/at/all"));
        assert!(m("*/private", "github.com/private/x"));
        assert!(!m("*/private", "github.com/public/x"));
        assert!(m("example.?om", "example.com/m"));
        assert!(m("[a-c]x.com", "bx.com/m"));
        assert!(!m("[a-c]x.com", "dx.com/m"));
        assert!(m("[^a-c]x.com", "dx.com/m"));
        assert!(m(r"a\*b.com", "a*b.com/m"));
        assert!(!m(r"a\*b.com", "axxb.com/m"));
    }

    #[test]
    fn comma_lists_and_empty_entries() {
        assert!(m("a.com,,b.com", "b.com/x"));
        assert!(m(" a.com , b.com ", "a.com/x"));
        assert!(!m("a.com,b.com", "c.com/x"));
        assert!(!m("", "c.com/x"));
        let p = Patterns::parse(&["a.com", "b.com/*"]).unwrap();
        assert!(p.matches("b.com/q/r"));
        assert!(!p.matches("b.com"));
    }

    #[test]
    fn malformed_globs_are_errors() {
        for bad in ["[", "[]", "a[b", r"a\", "[a-]", "[-a]", "[^]"] {
            assert!(Patterns::parse(&[bad]).is_err(), "{bad:?}");
        }
    }
}
