//! The checksum-database fixture (`tests/sumdb-fixture`, Go): a signed tree
//! over a fixture upstream's go.sum lines, serving the sumdb protocol and
//! counting requests.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use crate::{go_exe, http_client, target_dir, wait_bounded, workspace_root};

/// Builds the sumdb fixture once per test binary and returns its path.
pub fn sumdb_fixture_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out_dir = target_dir().join("sparta-e2e");
        std::fs::create_dir_all(&out_dir).expect("create target/sparta-e2e");
        let bin = out_dir.join("sumdb-fixture");
        let tmp = out_dir.join(format!("sumdb-fixture.{}.tmp", std::process::id()));
        let mut child = Command::new(go_exe())
            .args(["build", "-o"])
            .arg(&tmp)
            .arg(".")
            .current_dir(workspace_root().join("tests/sumdb-fixture"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the go command must be on PATH to build the sumdb fixture");
        let mut stderr = child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let status = wait_bounded(
            &mut child,
            Duration::from_secs(300),
            "go build (sumdb fixture)",
        );
        let err = reader.join().unwrap_or_default();
        assert!(
            status.success(),
            "building the sumdb fixture failed:\n{err}"
        );
        std::fs::rename(&tmp, &bin).expect("rename sumdb fixture binary");
        bin
    })
    .clone()
}

/// A running checksum database; killed on drop.
pub struct SumdbFixture {
    child: Mutex<Child>,
    _stdin: ChildStdin,
    /// `name+hash+key`, what GOSUMDB and `--sumdb` take.
    pub verifier_key: String,
    /// `http://127.0.0.1:PORT`: the database's own URL.
    pub url: String,
}

impl SumdbFixture {
    /// Starts a database over the go.sum lines at `sums` (a file or an
    /// http:// URL such as `<fixture>/_fixture/sums`).
    pub fn start(sums: &str) -> SumdbFixture {
        let mut child = Command::new(sumdb_fixture_bin())
            .args([
                "-listen",
                "127.0.0.1:0",
                "-exit-on-stdin-eof",
                "-sums",
                sums,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sumdb fixture");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let (mut key, mut addr) = (None, None);
        while addr.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(120))
                .expect("sumdb fixture did not print its address within 120s");
            if let Some(k) = line.strip_prefix("verifier key ") {
                key = Some(k.trim().to_owned());
            } else if let Some(a) = line.strip_prefix("listening on ") {
                addr = Some(a.trim().to_owned());
            }
        }
        SumdbFixture {
            child: Mutex::new(child),
            _stdin: stdin,
            verifier_key: key.expect("sumdb fixture printed no verifier key"),
            url: format!("http://{}", addr.expect("address")),
        }
    }

    /// `--sumdb` value naming this database at its own URL.
    pub fn sparta_flag(&self) -> String {
        format!("--sumdb={} {}", self.verifier_key, self.url)
    }

    /// Request counts by path.
    pub async fn stats(&self) -> BTreeMap<String, u64> {
        let resp = http_client()
            .get(format!("{}/_sumdb/stats", self.url))
            .send()
            .await
            .expect("sumdb stats");
        resp.json().await.expect("sumdb stats json")
    }

    /// Stops the database: nothing answers at its address afterwards.
    pub fn stop(&self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SumdbFixture {
    fn drop(&mut self) {
        self.stop();
    }
}
