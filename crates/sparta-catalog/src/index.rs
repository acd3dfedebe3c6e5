//! The pure part of the catalog: records as stored in segment and snapshot
//! objects, the in-memory index they merge into, and the pages it answers.
//! No I/O here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One line of a segment or snapshot: what is known of one module version.
/// A segment line usually names one stored file; a snapshot line all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Module path, unescaped.
    pub path: String,
    /// Canonical version.
    pub version: String,
    /// When the version was first stored, RFC 3339 (UTC).
    pub time: String,
    /// Size of the stored `.info`, if stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<u64>,
    /// Size of the stored `.mod`, if stored.
    #[serde(default, rename = "mod", skip_serializing_if = "Option::is_none")]
    pub gomod: Option<u64>,
    /// Size of the stored `.zip`, if stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<u64>,
    /// The zip's `h1:` hash, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h1: Option<String>,
}

/// Which stored file a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum File {
    Info,
    Mod,
    Zip,
}

impl Record {
    /// A record of one stored file.
    pub fn stored(
        path: &str,
        version: &str,
        file: File,
        size: u64,
        h1: Option<&str>,
        at: SystemTime,
    ) -> Record {
        let mut r = Record {
            path: path.to_owned(),
            version: version.to_owned(),
            time: format_time(at),
            info: None,
            gomod: None,
            zip: None,
            h1: h1.map(str::to_owned),
        };
        match file {
            File::Info => r.info = Some(size),
            File::Mod => r.gomod = Some(size),
            File::Zip => r.zip = Some(size),
        }
        r
    }
}

/// What the index knows of one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionEntry {
    /// First stored.
    pub time: SystemTime,
    pub info: Option<u64>,
    pub gomod: Option<u64>,
    pub zip: Option<u64>,
    pub h1: Option<String>,
}

/// One module in a search answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSummary {
    pub path: String,
    pub versions: usize,
    /// The most recent first-stored time of its versions.
    pub latest: SystemTime,
}

/// The merged index: by module then version, and by time for `/index`.
#[derive(Debug, Default, Clone)]
pub struct Index {
    modules: BTreeMap<String, BTreeMap<String, VersionEntry>>,
    by_time: BTreeSet<(SystemTime, String, String)>,
}

/// The most `/catalog` and `/index` answer in one page.
pub const MAX_PAGE: usize = 10_000;

impl Index {
    /// Number of module versions.
    pub fn len(&self) -> usize {
        self.by_time.len()
    }

    /// Whether no version is known.
    pub fn is_empty(&self) -> bool {
        self.by_time.is_empty()
    }

    /// Number of modules.
    pub fn modules(&self) -> usize {
        self.modules.len()
    }

    /// Merges one record: the earliest time wins, known sizes and hashes are
    /// kept. Merging is a union, so order and repeats do not matter. A record
    /// with an unreadable time is dropped (false).
    pub fn apply(&mut self, r: &Record) -> bool {
        let Some(time) = parse_time(&r.time) else {
            return false;
        };
        let versions = self.modules.entry(r.path.clone()).or_default();
        match versions.get_mut(&r.version) {
            Some(e) => {
                if time < e.time {
                    self.by_time
                        .remove(&(e.time, r.path.clone(), r.version.clone()));
                    self.by_time
                        .insert((time, r.path.clone(), r.version.clone()));
                    e.time = time;
                }
                e.info = e.info.or(r.info);
                e.gomod = e.gomod.or(r.gomod);
                e.zip = e.zip.or(r.zip);
                if e.h1.is_none() {
                    e.h1.clone_from(&r.h1);
                }
            }
            None => {
                versions.insert(
                    r.version.clone(),
                    VersionEntry {
                        time,
                        info: r.info,
                        gomod: r.gomod,
                        zip: r.zip,
                        h1: r.h1.clone(),
                    },
                );
                self.by_time
                    .insert((time, r.path.clone(), r.version.clone()));
            }
        }
        true
    }

    /// Every version as one record each, for a snapshot.
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.modules.iter().flat_map(|(path, versions)| {
            versions.iter().map(move |(version, e)| Record {
                path: path.clone(),
                version: version.clone(),
                time: format_time(e.time),
                info: e.info,
                gomod: e.gomod,
                zip: e.zip,
                h1: e.h1.clone(),
            })
        })
    }

    /// One `/catalog` page: versions after `token` (a previous page's
    /// `next`), by module then version. `next` is empty on the last page.
    pub fn catalog_page(&self, token: &str, page_size: usize) -> (Vec<(&str, &str)>, String) {
        let page_size = page_size.clamp(1, MAX_PAGE);
        let (after_path, after_version) = token.rsplit_once('@').unwrap_or((token, ""));
        let mut out = Vec::with_capacity(page_size.min(1024));
        let start = std::ops::Bound::Included(after_path.to_owned());
        'modules: for (path, versions) in self
            .modules
            .range::<String, _>((start, std::ops::Bound::Unbounded))
        {
            let skip_to = (path == after_path && !token.is_empty()).then_some(after_version);
            for version in versions.keys() {
                if skip_to.is_some_and(|v| version.as_str() <= v) {
                    continue;
                }
                if out.len() == page_size {
                    break 'modules;
                }
                out.push((path.as_str(), version.as_str()));
            }
        }
        let more = out.len() == page_size && out.last().is_some_and(|(p, v)| self.has_after(p, v));
        let next = match out.last() {
            Some((p, v)) if more => format!("{p}@{v}"),
            _ => String::new(),
        };
        (out, next)
    }

    fn has_after(&self, path: &str, version: &str) -> bool {
        let later_version = self.modules.get(path).is_some_and(|vs| {
            vs.range::<str, _>((
                std::ops::Bound::Excluded(version),
                std::ops::Bound::Unbounded,
            ))
            .next()
            .is_some()
        });
        later_version
            || self
                .modules
                .range::<str, _>((std::ops::Bound::Excluded(path), std::ops::Bound::Unbounded))
                .next()
                .is_some()
    }

    /// `/index`: versions first stored at or after `since`, oldest first.
    pub fn since(&self, since: SystemTime, limit: usize) -> Vec<(SystemTime, &str, &str)> {
        let limit = limit.clamp(1, MAX_PAGE);
        self.by_time
            .range((since, String::new(), String::new())..)
            .take(limit)
            .map(|(t, p, v)| (*t, p.as_str(), v.as_str()))
            .collect()
    }

    /// Modules whose path contains `query` (case-insensitive), by path,
    /// `limit` of them from `offset`, and how many matched in all.
    pub fn search(&self, query: &str, offset: usize, limit: usize) -> (Vec<ModuleSummary>, usize) {
        let needle = query.trim().to_lowercase();
        let mut total = 0;
        let mut out = Vec::new();
        for (path, versions) in &self.modules {
            if !needle.is_empty() && !path.to_lowercase().contains(&needle) {
                continue;
            }
            if total >= offset && out.len() < limit {
                out.push(ModuleSummary {
                    path: path.clone(),
                    versions: versions.len(),
                    latest: versions
                        .values()
                        .map(|e| e.time)
                        .max()
                        .unwrap_or(UNIX_EPOCH),
                });
            }
            total += 1;
        }
        (out, total)
    }

    /// The versions of one module, by version string.
    pub fn versions(&self, path: &str) -> Option<&BTreeMap<String, VersionEntry>> {
        self.modules.get(path)
    }

    /// The most recently stored versions, newest first.
    pub fn recent(&self, limit: usize) -> Vec<(SystemTime, &str, &str)> {
        self.by_time
            .iter()
            .rev()
            .take(limit)
            .map(|(t, p, v)| (*t, p.as_str(), v.as_str()))
            .collect()
    }
}

/// RFC 3339 in UTC with nanoseconds, as the go command's index writes it.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// Parses RFC 3339 in UTC (`Z`); `None` for anything else.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(s).ok()
}

/// Nanoseconds since the epoch, for naming objects in time order.
pub fn unix_nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos()
}

/// Parses NDJSON records, skipping lines that do not parse (a segment
/// written by a newer replica may carry fields this one ignores; a broken
/// line must not hide the rest).
pub fn parse_records(body: &[u8]) -> (Vec<Record>, usize) {
    let mut bad = 0;
    let records = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .filter_map(|l| match serde_json::from_slice::<Record>(l) {
            Ok(r) => Some(r),
            Err(_) => {
                bad += 1;
                None
            }
        })
        .collect();
    (records, bad)
}

/// Records as NDJSON.
pub fn encode_records<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        serde_json::to_writer(&mut out, r).expect("records serialize");
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
