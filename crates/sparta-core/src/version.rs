//! Module versions: canonical semantic versions as the go command uses them.

use crate::{CoreError, escape};
use std::cmp::Ordering;

/// Longest version accepted; real versions are far shorter, and the bound
/// keeps hostile input cheap.
pub const MAX_VERSION_LEN: usize = 256;

/// A canonical semantic version (`v1.2.3`, `v1.2.3-pre`, `v2.0.0+incompatible`,
/// pseudo-versions); `semver.Canonical(v) == v` holds for every value except
/// that `+incompatible` is kept, as `module.CanonicalVersion` does.
/// `Ord` orders by string; use [`compare`] for semver precedence.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    version: String,
    escaped: String,
}

/// The parts of a semver string, as slices of it.
struct Parsed<'a> {
    major: &'a str,
    minor: &'a str,
    patch: &'a str,
    /// Empty, or `-` followed by the dot-separated identifiers.
    prerelease: &'a str,
    /// Empty, or `+` followed by the build identifiers.
    build: &'a str,
}

/// `semver.parse` restricted to the full `vMAJOR.MINOR.PATCH` form.
fn parse_semver(v: &str) -> Result<Parsed<'_>, &'static str> {
    let rest = v.strip_prefix('v').ok_or("must start with v")?;
    let (major, rest) = parse_int(rest)?;
    let rest = rest.strip_prefix('.').ok_or("must be vMAJOR.MINOR.PATCH")?;
    let (minor, rest) = parse_int(rest)?;
    let rest = rest.strip_prefix('.').ok_or("must be vMAJOR.MINOR.PATCH")?;
    let (patch, rest) = parse_int(rest)?;
    let (prerelease, rest) = match rest.find('+') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !prerelease.is_empty() {
        let ids = prerelease
            .strip_prefix('-')
            .ok_or("unexpected text after patch")?;
        for id in ids.split('.') {
            check_ident(id)?;
            if id.len() > 1 && id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit()) {
                return Err("numeric prerelease identifier with a leading zero");
            }
        }
    }
    if !rest.is_empty() {
        rest[1..].split('.').try_for_each(check_ident)?;
    }
    Ok(Parsed {
        major,
        minor,
        patch,
        prerelease,
        build: rest,
    })
}

fn parse_int(s: &str) -> Result<(&str, &str), &'static str> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return Err("missing number");
    }
    if n > 1 && s.starts_with('0') {
        return Err("number with a leading zero");
    }
    Ok(s.split_at(n))
}

fn check_ident(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("empty identifier");
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err("invalid character");
    }
    Ok(())
}

impl Version {
    /// Parses an unescaped canonical version; refuses `v1.2`, `master`, `v1.2.3+meta`.
    pub fn parse(version: &str) -> Result<Self, CoreError> {
        let invalid = |reason: &str| CoreError::InvalidVersion {
            version: version.to_owned(),
            reason: reason.to_owned(),
        };
        if version.len() > MAX_VERSION_LEN {
            return Err(invalid("too long"));
        }
        let p = parse_semver(version).map_err(invalid)?;
        if !p.build.is_empty() && p.build != "+incompatible" {
            return Err(invalid("build metadata other than +incompatible"));
        }
        let escaped = escape::escape(version).map_err(|_| invalid("cannot be escaped"))?;
        Ok(Version {
            version: version.to_owned(),
            escaped,
        })
    }

    /// Parses a `!`-escaped canonical version.
    pub fn from_escaped(escaped: &str) -> Result<Self, CoreError> {
        let version = escape::unescape(escaped).map_err(|_| CoreError::InvalidVersion {
            version: escaped.to_owned(),
            reason: "invalid escaped version".to_owned(),
        })?;
        Self::parse(&version)
    }

    /// The version as the go command writes it.
    pub fn as_str(&self) -> &str {
        &self.version
    }

    /// The `!`-escaped version, as used in URLs and storage keys.
    pub fn escaped(&self) -> &str {
        &self.escaped
    }

    fn parts(&self) -> Parsed<'_> {
        // Every Version was parsed on construction.
        parse_semver(&self.version).expect("a Version is valid semver")
    }

    /// The major version, such as `v2`.
    pub fn major(&self) -> &str {
        &self.version[..1 + self.parts().major.len()]
    }

    /// Whether the version has a `+incompatible` suffix.
    pub fn is_incompatible(&self) -> bool {
        self.version.ends_with("+incompatible")
    }

    /// Whether the version is a prerelease (pseudo-versions are).
    pub fn is_prerelease(&self) -> bool {
        !self.parts().prerelease.is_empty()
    }

    /// Whether the version is a pseudo-version (`module.IsPseudoVersion`).
    pub fn is_pseudo(&self) -> bool {
        is_pseudo(&self.version)
    }
}

/// `module.IsPseudoVersion` for a string already known to be valid semver:
/// `vX.0.0-yyyymmddhhmmss-rev`, `vX.Y.Z-pre.0.yyyymmddhhmmss-rev` or
/// `vX.Y.(Z+1)-0.yyyymmddhhmmss-rev`, each with optional build metadata.
fn is_pseudo(v: &str) -> bool {
    let Ok(p) = parse_semver(v) else {
        return false;
    };
    let body = &v[..v.len() - p.build.len()];
    if body.matches('-').count() < 2 {
        return false;
    }
    let Some((head, rev)) = body.rsplit_once('-') else {
        return false;
    };
    if rev.is_empty() || !rev.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let Some(base) = head.len().checked_sub(14).map(|i| &head[..i]) else {
        return false;
    };
    if !head[base.len()..].bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    // `base` is what precedes the timestamp, up to and including its separator.
    let core_len = 1 + p.major.len() + 1 + p.minor.len() + 1 + p.patch.len();
    let Some(after_core) = base.get(core_len..) else {
        return false;
    };
    if after_core == "-" {
        // Form 1 needs a vX.0.0 base.
        return p.minor == "0" && p.patch == "0";
    }
    // Forms 2 and 3: `-0.` or `-<pre>.0.`.
    after_core == "-0." || (after_core.starts_with('-') && after_core.ends_with(".0."))
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.version)
    }
}

/// The version part of an `.info` request: a canonical version, or a query
/// (`v1.2`, `master`, a commit hash) that upstream resolves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum InfoVersion {
    Canonical(Version),
    /// An unescaped query: never empty, ASCII only, at most 256 bytes, and
    /// made of letters, digits and `-._~+` (see `request`).
    Query(String),
}

/// Compares two canonical versions by semver precedence (`semver.Compare`);
/// build metadata such as `+incompatible` is ignored.
pub fn compare(a: &Version, b: &Version) -> Ordering {
    let (pa, pb) = (a.parts(), b.parts());
    compare_int(pa.major, pb.major)
        .then_with(|| compare_int(pa.minor, pb.minor))
        .then_with(|| compare_int(pa.patch, pb.patch))
        .then_with(|| compare_prerelease(pa.prerelease, pb.prerelease))
}

/// Compares decimal strings without leading zeros, of any length.
fn compare_int(x: &str, y: &str) -> Ordering {
    x.len().cmp(&y.len()).then_with(|| x.cmp(y))
}

fn compare_prerelease(x: &str, y: &str) -> Ordering {
    match (x.is_empty(), y.is_empty()) {
        (true, true) => return Ordering::Equal,
        // A release sorts after all its prereleases.
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    let mut xs = x[1..].split('.');
    let mut ys = y[1..].split('.');
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(dx), Some(dy)) => {
                let nx = dx.bytes().all(|b| b.is_ascii_digit());
                let ny = dy.bytes().all(|b| b.is_ascii_digit());
                let ord = match (nx, ny) {
                    (true, true) => compare_int(dx, dy),
                    // Numeric identifiers sort before alphanumeric ones.
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => dx.cmp(dy),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

/// `semver.Canonical`: `v1` -> `v1.0.0`, `v1.2` -> `v1.2.0`, build metadata
/// dropped; None for anything that is not semver.
pub fn canonical(v: &str) -> Option<String> {
    if v.len() > MAX_VERSION_LEN {
        return None;
    }
    if let Ok(p) = parse_semver(v) {
        return Some(v[..v.len() - p.build.len()].to_owned());
    }
    // The short forms carry no prerelease or build.
    let rest = v.strip_prefix('v')?;
    let (major, rest) = parse_int(rest).ok()?;
    if rest.is_empty() {
        return Some(format!("v{major}.0.0"));
    }
    let (minor, rest) = parse_int(rest.strip_prefix('.')?).ok()?;
    rest.is_empty().then(|| format!("v{major}.{minor}.0"))
}

/// The parts of a pseudo-version (`module.PseudoVersionBase`, `...Time`, `...Rev`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PseudoParts {
    /// The tag it builds on (`v1.2.3`, `v1.2.3-pre`), `""` for none; no build suffix.
    pub base: String,
    /// `yyyymmddhhmmss`, UTC.
    pub timestamp: String,
    /// The short commit hash.
    pub rev: String,
}

impl Version {
    /// Splits a pseudo-version into its parts; None for other versions.
    pub fn pseudo_parts(&self) -> Option<PseudoParts> {
        if !self.is_pseudo() {
            return None;
        }
        let p = self.parts();
        let body = &self.version[..self.version.len() - p.build.len()];
        let (head, rev) = body.rsplit_once('-')?;
        let dash = head.rfind('-')?;
        let (base, timestamp) = match head.rfind('.') {
            Some(dot) if dot > dash => (&head[..dot], &head[dot + 1..]),
            // vX.0.0-yyyymmddhhmmss-rev builds on no tag.
            _ => ("", &head[dash + 1..]),
        };
        let base = if base.is_empty() {
            String::new()
        } else if let Some(b) = base.strip_suffix("-0") {
            // vX.Y.(Z+1)-0 builds on vX.Y.Z.
            let (vmm, patch) = b.rsplit_once('.')?;
            format!("{vmm}.{}", dec_decimal(patch)?)
        } else if let Some(b) = base.strip_suffix(".0") {
            b.to_owned()
        } else {
            String::new()
        };
        Some(PseudoParts {
            base,
            timestamp: timestamp.to_owned(),
            rev: rev.to_owned(),
        })
    }
}

/// `module.PseudoVersion`: the pseudo-version of commit `rev` (short hash)
/// made at `timestamp` (`yyyymmddhhmmss`, UTC), after tag `older` (canonical,
/// `""` for none), for major version `major` (`""` means v0).
pub fn pseudo_version(major: &str, older: &str, timestamp: &str, rev: &str) -> String {
    let major = if major.is_empty() { "v0" } else { major };
    let segment = format!("{timestamp}-{rev}");
    let (older, build) = match older.find('+') {
        Some(i) => older.split_at(i),
        None => (older, ""),
    };
    if older.is_empty() {
        return format!("{major}.0.0-{segment}");
    }
    if older.contains('-') {
        return format!("{older}.0.{segment}{build}");
    }
    let (vmm, patch) = older.rsplit_once('.').unwrap_or((older, "0"));
    format!("{vmm}.{}-0.{segment}{build}", inc_decimal(patch))
}

fn inc_decimal(d: &str) -> String {
    let mut digits: Vec<u8> = d.bytes().collect();
    let mut i = digits.len();
    loop {
        if i == 0 {
            digits.insert(0, b'1');
            break;
        }
        i -= 1;
        if digits[i] == b'9' {
            digits[i] = b'0';
        } else {
            digits[i] += 1;
            break;
        }
    }
    String::from_utf8(digits).unwrap_or_default()
}

fn dec_decimal(d: &str) -> Option<String> {
    if d.is_empty() || d == "0" || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: Vec<u8> = d.bytes().collect();
    let mut i = digits.len();
    while i > 0 {
        i -= 1;
        if digits[i] == b'0' {
            digits[i] = b'9';
        } else {
            digits[i] -= 1;
            break;
        }
    }
    let s = String::from_utf8(digits).ok()?;
    let t = s.trim_start_matches('0');
    Some(if t.is_empty() {
        "0".into()
    } else {
        t.to_owned()
    })
}

#[cfg(test)]
#[path = "version_tests.rs"]
mod tests;
