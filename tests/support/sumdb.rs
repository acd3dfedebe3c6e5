//! The fixture checksum database (`tests/sumdb-fixture`, Go): a signed tree
//! over the fixture upstream's go.sum lines, served on loopback.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

/// Builds the sumdb fixture once per test binary.
pub fn sumdb_fixture_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| crate::build_go_program("sumdb-fixture", &[]))
        .clone()
}

/// A running checksum database; killed on drop.
pub struct SumdbFixture {
    child: Child,
    _stdin: ChildStdin,
    /// `name+hash+key`.
    pub verifier_key: String,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl SumdbFixture {
    /// Starts a database over `sums_url` (e.g. the fixture's `/_fixture/sums`).
    pub fn start(name: &str, sums_url: &str) -> SumdbFixture {
        let mut child = Command::new(sumdb_fixture_bin())
            .args(["-name", name, "-sums", sums_url, "-exit-on-stdin-eof"])
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
            let Ok(line) = rx.recv_timeout(Duration::from_secs(120)) else {
                let _ = child.kill();
                panic!("sumdb fixture did not start within 120s");
            };
            if let Some(k) = line.strip_prefix("verifier key ") {
                key = Some(k.trim().to_owned());
            } else if let Some(a) = line.strip_prefix("listening on ") {
                addr = a.trim().parse::<SocketAddr>().ok();
            }
        }
        let addr = addr.expect("address");
        SumdbFixture {
            child,
            _stdin: stdin,
            verifier_key: key.expect("the sumdb fixture prints its verifier key"),
            addr,
            url: format!("http://{addr}"),
        }
    }

    /// Request counts by path (`/_sumdb/stats`).
    pub async fn stats(&self) -> std::collections::BTreeMap<String, u64> {
        crate::http_client()
            .get(format!("{}/_sumdb/stats", self.url))
            .send()
            .await
            .expect("sumdb stats")
            .json()
            .await
            .expect("sumdb stats json")
    }

    /// The `--sumdb` value for Sparta: this database, reached directly.
    pub fn sparta_flag(&self) -> String {
        format!("--sumdb={} {}", self.verifier_key, self.url)
    }
}

impl Drop for SumdbFixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
