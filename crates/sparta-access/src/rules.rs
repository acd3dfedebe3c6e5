//! Module rules: which module paths (and versions) the proxy serves.
//!
//! A rule is `ACTION PATTERN[@RANGE] [REASON]`: `exclude github.com/evil/*
//! compromised upstream`, `exclude example.com/lib@<v1.4.2 CVE-2026-0001`,
//! `allow corp.example.com`. PATTERN is one GOPRIVATE-style glob, matched by
//! `sparta_core::glob` like routes and `--nosumdb` (it matches the path and
//! everything below it; `*`, `?` and `[...]` stay within one element);
//! RANGE is comparisons joined by `,`, all of which must hold
//! (`>=v1.0.0,<v1.4.2`). The first rule that matches decides; with no match
//! a module is served, unless some `allow` rule exists, which makes the
//! rules an allow list.

use std::cmp::Ordering;

use sparta_core::glob::GlobList;
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
    glob: GlobList,
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
            if !rule.glob.matches(module.as_str()) {
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

fn parse_glob(pattern: &str) -> Result<GlobList, String> {
    let pattern = pattern.trim_end_matches('/');
    if pattern.is_empty() {
        return Err("empty pattern".into());
    }
    if pattern.contains(',') {
        return Err("a rule holds one glob (no comma-separated lists)".into());
    }
    if pattern.split('/').any(str::is_empty) {
        return Err("empty path element".into());
    }
    GlobList::parse(pattern)
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
        // The project's one matcher: classes work as in GOPRIVATE.
        let r = rules(&["exclude evil.test/[ab]x"]);
        assert!(matches!(
            r.decide(&m("evil.test/bx/y"), None),
            ModuleVerdict::Excluded(_)
        ));
        assert_eq!(r.decide(&m("evil.test/cx"), None), ModuleVerdict::Allowed);
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
            "exclude github.com/[ab",
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
            proptest::prop_assert!(g.matches(&path));
            proptest::prop_assert!(g.matches(&below));
            proptest::prop_assert!(!g.matches(&longer));
        }

        #[test]
        fn star_matches_any_element(e in "[a-z0-9.-]{0,12}") {
            let star = parse_glob("x.test/*").unwrap();
            let path = format!("x.test/{e}");
            proptest::prop_assert!(e.is_empty() || star.matches(&path));
            let around = parse_glob("x.test/x*y").unwrap();
            let with = format!("x.test/x{e}y");
            proptest::prop_assert!(around.matches(&with));
        }

        #[test]
        fn rule_parsing_never_panics(s in ".{0,80}") {
            let _ = Rule::parse(&s);
        }
    }
}
