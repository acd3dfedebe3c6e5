//! Credentials for git remotes: a netrc file, per-host token files, an SSH
//! key. Files are read again when their modification time changes (mounted
//! secrets rotate). Credentials reach git only through its credential helper
//! via the environment; they are never on a command line or in a stored URL.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::git::CallCreds;

/// A login for one host.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Login {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({}, ***)", self.user)
    }
}

/// Where credentials come from.
pub(crate) struct Credentials {
    netrc: Option<PathBuf>,
    token_dir: Option<PathBuf>,
    ssh_key: Option<PathBuf>,
    known_hosts: PathBuf,
    files: Mutex<HashMap<PathBuf, (SystemTime, Arc<String>)>>,
}

/// Username sent with a bare token (GitLab wants `oauth2` for OAuth tokens
/// and accepts anything with a personal access token; GitHub accepts any).
const TOKEN_USER: &str = "oauth2";

impl Credentials {
    pub fn new(
        netrc: Option<PathBuf>,
        token_dir: Option<PathBuf>,
        ssh_key: Option<PathBuf>,
        known_hosts: PathBuf,
    ) -> Self {
        Credentials {
            netrc,
            token_dir,
            ssh_key,
            known_hosts,
            files: Mutex::new(HashMap::new()),
        }
    }

    /// A file's content, read again when its mtime changed; None if absent.
    fn read(&self, path: &Path) -> Option<Arc<String>> {
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, text)) = files.get(path)
            && *seen == mtime
        {
            return Some(text.clone());
        }
        let text = Arc::new(std::fs::read_to_string(path).ok()?);
        files.insert(path.to_owned(), (mtime, text.clone()));
        Some(text)
    }

    /// The login for `host`: its token file first, then the netrc.
    pub fn login(&self, host: &str) -> Option<Login> {
        if let Some(dir) = &self.token_dir
            && !host.is_empty()
            && !host.contains(['/', '\\'])
            && !host.starts_with('.')
            && let Some(text) = self.read(&dir.join(host))
        {
            let token = text.trim();
            if !token.is_empty() {
                return Some(match token.split_once(':') {
                    Some((user, pw)) if !user.is_empty() => Login {
                        user: user.to_owned(),
                        password: pw.to_owned(),
                    },
                    _ => Login {
                        user: TOKEN_USER.to_owned(),
                        password: token.to_owned(),
                    },
                });
            }
        }
        let netrc = self.netrc.as_ref().and_then(|p| self.read(p))?;
        netrc_login(&netrc, host)
    }

    /// What one git call against `url` gets.
    pub fn for_url(&self, url: &url::Url) -> (CallCreds, Vec<String>) {
        let mut creds = CallCreds::default();
        let mut secrets = Vec::new();
        let host = url.host_str().unwrap_or("");
        match url.scheme() {
            "https" | "http" => {
                if let Some(login) = self.login(host) {
                    creds.helper_input = Some(format!(
                        "username={}\npassword={}\n",
                        login.user, login.password
                    ));
                    secrets.push(login.password);
                }
            }
            "ssh" => {
                let mut ssh = format!(
                    "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={} -o IdentitiesOnly=yes -F /dev/null",
                    shell_quote(&self.known_hosts.to_string_lossy())
                );
                if let Some(key) = &self.ssh_key {
                    ssh.push_str(&format!(" -i {}", shell_quote(&key.to_string_lossy())));
                }
                creds.ssh_command = Some(ssh);
            }
            _ => {}
        }
        (creds, secrets)
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The netrc login for `host`: its `machine` entry, else `default`.
pub(crate) fn netrc_login(text: &str, host: &str) -> Option<Login> {
    let mut words = text.split_whitespace();
    let mut default = None;
    let mut current: Option<(bool, Option<String>, Option<String>)> = None;
    let mut found = None;
    let finish = |cur: &mut Option<(bool, Option<String>, Option<String>)>,
                  found: &mut Option<Login>,
                  default: &mut Option<Login>| {
        if let Some((is_default, Some(user), Some(password))) = cur.take() {
            let login = Login { user, password };
            if is_default {
                default.get_or_insert(login);
            } else {
                found.get_or_insert(login);
            }
        }
    };
    while let Some(w) = words.next() {
        match w {
            "machine" => {
                finish(&mut current, &mut found, &mut default);
                let m = words.next().unwrap_or("");
                current = (m == host).then_some((false, None, None));
            }
            "default" => {
                finish(&mut current, &mut found, &mut default);
                current = Some((true, None, None));
            }
            "login" => {
                let v = words.next().map(str::to_owned);
                if let Some(c) = current.as_mut() {
                    c.1 = v;
                }
            }
            "password" => {
                let v = words.next().map(str::to_owned);
                if let Some(c) = current.as_mut() {
                    c.2 = v;
                }
            }
            "macdef" => {
                // A macro runs to the next blank line; nothing in it is a login.
                finish(&mut current, &mut found, &mut default);
                break;
            }
            _ => {}
        }
        if found.is_some() {
            break;
        }
    }
    finish(&mut current, &mut found, &mut default);
    found.or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netrc_entries() {
        let text = "machine a.test login alice password pa\n\
                    machine b.test\n  login bob\n  password pb\n\
                    default login anon password pd\n";
        assert_eq!(netrc_login(text, "b.test").unwrap().user, "bob");
        assert_eq!(netrc_login(text, "a.test").unwrap().password, "pa");
        assert_eq!(netrc_login(text, "c.test").unwrap().user, "anon");
        assert_eq!(netrc_login("machine a.test login x", "a.test"), None);
        assert!(!format!("{:?}", netrc_login(text, "a.test").unwrap()).contains("pa\""));
    }

    #[test]
    fn token_files_win_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let netrc = dir.path().join("netrc");
        std::fs::write(&netrc, "machine h.test login n password fromnetrc\n").unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let c = Credentials::new(
            Some(netrc),
            Some(tokens.clone()),
            None,
            dir.path().join("kh"),
        );
        assert_eq!(c.login("h.test").unwrap().password, "fromnetrc");
        std::fs::write(tokens.join("h.test"), "tok1\n").unwrap();
        let l = c.login("h.test").unwrap();
        assert_eq!((l.user.as_str(), l.password.as_str()), (TOKEN_USER, "tok1"));
        // A rotated secret with a new mtime is read again.
        std::fs::write(tokens.join("h.test"), "deploy:tok2\n").unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(tokens.join("h.test"))
            .unwrap();
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        let l = c.login("h.test").unwrap();
        assert_eq!((l.user.as_str(), l.password.as_str()), ("deploy", "tok2"));
        // Host names never walk out of the token directory.
        assert!(c.login("../netrc").is_none());
        let (creds, secrets) = c.for_url(&url::Url::parse("https://h.test/r.git").unwrap());
        assert!(creds.helper_input.unwrap().contains("password=tok2"));
        assert_eq!(secrets, ["tok2"]);
        let (ssh, _) = c.for_url(&url::Url::parse("ssh://git@h.test/r.git").unwrap());
        assert!(ssh.ssh_command.unwrap().contains("BatchMode=yes"));
    }
}
