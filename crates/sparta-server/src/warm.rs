//! Pre-loading the store (`sparta warm`, `POST /warm` on the admin
//! address): module versions fetched through the same path as serving
//! (checks, checksum verification, write-once store, singleflight, leases),
//! a bounded number at a time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde::Serialize;
use sparta_core::warmlist::{self, WarmItem, WarmList};
use sparta_core::{FileKind, ModulePath, Version};

use crate::error::ProxyError;
use crate::service::Proxy;

/// Reads a warm list in any of its forms: go.sum lines, the JSON objects
/// `go list -m -json all` (or `go mod download -json`) prints, or plain
/// `module@version` lines.
pub fn parse_inputs(list: &mut WarmList, text: &str) -> Result<(), String> {
    let start = text.trim_start();
    if start.starts_with('{') {
        return add_go_json(list, start);
    }
    if warmlist::looks_like_gosum(text) {
        return list.add_gosum(text);
    }
    list.add_plain(text)
}

/// `go list -m -json` objects: the main module and local replacements are
/// skipped; a replacement by another module version is what is fetched.
fn add_go_json(list: &mut WarmList, text: &str) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Module {
        path: Option<String>,
        version: Option<String>,
        #[serde(default)]
        main: bool,
        replace: Option<Box<Module>>,
    }
    for (n, value) in serde_json::Deserializer::from_str(text)
        .into_iter::<Module>()
        .enumerate()
    {
        let m = value.map_err(|e| format!("JSON object {}: {e}", n + 1))?;
        if m.main {
            continue;
        }
        let m = match m.replace {
            Some(r) => *r,
            None => m,
        };
        let (Some(path), Some(version)) = (m.path, m.version) else {
            continue;
        };
        let (module, version) = warmlist::parse_pair(&path, &version)
            .map_err(|e| format!("JSON object {}: {e}", n + 1))?;
        list.add(module, version, true);
    }
    Ok(())
}

impl Proxy {
    /// Fetches one version's `.mod` (and `.info` and zip when asked) into
    /// the store, as a client request would; returns the bytes it holds.
    pub async fn warm_one(&self, item: &WarmItem) -> Result<u64, ProxyError> {
        self.warm_version(&item.module, &item.version, item.zip)
            .await
    }

    async fn warm_version(
        &self,
        module: &ModulePath,
        version: &Version,
        zip: bool,
    ) -> Result<u64, ProxyError> {
        // In storage, not only fetched: a warm is for the stored copy.
        let mut bytes = self
            .small_file_in_storage(module, version, FileKind::Mod)
            .await?;
        if zip {
            bytes += self
                .small_file_in_storage(module, version, FileKind::Info)
                .await?;
            bytes += self.zip_in_storage(module, version).await?;
        }
        Ok(bytes)
    }
}

/// The state of the admin address's warm job, as `GET /warm` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WarmStatus {
    /// `running` or `done`.
    pub state: &'static str,
    pub total: u64,
    pub done: u64,
    pub failed: u64,
    pub bytes: u64,
    /// Unix seconds.
    pub started: u64,
    pub elapsed_secs: f64,
    /// `module@version` and why, for each failure (at most 1000 kept).
    pub failures: Vec<(String, String)>,
}

/// At most one background warm at a time, started by `POST /warm`.
#[derive(Default)]
pub struct WarmJobs {
    current: Mutex<Option<Arc<Job>>>,
}

struct Job {
    total: u64,
    done: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
    finished: std::sync::atomic::AtomicBool,
    started_at: u64,
    started: Instant,
    failures: Mutex<Vec<(String, String)>>,
}

impl Job {
    fn status(&self) -> WarmStatus {
        WarmStatus {
            state: if self.finished.load(Ordering::Acquire) {
                "done"
            } else {
                "running"
            },
            total: self.total,
            done: self.done.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            started: self.started_at,
            elapsed_secs: self.started.elapsed().as_secs_f64(),
            failures: self
                .failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// Why a warm job could not start.
#[derive(Debug, PartialEq, Eq)]
pub enum StartError {
    /// The list did not parse.
    Invalid(String),
    /// Another job is still running.
    Busy,
}

impl WarmJobs {
    /// Parses `text` and starts warming it in the background, at most
    /// `concurrency` versions at a time.
    pub fn start(
        &self,
        proxy: &Proxy,
        text: &str,
        concurrency: usize,
    ) -> Result<WarmStatus, StartError> {
        let mut list = WarmList::default();
        parse_inputs(&mut list, text).map_err(StartError::Invalid)?;
        if list.is_empty() {
            return Err(StartError::Invalid(
                "the list names no module version".into(),
            ));
        }
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(job) = current.as_ref()
            && !job.finished.load(Ordering::Acquire)
        {
            return Err(StartError::Busy);
        }
        let items = list.items();
        let job = Arc::new(Job {
            total: items.len() as u64,
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            finished: Default::default(),
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            started: Instant::now(),
            failures: Mutex::default(),
        });
        *current = Some(Arc::clone(&job));
        let status = job.status();
        let proxy = proxy.clone();
        tokio::spawn(async move {
            futures::stream::iter(items)
                .for_each_concurrent(concurrency.max(1), |item| {
                    let (proxy, job) = (proxy.clone(), Arc::clone(&job));
                    async move {
                        match proxy.warm_one(&item).await {
                            Ok(bytes) => {
                                job.bytes.fetch_add(bytes, Ordering::Relaxed);
                                job.done.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                job.failed.fetch_add(1, Ordering::Relaxed);
                                let mut f = job.failures.lock().unwrap_or_else(|e| e.into_inner());
                                if f.len() < 1000 {
                                    f.push((item.name(), e.to_string()));
                                }
                            }
                        }
                    }
                })
                .await;
            job.finished.store(true, Ordering::Release);
            tracing::info!(
                total = job.total,
                failed = job.failed.load(Ordering::Relaxed),
                "warm job finished"
            );
        });
        Ok(status)
    }

    /// The current or last job's status.
    pub fn status(&self) -> Option<WarmStatus> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|j| j.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_in_every_form() {
        let mut list = WarmList::default();
        parse_inputs(
            &mut list,
            r#"{"Path":"example.test/app","Main":true}
{"Path":"example.com/a","Version":"v1.0.0"}
{"Path":"example.com/b","Version":"v1.0.0","Replace":{"Path":"example.com/c","Version":"v1.2.0"}}
{"Path":"example.com/d","Version":"v1.0.0","Replace":{"Path":"../d"}}
"#,
        )
        .unwrap();
        let names: Vec<String> = list.items().iter().map(WarmItem::name).collect();
        assert_eq!(names, ["example.com/a@v1.0.0", "example.com/c@v1.2.0"]);
        parse_inputs(&mut list, "example.com/e v1.0.0/go.mod h1:x=\n").unwrap();
        parse_inputs(&mut list, "example.com/f@v1.0.0\n").unwrap();
        assert_eq!(list.len(), 4);
        assert!(parse_inputs(&mut list, "{\"Path\": 3}").is_err());
        assert!(parse_inputs(&mut list, "not a module line at all\n").is_err());
    }
}
