//! `git cat-file --batch` readers of one mirror, kept between requests: the
//! reads of a version's .info, .mod and .zip (commits, go.mod files, every
//! blob of the zip) go to a process already running instead of starting one
//! or two per request. Each exchange is time-bounded; a process that failed,
//! timed out or was left mid-object is dropped (killed), never reused.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use crate::VcsError;
use crate::git::{CallCreds, Git};

/// Idle processes one mirror keeps: one for the small reads, one for a zip
/// being built at the same time.
const MAX_IDLE: usize = 2;

/// The readers of one mirror (at one fetch generation, see mirror.rs).
pub(crate) struct Batch {
    git: Git,
    dir: PathBuf,
    idle: Mutex<Vec<BatchProc>>,
}

/// An object as `cat-file --batch` gives it.
pub(crate) struct Found {
    pub oid: String,
    pub kind: String,
    pub data: Vec<u8>,
}

struct BatchProc {
    // Killed on drop (`kill_on_drop`); cat-file starts no children.
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::BufReader<tokio::process::ChildStdout>,
}

/// The header of a `cat-file --batch` answer: the object's id, type and
/// size, or `None` for a name that is missing or ambiguous.
fn batch_header(header: &str) -> Result<Option<(&str, &str, u64)>, String> {
    let bad = || format!("git cat-file: {}", header.trim());
    let f: Vec<&str> = header.split_whitespace().collect();
    match f[..] {
        [oid, kind, size] => Ok(Some((oid, kind, size.parse().map_err(|_| bad())?))),
        [_, "missing" | "ambiguous"] => Ok(None),
        _ => Err(bad()),
    }
}

impl BatchProc {
    fn start(git: &Git, dir: &Path) -> Result<Self, VcsError> {
        let mut cmd = git.command(Some(dir), &["cat-file", "--batch"], &CallCreds::default());
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| VcsError::Failed(format!("starting git cat-file: {e}")))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = tokio::io::BufReader::with_capacity(
            64 << 10,
            child.stdout.take().expect("piped stdout"),
        );
        Ok(BatchProc {
            _child: child,
            stdin,
            stdout,
        })
    }

    /// Asks for `name`: its header's id, type and size, or None.
    async fn ask(&mut self, name: &str) -> std::io::Result<Option<(String, String, u64)>> {
        self.stdin.write_all(format!("{name}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        let mut header = String::new();
        (&mut self.stdout).take(4096).read_line(&mut header).await?;
        let parsed = batch_header(&header).map_err(std::io::Error::other)?;
        Ok(parsed.map(|(o, k, s)| (o.to_owned(), k.to_owned(), s)))
    }

    /// Asks for `name`; None when git has no such object (or the name is
    /// ambiguous), else its object id, type and content. Over `max` bytes is
    /// TooLarge, and leaves the process mid-object: the caller drops it.
    async fn get(&mut self, name: &str, max: u64) -> Result<Option<Found>, VcsError> {
        let io = |e: std::io::Error| VcsError::Failed(format!("git cat-file: {e}"));
        let Some((oid, kind, size)) = self.ask(name).await.map_err(io)? else {
            return Ok(None);
        };
        if size > max {
            return Err(VcsError::TooLarge(format!(
                "{name} is {size} bytes, over the limit of {max}"
            )));
        }
        // The content, then the newline that ends it.
        let mut data = vec![0u8; size as usize + 1];
        self.stdout.read_exact(&mut data).await.map_err(io)?;
        data.pop();
        Ok(Some(Found { oid, kind, data }))
    }
}

impl Batch {
    pub fn new(git: Git, dir: PathBuf) -> Self {
        Batch {
            git,
            dir,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Starts a process for the next reader, so that a fetch, not the
    /// request after it, pays for the start.
    pub fn warm(&self) -> Result<(), VcsError> {
        let p = BatchProc::start(&self.git, &self.dir)?;
        self.put(p);
        Ok(())
    }

    fn take(&self) -> Result<BatchProc, VcsError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(p) => Ok(p),
            None => BatchProc::start(&self.git, &self.dir),
        }
    }

    /// Keeps a process that finished its exchange cleanly, up to the bound.
    fn put(&self, p: BatchProc) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(p);
        }
    }

    /// The type and content of object `name` (any revision expression, as
    /// `hash^{commit}` or `hash:path`), or None when there is none.
    pub async fn get(&self, name: &str, max: u64) -> Result<Option<Found>, VcsError> {
        if name.contains(['\n', '\r']) {
            return Ok(None);
        }
        let mut proc = self.take()?;
        match tokio::time::timeout(self.git.timeout, proc.get(name, max)).await {
            Ok(Ok(found)) => {
                self.put(proc);
                Ok(found)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(VcsError::Timeout(format!(
                "git cat-file took longer than {:?}",
                self.git.timeout
            ))),
        }
    }

    /// A blob reader for a blocking thread (the zip writer pulls bytes
    /// synchronously), on a process of this pool; `rt` drives its I/O.
    pub fn blobs(&self, rt: tokio::runtime::Handle) -> Result<Blobs<'_>, VcsError> {
        Ok(Blobs {
            batch: self,
            proc: Some(self.take()?),
            rt,
            pending: false,
        })
    }
}

/// Streams blobs out of one pooled process; handed back to the pool when
/// dropped between blobs, killed when dropped in the middle of one.
pub(crate) struct Blobs<'a> {
    batch: &'a Batch,
    proc: Option<BatchProc>,
    rt: tokio::runtime::Handle,
    /// A blob (or the newline after it) not yet read to its end.
    pending: bool,
}

impl<'a> Blobs<'a> {
    /// Runs one exchange on the process within the time bound.
    fn run<T>(
        rt: &tokio::runtime::Handle,
        timeout: std::time::Duration,
        fut: impl std::future::Future<Output = std::io::Result<T>>,
    ) -> std::io::Result<T> {
        rt.block_on(async {
            tokio::time::timeout(timeout, fut)
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("git cat-file timed out")))
        })
    }

    /// A reader of exactly the blob `object`'s bytes; read it to its end
    /// before asking for the next blob.
    pub fn open(&mut self, object: &str) -> std::io::Result<BlobStream<'_, 'a>> {
        if self.pending || object.contains(['\n', '\r']) {
            return Err(std::io::Error::other("git cat-file: bad request"));
        }
        let proc = self
            .proc
            .as_mut()
            .ok_or_else(|| std::io::Error::other("git cat-file: no process"))?;
        self.pending = true;
        let header = Self::run(&self.rt, self.batch.git.timeout, proc.ask(object))?;
        let size = match header {
            Some((_, kind, size)) if kind == "blob" => size,
            _ => {
                return Err(std::io::Error::other(format!(
                    "git cat-file: {object} is not a blob"
                )));
            }
        };
        Ok(BlobStream {
            blobs: self,
            left: size,
        })
    }
}

impl Drop for Blobs<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.proc.take()
            && !self.pending
        {
            self.batch.put(p);
        }
    }
}

/// One blob's bytes; eats the newline that follows it on the batch stream.
pub(crate) struct BlobStream<'b, 'a> {
    blobs: &'b mut Blobs<'a>,
    left: u64,
}

impl Read for BlobStream<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let b = &mut *self.blobs;
        let Some(proc) = b.proc.as_mut() else {
            return Err(std::io::Error::other("git cat-file: no process"));
        };
        let timeout = b.batch.git.timeout;
        if self.left == 0 {
            if b.pending {
                let mut nl = [0u8; 1];
                Blobs::run(&b.rt, timeout, proc.stdout.read_exact(&mut nl))?;
                b.pending = false;
            }
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = Blobs::run(&b.rt, timeout, proc.stdout.read(&mut buf[..want]))?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blobs_stream_and_the_process_is_reused_only_when_clean() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("r.git");
        let run = |args: &[&str], input: Option<&str>| {
            let mut c = std::process::Command::new("git");
            c.args(args).env("GIT_CONFIG_GLOBAL", "/dev/null");
            if let Some(i) = input {
                let mut p = c
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                std::io::Write::write_all(p.stdin.as_mut().unwrap(), i.as_bytes()).unwrap();
                let out = p.wait_with_output().unwrap();
                return String::from_utf8(out.stdout).unwrap().trim().to_owned();
            }
            let out = c.output().unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        run(&["init", "-q", "--bare", dir.to_str().unwrap()], None);
        let gd = format!("--git-dir={}", dir.display());
        let a = run(&[&gd, "hash-object", "-w", "--stdin"], Some("hello\n"));
        let b = run(
            &[&gd, "hash-object", "-w", "--stdin"],
            Some(&"y".repeat(200_000)),
        );
        let git = Git::for_tests(t.path().join("home"));
        let batch = std::sync::Arc::new(Batch::new(git, dir));
        batch.warm().unwrap();
        let rt = tokio::runtime::Handle::current();
        let (a2, b2) = (a.clone(), b.clone());
        let pool = batch.clone();
        tokio::task::spawn_blocking(move || {
            let mut blobs = pool.blobs(rt.clone()).unwrap();
            for (o, len) in [(&a2, 6), (&b2, 200_000), (&a2, 6)] {
                let mut s = blobs.open(o).unwrap();
                let mut out = Vec::new();
                s.read_to_end(&mut out).unwrap();
                assert_eq!(out.len(), len);
            }
            drop(blobs);
            assert_eq!(
                pool.idle.lock().unwrap().len(),
                1,
                "clean: back in the pool"
            );
            // Left in the middle of a blob: the process is not reused.
            let mut blobs = pool.blobs(rt).unwrap();
            let mut s = blobs.open(&b2).unwrap();
            let mut part = [0u8; 10];
            s.read_exact(&mut part).unwrap();
            drop(blobs);
            assert_eq!(pool.idle.lock().unwrap().len(), 0);
        })
        .await
        .unwrap();
        // The small reads start a new one and still answer.
        let f = batch.get(&a, 1 << 10).await.unwrap().unwrap();
        assert_eq!((f.kind.as_str(), &f.data[..]), ("blob", &b"hello\n"[..]));
        assert!(batch.get(&"0".repeat(40), 1 << 10).await.unwrap().is_none());
        assert_eq!(batch.idle.lock().unwrap().len(), 1);
    }
}
