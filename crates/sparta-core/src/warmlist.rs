//! What `sparta warm` fetches: module versions read from go.sum files and
//! plain `module@version` lists, deduplicated. A go.sum line for `/go.mod`
//! alone asks for the version's `.mod` (what the go command downloads for
//! versions it only needs in the module graph); any other line asks for the
//! whole version (`.info`, `.mod` and `.zip`).

use std::collections::BTreeMap;

use crate::{ModulePath, Version};

/// One module version to pre-load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WarmItem {
    pub module: ModulePath,
    pub version: Version,
    /// Fetch the zip (and `.info`) too, not only the `.mod`.
    pub zip: bool,
}

impl WarmItem {
    /// `module@version`, for reports.
    pub fn name(&self) -> String {
        format!("{}@{}", self.module, self.version)
    }
}

/// Module versions in first-seen order; a version asked for with and
/// without its zip is fetched with it.
#[derive(Clone, Debug, Default)]
pub struct WarmList {
    order: Vec<(String, String)>,
    items: BTreeMap<(String, String), WarmItem>,
}

impl WarmList {
    /// Adds one version; returns false when it was already listed.
    pub fn add(&mut self, module: ModulePath, version: Version, zip: bool) -> bool {
        let key = (module.as_str().to_owned(), version.as_str().to_owned());
        if let Some(item) = self.items.get_mut(&key) {
            item.zip |= zip;
            return false;
        }
        self.order.push(key.clone());
        self.items.insert(
            key,
            WarmItem {
                module,
                version,
                zip,
            },
        );
        true
    }

    /// Parses `module@version` or `module version` (one per line, `#`
    /// comments and blank lines ignored) and adds each; errors name the line.
    pub fn add_plain(&mut self, text: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (m, v) = match line.split_once('@') {
                Some((m, v)) => (m.trim(), v.trim()),
                None => match line.split_whitespace().collect::<Vec<_>>()[..] {
                    [m, v] => (m, v),
                    _ => return Err(format!("line {}: want module@version: {line:?}", n + 1)),
                },
            };
            let (module, version) = parse_pair(m, v).map_err(|e| format!("line {}: {e}", n + 1))?;
            self.add(module, version, true);
        }
        Ok(())
    }

    /// Parses go.sum lines (`module version[/go.mod] h1:hash`).
    pub fn add_gosum(&mut self, text: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            let [m, v, _hash] = fields[..] else {
                return Err(format!("go.sum line {}: want module version hash", n + 1));
            };
            let (v, zip) = match v.strip_suffix("/go.mod") {
                Some(v) => (v, false),
                None => (v, true),
            };
            let (module, version) =
                parse_pair(m, v).map_err(|e| format!("go.sum line {}: {e}", n + 1))?;
            self.add(module, version, zip);
        }
        Ok(())
    }

    /// The items in first-seen order.
    pub fn items(&self) -> Vec<WarmItem> {
        self.order
            .iter()
            .filter_map(|k| self.items.get(k).cloned())
            .collect()
    }

    /// How many versions are listed.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Whether text looks like go.sum lines (three fields, the last `h1:`-like).
pub fn looks_like_gosum(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .is_some_and(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() == 3 && f[2].contains(':')
        })
}

/// A module path and a canonical version that belongs to it.
pub fn parse_pair(module: &str, version: &str) -> Result<(ModulePath, Version), String> {
    let module = ModulePath::parse(module).map_err(|e| e.to_string())?;
    let version = Version::parse(version).map_err(|e| e.to_string())?;
    module
        .check_version(&version)
        .map_err(|e| format!("{module}@{version}: {e}"))?;
    Ok((module, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gosum_lines_ask_for_mod_only_or_whole_versions() {
        let mut list = WarmList::default();
        list.add_gosum(
            "example.com/a v1.0.0 h1:abc=\n\
             example.com/a v1.0.0/go.mod h1:def=\n\
             example.com/b v1.1.0/go.mod h1:ghi=\n\n",
        )
        .unwrap();
        let items = list.items();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].name(), "example.com/a@v1.0.0");
        assert!(items[0].zip);
        assert_eq!(items[1].name(), "example.com/b@v1.1.0");
        assert!(!items[1].zip);
        assert!(list.add_gosum("example.com/a v1.0.0\n").is_err());
        assert!(list.add_gosum("example.com/a latest h1:x=\n").is_err());
    }

    #[test]
    fn plain_lists_take_both_spellings_and_comments() {
        let mut list = WarmList::default();
        list.add_plain("# pins\nexample.com/a@v1.0.0\nexample.com/b v2.0.0+incompatible # old\n\n")
            .unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.items().iter().all(|i| i.zip));
        // A later mod-only line does not take the zip away.
        list.add_gosum("example.com/a v1.0.0/go.mod h1:x=\n")
            .unwrap();
        assert_eq!(list.len(), 1 + 1);
        assert!(list.items()[0].zip);
        let err = list.add_plain("example.com/a\n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        assert!(list.add_plain("example.com/a/v2@v1.0.0\n").is_err());
        assert!(looks_like_gosum("\nexample.com/a v1.0.0 h1:x=\n"));
        assert!(!looks_like_gosum("example.com/a@v1.0.0\n"));
    }
}
