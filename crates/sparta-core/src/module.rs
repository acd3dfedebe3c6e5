//! Module paths (golang.org/x/mod/module CheckPath, SplitPathVersion, CheckPathMajor).

use crate::{CoreError, Version, escape};

/// A module path that passed `module.CheckPath`; keeps its escaped form too.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModulePath {
    path: String,
    escaped: String,
}

impl ModulePath {
    /// Parses an unescaped module path such as `github.com/Azure/x/v2`.
    pub fn parse(path: &str) -> Result<Self, CoreError> {
        check_module_path(path).map_err(|reason| CoreError::InvalidPath {
            path: path.to_owned(),
            reason,
        })?;
        // CheckPath admits only ASCII without `!`, so escaping cannot fail.
        let escaped = escape::escape(path)?;
        Ok(ModulePath {
            path: path.to_owned(),
            escaped,
        })
    }

    /// Parses an escaped module path such as `github.com/!azure/x/v2`.
    pub fn from_escaped(escaped: &str) -> Result<Self, CoreError> {
        let path = escape::unescape(escaped)?;
        Self::parse(&path)
    }

    /// The module path as written in go.mod.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The `!`-escaped path, as used in URLs and storage keys.
    pub fn escaped(&self) -> &str {
        &self.escaped
    }

    /// The major version suffix of the path: `""`, `/v2`, or `.v1` for gopkg.in.
    pub fn path_major(&self) -> &str {
        // CheckPath guarantees the split succeeds.
        split_path_version(&self.path).map_or("", |(_, major)| major)
    }

    /// Checks that `version` fits this path's major version suffix
    /// (`module.CheckPathMajor`), including the `+incompatible` rules.
    pub fn check_version(&self, version: &Version) -> Result<(), CoreError> {
        check_path_major(version, self.path_major())
    }
}

impl std::fmt::Display for ModulePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path)
    }
}

/// `module.CheckPathMajor`: whether `version` fits the path suffix `path_major`
/// (`""`, `/vN`, `.vN` or `.vN-unstable`).
pub fn check_path_major(version: &Version, path_major: &str) -> Result<(), CoreError> {
    let v = version.as_str();
    let mut pm = path_major;
    if pm.starts_with(".v") {
        pm = pm.strip_suffix("-unstable").unwrap_or(pm);
    }
    // Early vgo wrote v0 pseudo-versions for gopkg.in `.v1` paths; they stay valid.
    if v.starts_with("v0.0.0-") && pm == ".v1" {
        return Ok(());
    }
    let major = version.major();
    let want = if pm.is_empty() {
        if major == "v0" || major == "v1" || version.is_incompatible() {
            return Ok(());
        }
        "v0 or v1"
    } else {
        let want = &pm[1..];
        // `+incompatible` is only for paths without a suffix: semver major
        // ignores build metadata, so compare and also refuse the suffix.
        if major == want && !version.is_incompatible() {
            return Ok(());
        }
        want
    };
    Err(CoreError::InvalidVersion {
        version: v.to_owned(),
        reason: format!(
            "should be {want}, not {major}{}",
            incompatible_note(version)
        ),
    })
}

fn incompatible_note(version: &Version) -> &'static str {
    if version.is_incompatible() {
        " (+incompatible needs a path without a major suffix)"
    } else {
        ""
    }
}

/// `module.SplitPathVersion`: splits `path` into its prefix and major suffix
/// (`/v2`, `.v1` for gopkg.in, or `""`); `None` when the suffix is malformed
/// (`/v0`, `/v1`, `/v02`, `/v2.0`, a gopkg.in path without `.vN`).
pub fn split_path_version(path: &str) -> Option<(&str, &str)> {
    if path.starts_with("gopkg.in/") {
        return split_gopkg_in(path);
    }
    let b = path.as_bytes();
    let mut i = b.len();
    let mut dot = false;
    while i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.') {
        dot |= b[i - 1] == b'.';
        i -= 1;
    }
    if i <= 1 || i == b.len() || b[i - 1] != b'v' || b[i - 2] != b'/' {
        return Some((path, ""));
    }
    let (prefix, major) = path.split_at(i - 2);
    if dot || major.len() <= 2 || major.as_bytes()[2] == b'0' || major == "/v1" {
        return None;
    }
    Some((prefix, major))
}

fn split_gopkg_in(path: &str) -> Option<(&str, &str)> {
    let b = path.as_bytes();
    let mut i = b.len();
    if path.ends_with("-unstable") {
        i -= "-unstable".len();
    }
    while i > 0 && b[i - 1].is_ascii_digit() {
        i -= 1;
    }
    if i <= 1 || b[i - 1] != b'v' || b[i - 2] != b'.' {
        return None;
    }
    let (prefix, major) = path.split_at(i - 2);
    if major.len() <= 2 || (major.as_bytes()[2] == b'0' && major != ".v0") {
        return None;
    }
    Some((prefix, major))
}

/// Which rule set a path is checked against.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Module,
    Import,
    File,
}

/// `module.CheckImportPath`: whether `path` is a valid import path.
pub fn check_import_path(path: &str) -> Result<(), CoreError> {
    check_path(path, Kind::Import).map_err(|reason| CoreError::InvalidPath {
        path: path.to_owned(),
        reason,
    })
}

/// `module.CheckFilePath`: whether `path` may name a file in a module zip.
pub fn check_file_path(path: &str) -> Result<(), CoreError> {
    check_path(path, Kind::File).map_err(|reason| CoreError::InvalidPath {
        path: path.to_owned(),
        reason,
    })
}

/// `checkElem(elem, filePath)`: the rule `module.UnescapeVersion` applies
/// to a version string.
pub(crate) fn check_file_elem(elem: &str) -> Result<(), String> {
    check_elem(elem, Kind::File)
}

fn check_module_path(path: &str) -> Result<(), String> {
    check_path(path, Kind::Module)?;
    let first = path.split('/').next().unwrap_or("");
    if first.is_empty() {
        return Err("leading slash".into());
    }
    if !first.contains('.') {
        return Err("missing dot in first path element".into());
    }
    if path.starts_with('-') {
        return Err("leading dash in first path element".into());
    }
    if let Some(c) = first
        .chars()
        .find(|&c| !(c == '-' || c == '.' || c.is_ascii_digit() || c.is_ascii_lowercase()))
    {
        return Err(format!("invalid char {c:?} in first path element"));
    }
    if split_path_version(path).is_none() {
        return Err("invalid version suffix".into());
    }
    Ok(())
}

fn check_path(path: &str, kind: Kind) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty string".into());
    }
    if path.starts_with('-') && kind != Kind::File {
        return Err("leading dash".into());
    }
    if path.contains("//") {
        return Err("double slash".into());
    }
    if path.ends_with('/') {
        return Err("trailing slash".into());
    }
    path.split('/').try_for_each(|elem| check_elem(elem, kind))
}

fn mod_path_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

fn file_name_ok(c: char) -> bool {
    use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || "!#$%&()+,-.=@[]^_{}~ ".contains(c)
    } else {
        // Go's unicode.IsLetter: general category L.
        c.general_category_group() == GeneralCategoryGroup::Letter
    }
}

const BAD_WINDOWS_NAMES: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

fn check_elem(elem: &str, kind: Kind) -> Result<(), String> {
    if elem.is_empty() {
        return Err("empty path element".into());
    }
    if elem.bytes().all(|b| b == b'.') {
        return Err(format!("invalid path element {elem:?}"));
    }
    if elem.starts_with('.') && kind == Kind::Module {
        return Err("leading dot in path element".into());
    }
    if elem.ends_with('.') {
        return Err("trailing dot in path element".into());
    }
    let ok: fn(char) -> bool = match kind {
        Kind::Module => mod_path_ok,
        Kind::Import => |c| mod_path_ok(c) || c == '+',
        Kind::File => file_name_ok,
    };
    if let Some(c) = elem.chars().find(|&c| !ok(c)) {
        return Err(format!("invalid char {c:?}"));
    }
    let short = elem.split('.').next().unwrap_or(elem);
    if BAD_WINDOWS_NAMES
        .iter()
        .any(|bad| bad.eq_ignore_ascii_case(short))
    {
        return Err(format!(
            "{short:?} disallowed as path element component on Windows"
        ));
    }
    if kind == Kind::File {
        return Ok(());
    }
    // Windows short names look like `PROGRA~1`; such elements could alias others.
    if let Some(t) = short.rfind('~')
        && t + 1 < short.len()
        && short[t + 1..].bytes().all(|b| b.is_ascii_digit())
    {
        return Err("trailing tilde and digits in path element".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // (path, module ok, import ok, file ok): the CheckPath table of
    // golang.org/x/mod v0.43.0 (the invalid-UTF-8 row cannot be a &str).
    const CHECK_PATH: &[(&str, bool, bool, bool)] = &[
        ("x.y/z", true, true, true),
        ("x.y", true, true, true),
        ("", false, false, false),
        ("/x.y/z", false, false, false),
        ("x./z", false, false, false),
        (".x/z", false, true, true),
        ("-x/z", false, false, true),
        ("x..y/z", true, true, true),
        ("x.y/z/../../w", false, false, false),
        ("x.y//z", false, false, false),
        ("x.y/z//w", false, false, false),
        ("x.y/z/", false, false, false),
        ("x.y/z/v0", false, true, true),
        ("x.y/z/v1", false, true, true),
        ("x.y/z/v2", true, true, true),
        ("x.y/z/v2.0", false, true, true),
        ("X.y/z", false, true, true),
        ("!x.y/z", false, false, true),
        ("_x.y/z", false, true, true),
        ("x.y!/z", false, false, true),
        ("x.y\"/z", false, false, false),
        ("x.y#/z", false, false, true),
        ("x.y$/z", false, false, true),
        ("x.y%/z", false, false, true),
        ("x.y&/z", false, false, true),
        ("x.y'/z", false, false, false),
        ("x.y(/z", false, false, true),
        ("x.y)/z", false, false, true),
        ("x.y*/z", false, false, false),
        ("x.y+/z", false, true, true),
        ("x.y,/z", false, false, true),
        ("x.y-/z", true, true, true),
        ("x.y./zt", false, false, false),
        ("x.y:/z", false, false, false),
        ("x.y;/z", false, false, false),
        ("x.y</z", false, false, false),
        ("x.y=/z", false, false, true),
        ("x.y>/z", false, false, false),
        ("x.y?/z", false, false, false),
        ("x.y@/z", false, false, true),
        ("x.y[/z", false, false, true),
        ("x.y\\/z", false, false, false),
        ("x.y]/z", false, false, true),
        ("x.y^/z", false, false, true),
        ("x.y_/z", false, true, true),
        ("x.y`/z", false, false, false),
        ("x.y{/z", false, false, true),
        ("x.y}/z", false, false, true),
        ("x.y~/z", false, true, true),
        ("x.y/z!", false, false, true),
        ("x.y/z\"", false, false, false),
        ("x.y/z#", false, false, true),
        ("x.y/z$", false, false, true),
        ("x.y/z%", false, false, true),
        ("x.y/z&", false, false, true),
        ("x.y/z'", false, false, false),
        ("x.y/z(", false, false, true),
        ("x.y/z)", false, false, true),
        ("x.y/z*", false, false, false),
        ("x.y/z++", false, true, true),
        ("x.y/z,", false, false, true),
        ("x.y/z-", true, true, true),
        ("x.y/z.t", true, true, true),
        ("x.y/z/t", true, true, true),
        ("x.y/z:", false, false, false),
        ("x.y/z;", false, false, false),
        ("x.y/z<", false, false, false),
        ("x.y/z=", false, false, true),
        ("x.y/z>", false, false, false),
        ("x.y/z?", false, false, false),
        ("x.y/z@", false, false, true),
        ("x.y/z[", false, false, true),
        ("x.y/z\\", false, false, false),
        ("x.y/z]", false, false, true),
        ("x.y/z^", false, false, true),
        ("x.y/z_", true, true, true),
        ("x.y/z`", false, false, false),
        ("x.y/z{", false, false, true),
        ("x.y/z}", false, false, true),
        ("x.y/z~", true, true, true),
        ("x.y/x.foo", true, true, true),
        ("x.y/aux.foo", false, false, false),
        ("x.y/prn", false, false, false),
        ("x.y/prn2", true, true, true),
        ("x.y/com", true, true, true),
        ("x.y/com1", false, false, false),
        ("x.y/com1.txt", false, false, false),
        ("x.y/calm1", true, true, true),
        ("x.y/z~0", false, false, true),
        ("x.y/z~09", false, false, true),
        ("x.y/z09", true, true, true),
        ("x.y/z09~", true, true, true),
        ("x.y/z09~09z", true, true, true),
        ("x.y/z09~09z~09", false, false, true),
        ("github.com/!123/logrus", false, false, true),
        ("github.com/user/unicode/испытание", false, false, true),
        ("../x", false, false, false),
        ("./y", false, false, false),
        ("x:y", false, false, false),
        ("\\temp\\foo", false, false, false),
        (".gitignore", false, true, true),
        (".github/ISSUE_TEMPLATE", false, true, true),
        ("x☺y", false, false, false),
        // More tilde and Windows-name cases.
        ("x.y/z+", false, true, true),
        ("x.y/abc~1", false, false, true),
        ("x.y/abc~1.txt", false, false, true),
        ("x.y/abc~x", true, true, true),
        ("x.y/a~1b", true, true, true),
        ("x.y/NUL.txt", false, false, false),
        ("x.y/Lpt9", false, false, false),
    ];

    #[test]
    fn check_path_table() {
        for &(path, module_ok, import_ok, file_ok) in CHECK_PATH {
            assert_eq!(
                ModulePath::parse(path).is_ok(),
                module_ok,
                "CheckPath({path:?})"
            );
            assert_eq!(
                check_import_path(path).is_ok(),
                import_ok,
                "CheckImportPath({path:?})"
            );
            assert_eq!(
                check_file_path(path).is_ok(),
                file_ok,
                "CheckFilePath({path:?})"
            );
            // An invalid path has no valid escaped form either.
            if !module_ok {
                assert!(
                    ModulePath::from_escaped(path).is_err(),
                    "UnescapePath({path:?})"
                );
            }
        }
    }

    #[test]
    fn escaped_forms() {
        let m = ModulePath::parse("github.com/GoogleCloudPlatform/omega").unwrap();
        assert_eq!(m.escaped(), "github.com/!google!cloud!platform/omega");
        let plain = "ascii.com/abcdefghijklmnopqrstuvwxyz.-+/~_0123456789";
        // `+` left module paths in current x/mod: it changes meaning in URLs.
        assert!(ModulePath::parse(plain).is_err());
        let m = ModulePath::parse("ascii.com/abcdefghijklmnopqrstuvwxyz.-/~_0123456789").unwrap();
        assert_eq!(m.escaped(), m.as_str());
        for bad in [
            "github.com/GoogleCloudPlatform/omega",
            "github.com/!google!cloud!platform!/omega",
            "github.com/!0google!cloud!platform/omega",
            "github.com/!_google!cloud!platform/omega",
            "github.com/!!google!cloud!platform/omega",
            "",
        ] {
            assert!(ModulePath::from_escaped(bad).is_err(), "{bad:?}");
        }
        let m = ModulePath::from_escaped("github.com/!google!cloud!platform/omega").unwrap();
        assert_eq!(m.as_str(), "github.com/GoogleCloudPlatform/omega");
    }

    #[test]
    fn split_path_version_table() {
        for (prefix, major) in [
            ("x.y/z", ""),
            ("x.y/z", "/v2"),
            ("x.y/z", "/v3"),
            ("x.y/v", ""),
            ("gopkg.in/yaml", ".v0"),
            ("gopkg.in/yaml", ".v1"),
            ("gopkg.in/yaml", ".v2"),
            ("gopkg.in/yaml", ".v3"),
            ("gopkg.in/yaml", ".v3-unstable"),
        ] {
            let path = format!("{prefix}{major}");
            assert_eq!(split_path_version(&path), Some((prefix, major)), "{path}");
        }
        for bad in [
            "x.y/z/v0",
            "x.y/z/v1",
            "x.y/z/v01",
            "x.y/z/v2.0",
            "gopkg.in/yaml",
            "gopkg.in/yaml.v01",
        ] {
            assert_eq!(split_path_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn check_table() {
        // The x/mod Check table: CheckPath, valid semver, CheckPathMajor.
        for (path, version, ok) in [
            ("github.com/go-yaml/yaml", "v0.8.0", true),
            ("github.com/go-yaml/yaml", "v1.0.0", true),
            ("github.com/go-yaml/yaml", "v2.0.0", false),
            ("github.com/go-yaml/yaml", "v2.1.5", false),
            ("github.com/go-yaml/yaml", "v3.0.0", false),
            ("github.com/go-yaml/yaml/v2", "v1.0.0", false),
            ("github.com/go-yaml/yaml/v2", "v2.0.0", true),
            ("github.com/go-yaml/yaml/v2", "v2.1.5", true),
            ("github.com/go-yaml/yaml/v2", "v3.0.0", false),
            ("gopkg.in/yaml.v0", "v0.8.0", true),
            ("gopkg.in/yaml.v0", "v1.0.0", false),
            ("gopkg.in/yaml.v0", "v2.0.0", false),
            ("gopkg.in/yaml.v0", "v2.1.5", false),
            ("gopkg.in/yaml.v0", "v3.0.0", false),
            ("gopkg.in/yaml.v1", "v0.8.0", false),
            ("gopkg.in/yaml.v1", "v1.0.0", true),
            ("gopkg.in/yaml.v1", "v2.0.0", false),
            ("gopkg.in/yaml.v1", "v2.1.5", false),
            ("gopkg.in/yaml.v1", "v3.0.0", false),
            ("gopkg.in/check.v1", "v0.0.0", false),
            (
                "gopkg.in/check.v1",
                "v0.0.0-20160102150405-abcdef123456",
                true,
            ),
            ("gopkg.in/yaml.v2", "v1.0.0", false),
            ("gopkg.in/yaml.v2", "v2.0.0", true),
            ("gopkg.in/yaml.v2", "v2.1.5", true),
            ("gopkg.in/yaml.v2", "v3.0.0", false),
            ("gopkg.in/yaml.v1-unstable", "v1.0.0", true),
            ("rsc.io/quote", "v17.0.0", false),
            ("rsc.io/quote", "v17.0.0+incompatible", true),
            ("rsc.io/quote", "v1.0.0+incompatible", true),
            ("rsc.io/quote/v17", "v17.0.0+incompatible", false),
            (
                "github.com/x/y/v2",
                "v2.0.0-20190510104115-cbcb75029529",
                true,
            ),
            (
                "github.com/x/y",
                "v2.0.0-20190510104115-cbcb75029529+incompatible",
                true,
            ),
        ] {
            let m = ModulePath::parse(path).unwrap();
            let v = Version::parse(version).unwrap();
            assert_eq!(
                m.check_version(&v).is_ok(),
                ok,
                "Check({path:?}, {version:?})"
            );
        }
    }

    fn elem() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_-][a-zA-Z0-9._~-]{0,10}[a-zA-Z0-9_-]|[a-zA-Z0-9_]"
    }

    fn module_path() -> impl Strategy<Value = String> {
        (
            "[a-z0-9][a-z0-9-]{0,8}\\.[a-z]{2,5}",
            proptest::collection::vec(elem(), 0..5),
        )
            .prop_map(|(host, rest)| {
                std::iter::once(host)
                    .chain(rest)
                    .collect::<Vec<_>>()
                    .join("/")
            })
    }

    proptest! {
        #[test]
        fn escaped_round_trip(path in module_path()) {
            // Not every generated path is valid (Windows names, /v1, ~1): skip those.
            if let Ok(m) = ModulePath::parse(&path) {
                prop_assert!(!m.escaped().chars().any(|c| c.is_ascii_uppercase()));
                prop_assert_eq!(escape::unescape(m.escaped()).unwrap(), path.clone());
                prop_assert_eq!(ModulePath::from_escaped(m.escaped()).unwrap(), m);
            }
        }

        #[test]
        fn generated_paths_are_mostly_valid(path in module_path()) {
            let has_suffix_issue = split_path_version(&path).is_none();
            let has_windows_or_tilde = path.split('/').any(|e| check_elem(e, Kind::Module).is_err());
            prop_assert_eq!(ModulePath::parse(&path).is_ok(), !has_suffix_issue && !has_windows_or_tilde);
        }
    }
}
