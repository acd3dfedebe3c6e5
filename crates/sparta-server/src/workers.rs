//! Connection workers: a few threads, each running a single-threaded
//! runtime, that serve the connections the accept loop hands them.
//!
//! On the shared work-stealing runtime a warm request costs more than the
//! file it serves: its wake-ups cross threads (a futex to unpark a worker),
//! the I/O driver is passed between workers, and tasks migrate. A
//! connection that lives on one thread, with that thread's own driver and
//! timer, is woken where it runs, as in nginx's worker processes. Each
//! connection goes to the worker with the fewest open connections, and
//! stays there; whatever it spawns (a fetch, a blocking read) runs on that
//! worker's runtime and its blocking pool.
//!
//! The trade: no work stealing, so a long stretch of CPU in one request
//! delays the other connections of its worker. Sparta's long CPU work
//! (zip checks, hashing a large download, VCS) runs on blocking threads.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The running workers; dropping the last handle lets their threads end
/// (each drops the connections it still serves).
pub struct ConnWorkers {
    workers: Vec<Worker>,
}

struct Worker {
    jobs: mpsc::UnboundedSender<Job>,
    /// Connections handed to this worker and not yet finished.
    open: Arc<AtomicUsize>,
}

/// Counts a connection as open on its worker until dropped.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnWorkers {
    /// Starts `count` worker threads (at least one).
    pub fn start(count: usize) -> io::Result<Arc<Self>> {
        let mut workers = Vec::with_capacity(count.max(1));
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name(format!("sparta-conn-{i}-blocking"))
                .build()?;
            let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
            std::thread::Builder::new()
                .name(format!("sparta-conn-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        while let Some(job) = queue.recv().await {
                            tokio::spawn(job);
                        }
                    });
                })?;
            workers.push(Worker {
                jobs,
                open: Arc::new(AtomicUsize::new(0)),
            });
        }
        Ok(Arc::new(ConnWorkers { workers }))
    }

    /// Runs the future `make` builds on the least busy worker; `make` runs
    /// there too, so it may register sockets with that worker's runtime.
    /// Gives `make` back when every worker has stopped.
    pub fn spawn<F, Fut>(&self, make: F) -> Result<(), F>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(worker) = self
            .workers
            .iter()
            .filter(|w| !w.jobs.is_closed())
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
        else {
            return Err(make);
        };
        worker.open.fetch_add(1, Ordering::Relaxed);
        let open = Open(worker.open.clone());
        let job: Job = Box::pin(async move {
            let _open = open;
            make().await;
        });
        // A closed queue here means the worker just stopped: the job (and
        // its connection) is dropped, as at shutdown.
        let _ = worker.jobs.send(job);
        Ok(())
    }

    /// Open connections per worker, in worker order.
    pub fn open_counts(&self) -> Vec<usize> {
        self.workers
            .iter()
            .map(|w| w.open.load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn jobs_run_on_worker_threads_and_spread_by_open_count() {
        let workers = ConnWorkers::start(2).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (hold_tx, hold_rx) = tokio::sync::watch::channel(false);
        for _ in 0..4 {
            let (tx, mut hold) = (tx.clone(), hold_rx.clone());
            workers
                .spawn(move || async move {
                    let name = std::thread::current().name().unwrap_or("").to_string();
                    tx.send(name).unwrap();
                    let _ = hold.wait_for(|h| *h).await;
                })
                .unwrap_or_else(|_| panic!("workers stopped"));
        }
        let mut names = Vec::new();
        for _ in 0..4 {
            names.push(rx.recv().await.unwrap());
        }
        names.sort();
        assert_eq!(
            names,
            [
                "sparta-conn-0",
                "sparta-conn-0",
                "sparta-conn-1",
                "sparta-conn-1"
            ]
        );
        assert_eq!(workers.open_counts(), [2, 2]);
        hold_tx.send(true).unwrap();
        for _ in 0..100 {
            if workers.open_counts() == [0, 0] {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("open counts stay {:?}", workers.open_counts());
    }

    #[tokio::test]
    async fn a_job_can_register_a_socket_with_its_worker() {
        let workers = ConnWorkers::start(1).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        workers
            .spawn(move || async move {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 5];
                tokio::io::AsyncReadExt::read_exact(&mut conn, &mut buf)
                    .await
                    .unwrap();
                tx.send(buf).unwrap();
            })
            .unwrap_or_else(|_| panic!("workers stopped"));
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut client, b"hello")
            .await
            .unwrap();
        assert_eq!(&rx.await.unwrap(), b"hello");
    }
}
