//! A git host for the direct-fetch tests: repositories made by the test with
//! the git CLI, served over real smart HTTP by `git http-backend` behind the
//! Go program in `tests/gitserver`, which also answers `?go-get=1` and asks
//! for basic auth under `/private/`.
//!
//! Module paths use the host `git.sparta.test` and a `.git` suffix
//! (`git.sparta.test/lib.git/sub`), so no go-get lookup or DNS is needed:
//! the go command reaches the server through a `GIT_CONFIG_GLOBAL` file with
//! `url."http://127.0.0.1:PORT/".insteadOf "https://git.sparta.test/"`, and
//! Sparta through `--vcs-map 'git.sparta.test/*=http://127.0.0.1:PORT/{rest}'`.
//! Both therefore clone the very same repository.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

use tempfile::TempDir;

/// The host name module paths of the test repositories use.
pub const HOST: &str = "git.sparta.test";
/// Basic auth accepted under `/private/`.
pub const USER: &str = "sparta";
pub const PASS: &str = "secret";

/// Builds the git server program once per test binary.
pub fn gitserver_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| crate::build_go_program("gitserver", &[("GOFLAGS", "-mod=mod")]))
        .clone()
}

/// A running git server with its own repositories; stops on drop.
pub struct GitServer {
    child: Child,
    _stdin: ChildStdin,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// GIT_PROJECT_ROOT: the bare repositories.
    pub root: PathBuf,
    dir: TempDir,
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GitServer {
    /// Starts a server on a free loopback port.
    pub fn start() -> GitServer {
        GitServer::start_on("127.0.0.1:0")
    }

    /// Starts a server on `listen` (e.g. a loopback address on port 80, for
    /// go-get discovery that has no port in the module path).
    pub fn start_on(listen: &str) -> GitServer {
        let dir = TempDir::new().expect("tempdir");
        let root = dir.path().join("repos");
        std::fs::create_dir_all(root.join("private")).expect("mkdir repos");
        std::fs::create_dir_all(root.join("group")).expect("mkdir repos");
        let host = if listen.starts_with("127.0.0.1:") {
            HOST.to_owned()
        } else {
            listen.split(':').next().unwrap_or(HOST).to_owned()
        };
        let mut child = Command::new(gitserver_bin())
            .args(["--listen", listen, "--exit-on-stdin-eof", "--host", &host])
            .arg("--root")
            .arg(&root)
            .args(["--user", USER, "--pass", PASS])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start gitserver");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("gitserver did not print its address within 60s");
        let addr: SocketAddr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected gitserver output {line:?}"));
        GitServer {
            child,
            _stdin: stdin,
            addr,
            url: format!("http://{addr}"),
            root,
            dir,
        }
    }

    /// A new repository `name` (e.g. `lib`, `private/app`) with a work tree
    /// whose commits are pushed to the served bare repository.
    pub fn repo(&self, name: &str) -> Repo {
        let bare = self.root.join(format!("{name}.git"));
        let work = self.dir.path().join("work").join(name);
        std::fs::create_dir_all(&work).expect("mkdir work");
        git(
            &self.root,
            &["init", "-q", "--bare", "-b", "main"],
            Some(&bare),
        );
        git(&work, &["init", "-q", "-b", "main"], None);
        Repo {
            work,
            bare,
            name: name.to_owned(),
            commits: 0,
        }
    }

    /// A `GIT_CONFIG_GLOBAL` file for the go command: `https://HOST/` goes
    /// to this server, with the basic-auth user when `auth` is set.
    pub fn gitconfig(&self, auth: bool) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(if auth { "gitconfig-auth" } else { "gitconfig" });
        let base = if auth {
            format!("http://{USER}:{PASS}@{}/", self.addr)
        } else {
            format!("{}/", self.url)
        };
        std::fs::write(
            &path,
            format!(
                "[url \"{base}\"]\n\tinsteadOf = https://{HOST}/\n[protocol]\n\tallow = always\n"
            ),
        )
        .expect("write gitconfig");
        path
    }

    /// Sparta's flags to reach this server for `HOST` modules.
    pub fn sparta_args(&self) -> Vec<String> {
        vec![
            "--vcs-map".into(),
            format!("{HOST}/private/*={}/{{rest}}", self.url),
            "--vcs-map".into(),
            format!("{HOST}/*={}/{{rest}}", self.url),
            "--vcs-allow-loopback".into(),
            "--vcs-insecure".into(),
            HOST.into(),
        ]
    }

    /// A netrc file with this server's credentials (or wrong ones).
    pub fn netrc(&self, password: &str) -> PathBuf {
        let path = self.dir.path().join(format!("netrc-{password}"));
        std::fs::write(
            &path,
            format!("machine 127.0.0.1\nlogin {USER}\npassword {password}\n"),
        )
        .expect("write netrc");
        path
    }

    /// Request counts by path.
    pub async fn stats(&self) -> BTreeMap<String, u64> {
        let resp = crate::http_client()
            .get(format!("{}/_git/stats", self.url))
            .send()
            .await
            .expect("gitserver stats");
        resp.json().await.expect("stats json")
    }
}

/// A repository's work tree; every change is committed with fixed dates so
/// pseudo-versions are reproducible, and pushed to the server.
pub struct Repo {
    pub work: PathBuf,
    pub bare: PathBuf,
    pub name: String,
    commits: u32,
}

impl Repo {
    /// The module path of the repository root.
    pub fn module(&self) -> String {
        format!("{HOST}/{}.git", self.name)
    }

    /// Writes a file (parent directories created).
    pub fn write(&self, path: &str, contents: &str) -> &Self {
        let p = self.work.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, contents).expect("write");
        self
    }

    /// Creates a symbolic link `path` -> `target`.
    pub fn symlink(&self, path: &str, target: &str) -> &Self {
        let p = self.work.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, p).expect("symlink");
        self
    }

    /// Commits everything; returns the full commit hash.
    pub fn commit(&mut self, msg: &str) -> String {
        self.commits += 1;
        // One day apart from a fixed start, so times and pseudo-versions are stable.
        let date = format!("2024-01-{:02}T12:00:00Z", self.commits.min(28));
        git(&self.work, &["add", "-A"], None);
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=Sparta Test",
                "-c",
                "user.email=test@sparta.test",
            ])
            .args(["commit", "-q", "--allow-empty", "-m", msg])
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .current_dir(&self.work)
            .output()
            .expect("git commit");
        assert!(
            out.status.success(),
            "git commit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.head()
    }

    /// The work tree's HEAD commit.
    pub fn head(&self) -> String {
        git_out(&self.work, &["rev-parse", "HEAD"])
            .trim()
            .to_owned()
    }

    /// Tags HEAD (moving the tag if it exists).
    pub fn tag(&self, tag: &str) -> &Self {
        git(&self.work, &["tag", "-f", tag], None);
        self
    }

    /// Creates and switches to a branch.
    pub fn branch(&self, name: &str) -> &Self {
        git(&self.work, &["checkout", "-q", "-b", name], None);
        self
    }

    /// Switches to an existing branch.
    pub fn checkout(&self, name: &str) -> &Self {
        git(&self.work, &["checkout", "-q", name], None);
        self
    }

    /// Pushes every branch and tag to the served repository, forcing moved tags.
    pub fn push(&self) -> &Self {
        let bare = self.bare.to_string_lossy().into_owned();
        git(
            &self.work,
            &["push", "-q", "--force", &bare, "refs/heads/*:refs/heads/*"],
            None,
        );
        git(
            &self.work,
            &["push", "-q", "--force", &bare, "refs/tags/*:refs/tags/*"],
            None,
        );
        self
    }
}

fn git(cwd: &Path, args: &[&str], extra: Option<&Path>) {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .current_dir(cwd);
    if let Some(p) = extra {
        cmd.arg(p);
    }
    let out = cmd.output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn git_out(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .current_dir(cwd)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
