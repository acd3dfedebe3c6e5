//! `sparta warm --server URL`: the versions are fetched through a running
//! Sparta with plain GOPROXY requests (so its own checks, verification and
//! store apply), authenticated by a bearer token or a netrc login.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sparta_core::warmlist::WarmItem;
use url::Url;

/// How long one file may take.
const FILE_TIMEOUT: Duration = Duration::from_secs(1800);

/// A running Sparta to warm.
pub struct Remote {
    client: reqwest::Client,
    /// Without a trailing slash.
    base: String,
    authorization: Option<String>,
    netrc: Option<PathBuf>,
}

impl Remote {
    /// A client for `url`, with the token in `token_file` (or
    /// `$SPARTA_WARM_TOKEN`), else the netrc login for its host.
    pub fn new(url: Url, token_file: Option<&Path>, netrc: Option<&Path>) -> Result<Remote> {
        if !matches!(url.scheme(), "http" | "https") {
            bail!("--server {url}: want an http:// or https:// URL");
        }
        let token = match token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --token-file {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => std::env::var("SPARTA_WARM_TOKEN").ok(),
        }
        .filter(|t| !t.is_empty());
        let netrc = netrc
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("NETRC").map(PathBuf::from))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".netrc")))
            .filter(|p| p.exists());
        let authorization = match (&token, &netrc) {
            (Some(t), _) => Some(format!("Bearer {t}")),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read netrc {}", path.display()))?;
                netrc_login(&text, url.host_str().unwrap_or("")).map(|(user, password)| {
                    use base64::Engine;
                    let raw = format!("{user}:{password}");
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(raw)
                    )
                })
            }
            (None, None) => None,
        };
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(FILE_TIMEOUT)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Remote {
            client,
            base: url.as_str().trim_end_matches('/').to_owned(),
            authorization,
            netrc,
        })
    }

    /// The GOPROXY value for the go command.
    pub fn proxy_url(&self) -> &str {
        &self.base
    }

    /// Environment for a go command that talks to this server (its netrc).
    pub fn go_env(&self) -> Vec<(String, String)> {
        self.netrc
            .iter()
            .map(|p| ("NETRC".to_owned(), p.display().to_string()))
            .collect()
    }

    /// Fetches one version's files through the server; the bytes received.
    pub async fn warm(&self, item: &WarmItem) -> Result<u64, String> {
        let stem = format!(
            "{}/{}/@v/{}",
            self.base,
            item.module.escaped(),
            item.version.escaped()
        );
        let mut bytes = self.fetch(&format!("{stem}.mod")).await?;
        if item.zip {
            bytes += self.fetch(&format!("{stem}.info")).await?;
            bytes += self.fetch(&format!("{stem}.zip")).await?;
        }
        Ok(bytes)
    }

    async fn fetch(&self, url: &str) -> Result<u64, String> {
        let mut req = self.client.get(url);
        if let Some(auth) = &self.authorization {
            req = req.header(reqwest::header::AUTHORIZATION, auth);
        }
        let mut resp = req.send().await.map_err(short)?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let body: String = body.trim().chars().take(300).collect();
            return Err(format!("{}: {body}", status.as_u16()));
        }
        let mut bytes = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(short)? {
            bytes += chunk.len() as u64;
        }
        Ok(bytes)
    }
}

/// An error without the URL's query or credentials (reqwest prints URLs).
fn short(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

/// The netrc login for `host` (its `machine` entry, else `default`).
fn netrc_login(text: &str, host: &str) -> Option<(String, String)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Entry {
        None,
        Host,
        Other,
        Default,
    }
    let mut tokens = text.split_whitespace();
    let mut entry = Entry::None;
    let (mut found, mut fallback) = (None, None);
    let (mut login, mut password) = (None::<String>, None::<String>);
    let mut close = |entry: Entry, login: &mut Option<String>, password: &mut Option<String>| {
        let (l, p) = (login.take(), password.take());
        if let (Some(l), Some(p)) = (l, p) {
            match entry {
                Entry::Host if found.is_none() => found = Some((l, p)),
                Entry::Default if fallback.is_none() => fallback = Some((l, p)),
                _ => {}
            }
        }
    };
    while let Some(t) = tokens.next() {
        match t {
            "machine" => {
                close(entry, &mut login, &mut password);
                entry = if tokens.next() == Some(host) {
                    Entry::Host
                } else {
                    Entry::Other
                };
            }
            "default" => {
                close(entry, &mut login, &mut password);
                entry = Entry::Default;
            }
            "login" => login = tokens.next().map(str::to_owned),
            "password" => password = tokens.next().map(str::to_owned),
            _ => {}
        }
    }
    close(entry, &mut login, &mut password);
    found.or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netrc_machine_then_default() {
        let text = "machine other login a password b\n\
                    default login d password e\n\
                    machine proxy.test login u password p\n";
        assert_eq!(
            netrc_login(text, "proxy.test"),
            Some(("u".into(), "p".into()))
        );
        assert_eq!(netrc_login(text, "x.test"), Some(("d".into(), "e".into())));
        assert_eq!(netrc_login("machine a login b\n", "a"), None);
    }
}
