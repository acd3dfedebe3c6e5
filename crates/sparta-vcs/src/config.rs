//! Settings of the VCS source; the binary fills them from flags.

use std::path::PathBuf;
use std::time::Duration;

use crate::VcsError;

/// Settings (the binary fills them from flags).
#[derive(Debug, Clone)]
pub struct VcsConfig {
    /// `--vcs-cache-dir`: bare mirrors live here.
    pub cache_dir: PathBuf,
    /// `--vcs-cache-size`: LRU bound in bytes over all mirrors.
    pub cache_size: u64,
    /// `--vcs-map 'glob=template'`: static repository map, first match wins.
    pub maps: Vec<VcsMap>,
    /// `--vcs-netrc` (the binary defaults it to $NETRC or ~/.netrc if it exists).
    pub netrc: Option<PathBuf>,
    /// `--vcs-token-dir`: files named by host holding a token.
    pub token_dir: Option<PathBuf>,
    /// `--vcs-ssh-key` for ssh:// remotes.
    pub ssh_key: Option<PathBuf>,
    /// `--vcs-insecure` globs (GOINSECURE): discovery over plain http allowed.
    pub insecure: Vec<String>,
    /// Which addresses may be reached.
    pub net: NetPolicy,
    /// `--vcs-timeout`: bound for each git operation and each discovery request.
    pub op_timeout: Duration,
    /// `--vcs-max-repo-size`: a mirror larger than this is refused.
    pub max_repo_size: u64,
    /// Module zip limit (sparta_core::zipcheck::MAX_ZIP_SIZE).
    pub max_zip_size: u64,
}

impl VcsConfig {
    /// Defaults for everything but the cache directory.
    pub fn new(cache_dir: PathBuf) -> Self {
        VcsConfig {
            cache_dir,
            cache_size: 10 << 30,
            maps: Vec::new(),
            netrc: None,
            token_dir: None,
            ssh_key: None,
            insecure: Vec::new(),
            net: NetPolicy::default(),
            op_timeout: Duration::from_secs(300),
            max_repo_size: 2 << 30,
            max_zip_size: sparta_core::zipcheck::MAX_ZIP_SIZE,
        }
    }
}

/// Address policy. Link-local and cloud metadata addresses are always refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetPolicy {
    /// Loopback addresses may be reached (tests need it).
    pub allow_loopback: bool,
    /// Private ranges (10/8, 172.16/12, 192.168/16, fc00::/7) are refused.
    pub refuse_private: bool,
}

/// One `--vcs-map` entry: module paths matching `pattern` (GOPRIVATE glob
/// syntax) live in the git repository named by `template`.
///
/// Template variables: `{path}` the matched prefix of the module path
/// (`git.corp.example.com/team/lib`), `{host}` its first element,
/// `{rest}` the matched prefix without the host (`team/lib`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcsMap {
    pub pattern: String,
    pub template: String,
}

impl VcsMap {
    /// Parses `glob=template`.
    pub fn parse(spec: &str) -> Result<VcsMap, VcsError> {
        let (pattern, template) = spec
            .split_once('=')
            .ok_or_else(|| VcsError::Failed(format!("vcs map {spec:?}: want glob=template")))?;
        let (pattern, template) = (pattern.trim(), template.trim());
        if pattern.is_empty() || template.is_empty() {
            return Err(VcsError::Failed(format!(
                "vcs map {spec:?}: empty glob or template"
            )));
        }
        if !template.contains("://") {
            return Err(VcsError::Failed(format!(
                "vcs map {spec:?}: template must be a URL (https://, http://, ssh://)"
            )));
        }
        Ok(VcsMap {
            pattern: pattern.to_owned(),
            template: template.to_owned(),
        })
    }
}
