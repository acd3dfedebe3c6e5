//! Shared by the integration tests: builds and runs the Go programs in
//! tests/ (the fixture checksum database, the fixture upstream) on loopback.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Builds the Go program in `tests/<dir>` once per test binary; panics with
/// go's output if it does not build (the tests need it; never skipped).
pub fn go_build(dir: &str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap();
    if let Some(p) = built.get(dir) {
        return p.clone();
    }
    // One output per test binary, so parallel test binaries never race on it.
    let out =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{dir}-{}", env!("CARGO_CRATE_NAME")));
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(repo_root().join("tests").join(dir))
        .status()
        .expect("the go command is needed to build the test fixtures");
    assert!(status.success(), "go build of tests/{dir} failed");
    built.insert(dir.to_owned(), out.clone());
    out
}

/// Reads a child's stdout until a line starting with each of `prefixes` has
/// been seen (bounded wait), returning the rest of those lines.
fn read_banner(child: &mut Child, prefixes: &[&str]) -> Vec<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut found: Vec<Option<String>> = vec![None; prefixes.len()];
    while found.iter().any(Option::is_none) {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("fixture did not start within 30 s");
        for (i, p) in prefixes.iter().enumerate() {
            if let Some(rest) = line.strip_prefix(p) {
                found[i] = Some(rest.trim().to_owned());
            }
        }
    }
    found.into_iter().map(Option::unwrap).collect()
}

/// A running fixture checksum database.
pub struct FixtureDb {
    child: Child,
    pub name: String,
    pub vkey: String,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl FixtureDb {
    /// Starts a database named `name` over `sums` (go.sum lines, or an
    /// `http://` URL serving them), with a new key.
    pub fn start(name: &str, sums: &str) -> FixtureDb {
        let bin = go_build("sumdb-fixture");
        let dir = tempfile::tempdir().unwrap();
        let source = if sums.starts_with("http://") {
            sums.to_owned()
        } else {
            let file = dir.path().join("sums.txt");
            std::fs::File::create(&file)
                .unwrap()
                .write_all(sums.as_bytes())
                .unwrap();
            file.to_str().unwrap().to_owned()
        };
        let mut child = Command::new(bin)
            .args(["-name", name, "-sums", &source, "-exit-on-stdin-eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let got = read_banner(&mut child, &["verifier key ", "listening on "]);
        FixtureDb {
            child,
            name: name.to_owned(),
            vkey: got[0].clone(),
            url: format!("http://{}", got[1]),
            _dir: dir,
        }
    }

    /// Requests served so far, by path.
    pub async fn stats(&self) -> HashMap<String, u64> {
        let body = reqwest::get(format!("{}/_sumdb/stats", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// Forgets the request counts.
    pub async fn reset(&self) {
        let resp = reqwest::Client::new()
            .post(format!("{}/_sumdb/reset", self.url))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }

    /// How often `path` was requested.
    pub async fn count(&self, path: &str) -> u64 {
        self.stats().await.get(path).copied().unwrap_or(0)
    }

    /// Raw GET straight from the fixture (counted like any request): status,
    /// content type, body.
    pub async fn raw(&self, path: &str) -> (u16, String, Vec<u8>) {
        let resp = reqwest::get(format!("{}/{path}", self.url)).await.unwrap();
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, ctype, resp.bytes().await.unwrap().to_vec())
    }
}

impl Drop for FixtureDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A module version built in memory: its zip, go.mod and hashes.
pub struct TestModule {
    pub path: String,
    pub version: String,
    pub gomod: Vec<u8>,
    pub zip: Vec<u8>,
    pub zip_h1: String,
    pub mod_h1: String,
}

impl TestModule {
    /// A small module whose content depends on `path`, `version` and `salt`.
    pub fn new(path: &str, version: &str, salt: &str) -> TestModule {
        let gomod = format!("module {path}\n\ngo 1.21\n").into_bytes();
        let prefix = format!("{path}@{version}/");
        let files: Vec<(String, Vec<u8>)> = vec![
            (format!("{prefix}go.mod"), gomod.clone()),
            (
                format!("{prefix}m.go"),
                format!("package m\n\n// {salt}\nconst V = {version:?}\n").into_bytes(),
            ),
        ];
        let zip = zip_of(&files);
        TestModule {
            path: path.to_owned(),
            version: version.to_owned(),
            zip_h1: sparta_core::hash::zip_h1(std::io::Cursor::new(&zip)).unwrap(),
            mod_h1: sparta_core::hash::gomod_h1(&gomod),
            gomod,
            zip,
        }
    }

    /// Its two go.sum lines.
    pub fn sums(&self) -> String {
        format!(
            "{p} {v} {z}\n{p} {v}/go.mod {m}\n",
            p = self.path,
            v = self.version,
            z = self.zip_h1,
            m = self.mod_h1
        )
    }

    pub fn module(&self) -> sparta_core::ModulePath {
        sparta_core::ModulePath::parse(&self.path).unwrap()
    }

    pub fn ver(&self) -> sparta_core::Version {
        sparta_core::Version::parse(&self.version).unwrap()
    }
}

/// A zip of (name, content) files.
pub fn zip_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in files {
        w.start_file(name.as_str(), opts).unwrap();
        w.write_all(content).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A loopback address where nothing listens.
pub fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}
