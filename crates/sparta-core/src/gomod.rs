//! The little of go.mod syntax a proxy needs: the module directive and the
//! `retract` directives (a source's `@latest` leaves retracted versions out).

/// The path named by the `module` directive of a go.mod file, if it has one.
/// Every go.mod a proxy serves has one (proxies synthesize `module <path>`
/// for modules without a go.mod), so a file without it is corrupt.
pub fn module_directive(gomod: &str) -> Option<&str> {
    let mut in_block = false;
    for line in gomod.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        if in_block {
            if line == ")" {
                in_block = false;
            } else if !line.is_empty() {
                return Some(unquote(line));
            }
            continue;
        }
        let Some(rest) = line.strip_prefix("module") else {
            continue;
        };
        let rest = rest.trim_start();
        if rest.len() == line.len() - "module".len() && !rest.is_empty() {
            // `modulefoo`: not the directive.
            continue;
        }
        if rest == "(" {
            in_block = true;
        } else if !rest.is_empty() {
            return Some(unquote(rest));
        }
    }
    None
}

/// The version ranges a go.mod's `retract` directives name, each as
/// (low, high) inclusive; a single version is (v, v). Entries that do not
/// parse are skipped, as the go command ignores what it cannot read here.
pub fn retractions(gomod: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in gomod.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        let entry = if in_block {
            if line == ")" {
                in_block = false;
                continue;
            }
            line
        } else {
            let Some(rest) = line.strip_prefix("retract") else {
                continue;
            };
            if !rest.starts_with([' ', '\t', '(', '[']) {
                continue;
            }
            let rest = rest.trim_start();
            if rest == "(" {
                in_block = true;
                continue;
            }
            rest
        };
        if let Some(range) = entry.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            if let Some((lo, hi)) = range.split_once(',') {
                out.push((unquote(lo).to_owned(), unquote(hi).to_owned()));
            }
        } else if !entry.is_empty() {
            let v = unquote(entry);
            out.push((v.to_owned(), v.to_owned()));
        }
    }
    out
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| s.strip_prefix('`').and_then(|s| s.strip_suffix('`')))
        .unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_module_directive() {
        assert_eq!(
            module_directive("module example.com/x\n\ngo 1.21\n"),
            Some("example.com/x")
        );
        assert_eq!(
            module_directive("// comment\nmodule \"example.com/q\" // tail\n"),
            Some("example.com/q")
        );
        assert_eq!(
            module_directive("module (\n\texample.com/b\n)\n"),
            Some("example.com/b")
        );
        assert_eq!(
            module_directive("module\texample.com/t\n"),
            Some("example.com/t")
        );
    }

    #[test]
    fn reads_retract_directives() {
        let g = "module example.com/x\n\nretract v1.0.1 // broken\nretract [v1.1.0, v1.1.9]\n\
                 retract (\n\t\"v0.9.0\"\n\t[v0.1.0,v0.2.0] // old\n)\nretracted v9.9.9\n";
        assert_eq!(
            retractions(g),
            [
                ("v1.0.1", "v1.0.1"),
                ("v1.1.0", "v1.1.9"),
                ("v0.9.0", "v0.9.0"),
                ("v0.1.0", "v0.2.0"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert!(retractions("module example.com/x\n// retract v1.0.0\n").is_empty());
    }

    #[test]
    fn refuses_files_without_one() {
        assert_eq!(module_directive("lodule example.com/x\n"), None);
        assert_eq!(module_directive("modulex example.com/x\n"), None);
        assert_eq!(module_directive("go 1.21\n"), None);
        assert_eq!(module_directive(""), None);
        assert_eq!(module_directive("// module example.com/x\n"), None);
    }
}
