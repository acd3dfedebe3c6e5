//! The checks of codeRepo that read the tree: findDir (which directory and
//! go.mod a version means) and validatePseudoVersion.

use std::cmp::Ordering;

use sparta_core::Version;
use sparta_core::gomod::module_directive;

use super::{CodeRepo, invalid, is_major, major_of, semver_cmp};
use crate::VcsError;
use crate::mirror::FoundDir;
use crate::repo;
use crate::repo::Commit;
use crate::timefmt::pseudo_timestamp;

impl CodeRepo {
    /// `codeRepo.validatePseudoVersion`.
    pub(super) async fn validate_pseudo(&self, c: &Commit, version: &str) -> Result<(), VcsError> {
        if self.shallow {
            return Err(VcsError::NotFound(format!(
                "{}@{version}: needs the repository's history",
                self.mod_path
            )));
        }
        let bad = |msg: String| invalid(&self.mod_path, version, msg);
        let v = Version::parse(version).map_err(|e| bad(e.to_string()))?;
        let parts = v
            .pseudo_parts()
            .ok_or_else(|| bad("malformed pseudo-version".into()))?;
        if parts.rev != c.short() {
            let how = if parts.rev.starts_with(c.short()) {
                "revision is longer than canonical"
            } else if c.short().starts_with(&parts.rev) {
                "revision is shorter than canonical"
            } else {
                "does not match short name of revision"
            };
            return Err(bad(format!("{how} (expected {})", c.short())));
        }
        let ts = pseudo_timestamp(c.time);
        if parts.timestamp != ts {
            return Err(bad(format!(
                "does not match version-control timestamp (expected {ts})"
            )));
        }
        let p = self.tag_prefix();
        let base = parts.base;
        if base.is_empty() {
            if self.pseudo_major.is_empty() && v.major() == "v1" {
                return Err(bad(
                    "major version without preceding tag must be v0, not v1".into(),
                ));
            }
            return Ok(());
        }
        if let Some(tag) = c
            .tags
            .iter()
            .find(|t| t.strip_prefix(p.as_str()) == Some(base.as_str()))
        {
            return Err(bad(format!(
                "tag ({tag}) found on revision {} is already canonical, so should not be replaced with a pseudo-version derived from that tag",
                parts.rev
            )));
        }
        let mut last_tag = None;
        for tag in self.tags(&format!("{p}{base}")) {
            if semver_cmp(&tag[p.len()..], &base) == Ordering::Equal {
                last_tag = Some(tag.clone());
                if repo::descends_from(&self.git, &self.dir, &c.name, &tag).await? {
                    return Ok(());
                }
            }
        }
        match last_tag {
            None => Err(bad(format!("preceding tag ({base}) not found"))),
            Some(t) => Err(bad(format!(
                "revision {} is not a descendent of preceding tag ({t})",
                parts.rev
            ))),
        }
    }

    /// `codeRepo.findDir`: the commit, module directory and go.mod of a
    /// version; answered from the memo when these refs answered it before.
    pub async fn find_dir(&self, version: &str) -> Result<FoundDir, VcsError> {
        // The answer depends on where the repository is rooted, too.
        let module = format!("{} {}", self.code_root, self.mod_path);
        if let Some(found) = self.memo.get(&module, version) {
            return Ok(found);
        }
        let found = self.find_dir_in_tree(version).await?;
        self.memo.put(&module, version, &found);
        Ok(found)
    }

    async fn find_dir_in_tree(&self, version: &str) -> Result<FoundDir, VcsError> {
        let rev = self.rev_to_rev(version);
        let c = self.stat_commit(&rev).await?;
        let join = |d: &str, f: &str| {
            if d.is_empty() {
                f.to_owned()
            } else {
                format!("{d}/{f}")
            }
        };
        let file1 = join(&self.code_dir, "go.mod");
        let gomod1 = self.read(&c.name, &file1).await?;
        let mpath1 = gomod1.as_deref().map(|g| {
            module_directive(&String::from_utf8_lossy(g))
                .unwrap_or("")
                .to_owned()
        });
        let found1 = mpath1.as_deref().is_some_and(|m| {
            is_major(m, &self.path_major)
                || (self.path_major.is_empty() && m.starts_with("gopkg.in/"))
        });
        let mut file2 = String::new();
        if !self.path_major.is_empty()
            && self.code_root != self.mod_path.as_str()
            && !self.path_major.starts_with('.')
        {
            let dir2 = join(&self.code_dir, &self.path_major[1..]);
            file2 = join(&dir2, "go.mod");
            let gomod2 = self.read(&c.name, &file2).await?;
            let mpath2 = gomod2.as_deref().map(|g| {
                module_directive(&String::from_utf8_lossy(g))
                    .unwrap_or("")
                    .to_owned()
            });
            let found2 = mpath2
                .as_deref()
                .is_some_and(|m| is_major(m, &self.path_major));
            if found1 && found2 {
                return Err(VcsError::NotFound(format!(
                    "{}/{file1} and ...{pm}/go.mod both have ...{pm} module paths at revision {rev}",
                    self.path_prefix,
                    pm = self.path_major
                )));
            }
            if found2 {
                return Ok((c.name, dir2, gomod2));
            }
            if let Some(m) = mpath2 {
                return Err(VcsError::NotFound(if m.is_empty() {
                    format!(
                        "{}/{file2} is missing module path at revision {rev}",
                        self.code_root
                    )
                } else {
                    format!(
                        "{}/{file2} has non-...{} module path {m:?} at revision {rev}",
                        self.code_root, self.path_major
                    )
                }));
            }
        }
        if found1 {
            return Ok((c.name, self.code_dir.clone(), gomod1));
        }
        if let Some(m) = mpath1 {
            let suffix = if file2.is_empty() {
                String::new()
            } else {
                format!(" (and ...{}/go.mod does not exist)", self.path_major)
            };
            return Err(VcsError::NotFound(if m.is_empty() {
                format!("{file1} is missing module path{suffix} at revision {rev}")
            } else if !self.path_major.is_empty() {
                format!(
                    "{file1} has non-...{} module path {m:?}{suffix} at revision {rev}",
                    self.path_major
                )
            } else {
                format!(
                    "{file1} has post-{} module path {m:?}{suffix} at revision {rev}",
                    major_of(version)
                )
            }));
        }
        if self.code_dir.is_empty()
            && (self.path_major.is_empty() || self.path_major.starts_with('.'))
        {
            return Ok((c.name, String::new(), None));
        }
        Err(VcsError::NotFound(if file2.is_empty() {
            format!("missing {}/go.mod at revision {rev}", self.path_prefix)
        } else {
            format!(
                "missing {}/go.mod and ...{}/go.mod at revision {rev}",
                self.path_prefix, self.path_major
            )
        }))
    }
}
