//! The little of go.mod syntax a proxy needs: the module directive.

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
    fn refuses_files_without_one() {
        assert_eq!(module_directive("lodule example.com/x\n"), None);
        assert_eq!(module_directive("modulex example.com/x\n"), None);
        assert_eq!(module_directive("go 1.21\n"), None);
        assert_eq!(module_directive(""), None);
        assert_eq!(module_directive("// module example.com/x\n"), None);
    }
}
