//! GOPROXY list syntax: `https://a,direct|https://c,off`.

use crate::CoreError;

/// When to try the next proxy after this one fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallthrough {
    /// `,`: only after a 404 or 410.
    OnNotFound,
    /// `|`: after any error.
    OnAnyError,
}

/// One proxy of the list and how to fall through from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyEntry {
    /// Base URL without a trailing slash, e.g. `https://proxy.example/go`.
    pub url: String,
    /// How to fall through after this entry (the separator that followed it;
    /// `OnNotFound` for the last entry).
    pub fallthrough: Fallthrough,
}

/// One entry of a GOPROXY list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListEntry {
    /// Another module proxy.
    Proxy(ProxyEntry),
    /// Fetch from version control; `fallthrough` is the separator after it.
    Direct { fallthrough: Fallthrough },
    /// Stop: the lookup is disabled (nothing after `off` is ever tried).
    Off,
}

impl ListEntry {
    /// Whether this entry fetches from version control.
    pub fn is_direct(&self) -> bool {
        matches!(self, ListEntry::Direct { .. })
    }
}

/// The proxy URLs of a list, in order, for settings derived from them.
pub fn proxy_urls(entries: &[ListEntry]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| match e {
            ListEntry::Proxy(p) => Some(p.url.clone()),
            _ => None,
        })
        .collect()
}

/// Parses a GOPROXY list: http(s) URLs, `direct` and `off`; the list must
/// not be empty.
pub fn parse(list: &str) -> Result<Vec<ListEntry>, CoreError> {
    let invalid = |reason: String| CoreError::InvalidProxyList(reason);
    let mut entries = Vec::new();
    let mut rest = list.trim();
    if rest.is_empty() {
        return Err(invalid("the list is empty".into()));
    }
    while !rest.is_empty() {
        let (entry, fallthrough, tail) = match rest.find([',', '|']) {
            Some(i) => {
                let ft = if rest.as_bytes()[i] == b'|' {
                    Fallthrough::OnAnyError
                } else {
                    Fallthrough::OnNotFound
                };
                (&rest[..i], ft, &rest[i + 1..])
            }
            None => (rest, Fallthrough::OnNotFound, ""),
        };
        rest = tail;
        let entry = entry.trim();
        if entry.is_empty() {
            // The go command skips empty entries, e.g. a trailing comma.
            continue;
        }
        match entry {
            "direct" => entries.push(ListEntry::Direct { fallthrough }),
            "off" => entries.push(ListEntry::Off),
            _ => entries.push(ListEntry::Proxy(ProxyEntry {
                url: check_url(entry).map_err(|why| invalid(format!("{entry:?}: {why}")))?,
                fallthrough,
            })),
        }
    }
    if entries.is_empty() {
        return Err(invalid("the list names no proxy".into()));
    }
    // The last entry has nothing to fall through to.
    match entries.last_mut() {
        Some(ListEntry::Proxy(p)) => p.fallthrough = Fallthrough::OnNotFound,
        Some(ListEntry::Direct { fallthrough }) => *fallthrough = Fallthrough::OnNotFound,
        _ => {}
    }
    Ok(entries)
}

/// Checks that `entry` is an absolute http(s) URL with a host and no query or
/// fragment, and strips trailing slashes.
fn check_url(entry: &str) -> Result<String, &'static str> {
    let lower = entry.to_ascii_lowercase();
    let after_scheme = if lower.starts_with("https://") {
        &entry["https://".len()..]
    } else if lower.starts_with("http://") {
        &entry["http://".len()..]
    } else {
        return Err("not an http:// or https:// URL");
    };
    let host = after_scheme.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err("missing host");
    }
    if host.contains('@') {
        return Err("credentials in the URL are not supported");
    }
    if entry.contains(['?', '#']) {
        return Err("a proxy URL has no query or fragment");
    }
    if entry.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("whitespace in URL");
    }
    Ok(entry.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(url: &str, fallthrough: Fallthrough) -> ListEntry {
        ListEntry::Proxy(ProxyEntry {
            url: url.to_owned(),
            fallthrough,
        })
    }

    #[test]
    fn direct_and_off_are_entries() {
        assert_eq!(
            parse("https://a.example,direct").unwrap(),
            vec![
                e("https://a.example", Fallthrough::OnNotFound),
                ListEntry::Direct {
                    fallthrough: Fallthrough::OnNotFound
                },
            ]
        );
        assert_eq!(
            parse("direct|https://a.example").unwrap(),
            vec![
                ListEntry::Direct {
                    fallthrough: Fallthrough::OnAnyError
                },
                e("https://a.example", Fallthrough::OnNotFound),
            ]
        );
        assert_eq!(parse("off").unwrap(), vec![ListEntry::Off]);
        assert_eq!(
            parse("https://a.example|off").unwrap(),
            vec![
                e("https://a.example", Fallthrough::OnAnyError),
                ListEntry::Off
            ]
        );
        let list = parse("https://a.example,direct,https://b.example").unwrap();
        assert_eq!(
            proxy_urls(&list),
            vec![
                "https://a.example".to_owned(),
                "https://b.example".to_owned()
            ]
        );
        assert!(list[1].is_direct() && !list[0].is_direct());
    }

    #[test]
    fn separators() {
        assert_eq!(
            parse("https://a.example/,http://b.example:8080/go|https://c.example").unwrap(),
            vec![
                e("https://a.example", Fallthrough::OnNotFound),
                e("http://b.example:8080/go", Fallthrough::OnAnyError),
                e("https://c.example", Fallthrough::OnNotFound),
            ]
        );
        assert_eq!(
            parse("http://127.0.0.1:3000").unwrap(),
            vec![e("http://127.0.0.1:3000", Fallthrough::OnNotFound)]
        );
        assert_eq!(
            parse("http://[::1]:3000//|").unwrap(),
            vec![e("http://[::1]:3000", Fallthrough::OnNotFound)]
        );
        assert_eq!(
            parse(" https://a.example , ").unwrap(),
            vec![e("https://a.example", Fallthrough::OnNotFound)]
        );
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            " ",
            ",",
            ",|",
            "file:///tmp/proxy",
            "a.example",
            "ftp://a.example",
            "https://",
            "https:///x",
            "https://user:pw@a.example",
            "https://a.example/?q",
            "https://a.example/#f",
            "https://a .example",
        ] {
            assert!(
                matches!(parse(bad), Err(CoreError::InvalidProxyList(_))),
                "{bad:?}"
            );
        }
    }
}
