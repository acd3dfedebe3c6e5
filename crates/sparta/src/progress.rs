//! Progress of a long command (`warm`, `export`, `import`, `verify`): a bar
//! redrawn in place when stderr is a terminal, plain periodic lines otherwise
//! (CI logs, `kubectl logs`), and a summary at the end.
//!
//! Counting is lock-free so workers can report from any task; one printer
//! thread does the drawing, so a slow terminal never blocks a worker.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytesize::ByteSize;

/// How often the bar is redrawn on a terminal.
const TERMINAL_EVERY: Duration = Duration::from_millis(200);
/// How often a plain line is written otherwise.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// A running progress report. Cheap to clone; all clones count into one report.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    label: String,
    total: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    bytes: AtomicU64,
    started: Instant,
    failures: Mutex<Vec<(String, String)>>,
    stop: AtomicBool,
    printer: Mutex<Option<JoinHandle<()>>>,
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub label: String,
    pub total: u64,
    pub done: u64,
    pub skipped: u64,
    pub failed: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// (item, reason) for each failure, in the order they happened.
    pub failures: Vec<(String, String)>,
}

/// Where and how progress is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A bar redrawn in place (stderr is a terminal).
    Bar,
    /// A line every few seconds.
    Lines,
    /// Nothing until the summary (tests, `--quiet`).
    Quiet,
}

impl Progress {
    /// Starts a report for `total` items (0 if not known yet; see [`Progress::add_total`]),
    /// drawn on stderr in the style that suits it.
    pub fn new(label: &str, total: u64) -> Progress {
        let style = if std::io::stderr().is_terminal() {
            Style::Bar
        } else {
            Style::Lines
        };
        Progress::with_style(label, total, style)
    }

    /// Starts a report drawn in the given style.
    pub fn with_style(label: &str, total: u64, style: Style) -> Progress {
        let inner = Arc::new(Inner {
            label: label.to_string(),
            total: AtomicU64::new(total),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            started: Instant::now(),
            failures: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            printer: Mutex::new(None),
        });
        let every = match style {
            Style::Bar => Some(TERMINAL_EVERY),
            Style::Lines => Some(PLAIN_EVERY),
            Style::Quiet => None,
        };
        if let Some(every) = every {
            let printer_inner = inner.clone();
            let handle = std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || printer_inner.print_until_stopped(every, style))
                .ok();
            *inner.printer.lock().unwrap_or_else(|e| e.into_inner()) = handle;
        }
        Progress { inner }
    }

    /// Adds items to the total (inputs discovered while running).
    pub fn add_total(&self, items: u64) {
        self.inner.total.fetch_add(items, Ordering::Relaxed);
    }

    /// One item done, having moved `bytes`.
    pub fn item_done(&self, bytes: u64) {
        self.inner.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.inner.done.fetch_add(1, Ordering::Relaxed);
    }

    /// One item needed no work (already stored, identical).
    pub fn item_skipped(&self) {
        self.inner.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// One item failed; `name` and `reason` are kept for the summary.
    pub fn item_failed(&self, name: &str, reason: &str) {
        self.inner.failed.fetch_add(1, Ordering::Relaxed);
        self.inner
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.to_string(), reason.to_string()));
    }

    /// Stops drawing and returns what happened.
    pub fn finish(&self) -> Summary {
        self.inner.stop.store(true, Ordering::Relaxed);
        let handle = self
            .inner
            .printer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        self.inner.summary()
    }
}

impl Inner {
    fn summary(&self) -> Summary {
        Summary {
            label: self.label.clone(),
            total: self.total.load(Ordering::Relaxed),
            done: self.done.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            elapsed: self.started.elapsed(),
            failures: self
                .failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    fn print_until_stopped(&self, every: Duration, style: Style) {
        let tick = Duration::from_millis(50).min(every);
        let mut last = Instant::now();
        let mut stderr = std::io::stderr();
        loop {
            std::thread::sleep(tick);
            let stopping = self.stop.load(Ordering::Relaxed);
            if last.elapsed() >= every || stopping {
                last = Instant::now();
                let line = self.summary().status_line();
                let _ = match style {
                    Style::Bar => write!(stderr, "\r\x1b[2K{}", bar_line(&self.summary(), &line)),
                    _ => writeln!(stderr, "{line}"),
                };
                let _ = stderr.flush();
            }
            if stopping {
                if style == Style::Bar {
                    let _ = writeln!(stderr);
                }
                return;
            }
        }
    }
}

impl Summary {
    /// Items finished so far: done, skipped or failed.
    pub fn finished(&self) -> u64 {
        self.done + self.skipped + self.failed
    }

    /// `warm: 12/60 done, 1 skipped, 0 failed, 3.1 MiB, 1.2 MiB/s, eta 40s`.
    pub fn status_line(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(0.001);
        let mut line = format!(
            "{}: {}/{} done, {} skipped, {} failed, {}, {}/s",
            self.label,
            self.done,
            self.total,
            self.skipped,
            self.failed,
            ByteSize(self.bytes).display().iec(),
            ByteSize((self.bytes as f64 / secs) as u64).display().iec(),
        );
        let finished = self.finished();
        if finished > 0 && self.total > finished {
            let left = (self.total - finished) as f64 * secs / finished as f64;
            let _ = write!(line, ", eta {}s", left.ceil() as u64);
        }
        line
    }

    /// The closing report: the status line, the time taken, then each failure on its own line.
    pub fn report(&self) -> String {
        let mut out = format!(
            "{} in {:.1}s",
            self.status_line(),
            self.elapsed.as_secs_f64()
        );
        for (item, reason) in &self.failures {
            let _ = write!(out, "\n  failed: {item}: {reason}");
        }
        out
    }
}

fn bar_line(summary: &Summary, status: &str) -> String {
    const WIDTH: u64 = 24;
    let filled = (summary.finished() * WIDTH)
        .checked_div(summary.total)
        .unwrap_or(0)
        .min(WIDTH);
    format!(
        "[{}{}] {status}",
        "#".repeat(filled as usize),
        "-".repeat((WIDTH - filled) as usize)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up() {
        let progress = Progress::with_style("warm", 0, Style::Quiet);
        progress.add_total(400);
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let p = progress.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        match i % 10 {
                            0 => p.item_failed("m@v1.0.0", "upstream unavailable"),
                            1 => p.item_skipped(),
                            _ => p.item_done(10),
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let s = progress.finish();
        assert_eq!((s.total, s.done, s.skipped, s.failed), (400, 320, 40, 40));
        assert_eq!(s.bytes, 3200);
        assert_eq!(s.failures.len(), 40);
        assert!(
            s.report()
                .contains("failed: m@v1.0.0: upstream unavailable")
        );
    }

    #[test]
    fn status_line_has_rate_and_eta_while_running() {
        let s = Summary {
            label: "import".into(),
            total: 10,
            done: 5,
            skipped: 0,
            failed: 0,
            bytes: 10 * 1024 * 1024,
            elapsed: Duration::from_secs(10),
            failures: vec![],
        };
        let line = s.status_line();
        assert!(line.starts_with("import: 5/10 done"), "{line}");
        assert!(line.contains("1.0 MiB/s"), "{line}");
        assert!(line.ends_with("eta 10s"), "{line}");
        assert_eq!(
            bar_line(&s, "x"),
            format!("[{}{}] x", "#".repeat(12), "-".repeat(12))
        );
    }

    #[test]
    fn plain_lines_end_when_finished() {
        let progress = Progress::with_style("verify", 1, Style::Lines);
        progress.item_done(1);
        let s = progress.finish();
        assert_eq!(s.finished(), 1);
        assert!(progress.inner.printer.lock().unwrap().is_none());
    }
}
