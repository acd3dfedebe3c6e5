//! GOPRIVATE / GONOSUMDB / GONOPROXY globs: comma-separated patterns, each
//! matching a prefix of whole path elements of a module path, with
//! `path.Match` semantics (`*`, `?`, `[...]` classes, `\` escapes; none of
//! them matches `/`).

/// A comma-separated list of prefix globs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GlobList {
    globs: Vec<Glob>,
}

impl GlobList {
    /// Parses a comma-separated glob list, skipping empty entries and
    /// trailing slashes as the go command does; a malformed glob is an error.
    pub fn parse(list: &str) -> Result<GlobList, String> {
        let mut globs = Vec::new();
        for glob in list.split(',') {
            let glob = glob.trim();
            let glob = glob.strip_suffix('/').unwrap_or(glob);
            if !glob.is_empty() {
                globs.push(Glob::parse(glob)?);
            }
        }
        Ok(GlobList { globs })
    }

    /// Whether no glob was given.
    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    /// Whether any glob matches a leading run of `path`'s elements.
    pub fn matches(&self, path: &str) -> bool {
        self.globs.iter().any(|g| g.matches_prefix(path))
    }

    /// Adds the globs of `other`.
    pub fn extend(&mut self, other: GlobList) {
        self.globs.extend(other.globs);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    AnyChar,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// One glob with `path.Match` semantics: `*` and `?` never match `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Glob {
    tokens: Vec<Token>,
    /// Slashes in the glob: it is matched against that many + 1 elements.
    slashes: usize,
}

impl Glob {
    fn parse(glob: &str) -> Result<Glob, String> {
        let bad = || format!("malformed pattern {glob:?}");
        let mut chars = glob.chars().peekable();
        let mut tokens = Vec::new();
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
                        if hi < lo {
                            return Err(bad());
                        }
                        ranges.push((lo, hi));
                    }
                    Token::Class { negated, ranges }
                }
                c => Token::Char(c),
            });
        }
        let slashes = glob.matches('/').count();
        Ok(Glob { tokens, slashes })
    }

    /// Matches the glob against the first `slashes + 1` elements of `path`,
    /// as `module.MatchPrefixPatterns` does; a shorter path never matches.
    fn matches_prefix(&self, path: &str) -> bool {
        let mut remaining = self.slashes;
        let mut prefix = path;
        for (i, b) in path.bytes().enumerate() {
            if b == b'/' {
                if remaining == 0 {
                    prefix = &path[..i];
                    break;
                }
                remaining -= 1;
            }
        }
        if remaining > 0 {
            return false;
        }
        let name: Vec<char> = prefix.chars().collect();
        match_tokens(&self.tokens, &name)
    }
}

fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    match chars.next()? {
        '\\' => chars.next(),
        ']' | '-' => None,
        c => Some(c),
    }
}

fn match_tokens(tokens: &[Token], name: &[char]) -> bool {
    match tokens.split_first() {
        None => name.is_empty(),
        Some((Token::Star, rest)) => {
            // `*` takes any run of non-slash characters.
            for i in 0..=name.len() {
                if match_tokens(rest, &name[i..]) {
                    return true;
                }
                if name.get(i) == Some(&'/') {
                    break;
                }
            }
            false
        }
        Some((token, rest)) => {
            let Some((&c, tail)) = name.split_first() else {
                return false;
            };
            let ok = match token {
                Token::Char(want) => c == *want,
                Token::AnyChar => c != '/',
                Token::Class { negated, ranges } => {
                    c != '/' && ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                }
                Token::Star => unreachable!("handled above"),
            };
            ok && match_tokens(rest, tail)
        }
    }
}
