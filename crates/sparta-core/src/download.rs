//! Download modes per module pattern (`--download-mode glob[,glob]=mode`,
//! globs as in GOPRIVATE and `--route`; the first matching rule wins,
//! modules no rule matches are `sync`):
//!
//! - `sync`: a miss is fetched while the client waits (the default);
//! - `async`: what is stored is served; a miss answers 404 at once, so the
//!   go command falls through to its next proxy, and is fetched in the
//!   background for next time;
//! - `redirect:URL`: every request is a 302 to the same path under URL
//!   (another proxy for these modules);
//! - `presigned`: `.zip` requests are a 302 to a short-lived presigned URL
//!   of the stored zip (fetched and stored first, as in `sync`), so the
//!   bytes go from the bucket to the client; every other file is served as
//!   in `sync`;
//! - `none` (404) or `none:403`: what is stored is served, nothing is ever
//!   fetched.
//!
//! [`DownloadModes::decide`] turns a module and what is stored into one
//! [`Action`]; the server applies it before any fetch.

use crate::glob::GlobList;
use crate::{CoreError, ProxyRequest};

/// What a rule does with a module's requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownloadMode {
    Sync,
    Async,
    /// Base URL without a trailing slash.
    Redirect(String),
    /// Zips: a 302 to a presigned URL of the stored object.
    Presigned,
    /// Never fetch; misses answer with this status (404 or 403).
    None(u16),
}

impl DownloadMode {
    /// Parses `sync`, `async`, `redirect:URL`, `presigned`, `none` or `none:403`.
    pub fn parse(s: &str) -> Result<DownloadMode, String> {
        match s.trim() {
            "sync" => Ok(DownloadMode::Sync),
            "async" => Ok(DownloadMode::Async),
            "presigned" => Ok(DownloadMode::Presigned),
            "none" | "none:404" => Ok(DownloadMode::None(404)),
            "none:403" => Ok(DownloadMode::None(403)),
            other => match other.strip_prefix("redirect:") {
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                    let url = url.trim_end_matches('/');
                    if url.contains(['?', '#', ' ']) {
                        return Err(format!("redirect URL {url:?} must not hold ?, # or spaces"));
                    }
                    Ok(DownloadMode::Redirect(url.to_owned()))
                }
                Some(url) => Err(format!(
                    "redirect URL {url:?} must start with http:// or https://"
                )),
                None => Err(format!(
                    "unknown download mode {other:?}: want sync, async, redirect:URL, presigned, none or none:403"
                )),
            },
        }
    }

    /// The metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            DownloadMode::Sync => "sync",
            DownloadMode::Async => "async",
            DownloadMode::Redirect(_) => "redirect",
            DownloadMode::Presigned => "presigned",
            DownloadMode::None(_) => "none",
        }
    }
}

/// One `--download-mode` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadRule {
    /// As written, for logs.
    pub spec: String,
    globs: GlobList,
    pub mode: DownloadMode,
}

/// The rules in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DownloadModes {
    rules: Vec<DownloadRule>,
}

/// What the server does with one request, decided before any fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Serve as usual: fetch on a miss.
    Serve,
    /// Serve only what is stored; on a miss answer `status` and, when
    /// `fetch_later`, start a background fetch.
    StoredOnly { status: u16, fetch_later: bool },
    /// 302 to this URL.
    Redirect(String),
    /// Make sure the zip is stored (fetching it as `Serve` would), then
    /// 302 to a presigned URL of the stored object.
    PresignedZip,
}

impl DownloadModes {
    /// Parses each `--download-mode` value in order.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<DownloadModes, CoreError> {
        let rules = specs
            .iter()
            .map(|spec| {
                let spec = spec.as_ref();
                let invalid = |why: String| {
                    CoreError::InvalidProxyList(format!("download mode {spec:?}: {why}"))
                };
                let (patterns, mode) = spec.rsplit_once('=').ok_or_else(|| {
                    invalid("expected pattern=mode, e.g. github.com/big/*=async".into())
                })?;
                // `redirect:URL` may hold `=` in its URL: split at the first
                // `=` that is followed by a mode name instead.
                let (patterns, mode) = match spec.split_once("=redirect:") {
                    Some((p, url)) => (p, format!("redirect:{url}")),
                    None => (patterns, mode.to_owned()),
                };
                let globs = GlobList::parse(patterns).map_err(invalid)?;
                if globs.is_empty() {
                    return Err(invalid("no pattern before '='".into()));
                }
                Ok(DownloadRule {
                    spec: spec.trim().to_owned(),
                    globs,
                    mode: DownloadMode::parse(&mode).map_err(invalid)?,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(DownloadModes { rules })
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[DownloadRule] {
        &self.rules
    }

    /// The mode of the first rule matching `module`, else `sync`.
    pub fn mode(&self, module: &str) -> &DownloadMode {
        static SYNC: DownloadMode = DownloadMode::Sync;
        self.rules
            .iter()
            .find(|r| r.globs.matches(module))
            .map_or(&SYNC, |r| &r.mode)
    }

    /// Whether any rule presigns (the store must be able to sign URLs).
    pub fn presigns(&self) -> bool {
        self.rules.iter().any(|r| r.mode == DownloadMode::Presigned)
    }

    /// What to do with `request`, whose escaped proxy path (after the mount
    /// prefix, without its leading `/`) is `path`.
    pub fn decide(&self, request: &ProxyRequest, path: &str) -> Action {
        match self.mode(request.module().as_str()) {
            DownloadMode::Sync => Action::Serve,
            DownloadMode::Async => Action::StoredOnly {
                status: 404,
                fetch_later: true,
            },
            DownloadMode::None(status) => Action::StoredOnly {
                status: *status,
                fetch_later: false,
            },
            DownloadMode::Redirect(base) => Action::Redirect(format!("{base}/{path}")),
            // Only zips are worth a round trip to the bucket: the small
            // files are served from memory.
            DownloadMode::Presigned => match request {
                ProxyRequest::Zip(..) => Action::PresignedZip,
                _ => Action::Serve,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modes(specs: &[&str]) -> DownloadModes {
        DownloadModes::parse(specs).unwrap()
    }

    /// The decision for a request path, parsed as the router parses it.
    fn decide(m: &DownloadModes, path: &str) -> Action {
        m.decide(&ProxyRequest::parse(path).unwrap(), path)
    }

    #[test]
    fn first_match_wins_and_default_is_sync() {
        let m = modes(&[
            "github.com/big/huge=none:403",
            "github.com/big/*=async",
            "corp.example.com=redirect:https://proxy.corp.example.com/go/",
            "gopkg.in/*,golang.org/x=none",
        ]);
        assert_eq!(m.mode("github.com/big/huge"), &DownloadMode::None(403));
        assert_eq!(m.mode("github.com/big/other/sub"), &DownloadMode::Async);
        assert_eq!(m.mode("github.com/small/x"), &DownloadMode::Sync);
        assert_eq!(m.mode("golang.org/x/text"), &DownloadMode::None(404));
        assert_eq!(
            decide(&m, "corp.example.com/a/@v/list"),
            Action::Redirect("https://proxy.corp.example.com/go/corp.example.com/a/@v/list".into())
        );
        assert_eq!(
            decide(&m, "github.com/big/x/@v/v1.0.0.zip"),
            Action::StoredOnly {
                status: 404,
                fetch_later: true
            }
        );
        assert_eq!(
            decide(&m, "github.com/big/huge/@v/list"),
            Action::StoredOnly {
                status: 403,
                fetch_later: false
            }
        );
        assert_eq!(decide(&m, "example.com/x/@latest"), Action::Serve);
        assert_eq!(
            decide(&DownloadModes::default(), "a.b/c/@v/list"),
            Action::Serve
        );
        assert!(!m.presigns());
    }

    #[test]
    fn presigned_redirects_zips_only() {
        let m = modes(&[
            // Globs match the module path, not its escaped form.
            "github.com/Big/*= presigned ",
            "github.com/*=none",
        ]);
        assert!(m.presigns());
        assert_eq!(m.mode("github.com/Big/x"), &DownloadMode::Presigned);
        assert_eq!(m.mode("github.com/Big/x").label(), "presigned");
        assert_eq!(
            decide(&m, "github.com/!big/x/@v/v1.2.3.zip"),
            Action::PresignedZip
        );
        for path in [
            "github.com/!big/x/@v/v1.2.3.info",
            "github.com/!big/x/@v/v1.2.3.mod",
            "github.com/!big/x/@v/master.info",
            "github.com/!big/x/@v/list",
            "github.com/!big/x/@latest",
        ] {
            assert_eq!(decide(&m, path), Action::Serve, "{path}");
        }
        // Later rules still apply to modules the presigned rule misses.
        assert_eq!(
            decide(&m, "github.com/small/x/@v/v1.0.0.zip"),
            Action::StoredOnly {
                status: 404,
                fetch_later: false
            }
        );
        for bad in [
            "a.example=presigned:5m",
            "a.example=presign",
            "a.example=Presigned",
            "=presigned",
        ] {
            assert!(DownloadModes::parse(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            "github.com/x",
            "=async",
            "github.com/x=later",
            "github.com/x=redirect:ftp://x",
            "github.com/x=redirect:https://x/?a=b",
            "github.com/x=none:500",
        ] {
            assert!(DownloadModes::parse(&[bad]).is_err(), "{bad}");
        }
        // A URL may hold '=' in its path.
        let m = modes(&["a.example/*=redirect:https://p.example/k=v"]);
        assert_eq!(
            m.mode("a.example/x"),
            &DownloadMode::Redirect("https://p.example/k=v".into())
        );
    }
}
