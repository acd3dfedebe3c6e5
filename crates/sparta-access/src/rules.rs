//! Module rules: which module paths (and versions) the proxy serves.
//!
//! A rule is `ACTION PATTERN[@RANGE] [REASON]`: `exclude github.com/evil/*
//! compromised upstream`, `exclude example.com/lib@<v1.4.2 CVE-2026-0001`,
//! `allow corp.example.com`. PATTERN is one GOPRIVATE-style glob (it matches
//! the path and everything below it, `*` and `?` within one element);
//! RANGE is comparisons joined by `,`, all of which must hold
//! (`>=v1.0.0,<v1.4.2`). The first rule that matches decides; with no match
//! a module is served, unless some `allow` rule exists, which makes the
//! rules an allow list.

use std::cmp::Ordering;

use sparta_core::version::compare;
use sparta_core::{ModulePath, Version};

use crate::AccessError;

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Exclude,
}

/// One comparison of a version range.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bound {
    op: Ordering,
    or_equal: bool,
    version: Version,
}

impl Bound {
    fn holds(&self, v: &Version) -> bool {
        let o = compare(v, &self.version);
        o == self.op || (self.or_equal && o == Ordering::Equal)
    }
}

/// One module rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub action: Action,
    glob: Vec<String>,
    range: Vec<Bound>,
    /// Told to the client when this rule refuses a request.
    pub reason: String,
    /// The rule as written, for logs.
    pub text: String,
}

/// An ordered list of rules.
#[derive(Debug, Clone, Default)]
pub struct ModuleRules {
    rules: Vec<Rule>,
    allow_list: bool,
}

/// The verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleVerdict {
    Allowed,
    /// Refused, with the reason the client is told.
    Excluded(String),
}

impl ModuleRules {
    /// Parses rules; each item may hold several, one a line.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, AccessError> {
        let rules: Vec<Rule> = items
            .iter()
            .flat_map(|s| s.as_ref().lines().map(str::to_owned).collect::<Vec<_>>())
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|l| Rule::parse(&l))
            .collect::<Result<_, _>>()?;
        let allow_list = rules.iter().any(|r| r.action == Action::Allow);
        Ok(ModuleRules { rules, allow_list })
    }

    /// Whether no rule is set.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides on a request for `module`, at `version` when the request
    /// names one (`.info`, `.mod`, `.zip`); list, latest and queries name
    /// none, and for them only rules without a range apply.
    pub fn decide(&self, module: &ModulePath, version: Option<&Version>) -> ModuleVerdict {
        for rule in &self.rules {
            if !glob_matches(&rule.glob, module.as_str()) {
                continue;
            }
            let in_range = match version {
                Some(v) => rule.range.iter().all(|b| b.holds(v)),
                // An allow rule admits the module's listing whatever its
                // range; an exclude rule with a range spares it.
                None => rule.range.is_empty() || rule.action == Action::Allow,
            };
            if !in_range {
                continue;
            }
            return match rule.action {
                Action::Allow => ModuleVerdict::Allowed,
                Action::Exclude => ModuleVerdict::Excluded(rule.reason.clone()),
            };
        }
        if self.allow_list {
            ModuleVerdict::Excluded(format!(
                "{} is not on this proxy's allow list",
                module.as_str()
            ))
        } else {
            ModuleVerdict::Allowed
        }
    }
}

impl Rule {
    /// Parses `ACTION PATTERN[@RANGE] [REASON]`.
    pub fn parse(text: &str) -> Result<Rule, AccessError> {
        let bad = |why: &str| AccessError::Invalid(format!("module rule {text:?}: {why}"));
        let text_trim = text.trim();
        let (action, rest) = text_trim
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("want ACTION PATTERN[@RANGE] [REASON]"))?;
        let action = match action {
            "allow" => Action::Allow,
            "exclude" | "deny" => Action::Exclude,
            _ => return Err(bad("the action is allow or exclude")),
        };
        let rest = rest.trim_start();
        let (target, reason) = rest
            .split_once(char::is_whitespace)
            .map(|(t, r)| (t, r.trim()))
            .unwrap_or((rest, ""));
        let (pattern, range) = match target.split_once('@') {
            Some((p, r)) => (p, Some(r)),
            None => (target, None),
        };
        let glob = parse_glob(pattern).map_err(|e| bad(&e))?;
        let range = match range {
            Some(r) => parse_range(r).map_err(|e| bad(&e))?,
            None => Vec::new(),
        };
        let reason = if reason.is_empty() {
            match action {
                Action::Exclude => format!("excluded by this proxy's module rule {target}"),
                Action::Allow => String::new(),
            }
        } else {
            reason.to_owned()
        };
        if reason.chars().any(char::is_control) {
            return Err(bad("the reason holds control characters"));
        }
        Ok(Rule {
            action,
            glob,
            range,
            reason,
            text: text_trim.to_owned(),
        })
    }
}

fn parse_glob(pattern: &str) -> Result<Vec<String>, String> {
    let pattern = pattern.trim_end_matches('/');
    if pattern.is_empty() {
        return Err("empty pattern".into());
    }
    if pattern.contains(['[', '\\', ',']) {
        return Err("patterns hold one glob of `*` and `?` (no classes, no lists)".into());
    }
    let elems: Vec<String> = pattern.split('/').map(str::to_owned).collect();
    if elems.iter().any(String::is_empty) {
        return Err("empty path element".into());
    }
    Ok(elems)
}

fn parse_range(range: &str) -> Result<Vec<Bound>, String> {
    range
        .split(',')
        .map(|part| {
            let part = part.trim();
            let (op, or_equal, v) = if let Some(v) = part.strip_prefix("<=") {
                (Ordering::Less, true, v)
            } else if let Some(v) = part.strip_prefix(">=") {
                (Ordering::Greater, true, v)
            } else if let Some(v) = part.strip_prefix('<') {
                (Ordering::Less, false, v)
            } else if let Some(v) = part.strip_prefix('>') {
                (Ordering::Greater, false, v)
            } else if let Some(v) = part.strip_prefix('=') {
                (Ordering::Equal, true, v)
            } else {
                (Ordering::Equal, true, part)
            };
            let version = Version::parse(v.trim()).map_err(|e| format!("bad version: {e}"))?;
            Ok(Bound {
                op,
                or_equal,
                version,
            })
        })
        .collect()
}

/// GOPRIVATE semantics: the glob matches a prefix of the path's elements.
fn glob_matches(glob: &[String], path: &str) -> bool {
    let mut elems = path.split('/');
    glob.iter().all(|g| match elems.next() {
        Some(e) => element_matches(g.as_bytes(), e.as_bytes()),
        None => false,
    })
}

/// `path.Match` for one element with `*` and `?` (elements hold no `/`).
fn element_matches(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> ModulePath {
        ModulePath::parse(s).unwrap()
    }
    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }
    fn rules(items: &[&str]) -> ModuleRules {
        ModuleRules::parse(items).unwrap()
    }

    #[test]
    fn globs_match_a_prefix_of_elements() {
        let r = rules(&["exclude github.com/evil/* compromised"]);
        assert_eq!(
            r.decide(&m("github.com/evil/x"), None),
            ModuleVerdict::Excluded("compromised".into())
        );
        assert_eq!(
            r.decide(&m("github.com/evil/x/v2"), Some(&v("v2.0.0"))),
            ModuleVerdict::Excluded("compromised".into())
        );
        assert_eq!(
            r.decide(&m("github.com/evil"), None),
            ModuleVerdict::Allowed
        );
        assert_eq!(
            r.decide(&m("github.com/good/x"), None),
            ModuleVerdict::Allowed
        );
        let r = rules(&["exclude *.evil.test/a?c"]);
        assert!(matches!(
            r.decide(&m("x.evil.test/abc/d"), None),
            ModuleVerdict::Excluded(_)
        ));
        assert_eq!(
            r.decide(&m("x.evil.test/abbc"), None),
            ModuleVerdict::Allowed
        );
    }

    #[test]
    fn version_ranges() {
        let r = rules(&["exclude example.com/lib@<v1.4.2 CVE-2026-0001: use v1.4.2 or later"]);
        let lib = m("example.com/lib");
        assert!(matches!(
            r.decide(&lib, Some(&v("v1.4.1"))),
            ModuleVerdict::Excluded(_)
        ));
        assert!(matches!(
            r.decide(&lib, Some(&v("v1.4.2-rc.1"))),
            ModuleVerdict::Excluded(_)
        ));
        assert_eq!(r.decide(&lib, Some(&v("v1.4.2"))), ModuleVerdict::Allowed);
        assert_eq!(
            r.decide(&lib, None),
            ModuleVerdict::Allowed,
            "the list stays visible"
        );
        let r = rules(&["exclude example.com/lib@>=v1.0.0,<=v1.1.0"]);
        assert_eq!(r.decide(&lib, Some(&v("v0.9.0"))), ModuleVerdict::Allowed);
        assert!(matches!(
            r.decide(&lib, Some(&v("v1.1.0"))),
            ModuleVerdict::Excluded(_)
        ));
        assert_eq!(r.decide(&lib, Some(&v("v1.1.1"))), ModuleVerdict::Allowed);
        let r = rules(&["exclude example.com/lib@v1.0.0"]);
        assert!(matches!(
            r.decide(&lib, Some(&v("v1.0.0"))),
            ModuleVerdict::Excluded(_)
        ));
        assert_eq!(r.decide(&lib, Some(&v("v1.0.1"))), ModuleVerdict::Allowed);
    }

    #[test]
    fn first_match_decides_and_allow_rules_make_an_allow_list() {
        let r = rules(&["exclude corp.example.com/secret\n# comment\nallow corp.example.com"]);
        assert!(matches!(
            r.decide(&m("corp.example.com/secret/x"), None),
            ModuleVerdict::Excluded(_)
        ));
        assert_eq!(
            r.decide(&m("corp.example.com/lib"), None),
            ModuleVerdict::Allowed
        );
        let ModuleVerdict::Excluded(why) = r.decide(&m("github.com/x/y"), None) else {
            panic!("not on the allow list")
        };
        assert!(why.contains("allow list"), "{why}");
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            "exclude",
            "block github.com/x",
            "exclude github.com/[ab]",
            "exclude github.com//x",
            "exclude github.com/x@<1.0",
            "exclude a,b",
        ] {
            assert!(ModuleRules::parse(&[bad]).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn a_literal_glob_matches_itself_and_below(a in "[a-z]{1,8}", b in "[a-z]{1,8}") {
            let path = format!("{a}.test/{b}");
            let g = parse_glob(&path).unwrap();
            let below = format!("{path}/sub");
            let longer = format!("{path}x");
            proptest::prop_assert!(glob_matches(&g, &path));
            proptest::prop_assert!(glob_matches(&g, &below));
            proptest::prop_assert!(!glob_matches(&g, &longer));
        }

        #[test]
        fn star_matches_any_element(e in "[a-z0-9.-]{0,12}") {
            proptest::prop_assert!(element_matches(b"*", e.as_bytes()));
            let with = format!("x{e}y");
            proptest::prop_assert!(element_matches(b"x*y", with.as_bytes()));
        }

        #[test]
        fn rule_parsing_never_panics(s in ".{0,80}") {
            let _ = Rule::parse(&s);
        }
    }
}
