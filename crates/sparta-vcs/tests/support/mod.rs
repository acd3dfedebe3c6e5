//! Test support: git repositories made with the git CLI at fixed dates,
//! served over smart HTTP by `git http-backend` (testdata/gitserver, a tiny
//! Go CGI bridge), the real go command as the reference, and a `Vcs` that
//! reaches the same server through a `--vcs-map` entry.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use sparta_core::{ModulePath, Version};
use sparta_vcs::{NetPolicy, Vcs, VcsConfig, VcsError, VcsMap};

pub const GO: &str = "/usr/local/go/bin/go";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The gitserver binary, built once per test process.
fn gitserver() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/gitserver");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gitserver");
        run(Command::new(GO)
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(&src)
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "-mod=mod")
            .env("GOPROXY", "off"));
        out
    })
}

/// A running git HTTP server over the repositories in `root`.
pub struct Server {
    child: Child,
    pub addr: String,
}

impl Server {
    pub fn start(root: &Path, auth: Option<&str>, meta: Option<&str>) -> Server {
        let mut cmd = Command::new(gitserver());
        cmd.arg("-root").arg(root);
        if let Some(a) = auth {
            cmd.args(["-auth", a]);
        }
        if let Some(m) = meta {
            cmd.args(["-meta", m]);
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start gitserver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Server {
            child,
            addr: line.trim().to_owned(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A work repository whose commits get fixed, increasing dates.
pub struct Repo {
    pub dir: PathBuf,
    clock: i64,
}

impl Repo {
    pub fn init(root: &Path, name: &str) -> Repo {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let r = Repo {
            dir,
            clock: 1_700_000_000,
        };
        r.git(&["init", "-q", "-b", "main"]);
        r
    }

    pub fn git(&self, args: &[&str]) -> String {
        let date = format!("@{} +0000", self.clock);
        run(Command::new("git")
            .args([
                "-c",
                "user.name=Test",
                "-c",
                "user.email=test@example.test",
                "-c",
                "core.autocrlf=false",
            ])
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date))
        .trim()
        .to_owned()
    }

    pub fn write(&self, path: &str, content: &str) -> &Self {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn symlink(&self, path: &str, target: &str) -> &Self {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
        self
    }

    pub fn remove(&self, path: &str) -> &Self {
        self.git(&["rm", "-q", "-r", path]);
        self
    }

    /// Commits everything, an hour after the previous commit; returns the hash.
    pub fn commit(&mut self, msg: &str) -> String {
        self.clock += 3600;
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn tag(&self, name: &str) {
        self.git(&["tag", name]);
    }
}

/// What a download resolved to.
#[derive(Debug, PartialEq, Eq)]
pub struct Resolved {
    pub version: String,
    pub zip_h1: String,
    pub mod_h1: String,
    pub time: String,
}

/// The go command with GOPROXY=direct, reaching the server through a git
/// `insteadOf` rewrite of https://example.test/.
pub struct GoClient {
    pub home: tempfile::TempDir,
}

impl GoClient {
    pub fn new(addr: &str) -> GoClient {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join("gitconfig"),
            format!("[url \"http://{addr}/\"]\n\tinsteadOf = https://example.test/\n"),
        )
        .unwrap();
        GoClient { home }
    }

    pub fn download(&self, target: &str) -> Result<Resolved, String> {
        let h = self.home.path();
        let out = Command::new(GO)
            .args(["mod", "download", "-json", target])
            .current_dir(h)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", h)
            .env("GOPATH", h.join("gopath"))
            .env("GOMODCACHE", h.join("modcache"))
            .env("GOCACHE", h.join("gocache"))
            .env("GOPROXY", "direct")
            .env("GOSUMDB", "off")
            .env("GONOSUMDB", "example.test")
            .env("GOPRIVATE", "example.test")
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .env("GO111MODULE", "on")
            .env("GIT_CONFIG_GLOBAL", h.join("gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .expect("run go");
        let j: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("go output {e}: {}", String::from_utf8_lossy(&out.stderr)))?;
        if let Some(err) = j.get("Error").and_then(|e| e.as_str()) {
            return Err(err.to_owned());
        }
        let s = |k: &str| j[k].as_str().unwrap_or_default().to_owned();
        let info: serde_json::Value =
            serde_json::from_slice(&std::fs::read(s("Info")).unwrap()).unwrap();
        Ok(Resolved {
            version: s("Version"),
            zip_h1: s("Sum"),
            mod_h1: s("GoModSum"),
            time: info["Time"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// `go list -m -versions`: the tagged versions the go command sees.
    pub fn versions(&self, module: &str) -> Vec<String> {
        let h = self.home.path();
        let out = Command::new(GO)
            .args(["list", "-m", "-versions", "-json", module])
            .current_dir(h)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", h)
            .env("GOPATH", h.join("gopath"))
            .env("GOMODCACHE", h.join("modcache"))
            .env("GOCACHE", h.join("gocache"))
            .env("GOPROXY", "direct")
            .env("GOSUMDB", "off")
            .env("GOPRIVATE", "example.test")
            .env("GOTOOLCHAIN", "local")
            .env("GO111MODULE", "on")
            .env("GIT_CONFIG_GLOBAL", h.join("gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .expect("run go");
        let j: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("go list {e}: {}", String::from_utf8_lossy(&out.stderr)));
        j["Versions"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }
}

/// A `Vcs` with its cache in `dir`, mapping example.test/* to the server.
pub fn vcs(dir: &Path, addr: &str, tweak: impl FnOnce(&mut VcsConfig)) -> Vcs {
    let mut c = VcsConfig::new(dir.to_owned());
    c.maps = vec![VcsMap::parse(&format!("example.test/*=http://{addr}/{{rest}}")).unwrap()];
    c.net = NetPolicy {
        allow_loopback: true,
        refuse_private: false,
    };
    c.op_timeout = std::time::Duration::from_secs(120);
    tweak(&mut c);
    Vcs::new(c).unwrap()
}

/// Resolves `module@query` through our code, as .info, .mod and .zip.
pub async fn ours(
    vcs: &Vcs,
    out_dir: &Path,
    module: &str,
    query: &str,
) -> Result<Resolved, VcsError> {
    let m = ModulePath::parse(module).unwrap();
    let info = vcs.query(&m, query).await?;
    let v: Version = info.version.clone();
    let gomod = vcs.gomod(&m, &v).await?;
    let zip = out_dir.join(format!("{}.zip", module.replace('/', "_")));
    vcs.zip_to_file(&m, &v, &zip).await?;
    let f = std::fs::File::open(&zip).unwrap();
    // Every zip we make must pass the checks stored zips go through.
    sparta_core::zipcheck::check_zip(&f, &m, &v).expect("zip passes zipcheck");
    Ok(Resolved {
        version: v.to_string(),
        zip_h1: sparta_core::hash::zip_h1(std::fs::File::open(&zip).unwrap()).unwrap(),
        mod_h1: sparta_core::hash::gomod_h1(&gomod),
        time: info.time,
    })
}

/// Asserts the go command and our code agree on `module@query`.
pub async fn same(go: &GoClient, vcs: &Vcs, out: &Path, module: &str, query: &str) -> Resolved {
    let want = go
        .download(&format!("{module}@{query}"))
        .unwrap_or_else(|e| panic!("go {module}@{query}: {e}"));
    let got = ours(vcs, out, module, query)
        .await
        .unwrap_or_else(|e| panic!("ours {module}@{query}: {e}"));
    assert_eq!(got, want, "{module}@{query}");
    got
}
