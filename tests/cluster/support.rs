//! Helpers for the cluster tests: Sparta replicas on S3 (the shared harness
//! starts Sparta only on local storage, without extra env or signals), a
//! signed-curl S3 client to look at the bucket directly, control of the S3
//! test server, and a throttling TCP proxy in front of S3.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use sparta_e2e::within;
use sparta_e2e::{http_client, sparta_bin, workspace_root};

/// Cluster tests share one S3 server, and one of them stops it: they run
/// one at a time. A tokio mutex does not poison when a test panics.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Takes the cluster-wide test lock.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// A prefix in the bucket no other test (or earlier run) uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("cluster/{test}-{}-{nanos}", std::process::id())
}

// ---------------------------------------------------------------------------
// S3 settings from the environment

/// The S3 test server's settings (`scripts/s3-server.sh start` env file).
#[derive(Clone, Debug)]
pub struct S3Env {
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

impl S3Env {
    /// Reads the `SPARTA_TEST_S3_*` variables; a missing one fails the test.
    pub fn from_env() -> S3Env {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| {
                    panic!(
                        "{name} is not set: the cluster tests need the S3 test server. Run \
                     `make test`, or `env_file=$(bash scripts/s3-server.sh start) && \
                     set -a && source \"$env_file\" && set +a` before cargo test"
                    )
                })
        };
        S3Env {
            endpoint: var("SPARTA_TEST_S3_ENDPOINT")
                .trim_end_matches('/')
                .to_string(),
            bucket: var("SPARTA_TEST_S3_BUCKET"),
            access_key: var("SPARTA_TEST_S3_ACCESS_KEY"),
            secret_key: var("SPARTA_TEST_S3_SECRET_KEY"),
            region: var("SPARTA_TEST_S3_REGION"),
        }
    }

    /// The endpoint's socket address (loopback only).
    pub fn addr(&self) -> SocketAddr {
        let hostport = self
            .endpoint
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("S3 endpoint {} is not http://", self.endpoint));
        hostport
            .parse()
            .unwrap_or_else(|_| panic!("S3 endpoint {} is not 127.0.0.1:PORT", self.endpoint))
    }
}

// ---------------------------------------------------------------------------
// Sparta replicas

/// How to start one replica; kept so it can be restarted with the same flags.
#[derive(Clone, Debug)]
pub struct ReplicaSpec {
    pub name: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl ReplicaSpec {
    /// A replica on `s3://bucket/prefix`, talking to S3 at `endpoint`
    /// (the real server, or a proxy in front of it).
    pub fn s3(name: &str, s3: &S3Env, endpoint: &str, prefix: &str, upstream: &str) -> Self {
        ReplicaSpec {
            name: name.into(),
            args: vec![
                "--storage".into(),
                format!("s3://{}/{prefix}", s3.bucket),
                "--s3-endpoint".into(),
                endpoint.into(),
                "--s3-path-style".into(),
                "--s3-allow-http".into(),
                "--s3-region".into(),
                s3.region.clone(),
                "--upstream".into(),
                upstream.into(),
                // The fixture's modules are in no checksum database.
                "--sumdb-verify=false".into(),
            ],
            env: vec![
                ("AWS_ACCESS_KEY_ID".into(), s3.access_key.clone()),
                ("AWS_SECRET_ACCESS_KEY".into(), s3.secret_key.clone()),
            ],
        }
    }

    /// A replica on a local directory.
    pub fn local(name: &str, storage: &Path, upstream: &str) -> Self {
        ReplicaSpec {
            name: name.into(),
            args: vec![
                "--storage".into(),
                storage.to_string_lossy().into_owned(),
                "--upstream".into(),
                upstream.into(),
                "--sumdb-verify=false".into(),
            ],
            env: Vec::new(),
        }
    }

    /// Adds flags.
    pub fn arg(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }
}

/// One running `sparta serve` process; killed on drop, and its log printed
/// when the test is failing.
pub struct Replica {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    pub url: String,
    log: PathBuf,
    spec: ReplicaSpec,
    dir: Arc<TempDir>,
    exited: Option<ExitStatus>,
    /// The log of the process this one replaced (printed on failure).
    previous_log: String,
}

impl Replica {
    /// Starts a replica in its own temporary directory.
    pub async fn start(spec: ReplicaSpec) -> Replica {
        let dir = Arc::new(TempDir::new().expect("tempdir"));
        Replica::start_in(spec, dir).await
    }

    async fn start_in(spec: ReplicaSpec, dir: Arc<TempDir>) -> Replica {
        let spool = dir.path().join("spool");
        std::fs::create_dir_all(&spool).expect("mkdir spool");
        let ready = dir.path().join("ready");
        let _ = std::fs::remove_file(&ready);
        let n = std::fs::read_dir(dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let log = dir.path().join(format!("{}-{n}.log", spec.name));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(sparta_bin());
        // Only what the spec says: no SPARTA_* or AWS_* from the caller.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("SPARTA_") || k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0", "--ready-file"])
            .arg(&ready)
            .arg("--spool-dir")
            .arg(&spool)
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env("SPARTA_LOG", "info")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log fd"))
            .stderr(log_file);
        let mut child = cmd.spawn().expect("start sparta");
        let pid = child.id();
        let addr =
            sparta_e2e::wait_ready(&mut child, &ready, &log, &format!("replica {}", spec.name))
                .await;
        Replica {
            child,
            pid,
            addr,
            url: format!("http://{addr}"),
            log,
            spec,
            dir,
            exited: None,
            previous_log: String::new(),
        }
    }

    /// `kill -9`: no chance to clean up anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        self.exited = self.child.wait().ok();
    }

    /// Sends SIGTERM (what Kubernetes sends on every rollout).
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.pid);
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.exited {
                return Some(s);
            }
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(s);
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills this process (if alive) and starts a new one with the same
    /// flags and directory, as a pod restart would.
    pub async fn restart(mut self) -> Replica {
        self.kill9();
        let spec = self.spec.clone();
        let dir = self.dir.clone();
        // Keep the old log: it is printed if the test fails later.
        let old = format!("{}{}", self.previous_log, self.log());
        drop(self);
        let mut next = Replica::start_in(spec, dir).await;
        next.previous_log = old;
        next
    }

    /// What this process logged, without terminal colour codes.
    pub fn log(&self) -> String {
        read_log(&self.log)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            if !self.previous_log.is_empty() {
                eprintln!(
                    "----- earlier log of replica {} -----\n{}",
                    self.spec.name, self.previous_log
                );
            }
            eprintln!(
                "----- log of replica {} (pid {}) -----\n{}",
                self.spec.name,
                self.pid,
                self.log()
            );
        }
    }
}

fn read_log(path: &Path) -> String {
    strip_ansi(&std::fs::read_to_string(path).unwrap_or_default())
}

/// Removes `ESC [ ... letter` sequences (older builds coloured their logs).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// HTTP helpers

/// GET a URL: (status, content type, body).
pub async fn get(client: &reqwest::Client, url: &str) -> (u16, String, Vec<u8>) {
    let resp = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: body: {e}"))
        .to_vec();
    (status, ctype, body)
}

/// GET a URL and hash the body as it streams (never holds a 40 MiB body):
/// (status, sha256 hex, length), or an error text if the transfer broke.
pub async fn get_sha(client: &reqwest::Client, url: &str) -> Result<(u16, String, u64), String> {
    let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("body after {len} bytes: {e}"))?;
        len += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((status, hex::encode(hasher.finalize()), len))
}

/// The fixture's request count for one exact path. A fresh client per
/// call: the shared fixture outlives each test's runtime.
pub async fn fixture_count(path: &str) -> u64 {
    let fx = sparta_e2e::fixture();
    let resp = http_client()
        .get(
            reqwest::Url::parse_with_params(
                &format!("{}/_fixture/stats", fx.url),
                [("prefix", path)],
            )
            .expect("stats url"),
        )
        .send()
        .await
        .expect("fixture stats");
    assert!(
        resp.status().is_success(),
        "fixture stats: {}",
        resp.status()
    );
    let counts: std::collections::BTreeMap<String, u64> = resp.json().await.expect("stats json");
    counts.get(path).copied().unwrap_or(0)
}

/// Injects a fault on the fixture (see tests/fixture/main.go).
pub async fn fixture_fault(spec: serde_json::Value) {
    let fx = sparta_e2e::fixture();
    let resp = http_client()
        .post(format!("{}/_fixture/fault", fx.url))
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

/// The true bytes of a proxy path (never counted, never faulted).
pub async fn fixture_truth(path: &str) -> Vec<u8> {
    let fx = sparta_e2e::fixture();
    let (status, _, body) = get(
        &http_client(),
        &format!("{}/_fixture/raw/{}", fx.url, path.trim_start_matches('/')),
    )
    .await;
    assert_eq!(status, 200, "fixture has no {path}");
    body
}

/// Polls `url` until it answers `want`, for at most `limit`.
pub async fn wait_status(url: &str, want: u16, limit: Duration) -> Result<(), String> {
    let client = http_client();
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        match client
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(r) if r.status().as_u16() == want => return Ok(()),
            Ok(r) => {
                last = format!(
                    "{} {}",
                    r.status(),
                    r.text().await.unwrap_or_default().trim()
                )
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "{url} did not answer {want} within {limit:?}; last: {last}"
    ))
}

// ---------------------------------------------------------------------------
// Looking at the bucket directly: curl's SigV4 signing, as scripts/s3-server.sh does

/// A tiny S3 client: enough to HEAD a key and list keys and uploads.
pub struct S3 {
    env: S3Env,
}

/// SHA-256 of the empty body: every request here has none.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Percent-encodes as SigV4 wants: unreserved characters stay, and `/` too
/// in a path.
fn s3_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl S3 {
    pub fn new(env: &S3Env) -> S3 {
        S3 { env: env.clone() }
    }

    /// One signed request; `query` pairs must be sorted by name (curl signs
    /// the query as given). Returns (status, body).
    async fn request(&self, method: &str, key: &str, query: &[(&str, &str)]) -> (u16, Vec<u8>) {
        let mut url = format!(
            "{}/{}",
            self.env.endpoint,
            s3_encode(&self.env.bucket, false)
        );
        if !key.is_empty() {
            url.push('/');
            url.push_str(&s3_encode(key, true));
        }
        if !query.is_empty() {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{}={}", s3_encode(k, false), s3_encode(v, false)))
                .collect();
            url.push('?');
            url.push_str(&q.join("&"));
        }
        let body_file = tempfile::NamedTempFile::new().expect("tempfile");
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "--max-time", "10", "-o"])
            .arg(body_file.path())
            .args(["-w", "%{http_code}"]);
        if method == "HEAD" {
            // curl waits for a body after `-X HEAD`; --head says there is none.
            cmd.arg("--head");
        } else {
            cmd.args(["-X", method]);
        }
        cmd.arg("--aws-sigv4")
            .arg(format!("aws:amz:{}:s3", self.env.region))
            .arg("--user")
            .arg(format!("{}:{}", self.env.access_key, self.env.secret_key))
            .arg("-H")
            .arg(format!("x-amz-content-sha256: {EMPTY_SHA256}"))
            .arg("--noproxy")
            .arg("*")
            .arg(&url)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(15), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("curl {method} {url} timed out"))
            .expect("run curl");
        let status: u16 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        (status, std::fs::read(body_file.path()).unwrap_or_default())
    }

    /// HEAD a key: its status (0: no answer).
    pub async fn head(&self, key: &str) -> u16 {
        self.request("HEAD", key, &[]).await.0
    }

    /// A key's `Last-Modified` header; `None` when it is absent.
    pub async fn last_modified(&self, key: &str) -> Option<String> {
        // With --head, curl writes the response headers where a body would go.
        let (status, headers) = self.request("HEAD", key, &[]).await;
        if status != 200 {
            return None;
        }
        String::from_utf8_lossy(&headers).lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("last-modified")
                .then(|| value.trim().to_owned())
        })
    }

    /// Every key under `prefix` (ListObjectsV2, bounded pages).
    pub async fn list(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..20 {
            let mut query = Vec::new();
            if let Some(t) = &token {
                query.push(("continuation-token", t.as_str()));
            }
            query.push(("list-type", "2"));
            query.push(("prefix", prefix));
            let (status, body) = self.request("GET", "", &query).await;
            let body = String::from_utf8_lossy(&body).into_owned();
            assert_eq!(status, 200, "ListObjectsV2 {prefix}: {body}");
            keys.extend(xml_values(&body, "Key"));
            token = xml_values(&body, "NextContinuationToken")
                .into_iter()
                .next();
            if token.is_none() {
                return keys;
            }
        }
        panic!("listing {prefix} took more than 20 pages");
    }

    /// Keys of unfinished multipart uploads under `prefix`.
    pub async fn uploads(&self, prefix: &str) -> Vec<String> {
        let (status, body) = self
            .request("GET", "", &[("prefix", prefix), ("uploads", "")])
            .await;
        let body = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "ListMultipartUploads {prefix}: {body}");
        xml_values(&body, "Key")
    }
}

/// The texts of every `<tag>...</tag>` in an XML document (S3 keys here are
/// plain ASCII without XML escapes).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j].to_string());
        rest = &after[j + close.len()..];
    }
    out
}

// ---------------------------------------------------------------------------
// The S3 test server itself (scripts/s3-server.sh)

fn s3_state_dir() -> PathBuf {
    std::env::var_os("SPARTA_S3_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/s3-server"))
}

fn run_script(args: &[&str]) -> Result<String, String> {
    let mut child = Command::new("bash")
        .arg(workspace_root().join("scripts/s3-server.sh"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run s3-server.sh: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("s3-server.sh {args:?} did not finish in 60s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "s3-server.sh {args:?} failed: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Stops the S3 server with `stop --keep`; the returned guard starts it
/// again when dropped (also when the test panics).
pub fn stop_s3_server(env: &S3Env) -> S3Restarter {
    // Only stop the server our endpoint points at, never someone else's.
    let port_file = s3_state_dir().join("port");
    let port = std::fs::read_to_string(&port_file).unwrap_or_default();
    assert_eq!(
        port.trim(),
        env.addr().port().to_string(),
        "the S3 server managed by scripts/s3-server.sh ({}) is not the one at {}; \
         set SPARTA_S3_STATE_DIR to its state dir",
        port_file.display(),
        env.endpoint
    );
    let guard = S3Restarter {
        endpoint: env.endpoint.clone(),
        done: false,
    };
    run_script(&["stop", "--keep"]).unwrap_or_else(|e| panic!("{e}"));
    guard
}

/// Restarts the S3 server on drop unless [`S3Restarter::start`] ran.
pub struct S3Restarter {
    endpoint: String,
    done: bool,
}

impl S3Restarter {
    /// Starts the server again (same port, same data).
    pub fn start(&mut self) {
        self.done = true;
        let env_file = run_script(&["start"]).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(env_file.trim()).unwrap_or_default();
        assert!(
            text.contains(&format!("SPARTA_TEST_S3_ENDPOINT={}\n", self.endpoint)),
            "the S3 server came back on another endpoint:\n{text}"
        );
    }
}

impl Drop for S3Restarter {
    fn drop(&mut self) {
        if !self.done
            && let Err(e) = run_script(&["start"])
        {
            eprintln!("could not restart the S3 server: {e}");
        }
    }
}

// ---------------------------------------------------------------------------
// A throttling TCP proxy: makes an upload to S3 slow enough to kill a
// replica in the middle of it, deterministically.

/// Forwards connections to `target`; client-to-server bytes are limited to
/// `rate` bytes per second (0 = unlimited). Stops when dropped.
pub struct Throttle {
    pub addr: SocketAddr,
    rate: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Throttle {
    pub async fn start(target: SocketAddr, rate: u64) -> Throttle {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind throttle");
        let addr = listener.local_addr().expect("throttle addr");
        let rate = Arc::new(AtomicU64::new(rate));
        let r = rate.clone();
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every
            // connection task too.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let rate = r.clone();
                conns.spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            let rate = rate.load(Ordering::Relaxed);
                            if rate > 0 {
                                let secs = n as f64 / rate as f64;
                                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                            }
                        }
                        let _ = sw.shutdown().await;
                    };
                    let down = async {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                        let _ = cw.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
                // Reap finished connections so the set stays small.
                while conns.try_join_next().is_some() {}
            }
        });
        Throttle { addr, rate, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the limit for every connection from now on.
    pub fn set_rate(&self, rate: u64) {
        self.rate.store(rate, Ordering::Relaxed);
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
