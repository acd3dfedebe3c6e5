//! A log writer for a busy server. Each event is appended to a shared
//! buffer under a short lock; one thread writes the buffer out. A log line
//! therefore costs neither an allocation nor, under load, a thread wake-up:
//! the writer thread wakes when the buffer stops being empty, writes at most
//! once per batch window, and sleeps while nothing is logged.
//!
//! A logger never waits on the output: past [`MAX_PENDING`] bytes pending
//! (stderr is slow or blocked), a line is dropped and counted
//! (`sparta_log_lines_dropped_total`), and the writer reports the count in a
//! line of its own ("dropped N log lines") with the next batch it writes, so
//! no line goes missing silently and no runtime worker ever blocks here.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use tracing_subscriber::fmt::MakeWriter;

/// The process's dropped-lines counter, registered with the metrics once
/// they exist.
pub static DROPPED: OnceLock<IntCounter> = OnceLock::new();

/// A new, unregistered `sparta_log_lines_dropped_total`.
pub fn dropped_counter() -> IntCounter {
    IntCounter::new(
        "sparta_log_lines_dropped_total",
        "Log lines dropped because the log output was too slow.",
    )
    .expect("valid metric")
}

/// The shortest time between two writes: lines logged meanwhile gather
/// into one batch.
const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// Past this many pending bytes, lines are dropped (and counted) rather than
/// waiting for the writer: memory stays bounded when the output is slow.
const MAX_PENDING: usize = 4 * 1024 * 1024;

struct Pending {
    buf: Vec<u8>,
    closed: bool,
    /// Lines dropped since the writer last reported them.
    dropped: u64,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when the buffer stops being empty, or on close.
    has_lines: Condvar,
    dropped: IntCounter,
    json: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves only bytes behind: go on.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `MakeWriter` handed to tracing-subscriber.
#[derive(Clone)]
pub struct BatchedWriter {
    shared: Arc<Shared>,
}

/// Writes what is pending and stops the writer thread when dropped.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread over `out`; `json` picks the form of the
/// dropped-lines report, `dropped` counts dropped lines.
pub fn batched<W: Write + Send + 'static>(
    out: W,
    json: bool,
    dropped: IntCounter,
) -> (BatchedWriter, FlushGuard) {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending {
            buf: Vec::with_capacity(64 * 1024),
            closed: false,
            dropped: 0,
        }),
        has_lines: Condvar::new(),
        dropped,
        json,
    });
    let for_thread = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("sparta-log".into())
        .spawn(move || write_batches(&for_thread, out))
        .expect("spawn the log writer thread");
    (
        BatchedWriter {
            shared: Arc::clone(&shared),
        },
        FlushGuard {
            shared,
            thread: Some(thread),
        },
    )
}

fn write_batches<W: Write>(shared: &Shared, mut out: W) {
    let mut spare = Vec::with_capacity(64 * 1024);
    let mut last_write: Option<Instant> = None;
    loop {
        let mut pending = shared.lock();
        while pending.buf.is_empty() && !pending.closed {
            pending = shared
                .has_lines
                .wait(pending)
                .unwrap_or_else(|e| e.into_inner());
        }
        // A line after a quiet spell is written at once; under a stream of
        // lines, writes come at most once per window and carry a batch.
        let since = last_write.map_or(BATCH_WINDOW, |t| t.elapsed());
        if !pending.closed && since < BATCH_WINDOW {
            drop(pending);
            std::thread::sleep(BATCH_WINDOW - since);
            pending = shared.lock();
        }
        let closed = pending.closed;
        let dropped = std::mem::take(&mut pending.dropped);
        std::mem::swap(&mut pending.buf, &mut spare);
        drop(pending);
        if dropped > 0 {
            spare.extend_from_slice(dropped_line(dropped, shared.json).as_bytes());
        }
        // Nowhere to report a failed log write: drop the batch and go on.
        let _ = out.write_all(&spare).and_then(|()| out.flush());
        last_write = Some(Instant::now());
        spare.clear();
        if closed {
            return;
        }
    }
}

/// The line that reports `n` dropped lines.
fn dropped_line(n: u64, json: bool) -> String {
    if json {
        format!(
            "{{\"level\":\"WARN\",\"message\":\"dropped {n} log lines: log output too slow\",\"dropped\":{n},\"target\":\"sparta::logsink\"}}\n"
        )
    } else {
        format!(" WARN sparta::logsink: dropped {n} log lines: log output too slow dropped={n}\n")
    }
}

impl<'a> MakeWriter<'a> for BatchedWriter {
    type Writer = BatchedWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Write for BatchedWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut pending = self.shared.lock();
        if pending.buf.len() >= MAX_PENDING && !pending.closed {
            // Never wait here: the caller may be a runtime worker.
            pending.dropped += 1;
            drop(pending);
            self.shared.dropped.inc();
            return Ok(line.len());
        }
        let was_empty = pending.buf.is_empty();
        pending.buf.extend_from_slice(line);
        drop(pending);
        if was_empty {
            self.shared.has_lines.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.has_lines.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that keeps what was written, for inspection.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_whole_and_in_order_per_thread() {
        let sink = Sink::default();
        let (writer, guard) = batched(sink.clone(), false, dropped_counter());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        w.write_all(format!("thread={t} line={i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let mut next = [0usize; 4];
        let mut lines = 0;
        for line in text.lines() {
            let (t, i) = line
                .strip_prefix("thread=")
                .and_then(|rest| rest.split_once(" line="))
                .unwrap_or_else(|| panic!("torn line {line:?}"));
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "thread {t} out of order");
            next[t] += 1;
            lines += 1;
        }
        assert_eq!(lines, 20000);
    }

    #[test]
    fn lines_are_written_without_a_flush_and_the_guard_writes_the_rest() {
        let sink = Sink::default();
        let (mut writer, guard) = batched(sink.clone(), false, dropped_counter());
        writer.write_all(b"first\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "line never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        writer.write_all(b"last\n").unwrap();
        drop(guard);
        assert_eq!(sink.0.lock().unwrap().as_slice(), b"first\nlast\n");
    }

    #[test]
    fn a_blocked_output_never_blocks_loggers_and_drops_are_counted_and_reported() {
        /// Blocks every write until the gate opens.
        #[derive(Clone)]
        struct Gated(Arc<(Mutex<bool>, Condvar)>, Sink);
        impl Write for Gated {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                let (open, cv) = &*self.0;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
                self.1.write(b)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let sink = Sink::default();
        let counter = dropped_counter();
        let (writer, guard) = batched(
            Gated(Arc::clone(&gate), sink.clone()),
            false,
            counter.clone(),
        );
        const LINES: usize = 3 * MAX_PENDING / 1024;
        // Log three buffers' worth while the output is blocked; the logging
        // thread must finish on its own (a blocked logger would never send).
        let (done, finished) = std::sync::mpsc::channel();
        let mut w = writer.clone();
        std::thread::spawn(move || {
            let mut line = vec![b'x'; 1023];
            line.push(b'\n');
            for _ in 0..LINES {
                w.write_all(&line).unwrap();
            }
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(Duration::from_secs(120))
            .expect("a logger blocked on a blocked output");
        let dropped = counter.get();
        assert!(dropped > 0, "nothing dropped with the output blocked");
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let written = text.lines().filter(|l| l.starts_with('x')).count() as u64;
        assert_eq!(
            written + dropped,
            LINES as u64,
            "lines lost without being counted"
        );
        // Reported in one or more lines (one per batch that saw drops).
        let reported: u64 = text
            .lines()
            .filter_map(|l| l.split("dropped ").nth(1))
            .filter_map(|rest| rest.split(' ').next()?.parse::<u64>().ok())
            .sum();
        assert_eq!(
            reported,
            dropped,
            "dropped lines not all reported:\n{}",
            text.lines()
                .filter(|l| !l.starts_with('x'))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
