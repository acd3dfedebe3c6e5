//! The audit log: one JSON line per served module file (`.info`, `.mod`,
//! `.zip`) and per refused request, written by a thread of its own.
//!
//! Lines go through a bounded queue. When the sink is slower than the
//! requests, a request waits for room in the queue (backpressure) rather
//! than a line being dropped: an audit log with holes answers nobody's
//! question, and the wait is bounded by the sink's speed, the memory by the
//! queue's length.

use std::io::Write;
use std::path::{Path, PathBuf};

use prometheus::{IntCounter, IntGauge};
use tokio::sync::mpsc;

use crate::metrics::Metrics;

mod line;
mod record;
mod tier;

pub use line::Entry;
pub use record::{Record, Target, file_target};
pub use tier::{Tier, TierSlot, by_path, current_tier, note_tier, tier_label, with_tier};

/// Lines that may wait for the writer.
pub const QUEUE_LINES: usize = 8192;
/// How long the writer lets lines gather after writing a batch. The first
/// line after a quiet spell is written at once.
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

// A record lives in the queue's slot: boxing it would cost an allocation
// on every request (and a free on the writer thread).
#[allow(clippy::large_enum_variant)]
enum Msg {
    Record(Record),
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// The sending side; cheap to share.
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    lines: IntCounter,
    queued: IntGauge,
}

impl AuditLog {
    /// Opens the sink and starts its writer thread.
    pub fn open(sink: &AuditSink, metrics: &Metrics) -> std::io::Result<(AuditLog, AuditGuard)> {
        let writer: Box<dyn Write + Send> = match sink {
            AuditSink::Stderr => Box::new(LineWriter(std::io::stderr())),
            AuditSink::File(path) => Box::new(std::io::BufWriter::new(open_append(path)?)),
        };
        Ok(Self::start(writer, QUEUE_LINES, metrics))
    }

    /// Starts a writer thread over any sink, with a queue of `capacity` lines.
    pub fn start(
        mut writer: Box<dyn Write + Send>,
        capacity: usize,
        metrics: &Metrics,
    ) -> (AuditLog, AuditGuard) {
        let lines = IntCounter::new("sparta_audit_lines_total", "Audit lines written.")
            .expect("valid metric");
        let queued = IntGauge::new(
            "sparta_audit_queue_lines",
            "Audit lines waiting for the sink.",
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
        let (tx, mut rx) = mpsc::channel::<Msg>(capacity);
        let written = lines.clone();
        let depth = queued.clone();
        let thread = std::thread::Builder::new()
            .name("sparta-audit".into())
            .spawn(move || {
                // One buffer and one clock for every line.
                let mut line = String::with_capacity(512);
                let mut clock = sparta_core::civil::Clock::default();
                while let Some(msg) = rx.blocking_recv() {
                    let mut next = Some(msg);
                    // Write what is queued, then flush once.
                    while let Some(msg) = next.take() {
                        match msg {
                            Msg::Record(record) => {
                                depth.dec();
                                line.clear();
                                record.write_to(&mut line, &mut clock);
                                if writer.write_all(line.as_bytes()).is_err() {
                                    errors.inc();
                                } else {
                                    written.inc();
                                }
                            }
                            Msg::Flush(done) => {
                                if writer.flush().is_err() {
                                    errors.inc();
                                }
                                let _ = done.send(());
                            }
                        }
                        next = rx.try_recv().ok();
                    }
                    if writer.flush().is_err() {
                        errors.inc();
                    }
                    // Lines queued during the pause are written in one go
                    // next time; without it, under load every line would
                    // wake this thread (a futex wake on the request's path)
                    // and cost a write of its own. Bounded by the queue.
                    std::thread::sleep(BATCH_WAIT);
                }
            })
            .expect("spawn audit thread");
        let log = AuditLog { tx, lines, queued };
        let guard = AuditGuard {
            tx: log.tx.clone(),
            thread: Some(thread),
        };
        (log, guard)
    }

    /// Queues one line, waiting for room when the sink lags. The writer
    /// thread formats it.
    pub async fn record(&self, record: Record) {
        self.queued.inc();
        if self.tx.send(Msg::Record(record)).await.is_err() {
            self.queued.dec();
        }
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.lines.get()
    }
}

/// Held by the binary until exit: [`AuditGuard::finish`] writes what is
/// queued before the process ends.
pub struct AuditGuard {
    tx: mpsc::Sender<Msg>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AuditGuard {
    /// Waits (at most `limit`) until every line queued so far is written.
    /// Blocking: call it outside the async runtime or in `spawn_blocking`.
    pub fn finish(mut self, limit: std::time::Duration) {
        let deadline = std::time::Instant::now() + limit;
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        // Behind a full queue the flush waits for room, bounded.
        let mut msg = Msg::Flush(done_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    let _ = done_rx.recv_timeout(left);
                    break;
                }
                Err(mpsc::error::TrySendError::Full(m)) if std::time::Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(_) => break,
            }
        }
        self.thread.take();
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// stderr, one write per line so lines never interleave with the other logs.
struct LineWriter(std::io::Stderr);

impl Write for LineWriter {
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

    fn record(n: usize, path: String) -> Record {
        Record {
            time: SystemTime::now(),
            request_id: None,
            principal: Some(Principal::User("".into())),
            client: Some([127, 0, 0, 1].into()),
            method: axum::http::Method::GET,
            path,
            target: Target::None,
            status: 200,
            bytes: n as u64,
            tier: Some("memory"),
            decision: "allowed",
        }
    }
    use std::sync::Mutex;

    /// A sink that is slow and keeps what it got.
    struct Slow(Arc<Mutex<Vec<u8>>>);

    impl Write for Slow {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(std::time::Duration::from_micros(200));
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_into_a_slow_sink_loses_no_line() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let metrics = Metrics::new();
        let (log, guard) = AuditLog::start(Box::new(Slow(got.clone())), 16, &metrics);
        let log = Arc::new(log);
        let tasks: Vec<_> = (0..2000)
            .map(|n| {
                let log = log.clone();
                tokio::spawn(async move {
                    let path = format!("/example.com/m/@v/{n}.info");
                    log.record(record(n, path)).await;
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
}
