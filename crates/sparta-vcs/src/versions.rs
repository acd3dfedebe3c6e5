//! Tags to module versions, as the go command's codeRepo does it
//! (cmd/go/internal/modfetch/coderepo.go): tag prefixes for modules in
//! subdirectories, major-version subdirectories, `+incompatible`,
//! pseudo-versions on the right base tag, and their validation.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use sparta_core::module::split_path_version;
use sparta_core::version::{canonical, compare, pseudo_version};
use sparta_core::zipcheck::MAX_GOMOD_SIZE;
use sparta_core::{ModulePath, Version};

use crate::batch::Batch;
use crate::git::Git;
use crate::mirror::Memo;
use crate::repo::{self, Commit, Refs};
use crate::timefmt::{pseudo_timestamp, rfc3339};

#[path = "versions_check.rs"]
mod check;
use crate::{Origin, RevInfo, VcsError};

/// One module inside one mirrored repository.
pub(crate) struct CodeRepo {
    pub git: Git,
    pub dir: PathBuf,
    pub url: String,
    pub mod_path: ModulePath,
    pub code_root: String,
    /// The module's directory in the repository (`""` at the root).
    pub code_dir: String,
    path_prefix: String,
    path_major: String,
    pseudo_major: String,
    pub refs: Arc<Refs>,
    /// Reads commits and files: the mirror's `cat-file --batch` readers.
    pub batch: Arc<Batch>,
    /// A mirror holding single tags only (see mirror.rs): no history, few refs.
    pub shallow: bool,
    /// `find_dir` answers at these refs, shared by the requests that use them.
    pub memo: Arc<Memo>,
}

/// `semver.Compare` over strings that may be non-canonical or invalid
/// (invalid sorts first, and two invalid ones are equal).
fn semver_cmp(a: &str, b: &str) -> Ordering {
    let p = |s: &str| canonical(s).and_then(|c| Version::parse(&c).ok());
    match (p(a), p(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => compare(&x, &y),
    }
}

fn major_of(v: &str) -> String {
    let v = v.strip_prefix('v').unwrap_or(v);
    format!("v{}", v.split(['.', '-', '+']).next().unwrap_or(""))
}

/// `module.PathMajorPrefix`: `/v2` -> `v2`, `.v2-unstable` -> `v2`.
fn path_major_prefix(pm: &str) -> String {
    if pm.is_empty() {
        return String::new();
    }
    let m = pm[1..].strip_suffix("-unstable").unwrap_or(&pm[1..]);
    m.to_owned()
}

/// `module.MatchPathMajor` for a canonical version string.
fn match_path_major(v: &str, path_major: &str) -> bool {
    Version::parse(v).is_ok_and(|v| sparta_core::module::check_path_major(&v, path_major).is_ok())
}

/// `isMajor`: whether go.mod's module path `mpath` fits `path_major`.
fn is_major(mpath: &str, path_major: &str) -> bool {
    let Some((_, mm)) = split_path_version(mpath) else {
        return false;
    };
    if path_major.is_empty() {
        return matches!(path_major_prefix(mm).as_str(), "" | "v0" | "v1");
    }
    !mm.is_empty() && path_major[1..] == mm[1..]
}

fn invalid(module: &ModulePath, v: &str, msg: impl std::fmt::Display) -> VcsError {
    VcsError::NotFound(format!("{module}@{v}: invalid version: {msg}"))
}

impl CodeRepo {
    /// `newCodeRepo`: the module `mod_path` in the repository rooted at `code_root`.
    pub fn new(
        git: Git,
        dir: PathBuf,
        url: String,
        mod_path: ModulePath,
        code_root: &str,
        refs: Arc<Refs>,
    ) -> Result<Self, VcsError> {
        let path = mod_path.as_str();
        let in_root = path == code_root || path.starts_with(&format!("{code_root}/"));
        if !in_root {
            return Err(VcsError::NotFound(format!(
                "mismatched repo: found {code_root} for {path}"
            )));
        }
        let (mut prefix, major) = split_path_version(path)
            .ok_or_else(|| VcsError::NotFound(format!("invalid module path {path:?}")))?;
        if code_root == path {
            prefix = path;
        }
        let mut code_dir = String::new();
        if code_root != path {
            if !(prefix == code_root || prefix.starts_with(&format!("{code_root}/"))) {
                return Err(VcsError::NotFound(format!(
                    "repository rooted at {code_root} cannot contain module {path}"
                )));
            }
            code_dir = prefix[code_root.len()..].trim_matches('/').to_owned();
        }
        let (path_prefix, pseudo_major) = (prefix.to_owned(), path_major_prefix(major));
        let path_major = major.to_owned();
        Ok(CodeRepo {
            batch: Arc::new(Batch::new(git.clone(), dir.clone())),
            git,
            dir,
            url,
            mod_path,
            code_root: code_root.to_owned(),
            code_dir,
            path_prefix,
            path_major,
            pseudo_major,
            refs,
            shallow: false,
            memo: Arc::default(),
        })
    }

    fn tag_prefix(&self) -> String {
        if self.code_dir.is_empty() {
            String::new()
        } else {
            format!("{}/", self.code_dir)
        }
    }

    /// Tag names starting with `prefix`.
    fn tags(&self, prefix: &str) -> Vec<String> {
        self.refs
            .keys()
            .filter_map(|r| r.strip_prefix("refs/tags/"))
            .filter(|t| t.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    async fn read(&self, hash: &str, file: &str) -> Result<Option<Vec<u8>>, VcsError> {
        repo::read_file(&self.batch, hash, file, MAX_GOMOD_SIZE).await
    }

    /// `codeRepo.Versions`: tagged versions, with `+incompatible` ones where allowed.
    pub async fn versions(&self) -> Result<Vec<Version>, VcsError> {
        if self.shallow {
            return Err(VcsError::NotFound(format!(
                "{}: listing needs every tag",
                self.mod_path
            )));
        }
        let p = self.tag_prefix();
        let (mut list, mut incompatible) = (Vec::new(), Vec::new());
        for tag in self.tags(&p) {
            let v = &tag[p.len()..];
            if v.is_empty() || canonical(v).as_deref() != Some(v) {
                continue;
            }
            let Ok(ver) = Version::parse(v) else { continue };
            if ver.is_pseudo() {
                continue;
            }
            if sparta_core::module::check_path_major(&ver, &self.path_major).is_err() {
                if self.code_dir.is_empty()
                    && self.path_major.is_empty()
                    && semver_cmp(&major_of(v), "v1") == Ordering::Greater
                {
                    incompatible.push(ver);
                }
                continue;
            }
            list.push(ver);
        }
        list.sort_by(compare);
        incompatible.sort_by(compare);
        if incompatible.is_empty() || !self.path_major.is_empty() {
            return Ok(list);
        }
        if let Some(last) = list.last() {
            let c = self.stat_commit(last.as_str()).await?;
            if self.read(&c.name, "go.mod").await?.is_some() {
                return Ok(list);
            }
        }
        let mut last_major = String::new();
        let mut last_has_gomod = false;
        for (i, v) in incompatible.iter().enumerate() {
            let major = v.major().to_owned();
            if major != last_major {
                let latest = incompatible[i..]
                    .iter()
                    .take_while(|x| x.major() == major)
                    .last()
                    .unwrap_or(v);
                let c = self.stat_commit(latest.as_str()).await?;
                last_has_gomod = self.read(&c.name, "go.mod").await?.is_some();
                last_major = major;
            }
            if !last_has_gomod {
                let inc = Version::parse(&format!("{v}+incompatible"))
                    .map_err(|e| VcsError::Failed(e.to_string()))?;
                list.push(inc);
            }
        }
        Ok(list)
    }

    /// `gitRepo.stat`: the commit a revision names, and the ref it came by.
    pub async fn stat_commit_ref(&self, rev: &str) -> Result<(Commit, String), VcsError> {
        let hexlike = (7..=40).contains(&rev.len()) && rev.bytes().all(|b| b.is_ascii_hexdigit());
        if hexlike && let Some(c) = repo::commit(&self.batch, rev, &self.refs).await? {
            return Ok((c, String::new()));
        }
        let (r, hash) = if let Some(h) = self.refs.get(&format!("refs/tags/{rev}")) {
            (format!("refs/tags/{rev}"), h)
        } else if let Some(h) = self.refs.get(&format!("refs/heads/{rev}")) {
            (format!("refs/heads/{rev}"), h)
        } else if rev == "HEAD" && self.refs.contains_key("HEAD") {
            ("HEAD".to_owned(), &self.refs["HEAD"])
        } else {
            return Err(VcsError::NotFound(format!(
                "{}@{rev}: unknown revision {rev}",
                self.mod_path
            )));
        };
        let c = repo::commit(&self.batch, hash, &self.refs)
            .await?
            .ok_or_else(|| {
                VcsError::NotFound(format!("{}@{rev}: unknown revision {rev}", self.mod_path))
            })?;
        Ok((c, r))
    }

    async fn stat_commit(&self, rev: &str) -> Result<Commit, VcsError> {
        Ok(self.stat_commit_ref(rev).await?.0)
    }

    /// `codeRepo.revToRev`.
    pub(crate) fn rev_to_rev(&self, rev: &str) -> String {
        let Ok(v) = Version::parse(rev) else {
            if canonical(rev).is_some() && !self.code_dir.is_empty() {
                return format!("{}/{rev}", self.code_dir);
            }
            return rev.to_owned();
        };
        if let Some(p) = v.pseudo_parts() {
            return p.rev;
        }
        let base = rev.strip_suffix("+incompatible").unwrap_or(rev);
        if self.code_dir.is_empty() {
            base.to_owned()
        } else {
            format!("{}/{base}", self.code_dir)
        }
    }

    /// `codeRepo.Stat`: the .info of a revision or version.
    pub async fn stat(&self, rev: &str) -> Result<RevInfo, VcsError> {
        let code_rev = self.rev_to_rev(rev);
        let (c, r) = match self.stat_commit_ref(&code_rev).await {
            Ok(x) => x,
            Err(VcsError::NotFound(_)) => {
                return Err(invalid(
                    &self.mod_path,
                    rev,
                    format!("unknown revision {code_rev}"),
                ));
            }
            Err(e) => return Err(e),
        };
        let version = Box::pin(self.convert(&c, &code_rev, rev)).await?;
        Ok(self.rev_info(version, &c, r))
    }

    /// `codeRepo.Latest`: the default branch's commit as a version.
    pub async fn latest_commit(&self) -> Result<RevInfo, VcsError> {
        let hash = self
            .refs
            .get("HEAD")
            .ok_or_else(|| VcsError::NotFound(format!("{}: no commits", self.mod_path)))?
            .clone();
        let c = repo::commit(&self.batch, &hash, &self.refs)
            .await?
            .ok_or_else(|| VcsError::NotFound(format!("{}: no commits", self.mod_path)))?;
        let version = self.convert(&c, &hash, "").await?;
        Ok(self.rev_info(version, &c, "HEAD".into()))
    }

    fn rev_info(&self, version: Version, c: &Commit, r: String) -> RevInfo {
        RevInfo {
            version,
            time: rfc3339(c.time),
            origin: Some(Origin {
                vcs: "git".into(),
                url: crate::scrub::scrub(&self.url),
                subdir: self.code_dir.clone(),
                hash: c.name.clone(),
                r#ref: r,
            }),
        }
    }

    async fn can_use_incompatible(
        &self,
        c: &Commit,
        v: &str,
        stat_vers: &str,
        cache: &mut HashMap<String, bool>,
    ) -> Result<bool, VcsError> {
        if !self.code_dir.is_empty() || !self.path_major.is_empty() {
            return Ok(false);
        }
        if !cache.contains_key("") {
            let ok = self.read(&c.name, "go.mod").await?.is_none();
            cache.insert(String::new(), ok);
        }
        if !cache[""] {
            return Ok(false);
        }
        if !v.is_empty() && !stat_vers.ends_with("+incompatible") {
            let major = major_of(v);
            if !cache.contains_key(&major) {
                let ok = self
                    .read(&c.name, &format!("{major}/go.mod"))
                    .await?
                    .is_none();
                cache.insert(major.clone(), ok);
            }
            return Ok(cache[&major]);
        }
        Ok(true)
    }

    async fn check_canonical(
        &self,
        c: &Commit,
        v: &str,
        stat_vers: &str,
        cache: &mut HashMap<String, bool>,
    ) -> Result<Version, VcsError> {
        if let Err(e) = Box::pin(self.find_dir(v)).await {
            return Err(invalid(&self.mod_path, v, e_msg(&e)));
        }
        let mut v = v.to_owned();
        if v == stat_vers.strip_suffix("+incompatible").unwrap_or(stat_vers) {
            v = stat_vers.to_owned();
        }
        let base = v.strip_suffix("+incompatible").unwrap_or(&v).to_owned();
        let mut err_incompatible = None;
        if !match_path_major(&base, &self.path_major) {
            if self
                .can_use_incompatible(c, &base, stat_vers, cache)
                .await?
            {
                v = format!("{base}+incompatible");
            } else if !self.path_major.is_empty() {
                err_incompatible = Some(invalid(
                    &self.mod_path,
                    &v,
                    "module path includes a major version suffix, so major version must match",
                ));
            } else {
                err_incompatible = Some(invalid(
                    &self.mod_path,
                    &v,
                    format!(
                        "module contains a go.mod file, so module path must match major version (\"{}/{}\")",
                        self.path_prefix,
                        major_of(&v)
                    ),
                ));
            }
        } else if v.ends_with("+incompatible") {
            err_incompatible = Some(invalid(
                &self.mod_path,
                &v,
                format!(
                    "+incompatible suffix not allowed: major version {} is compatible",
                    major_of(&v)
                ),
            ));
        }
        if !stat_vers.is_empty() && Version::parse(stat_vers).is_ok() {
            let stat_base = stat_vers.strip_suffix("+incompatible").unwrap_or(stat_vers);
            if stat_base != base {
                return Err(invalid(
                    &self.mod_path,
                    stat_vers,
                    format!("resolves to version {v} ({stat_base} is not a tag)"),
                ));
            }
        }
        if let Some(e) = err_incompatible {
            return Err(e);
        }
        Version::parse(&v).map_err(|e| invalid(&self.mod_path, &v, e))
    }

    /// `tagToVersion`: the canonical version a tag names, and whether the
    /// tag is exactly that.
    fn tag_to_version(&self, tag: &str) -> (String, bool) {
        let p = self.tag_prefix();
        let Some(trimmed) = tag.strip_prefix(p.as_str()) else {
            return (String::new(), false);
        };
        if Version::parse(tag).is_ok_and(|v| v.is_pseudo()) {
            return (String::new(), false);
        }
        match canonical(trimmed) {
            Some(v) if trimmed.starts_with(&v) => {
                let exact = v == trimmed;
                (v, exact)
            }
            _ => (String::new(), false),
        }
    }

    /// `codeRepo.retractedVersions`: the `retract` directives of the go.mod
    /// at the highest release (else pre-release), `+incompatible` ones left
    /// aside; none when that cannot be read (as the go command).
    pub async fn retracted(&self) -> Retracted {
        let Ok(mut list) = self.versions().await else {
            return Retracted::default();
        };
        if let Some(i) = list
            .iter()
            .position(|v| v.as_str().ends_with("+incompatible"))
        {
            list.truncate(i);
        }
        let Some(top) = list
            .iter()
            .rev()
            .find(|v| !v.is_prerelease())
            .or(list.last())
            .cloned()
        else {
            return Retracted::default();
        };
        let gomod = match Box::pin(self.find_dir(top.as_str())).await {
            Ok((_, _, gomod)) => gomod,
            Err(_) => return Retracted::default(),
        };
        let ranges = gomod
            .map(|g| sparta_core::gomod::retractions(&String::from_utf8_lossy(&g)))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(lo, hi)| Some((Version::parse(&lo).ok()?, Version::parse(&hi).ok()?)))
            .collect();
        Retracted(ranges)
    }

    /// `codeRepo.convert`: the module version of commit `c`, asked for as `stat_vers`.
    async fn convert(
        &self,
        c: &Commit,
        code_rev: &str,
        stat_vers: &str,
    ) -> Result<Version, VcsError> {
        let mut cache = HashMap::new();
        if Version::parse(stat_vers).is_ok_and(|v| v.is_pseudo()) {
            let v = self
                .check_canonical(c, stat_vers, stat_vers, &mut cache)
                .await?;
            self.validate_pseudo(c, stat_vers).await?;
            return Ok(v);
        }
        // The tag the revision was named by, when it is one.
        if c.tags.iter().any(|t| t == code_rev) {
            let (v, exact) = self.tag_to_version(code_rev);
            if exact && let Ok(v) = self.check_canonical(c, &v, stat_vers, &mut cache).await {
                return Ok(v);
            }
        }
        if self.shallow {
            // What follows reads other tags and history: NotFound sends the
            // caller to the complete mirror (Vcs::with_repo).
            return Err(VcsError::NotFound(format!(
                "{}@{stat_vers}: needs the repository's history",
                self.mod_path
            )));
        }
        // Retracted tags are neither a revision's version nor a base.
        let retracted = self.retracted().await;
        let is_retracted = |v: &str| Version::parse(v).is_ok_and(|v| retracted.covers(&v));
        let mut highest = String::new();
        let mut pseudo_base = String::new();
        for tag in &c.tags {
            let (v, exact) = self.tag_to_version(tag);
            if !stat_vers.is_empty() && semver_cmp(&v, stat_vers) == Ordering::Equal {
                if exact {
                    return self.check_canonical(c, &v, stat_vers, &mut cache).await;
                }
                pseudo_base = v.clone();
            }
            if exact
                && semver_cmp(&highest, &v) == Ordering::Less
                && !is_retracted(&v)
                && (match_path_major(&v, &self.path_major)
                    || self
                        .can_use_incompatible(c, &v, stat_vers, &mut cache)
                        .await?)
            {
                highest = v;
            }
        }
        if !highest.is_empty() {
            return self
                .check_canonical(c, &highest, stat_vers, &mut cache)
                .await;
        }
        if pseudo_base.is_empty() {
            let p = self.tag_prefix();
            let mut best = String::new();
            for tag in repo::merged_tags(&self.git, &self.dir, &c.name).await? {
                let Some(semtag) = tag.strip_prefix(p.as_str()) else {
                    continue;
                };
                let (v, _) = self.tag_to_version(&tag);
                if v.is_empty() || is_retracted(&v) {
                    continue;
                }
                if !match_path_major(&v, &self.path_major)
                    && !self
                        .can_use_incompatible(c, &v, stat_vers, &mut cache)
                        .await?
                {
                    continue;
                }
                if semver_cmp(semtag, &best) == Ordering::Greater {
                    best = semtag.to_owned();
                }
            }
            if !best.is_empty() {
                pseudo_base = self.tag_to_version(&format!("{p}{best}")).0;
            }
        }
        let pv = pseudo_version(
            &self.pseudo_major,
            &pseudo_base,
            &pseudo_timestamp(c.time),
            c.short(),
        );
        self.check_canonical(c, &pv, stat_vers, &mut cache).await
    }
}

/// Version intervals a module's go.mod retracts.
#[derive(Default)]
pub(crate) struct Retracted(Vec<(Version, Version)>);

impl Retracted {
    /// Whether `v` is in a retracted interval.
    pub fn covers(&self, v: &Version) -> bool {
        self.0
            .iter()
            .any(|(lo, hi)| compare(lo, v).is_le() && compare(v, hi).is_le())
    }

    /// Whether nothing is retracted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn e_msg(e: &VcsError) -> String {
    match e {
        VcsError::NotFound(m)
        | VcsError::Refused(m)
        | VcsError::TooLarge(m)
        | VcsError::Timeout(m)
        | VcsError::Failed(m) => m.clone(),
    }
}
