//! GONOSUMDB / GOPRIVATE patterns: the glob lists of `--nosumdb`, matched as
//! the go command matches them (see `sparta_core::glob`).

use sparta_core::glob::GlobList;

use crate::SumdbError;

/// A parsed list of prefix globs.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    globs: GlobList,
}

impl Patterns {
    /// Parses every comma-separated glob in each entry; a malformed glob is an
    /// error here rather than a silently ignored pattern.
    pub fn parse<S: AsRef<str>>(lists: &[S]) -> Result<Self, SumdbError> {
        let mut globs = GlobList::default();
        for list in lists {
            let list = list.as_ref();
            globs.extend(GlobList::parse(list).map_err(|e| {
                SumdbError::Invalid(format!("malformed nosumdb pattern in {list:?}: {e}"))
            })?);
        }
        Ok(Patterns { globs })
    }

    /// Whether any glob matches a leading run of `path`'s elements.
    pub fn matches(&self, path: &str) -> bool {
        self.globs.matches(path)
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
