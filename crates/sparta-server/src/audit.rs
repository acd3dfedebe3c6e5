//! The audit log: one JSON line per served module file (`.info`, `.mod`,
//! `.zip`) and per refused request, written by a thread of its own.
//!
//! Lines go through a bounded queue. When the sink is slower than the
//! requests, a request waits for room in the queue (backpressure) rather
//! than a line being dropped: an audit log with holes answers nobody's
//! question, and the wait is bounded by the sink's speed, the memory by the
//! queue's length.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{IntCounter, IntGauge};
use sparta_access::Principal;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

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

enum Msg {
    Line(String),
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// The sending side; cheap to share.
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    lines: IntCounter,
    queued: IntGauge,
}

/// One audit record, written as one JSON object per line.
#[derive(Debug)]
pub struct Entry<'a> {
    pub time: SystemTime,
    pub request_id: Option<&'a str>,
    /// `user:NAME`, `token:NAME`, or absent when authentication is off or failed.
    pub principal: Option<&'a Principal>,
    pub client: Option<IpAddr>,
    pub method: &'a str,
    pub path: &'a str,
    pub module: Option<&'a str>,
    pub version: Option<&'a str>,
    pub file: Option<&'a str>,
    pub status: u16,
    pub bytes: u64,
    /// memory, storage, upstream, or joined (waited on another request's fetch).
    pub tier: Option<&'static str>,
    /// allowed, or why the request was refused.
    pub decision: &'static str,
}

impl Entry<'_> {
    /// The JSON line, newline included. Written by hand: it is on every
    /// audited request's path, and the fields are few and fixed.
    pub fn line(&self) -> String {
        // Room for the fixed fields and the path twice (module and version
        // repeat it), so one allocation holds the line.
        let mut out = String::with_capacity(256 + self.path.len() * 2);
        out.push_str("{\"time\":\"");
        push_rfc3339(&mut out, self.time);
        out.push('"');
        if let Some(id) = self.request_id {
            out.push_str(",\"request_id\":");
            push_json_str(&mut out, id);
        }
        if let Some(p) = self.principal {
            let (kind, name) = match p {
                Principal::User(n) => ("user:", n),
                Principal::Token(n) => ("token:", n),
            };
            out.push_str(",\"principal\":\"");
            out.push_str(kind);
            push_json_str_body(&mut out, name);
            out.push('"');
        }
        if let Some(c) = self.client {
            out.push_str(",\"client\":\"");
            push_ip(&mut out, c);
            out.push('"');
        }
        out.push_str(",\"method\":");
        push_json_str(&mut out, self.method);
        out.push_str(",\"path\":");
        push_json_str(&mut out, self.path);
        for (key, value) in [
            (",\"module\":", self.module),
            (",\"version\":", self.version),
            (",\"file\":", self.file),
        ] {
            if let Some(v) = value {
                out.push_str(key);
                push_json_str(&mut out, v);
            }
        }
        out.push_str(",\"status\":");
        push_u64(&mut out, u64::from(self.status));
        out.push_str(",\"bytes\":");
        push_u64(&mut out, self.bytes);
        if let Some(t) = self.tier {
            out.push_str(",\"tier\":");
            push_json_str(&mut out, t);
        }
        out.push_str(",\"decision\":");
        push_json_str(&mut out, self.decision);
        out.push_str("}\n");
        out
    }
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    push_json_str_body(out, s);
    out.push('"');
}

/// `s` escaped as JSON string content: quotes, backslashes and control
/// characters; the rest (UTF-8 included) as it is, in runs.
fn push_json_str_body(out: &mut String, s: &str) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

fn push_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).expect("digits"));
}

/// `n` as `width` digits, zero-padded.
fn push_padded(out: &mut String, n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut n = n;
    for b in buf[..width].iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.push_str(std::str::from_utf8(&buf[..width]).expect("digits"));
}

fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_u64(out, u64::from(o));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
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
                while let Some(msg) = rx.blocking_recv() {
                    let mut next = Some(msg);
                    // Write what is queued, then flush once.
                    while let Some(msg) = next.take() {
                        match msg {
                            Msg::Line(line) => {
                                depth.dec();
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

    /// Queues one line, waiting for room when the sink lags.
    pub async fn record(&self, entry: &Entry<'_>) {
        let line = entry.line();
        self.queued.inc();
        if self.tx.send(Msg::Line(line)).await.is_err() {
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

/// Where a served file came from, noted by the service as it finds out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tier {
    Unknown = 0,
    Memory = 1,
    Storage = 2,
    Upstream = 3,
    /// The local disk tier for zips.
    Disk = 4,
    /// Memory, found under the request's own path before it was parsed:
    /// the path is then a version file's storage key, its canonical form.
    MemoryByPath = 5,
}

impl Tier {
    fn label(v: u8) -> &'static str {
        match v {
            1 | 5 => "memory",
            2 => "storage",
            3 => "upstream",
            4 => "disk",
            _ => "joined",
        }
    }
}

/// The tier slot of one request.
pub type TierSlot = Arc<AtomicU8>;

tokio::task_local! {
    static TIER: TierSlot;
}

/// Notes the tier of the current request, if it is being audited.
pub fn note_tier(tier: Tier) {
    let _ = TIER.try_with(|t| t.store(tier as u8, Ordering::Relaxed));
}

/// The current request's slot, to carry into a spawned fetch.
pub fn current_tier() -> Option<TierSlot> {
    TIER.try_with(Arc::clone).ok()
}

/// Runs `fut` with `slot` as its tier slot (no slot: unaudited).
pub async fn with_tier<F: std::future::Future>(slot: Option<TierSlot>, fut: F) -> F::Output {
    match slot {
        Some(slot) => TIER.scope(slot, fut).await,
        None => fut.await,
    }
}

/// Whether the memory cache answered under the request's own path
/// ([`Tier::MemoryByPath`]).
pub fn by_path(slot: &TierSlot) -> bool {
    slot.load(Ordering::Relaxed) == Tier::MemoryByPath as u8
}

/// Reads a slot's tier label.
pub fn tier_label(slot: &TierSlot) -> &'static str {
    Tier::label(slot.load(Ordering::Relaxed))
}

/// `t` as RFC 3339 UTC with milliseconds: `2025-12-01T08:30:00.123Z`.
fn push_rfc3339(out: &mut String, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    push_padded(out, y.clamp(0, 9999) as u64, 4);
    out.push('-');
    push_padded(out, u64::from(m), 2);
    out.push('-');
    push_padded(out, u64::from(day), 2);
    out.push('T');
    push_padded(out, rem / 3600, 2);
    out.push(':');
    push_padded(out, rem % 3600 / 60, 2);
    out.push(':');
    push_padded(out, rem % 60, 2);
    out.push('.');
    push_padded(out, u64::from(d.subsec_millis()), 3);
    out.push('Z');
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
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

    const ALICE: &Principal = &Principal::User(String::new());

    fn entry(n: usize, path: &str) -> Entry<'_> {
        Entry {
            time: SystemTime::now(),
            request_id: None,
            principal: Some(ALICE),
            client: Some([127, 0, 0, 1].into()),
            method: "GET",
            path,
            module: Some("example.com/m"),
            version: Some("v1.0.0"),
            file: Some("info"),
            status: 200,
            bytes: n as u64,
            tier: Some("memory"),
            decision: "allowed",
        }
    }

    #[test]
    fn lines_are_json_with_every_field() {
        let bob = Principal::Token("ci \"bot\"\\\u{1}é".into());
        let e = Entry {
            time: UNIX_EPOCH + std::time::Duration::from_millis(1_764_577_800_123),
            request_id: Some("01ABC"),
            principal: Some(&bob),
            client: Some("2001:db8::1".parse().unwrap()),
            method: "HEAD",
            path: "/example.com/!m/@v/v1.0.0.zip\n",
            module: Some("example.com/M"),
            version: Some("v1.0.0"),
            file: Some("zip"),
            status: 404,
            bytes: u64::MAX,
            tier: None,
            decision: "allowed",
        };
        let line = e.line();
        assert!(
            line.ends_with("}\n") && line.matches('\n').count() == 1,
            "{line}"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "time": "2025-12-01T08:30:00.123Z",
                "request_id": "01ABC",
                "principal": "token:ci \"bot\"\\\u{1}é",
                "client": "2001:db8::1",
                "method": "HEAD",
                "path": "/example.com/!m/@v/v1.0.0.zip\n",
                "module": "example.com/M",
                "version": "v1.0.0",
                "file": "zip",
                "status": 404,
                "bytes": u64::MAX,
                "decision": "allowed",
            })
        );
        // Absent fields are left out, as before.
        let mut e = entry(0, "/x");
        e.principal = None;
        e.client = None;
        e.module = None;
        e.version = None;
        e.file = None;
        e.tier = None;
        let v: serde_json::Value = serde_json::from_str(&e.line()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 6, "{keys:?}");
        let v: serde_json::Value = serde_json::from_str(&entry(7, "/y").line()).unwrap();
        assert_eq!(v["client"], "127.0.0.1");
        assert_eq!(v["principal"], "user:");
        assert_eq!(v["bytes"], 7);
        assert_eq!(v["tier"], "memory");
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
                    log.record(&entry(n, &path)).await;
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

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_423), (2025, 12, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let mut t = String::new();
        push_rfc3339(&mut t, SystemTime::now());
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z'));
    }
}
