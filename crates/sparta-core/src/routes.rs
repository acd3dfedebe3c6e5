//! Per-module routes: `glob[,glob...]=list`, where the globs have the
//! GOPRIVATE/GONOPROXY syntax and the list is a GOPROXY list (`direct` and
//! `off` included). The first route whose globs match a module wins;
//! modules no route matches take the default list (`--upstream`).

use crate::CoreError;
use crate::glob::GlobList;
use crate::proxylist::{self, ListEntry};

/// One route: the globs it matches and the list it sends modules to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The route as written, for logs and errors.
    pub spec: String,
    globs: GlobList,
    /// Where matching modules are fetched from.
    pub list: Vec<ListEntry>,
}

impl Route {
    /// Parses `glob[,glob...]=list`.
    pub fn parse(spec: &str) -> Result<Route, CoreError> {
        let invalid = |why: String| CoreError::InvalidProxyList(format!("route {spec:?}: {why}"));
        let (patterns, list) = spec.split_once('=').ok_or_else(|| {
            invalid("expected pattern=list, e.g. git.corp.example.com/*=direct".into())
        })?;
        let globs = GlobList::parse(patterns).map_err(invalid)?;
        if globs.is_empty() {
            return Err(invalid("no pattern before '='".into()));
        }
        let list = proxylist::parse(list).map_err(|e| invalid(e.to_string()))?;
        Ok(Route {
            spec: spec.trim().to_owned(),
            globs,
            list,
        })
    }

    /// Whether a glob of this route matches a leading run of `path`'s elements.
    pub fn matches(&self, path: &str) -> bool {
        self.globs.matches(path)
    }

    /// A route to `direct` keeps its modules private: their paths never
    /// reach another proxy or a public checksum database.
    pub fn is_private(&self) -> bool {
        self.list.iter().any(ListEntry::is_direct)
    }
}

/// The routes in order; the first match wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// Parses each `--route` value in order.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Routes, CoreError> {
        let routes = specs
            .iter()
            .map(|s| Route::parse(s.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Routes { routes })
    }

    /// The routes, in order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The index of the first route matching `module`, or `None` when the
    /// module takes the default list.
    pub fn pick(&self, module: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.matches(module))
    }

    /// Whether any route sends modules to `direct`.
    pub fn any_direct(&self) -> bool {
        self.routes.iter().any(Route::is_private)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxylist::{Fallthrough, ProxyEntry};
    use proptest::prelude::*;

    fn routes(specs: &[&str]) -> Routes {
        Routes::parse(specs).unwrap()
    }

    #[test]
    fn prefix_matching_on_element_boundaries() {
        let r = routes(&["git.corp.example.com/*=direct"]);
        assert_eq!(r.pick("git.corp.example.com/team/x"), Some(0));
        assert_eq!(r.pick("git.corp.example.com/team"), Some(0));
        // One element is not enough for a two-element glob.
        assert_eq!(r.pick("git.corp.example.com"), None);
        assert_eq!(r.pick("git.corp.example.com.evil/team"), None);
        let r = routes(&["git.corp.example.com=direct"]);
        assert_eq!(r.pick("git.corp.example.com"), Some(0));
        assert_eq!(r.pick("git.corp.example.com/a/b"), Some(0));
        assert_eq!(r.pick("git.corp.example.community/a"), None);
        let r = routes(&["*.corp.example.com=direct"]);
        assert_eq!(r.pick("git.corp.example.com/a"), Some(0));
        assert_eq!(r.pick("corp.example.com/a"), None);
    }

    #[test]
    fn first_match_wins_and_lists_parse() {
        let r = routes(&[
            "github.com/corp/public=https://proxy.example",
            "github.com/corp/*,gitlab.corp.example/=direct",
            "example.com/gone=off",
        ]);
        assert_eq!(r.pick("github.com/corp/public/sub"), Some(0));
        assert_eq!(r.pick("github.com/corp/private"), Some(1));
        assert_eq!(r.pick("gitlab.corp.example/a/b/c"), Some(1));
        assert_eq!(r.pick("example.com/gone"), Some(2));
        assert_eq!(r.pick("github.com/other/x"), None);
        assert!(!r.routes()[0].is_private());
        assert!(r.routes()[1].is_private());
        assert!(r.any_direct());
        assert_eq!(r.routes()[2].list, vec![ListEntry::Off]);
        assert_eq!(
            r.routes()[0].list,
            vec![ListEntry::Proxy(ProxyEntry {
                url: "https://proxy.example".into(),
                fallthrough: Fallthrough::OnNotFound
            })]
        );
    }

    #[test]
    fn classes_escapes_and_refusals() {
        let r = routes(&["git[0-9].corp/x?z=direct", "a\\*b/c=direct"]);
        assert_eq!(r.pick("git7.corp/xyz/more"), Some(0));
        assert_eq!(r.pick("gitx.corp/xyz"), None);
        assert_eq!(r.pick("a*b/c"), Some(1));
        assert_eq!(r.pick("axb/c"), None);
        let r = routes(&["[^a]*/x=direct"]);
        assert_eq!(r.pick("bcd/x"), Some(0));
        assert_eq!(r.pick("acd/x"), None);
        for bad in [
            "",
            "direct",
            "=direct",
            ",=direct",
            "a/*=",
            "a/[=direct",
            "a/[z-a]=direct",
            "a\\=direct",
            "a/*=ftp://x",
        ] {
            assert!(Route::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn element() -> impl Strategy<Value = String> {
        "[a-z0-9.-]{1,8}"
    }

    proptest! {
        /// A literal glob matches exactly the paths it is an element prefix of.
        #[test]
        fn literal_globs_match_element_prefixes(
            elems in prop::collection::vec(element(), 1..5),
            cut in 1usize..5,
            other in element(),
        ) {
            let cut = cut.min(elems.len());
            let glob = elems[..cut].join("/");
            let r = Routes::parse(&[format!("{glob}=direct")]).unwrap();
            let path = elems.join("/");
            prop_assert_eq!(r.pick(&path), Some(0));
            // Extending the last glob element never matches.
            let longer = format!("{path}{other}");
            if cut == elems.len() {
                prop_assert_eq!(r.pick(&longer), None);
            }
        }

        /// `*` matches exactly one whole element, never a slash.
        #[test]
        fn star_matches_one_element(
            head in element(),
            elems in prop::collection::vec(element(), 0..4),
        ) {
            let r = Routes::parse(&[format!("{head}/*=direct")]).unwrap();
            let path = std::iter::once(head.clone()).chain(elems.iter().cloned()).collect::<Vec<_>>().join("/");
            prop_assert_eq!(r.pick(&path), if elems.is_empty() { None } else { Some(0) });
        }

        /// Parsing never panics on arbitrary input.
        #[test]
        fn parse_never_panics(spec in "\\PC{0,40}", path in "\\PC{0,40}") {
            if let Ok(r) = Routes::parse(&[spec]) {
                let _ = r.pick(&path);
            }
        }
    }
}
