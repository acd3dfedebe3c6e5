//! Harness for Sparta's end-to-end tests: the fixture upstream (a Go program
//! in `tests/fixture`), the real `sparta` binary, and the real `go` command,
//! each in its own temporary directories and bounded in time.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

pub mod git;
pub mod otlp;
pub mod sumdb;
pub mod tls;
pub mod toxiproxy;

use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one `go` command may run before the test fails.
pub const GO_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a single HTTP request in a test may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(120);

/// The workspace root (the parent of `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The cargo target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The `go` executable: `$GO` if set, else `go` on PATH.
pub fn go_exe() -> PathBuf {
    std::env::var_os("GO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("go"))
}

/// Waits for a child with a deadline; kills it when the deadline passes.
pub fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// Fixture upstream

/// Builds the Go program in `tests/<dir>` into `target/sparta-e2e/<dir>` and
/// returns its path. Built to a private name and renamed, so a concurrent
/// reader never runs a half-written binary; `go build` caches, so a rebuild
/// is quick. Callers keep the result in a `OnceLock`.
pub fn build_go_program(dir: &str, env: &[(&str, &str)]) -> PathBuf {
    let out_dir = target_dir().join("sparta-e2e");
    std::fs::create_dir_all(&out_dir).expect("create target/sparta-e2e");
    let bin = out_dir.join(dir);
    let tmp = out_dir.join(format!("{dir}.{}.tmp", std::process::id()));
    let mut child = Command::new(go_exe())
        .args(["build", "-o"])
        .arg(&tmp)
        .arg(".")
        .current_dir(workspace_root().join("tests").join(dir))
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("the go command must be on PATH to build tests/{dir} (or set GO): {e}")
        });
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = wait_bounded(
        &mut child,
        Duration::from_secs(300),
        &format!("go build ({dir})"),
    );
    let err = reader.join().unwrap_or_default();
    assert!(status.success(), "building tests/{dir} failed:\n{err}");
    std::fs::rename(&tmp, &bin).unwrap_or_else(|e| panic!("rename {dir} binary: {e}"));
    bin
}

/// Builds the fixture program once per test binary and returns its path.
pub fn fixture_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_go_program("fixture", &[])).clone()
}

/// A running fixture upstream. The shared one lives for the whole test
/// binary; it exits when our end of its stdin closes (the binary exited).
pub struct Fixture {
    child: Mutex<Child>,
    _stdin: ChildStdin,
    /// The bound address.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`, what Sparta gets as `--upstream`.
    pub url: String,
    client: reqwest::Client,
}

/// The fixture shared by every test in this binary. Tests that count or
/// inject faults use module paths of their own (see [`scratch_module`]).
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let size = std::env::var("SPARTA_E2E_LARGE_SIZE").unwrap_or_else(|_| "40MiB".into());
        Fixture::start(&["--large-size", &size])
    })
}

impl Fixture {
    /// Starts a fixture process with extra flags and waits until it listens.
    pub fn start(args: &[&str]) -> Fixture {
        let bin = fixture_bin();
        let mut child = Command::new(&bin)
            .args(["--listen", "127.0.0.1:0", "--exit-on-stdin-eof"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fixture");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the fixture never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("fixture did not print its address within 120s");
            }
        };
        let addr: SocketAddr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected fixture output {line:?}"));
        Fixture {
            child: Mutex::new(child),
            _stdin: stdin,
            addr,
            url: format!("http://{addr}"),
            // The fixture outlives each test's runtime; a pooled connection
            // belongs to the runtime that opened it and dies with it, so
            // keep none between calls.
            client: reqwest::Client::builder()
                .timeout(HTTP_TIMEOUT)
                .connect_timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(0)
                .no_proxy()
                .build()
                .expect("reqwest client"),
        }
    }

    /// Request counts by decoded path, for paths starting with `prefix`.
    pub async fn stats(&self, prefix: &str) -> BTreeMap<String, u64> {
        let resp = self
            .client
            .get(format!(
                "{}/_fixture/stats?prefix={}",
                self.url,
                query_escape(prefix)
            ))
            .send()
            .await
            .expect("fixture stats");
        assert!(
            resp.status().is_success(),
            "fixture stats: {}",
            resp.status()
        );
        resp.json().await.expect("stats json")
    }

    /// How many requests reached the fixture for exactly this path.
    pub async fn count(&self, path: &str) -> u64 {
        self.stats(path).await.get(path).copied().unwrap_or(0)
    }

    /// Injects a fault on an exact request path (see tests/fixture/main.go).
    pub async fn fault(&self, spec: serde_json::Value) {
        let resp = self
            .client
            .post(format!("{}/_fixture/fault", self.url))
            .body(spec.to_string())
            .send()
            .await
            .expect("fixture fault");
        assert!(
            resp.status().is_success(),
            "fixture fault: {}",
            resp.status()
        );
    }

    /// Clears any fault on a path.
    pub async fn clear_fault(&self, path: &str) {
        self.fault(serde_json::json!({"path": path, "kind": "status", "times": 0}))
            .await;
    }

    /// The true answer for a proxy path (no leading slash), never counted
    /// and never faulted: (status, body).
    pub async fn raw(&self, path: &str) -> (u16, Vec<u8>) {
        let path = path.trim_start_matches('/');
        let resp = self
            .client
            .get(format!("{}/_fixture/raw/{path}", self.url))
            .send()
            .await
            .expect("fixture raw");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.expect("raw body").to_vec())
    }

    /// The true bytes of a proxy path; panics unless the fixture has it.
    pub async fn truth(&self, path: &str) -> Vec<u8> {
        let (status, body) = self.raw(path).await;
        assert_eq!(status, 200, "fixture has no {path}");
        body
    }

    /// The expected go.sum hashes of every fixture module version.
    pub async fn sums(&self) -> Sums {
        let resp = self
            .client
            .get(format!("{}/_fixture/sums", self.url))
            .send()
            .await
            .expect("fixture sums");
        Sums::parse(&resp.text().await.expect("sums body"))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Escapes a query value (module paths hold `+`, which would read as space).
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// go.sum hashes by (module, version): (zip h1, go.mod h1).
#[derive(Debug, Default)]
pub struct Sums(HashMap<(String, String), (String, String)>);

impl Sums {
    /// Parses go.sum lines.
    pub fn parse(text: &str) -> Sums {
        let mut out: HashMap<(String, String), (String, String)> = HashMap::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [module, version, hash] = f[..] else {
                continue;
            };
            if let Some(v) = version.strip_suffix("/go.mod") {
                out.entry((module.into(), v.into())).or_default().1 = hash.into();
            } else {
                out.entry((module.into(), version.into())).or_default().0 = hash.into();
            }
        }
        Sums(out)
    }

    /// (zip hash, go.mod hash) of a module version.
    pub fn get(&self, module: &str, version: &str) -> (String, String) {
        self.0
            .get(&(module.to_string(), version.to_string()))
            .cloned()
            .unwrap_or_else(|| panic!("fixture has no sums for {module}@{version}"))
    }
}

/// Whether `done` holds within `limit`, asked every 20 ms: a fetched file
/// is answered before it is stored, so what its store leaves (the object,
/// the disk tier's copy) appears a moment after the answer.
pub async fn within<F, Fut>(limit: std::time::Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        if done().await {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Hands out a distinct `fixture.test/scratch/sNN` module to each caller, so
/// tests that count requests or inject faults never share paths.
pub fn scratch_module() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    assert!(n < 64, "the fixture has only 64 scratch modules");
    format!("fixture.test/scratch/s{n:02}")
}

/// Escapes a module path or version for a URL (`!` before each upper-case
/// letter, which is lowered).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The proxy path (leading `/`) of a per-version file: `/<mod>/@v/<v>.<ext>`.
pub fn version_path(module: &str, version: &str, ext: &str) -> String {
    format!("/{}/@v/{}.{ext}", escape(module), escape(version))
}

// ---------------------------------------------------------------------------
// The sparta binary

/// The sparta binary under test: `$SPARTA_BIN`, else `target/debug/sparta`.
/// It is not built from here, because a nested `cargo build` inside
/// `cargo test` can wait on cargo's lock; build it first.
pub fn sparta_bin() -> PathBuf {
    let bin = std::env::var_os("SPARTA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug/sparta"));
    assert!(
        bin.is_file(),
        "sparta binary not found at {}: run `cargo build -p sparta` first (or set SPARTA_BIN)",
        bin.display()
    );
    static WARNED: OnceLock<()> = OnceLock::new();
    WARNED.get_or_init(|| {
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let newest = newest_source(&workspace_root().join("crates"));
        if let (Some(built), Some(newest)) = (built, newest)
            && newest > built
        {
            eprintln!(
                "warning: {} is older than the sources in crates/: run `cargo build -p sparta`",
                bin.display()
            );
        }
    });
    bin
}

/// The newest modification time of any file under a directory.
fn newest_source(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                newest = newest.max(Some(t));
            }
        }
    }
    newest
}

/// A running Sparta with its own temporary storage; killed on drop.
pub struct Sparta {
    child: Child,
    /// The bound address.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Local storage directory (`--storage`).
    pub storage: PathBuf,
    log: PathBuf,
    upstream: String,
    env: Vec<(String, String)>,
    fixture_defaults: bool,
    /// Root of this instance's temporary files; storage and spool live inside.
    pub dir: std::sync::Arc<TempDir>,
}

/// Waits up to 30 s for a started Sparta to write its address to `ready`;
/// panics with its log if it exits or does not get ready.
pub async fn wait_ready(child: &mut Child, ready: &Path, log: &Path, name: &str) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Ready once the address is out and the start-up line is logged
        // (logs are written by a thread of their own, a moment later).
        if let Ok(text) = std::fs::read_to_string(ready)
            && let Ok(addr) = text.trim().parse::<SocketAddr>()
            && std::fs::read_to_string(log).is_ok_and(|l| l.contains("listening"))
        {
            return addr;
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "{name} exited early ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{name} was not ready within 30s:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How to start Sparta.
pub struct SpartaOptions {
    /// `--upstream`.
    pub upstream: String,
    /// Reuse another instance's directory (storage survives a restart).
    pub dir: Option<std::sync::Arc<TempDir>>,
    /// Extra flags after the standard ones.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// In front of the fixture: checksum verification off unless the test
    /// brings its own database (`--sumdb ...`).
    pub fixture_defaults: bool,
}

impl SpartaOptions {
    /// Options with an upstream and no extra flags.
    pub fn new(upstream: &str) -> Self {
        SpartaOptions {
            upstream: upstream.to_string(),
            dir: None,
            args: Vec::new(),
            env: Vec::new(),
            fixture_defaults: false,
        }
    }

    /// Options for Sparta in front of the shared fixture. Fixture modules
    /// are in no checksum database, so verification is off (the go
    /// command's side runs with GOSUMDB=off too) unless the test passes
    /// `--sumdb ...` flags of its own.
    pub fn fixture() -> Self {
        SpartaOptions {
            fixture_defaults: true,
            ..SpartaOptions::new(&fixture().url)
        }
    }

    /// Adds extra flags.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// Shares another instance's directory (its storage and spool).
    pub fn with_dir(mut self, dir: std::sync::Arc<TempDir>) -> Self {
        self.dir = Some(dir);
        self
    }
}

impl Sparta {
    /// Starts Sparta in front of the shared fixture.
    pub async fn for_fixture(extra: &[&str]) -> Sparta {
        Sparta::start(SpartaOptions::fixture().args(extra)).await
    }

    /// Starts Sparta and waits until it has written its ready file.
    pub async fn start(opts: SpartaOptions) -> Sparta {
        let bin = sparta_bin();
        let dir = opts
            .dir
            .unwrap_or_else(|| std::sync::Arc::new(TempDir::new().expect("tempdir")));
        let storage = dir.path().join("store");
        let spool = dir.path().join("spool");
        std::fs::create_dir_all(&storage).expect("mkdir store");
        std::fs::create_dir_all(&spool).expect("mkdir spool");
        let ready = dir.path().join("ready");
        let _ = std::fs::remove_file(&ready);
        let log = dir.path().join(format!("sparta-{}.log", stamp()));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(&bin);
        // Settings from the caller's environment must not leak in.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("SPARTA_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--ready-file")
            .arg(&ready)
            .arg("--storage")
            .arg(&storage)
            .arg("--spool-dir")
            .arg(&spool)
            .arg("--upstream")
            .arg(&opts.upstream)
            .args(
                (opts.fixture_defaults && !opts.args.iter().any(|a| a.starts_with("--sumdb")))
                    .then_some("--sumdb-verify=false"),
            )
            .args(&opts.args)
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log fd"))
            .stderr(log_file);
        let mut child = cmd.spawn().expect("start sparta");
        let addr = wait_ready(&mut child, &ready, &log, "sparta").await;
        Sparta {
            child,
            addr,
            url: format!("http://{addr}"),
            storage,
            log,
            upstream: opts.upstream,
            env: opts.env,
            fixture_defaults: opts.fixture_defaults,
            dir,
        }
    }

    /// Stops this instance and starts another on the same storage.
    pub async fn restart(mut self, extra: &[&str]) -> Sparta {
        self.stop();
        let dir = self.dir.clone();
        let upstream = self.upstream.clone();
        let env = self.env.clone();
        let fixture_defaults = self.fixture_defaults;
        drop(self);
        Sparta::start(SpartaOptions {
            upstream,
            dir: Some(dir),
            args: extra.iter().map(|s| s.to_string()).collect(),
            env,
            fixture_defaults,
        })
        .await
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id (for sampling /proc in the soak).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its `/metrics` page.
    pub async fn metrics(&self) -> String {
        metrics_page(&self.url).await
    }

    /// What Sparta logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True while the process runs and `/healthz` answers 200.
    pub async fn alive(&mut self) -> bool {
        if self.child.try_wait().ok().flatten().is_some() {
            return false;
        }
        matches!(
            http_client().get(format!("{}/healthz", self.url)).send().await,
            Ok(r) if r.status() == 200
        )
    }

    /// Every stored object: key (relative path with `/`) -> file path.
    pub fn stored(&self) -> BTreeMap<String, PathBuf> {
        let mut out = BTreeMap::new();
        walk(&self.storage, &self.storage, &mut out);
        out
    }

    /// Compares every stored `.info`/`.mod`/`.zip` with the fixture's true
    /// bytes and returns the keys that differ.
    pub async fn corrupt_objects(&self, fixture: &Fixture) -> Vec<String> {
        let mut bad = Vec::new();
        for (key, file) in self.stored() {
            let is_version_file = !key.starts_with("_sparta/")
                && key.contains("/@v/")
                && [".info", ".mod", ".zip"].iter().any(|e| key.ends_with(e));
            if !is_version_file {
                continue;
            }
            let stored = std::fs::read(&file).unwrap_or_default();
            let (status, truth) = fixture.raw(&key).await;
            let same = status == 200
                && if key.ends_with(".info") {
                    same_info(&stored, &truth)
                } else {
                    stored == truth
                };
            if !same {
                bad.push(key);
            }
        }
        bad
    }
}

impl Drop for Sparta {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stamp() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else if let Ok(rel) = p.strip_prefix(root) {
            let key = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.insert(key, p);
        }
    }
}

/// Two `.info` bodies say the same thing when their Version and Time agree
/// (a proxy may re-serialize the JSON).
pub fn same_info(a: &[u8], b: &[u8]) -> bool {
    let parse = |x: &[u8]| serde_json::from_slice::<serde_json::Value>(x).ok();
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a["Version"] == b["Version"] && a["Time"] == b["Time"],
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// The go command

/// A clean environment for the go command: its own HOME, GOPATH, module
/// cache and build cache, with Sparta as the only proxy.
pub struct GoEnv {
    dir: TempDir,
    vars: Vec<(String, String)>,
}

/// What one go command printed.
#[derive(Debug)]
pub struct GoOutput {
    /// Exit success.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl GoEnv {
    /// An environment whose GOPROXY is `proxy` and GOSUMDB is off.
    pub fn new(proxy: &str) -> GoEnv {
        let dir = TempDir::new().expect("tempdir");
        let p = |s: &str| dir.path().join(s).to_string_lossy().into_owned();
        for d in ["home", "gopath", "work"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        let vars = vec![
            ("HOME".into(), p("home")),
            ("GOPATH".into(), p("gopath")),
            ("GOMODCACHE".into(), p("gopath/pkg/mod")),
            ("GOCACHE".into(), p("gocache")),
            ("GOENV".into(), p("home/goenv")),
            ("GOPROXY".into(), proxy.to_string()),
            ("GOSUMDB".into(), "off".into()),
            ("GOFLAGS".into(), "-modcacherw".into()),
            ("GOTOOLCHAIN".into(), "local".into()),
            ("CGO_ENABLED".into(), "0".into()),
        ];
        GoEnv { dir, vars }
    }

    /// Sets or replaces one variable.
    pub fn set(&mut self, key: &str, value: &str) {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.into(), value.into()));
    }

    /// A scratch directory for modules and programs.
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// The module cache directory.
    pub fn modcache(&self) -> PathBuf {
        self.dir.path().join("gopath/pkg/mod")
    }

    /// Runs `go args...` in `cwd`, bounded by [`GO_TIMEOUT`].
    pub async fn run(&self, cwd: &Path, args: &[&str]) -> GoOutput {
        let mut cmd = tokio::process::Command::new(go_exe());
        // Start from nothing but PATH (and TMPDIR), so the machine's GOFLAGS,
        // GOPRIVATE, GONOPROXY, GONOSUMDB and the like cannot leak in.
        cmd.env_clear();
        for k in ["PATH", "TMPDIR"] {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        cmd.envs(self.vars.iter().map(|(k, v)| (k, v)))
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(GO_TIMEOUT, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("go {args:?} did not finish within {GO_TIMEOUT:?}"))
            .expect("run go");
        GoOutput {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs a go command that must succeed; returns its stdout.
    pub async fn ok(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.run(cwd, args).await;
        assert!(
            out.ok,
            "go {args:?} failed\nstdout:\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    /// `go mod download -json <targets>` run outside any module: the JSON
    /// objects it printed, one per target.
    pub async fn download(&self, targets: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec!["mod", "download", "-json"];
        args.extend_from_slice(targets);
        let out = self.run(&self.work(), &args).await;
        let values = parse_json_stream(&out.stdout);
        assert!(
            out.ok && values.iter().all(|v| v.get("Error").is_none()),
            "go {args:?} failed\nstdout:\n{}\nstderr:\n{}",
            out.stdout,
            out.stderr
        );
        values
    }
}

/// Parses concatenated JSON objects (what `go ... -json` prints).
pub fn parse_json_stream(s: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(s)
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
        .collect()
}

// ---------------------------------------------------------------------------
// HTTP helpers

/// The `/metrics` page of the server at `base` (a main or an admin address).
pub async fn metrics_page(base: &str) -> String {
    http_client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body")
}

/// A value of one series (name and labels exactly) in a Prometheus text
/// page; 0 when absent.
pub fn metric_value(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A client that follows no redirect, for tests that look at each 302 themselves.
pub fn no_redirect_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .no_proxy()
        .build()
        .expect("client")
}

/// A client for tests: bounded, never through an environment proxy.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("reqwest client")
}

/// Hex sha256 of some bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A response read off the wire by [`raw_request`].
#[derive(Debug)]
pub struct RawResponse {
    /// Status code (0 if the server closed without a status line).
    pub status: u16,
    /// Header block as text.
    pub head: String,
    /// Body bytes (not de-chunked).
    pub body: Vec<u8>,
}

/// Sends one request with an exact request target, byte for byte (a URL
/// library would normalise `..` and `%2e%2e` away), and reads the answer.
pub async fn raw_request(addr: SocketAddr, method: &str, target: &[u8]) -> RawResponse {
    let work = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let mut req = Vec::new();
        req.extend_from_slice(method.as_bytes());
        req.push(b' ');
        req.extend_from_slice(target);
        req.extend_from_slice(
            format!(" HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        stream.write_all(&req).await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .expect("raw request timed out")
        .unwrap_or_default();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let body = buf.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    RawResponse { status, head, body }
}
