//! The OTLP trace receiver of tests/otlp-receiver (Go, on the official
//! protobuf definitions): receives Sparta's span exports and, as a recording
//! reverse proxy in front of an upstream, the trace headers Sparta sends on.

use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Builds the receiver once per test binary.
pub fn receiver_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| crate::build_go_program("otlp-receiver", &[]))
        .clone()
}

/// A running receiver; stops on drop.
pub struct OtlpReceiver {
    child: Child,
    _stdin: ChildStdin,
    /// `http://127.0.0.1:PORT`: the OTLP endpoint, and the upstream URL.
    pub url: String,
    dir: TempDir,
}

impl OtlpReceiver {
    /// Starts a receiver that forwards other requests to `upstream`.
    pub fn start(upstream: &str) -> OtlpReceiver {
        let dir = TempDir::new().expect("tempdir");
        let addr_file = dir.path().join("addr");
        let mut child = Command::new(receiver_bin())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--addr-file")
            .arg(&addr_file)
            .arg("--out")
            .arg(dir.path().join("spans.jsonl"))
            .arg("--upstream")
            .arg(upstream)
            .arg("--requests")
            .arg(dir.path().join("requests.jsonl"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start otlp-receiver");
        let stdin = child.stdin.take().expect("stdin");
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file)
                && !a.is_empty()
            {
                break a;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("otlp-receiver exited: {status}");
            }
            assert!(Instant::now() < deadline, "otlp-receiver did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        OtlpReceiver {
            child,
            _stdin: stdin,
            url: format!("http://{}", addr.trim()),
            dir,
        }
    }

    fn lines(&self, file: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join(file))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("receiver line is JSON"))
            .collect()
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<serde_json::Value> {
        self.lines("spans.jsonl")
    }

    /// Every forwarded request so far (path, traceparent, tracestate).
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.lines("requests.jsonl")
    }

    /// Waits (bounded) until `done` holds for the spans of `trace_id`.
    pub async fn wait_trace(
        &self,
        trace_id: &str,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spans: Vec<_> = self
                .spans()
                .into_iter()
                .filter(|s| s["trace_id"] == trace_id)
                .collect();
            if done(&spans) || Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
