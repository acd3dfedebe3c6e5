//! A log writer for a busy server. Each event is appended to a shared
//! buffer under a short lock; one thread writes the buffer out. A log line
//! therefore costs neither an allocation nor, under load, a thread wake-up:
//! the writer thread wakes when the buffer stops being empty, writes at most
//! once per batch window, and sleeps while nothing is logged.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// The shortest time between two writes: lines logged meanwhile gather
/// into one batch.
const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// Past this many pending bytes, loggers wait for the writer (no line is
/// ever dropped, and memory stays bounded when the output is slow).
const MAX_PENDING: usize = 4 * 1024 * 1024;

struct Pending {
    buf: Vec<u8>,
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when the buffer stops being empty, or on close.
    has_lines: Condvar,
    /// Signalled when the writer has taken the buffer.
    drained: Condvar,
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

/// Starts the writer thread over `out`.
pub fn batched<W: Write + Send + 'static>(out: W) -> (BatchedWriter, FlushGuard) {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending {
            buf: Vec::with_capacity(64 * 1024),
            closed: false,
        }),
        has_lines: Condvar::new(),
        drained: Condvar::new(),
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
        std::mem::swap(&mut pending.buf, &mut spare);
        drop(pending);
        shared.drained.notify_all();
        // Nowhere to report a failed log write: drop the batch and go on.
        let _ = out.write_all(&spare).and_then(|()| out.flush());
        last_write = Some(Instant::now());
        spare.clear();
        if closed {
            return;
        }
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
        while pending.buf.len() >= MAX_PENDING && !pending.closed {
            pending = self
                .shared
                .drained
                .wait(pending)
                .unwrap_or_else(|e| e.into_inner());
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
        self.shared.drained.notify_all();
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
        let (writer, guard) = batched(sink.clone());
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
        let (mut writer, guard) = batched(sink.clone());
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
    fn a_slow_output_holds_loggers_back_instead_of_growing() {
        /// Writes slowly and records the largest batch it was handed.
        #[derive(Clone, Default)]
        struct Slow(Arc<Mutex<(usize, usize)>>);
        impl Write for Slow {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                std::thread::sleep(Duration::from_millis(2));
                let mut s = self.0.lock().unwrap();
                s.0 = s.0.max(b.len());
                s.1 += b.len();
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let slow = Slow::default();
        let (mut writer, guard) = batched(slow.clone());
        let line = vec![b'x'; 1023];
        for _ in 0..(3 * MAX_PENDING / 1024) {
            writer.write_all(&line).unwrap();
            writer.write_all(b"\n").unwrap();
        }
        drop(guard);
        let (largest, total) = *slow.0.lock().unwrap();
        assert_eq!(total, 3 * MAX_PENDING);
        assert!(largest <= MAX_PENDING + 1024, "a batch of {largest} bytes");
    }
}
