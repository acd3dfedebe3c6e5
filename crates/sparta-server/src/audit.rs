//! The audit log: one JSON line per served module file (`.info`, `.mod`,
//! `.zip`) and per refused request.
//!
//! A request writes its line into a buffer of its own thread (no
//! allocation, no queue shared with other threads); a thread of the log's
//! own takes the buffers' text every few milliseconds and writes it to the
//! sink. When the sink is slower than the requests and a thread's buffer is
//! full, the request waits for room (backpressure) rather than a line being
//! dropped: an audit log with holes answers nobody's question, and the wait
//! is bounded by the sink's speed, the memory by the buffers' size.

use std::io::Write;
use std::path::{Path, PathBuf};

use prometheus::{IntCounter, IntGauge};

use crate::metrics::Metrics;

mod buffers;
mod line;
mod record;
mod tier;

use buffers::Buffers;
pub use line::Entry;
pub use record::{Record, Target, file_target};
pub use tier::{Tier, TierSlot, note_tier};

/// Bytes of lines one thread may have waiting for the writer (some 1,500
/// lines); a request finding its thread's buffer this full waits.
pub const BUFFER_BYTES: usize = 256 * 1024;
/// How long the writer lets lines gather after writing a batch. The first
/// line after a quiet spell wakes it at once.
const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(2);

/// Where audit lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSink {
    Stderr,
    File(PathBuf),
}

impl AuditSink {
    /// `stderr`, `off` (None) or a file path.
    pub fn parse(s: &str) -> Option<AuditSink> {
        match s {
            "" | "off" => None,
            "stderr" | "-" => Some(AuditSink::Stderr),
            path => Some(AuditSink::File(PathBuf::from(path))),
        }
    }
}

/// The request side; cheap to share.
pub struct AuditLog {
    buffers: std::sync::Arc<Buffers>,
    lines: IntCounter,
}

impl AuditLog {
    /// Opens the sink and starts its writer thread.
    pub fn open(sink: &AuditSink, metrics: &Metrics) -> std::io::Result<(AuditLog, AuditGuard)> {
        let writer: Box<dyn Write + Send> = match sink {
            AuditSink::Stderr => Box::new(LockedStderr(std::io::stderr())),
            AuditSink::File(path) => Box::new(open_append(path)?),
        };
        Ok(Self::start(writer, BUFFER_BYTES, metrics))
    }

    /// Starts a writer thread over any sink, each thread's buffer holding
    /// up to `capacity` bytes of lines.
    pub fn start(
        mut writer: Box<dyn Write + Send>,
        capacity: usize,
        metrics: &Metrics,
    ) -> (AuditLog, AuditGuard) {
        let lines = IntCounter::new("sparta_audit_lines_total", "Audit lines written.")
            .expect("valid metric");
        let queued = IntGauge::new(
            "sparta_audit_queue_lines",
            "Audit lines the writer found waiting for the sink on its last round.",
        )
        .expect("valid metric");
        let errors = IntCounter::new(
            "sparta_audit_write_errors_total",
            "Writes to the audit sink that failed.",
        )
        .expect("valid metric");
        // A second registration (tests build several logs) is harmless.
        for c in [lines.clone(), errors.clone()] {
            let _ = metrics.registry().register(Box::new(c));
        }
        let _ = metrics.registry().register(Box::new(queued.clone()));
        let buffers = Buffers::new(capacity);
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        let written = lines.clone();
        let shared = buffers.clone();
        let thread = std::thread::Builder::new()
            .name("sparta-audit".into())
            .spawn(move || {
                let mut batch = String::with_capacity(capacity);
                loop {
                    let stopping = shared.stopping();
                    let mut found = 0;
                    shared.take_each(&mut batch, |text, n| {
                        found += n;
                        if writer.write_all(text).is_err() {
                            errors.inc();
                        } else {
                            written.inc_by(n);
                        }
                    });
                    if found > 0 && writer.flush().is_err() {
                        errors.inc();
                    }
                    queued.set(found as i64);
                    shared.room_made();
                    if stopping {
                        let _ = done_tx.send(());
                        return;
                    }
                    if found == 0 {
                        shared.idle();
                    } else {
                        // Lines written meanwhile go out in one write next
                        // round; without the pause, under load every line
                        // would wake this thread and cost a write of its own.
                        std::thread::sleep(BATCH_WAIT);
                    }
                }
            })
            .expect("spawn audit thread");
        buffers.set_writer(thread.thread().clone());
        let guard = AuditGuard {
            buffers: buffers.clone(),
            done: done_rx,
            thread: Some(thread),
        };
        (AuditLog { buffers, lines }, guard)
    }

    /// Writes one line into this thread's buffer if it has room; gives the
    /// record back if not (then [`AuditLog::record`] waits for room).
    pub fn record_now<'a>(&self, record: Record<'a>) -> Option<Record<'a>> {
        let written = self
            .buffers
            .push_now(|out, clock| record.write_to(out, clock))
            .is_none();
        (!written).then_some(record)
    }

    /// Writes one line into this thread's buffer, waiting for room when
    /// the sink lags.
    pub async fn record(&self, record: Record<'_>) {
        self.buffers
            .push(|out, clock| record.write_to(out, clock))
            .await;
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.lines.get()
    }
}

/// Held by the binary until exit: [`AuditGuard::finish`] writes what is
/// buffered before the process ends.
pub struct AuditGuard {
    buffers: std::sync::Arc<Buffers>,
    done: std::sync::mpsc::Receiver<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AuditGuard {
    /// Waits (at most `limit`) until every line written so far is out.
    /// Blocking: call it outside the async runtime or in `spawn_blocking`.
    pub fn finish(mut self, limit: std::time::Duration) {
        self.buffers.stop();
        if self.done.recv_timeout(limit).is_ok()
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// stderr, each batch written under its lock so that lines never
/// interleave with the other logs (which write whole lines under it too).
struct LockedStderr(std::io::Stderr);

impl Write for LockedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparta_access::Principal;
    use std::sync::Arc;
    use std::time::SystemTime;

    static NOBODY: std::sync::LazyLock<Principal> =
        std::sync::LazyLock::new(|| Principal::User("".into()));

    fn record(n: usize, path: &str) -> Record<'_> {
        Record {
            time: SystemTime::now(),
            request_id: None,
            principal: Some(&NOBODY),
            client: Some([127, 0, 0, 1].into()),
            method: &axum::http::Method::GET,
            path,
            target: Target::None,
            status: 200,
            bytes: n as u64,
            tier: Some("memory"),
            decision: "allowed",
        }
    }
    use std::sync::Mutex;

    /// A sink that keeps what it got, after `delay` per write.
    struct Kept(Arc<Mutex<Vec<u8>>>, std::time::Duration);

    impl Write for Kept {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(self.1);
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A log over a [`Kept`] sink, with what it got.
    fn started(
        delay: std::time::Duration,
        capacity: usize,
    ) -> (Arc<Mutex<Vec<u8>>>, AuditLog, AuditGuard) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let (log, guard) = AuditLog::start(
            Box::new(Kept(got.clone(), delay)),
            capacity,
            &Metrics::new(),
        );
        (got, log, guard)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_into_a_slow_sink_loses_no_line() {
        // Room for a few lines per thread: most requests wait.
        let (got, log, guard) = started(std::time::Duration::from_micros(200), 512);
        let log = Arc::new(log);
        let tasks: Vec<_> = (0..2000)
            .map(|n| {
                let log = log.clone();
                tokio::spawn(async move {
                    let path = format!("/example.com/m/@v/{n}.info");
                    log.record(record(n, &path)).await;
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        tokio::task::spawn_blocking(move || guard.finish(std::time::Duration::from_secs(60)))
            .await
            .unwrap();
        let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        let mut seen: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["bytes"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..2000).collect::<Vec<u64>>());
        assert_eq!(log.written(), 2000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_line_after_a_quiet_spell_wakes_the_writer() {
        let (got, log, _guard) = started(std::time::Duration::ZERO, 4096);
        for n in 1..=20u64 {
            // Long enough for the writer to find nothing and park.
            tokio::time::sleep(std::time::Duration::from_millis(if n % 2 == 0 {
                10
            } else {
                0
            }))
            .await;
            log.record(record(n as usize, "/m/@v/v1.0.0.info")).await;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while log.written() < n {
                assert!(
                    std::time::Instant::now() < deadline,
                    "line {n} never written"
                );
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        assert_eq!(
            String::from_utf8(got.lock().unwrap().clone())
                .unwrap()
                .lines()
                .count(),
            20
        );
    }

    #[test]
    fn lines_of_a_thread_that_ended_are_written() {
        let (got, log, guard) = started(std::time::Duration::ZERO, 4096);
        let log = Arc::new(log);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    for n in 0..50 {
                        rt.block_on(log.record(record(t * 100 + n, "/m/@v/v1.0.0.mod")));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        guard.finish(std::time::Duration::from_secs(30));
        assert_eq!(log.written(), 200);
        let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 200);
        assert!(
            text.lines()
                .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        );
    }
}
