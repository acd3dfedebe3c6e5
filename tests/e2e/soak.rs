//! Soak: mixed, bounded load against one Sparta for SOAK_SECONDS (default
//! 20: the slice `make test` runs; `make soak` runs 600 against the release
//! binary). Warm and cold requests on every GOPROXY route plus probes,
//! metrics and not-found paths, with upstream faults injected now and then.
//! Sparta's RSS, open file descriptors and thread count are sampled from
//! /proc; the test fails on any unexpected status and, on runs of 5 minutes
//! or more, on growth after warm-up. With SOAK_REPORT=path it writes a
//! markdown report there (`make soak` puts it in bench/results/).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sparta_e2e::{Fixture, Sparta, SpartaOptions, http_client};
use tokio::sync::Mutex;

/// Concurrent clients; each pauses between requests, so load is bounded.
const WORKERS: usize = 8;
const PAUSE: Duration = Duration::from_millis(5);
/// Wide modules in the soak's own fixture: `m0000..` are asked cold (at
/// most one every [`COLD_EVERY`]), faults go to `m3000..`, the warm set is
/// the last 200.
const WIDE: usize = 5000;
const COLD_EVERY: Duration = Duration::from_millis(200);
const FAULTED: usize = 3000;

#[derive(Clone, Copy, Debug)]
struct Sample {
    at_s: f64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
}

fn sample(pid: u32, started: Instant) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    Sample {
        at_s: started.elapsed().as_secs_f64(),
        rss_kib: field("VmRSS:"),
        fds,
        threads: field("Threads:"),
    }
}

/// What one request is and which statuses are right for it.
struct Ask {
    route: &'static str,
    path: String,
    ok: &'static [u16],
}

struct Load {
    warm: Vec<String>,
    cold_next: AtomicUsize,
    n: AtomicUsize,
    started: Instant,
}

impl Load {
    fn next(&self) -> Ask {
        let i = self.n.fetch_add(1, Ordering::Relaxed);
        let warm = &self.warm[i % self.warm.len()];
        // Cold requests are paced by the clock, not by the request rate.
        let cold_due = (self.started.elapsed().as_millis() / COLD_EVERY.as_millis()) as usize;
        let cold = i.is_multiple_of(20)
            && self
                .cold_next
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < cold_due && n < FAULTED).then_some(n + 1)
                })
                .is_ok();
        match if cold { 0 } else { 1 + i % 19 } {
            // A wide module never asked before.
            0 => {
                let n = self.cold_next.load(Ordering::Relaxed) - 1;
                let ext = ["info", "mod", "zip"][(i / 20) % 3];
                Ask {
                    route: "cold",
                    path: format!("/fixture.test/wide/m{n:04}/@v/v1.0.0.{ext}"),
                    ok: &[200],
                }
            }
            1 => Ask {
                route: "list",
                path: format!("/{warm}/@v/list"),
                ok: &[200],
            },
            2 => Ask {
                route: "latest",
                path: format!("/{warm}/@latest"),
                ok: &[200],
            },
            3 => Ask {
                route: "query",
                path: format!("/{warm}/@v/v1.info"),
                ok: &[200],
            },
            4 => Ask {
                route: "not_found",
                path: format!("/{warm}/@v/v9.9.9.info"),
                ok: &[404],
            },
            5 => Ask {
                route: "invalid",
                path: "/Not%20A%20Module/@v/list".into(),
                ok: &[404],
            },
            6 => Ask {
                route: "healthz",
                path: "/healthz".into(),
                ok: &[200],
            },
            7 => Ask {
                route: "metrics",
                path: "/metrics".into(),
                ok: &[200],
            },
            8..=11 => Ask {
                route: "info",
                path: format!("/{warm}/@v/v1.0.0.info"),
                ok: &[200],
            },
            12..=15 => Ask {
                route: "mod",
                path: format!("/{warm}/@v/v1.0.0.mod"),
                ok: &[200],
            },
            _ => Ask {
                route: "zip",
                path: format!("/{warm}/@v/v1.0.0.zip"),
                ok: &[200],
            },
        }
    }
}

type Tally = BTreeMap<(String, u16), u64>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let fx = Arc::new(Fixture::start(&[
        "--wide",
        &WIDE.to_string(),
        "--large-size",
        "1MiB",
    ]));
    let sparta = Sparta::start(
        SpartaOptions {
            fixture_defaults: true,
            ..SpartaOptions::new(&fx.url)
        }
        .args(&[
            "--upstream-idle-timeout",
            "2s",
            "--upstream-timeout",
            "10s",
            "--list-ttl",
            "2s",
            "--negative-ttl",
            "2s",
        ]),
    )
    .await;
    let pid = sparta.pid();
    let url = sparta.url.clone();
    // Warm set: the first 200 wide modules, fetched once before the clock.
    let warm: Vec<String> = (0..200)
        .map(|n| format!("fixture.test/wide/m{:04}", WIDE - 1 - n))
        .collect();
    let client = http_client();
    for m in &warm {
        for ext in ["info", "mod", "zip"] {
            let r = client
                .get(format!("{url}/{m}/@v/v1.0.0.{ext}"))
                .send()
                .await
                .expect("warm-up");
            assert_eq!(r.status(), 200, "warm-up {m} {ext}");
        }
    }
    let load = Arc::new(Load {
        warm,
        cold_next: AtomicUsize::new(0),
        n: AtomicUsize::new(0),
        started: Instant::now(),
    });
    let tally: Arc<Mutex<Tally>> = Arc::default();
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (load, tally, unexpected, url) =
            (load.clone(), tally.clone(), unexpected.clone(), url.clone());
        workers.push(tokio::spawn(async move {
            let client = http_client();
            while Instant::now() < deadline {
                let ask = load.next();
                let status = match client.get(format!("{url}{}", ask.path)).send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        // A body cut short is a broken answer.
                        if r.bytes().await.is_err() { 0 } else { s }
                    }
                    Err(_) => 0,
                };
                *tally
                    .lock()
                    .await
                    .entry((ask.route.to_owned(), status))
                    .or_default() += 1;
                if !ask.ok.contains(&status) {
                    let mut u = unexpected.lock().await;
                    if u.len() < 50 {
                        u.push(format!("{} -> {status}", ask.path));
                    }
                }
                tokio::time::sleep(PAUSE).await;
            }
        }));
    }
    // Faults: every 3 s a cold zip of a module outside the load's range
    // fails upstream once; the client must get a 5xx, then the truth.
    let faults = {
        let (fx, tally, unexpected, url) =
            (fx.clone(), tally.clone(), unexpected.clone(), url.clone());
        tokio::spawn(async move {
            let client = http_client();
            let kinds = ["status", "truncate", "reset", "flip", "close"];
            let mut n = 0usize;
            while Instant::now() + Duration::from_secs(3) < deadline {
                tokio::time::sleep(Duration::from_secs(3)).await;
                // Modules the cold walk never reaches.
                let path = format!(
                    "/fixture.test/wide/m{:04}/@v/v1.0.0.zip",
                    FAULTED + n % 1700
                );
                let kind = kinds[n % kinds.len()];
                n += 1;
                fx.fault(json!({"path": path, "kind": kind, "status": 500}))
                    .await;
                let first = match client.get(format!("{url}{path}")).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                let second = match client.get(format!("{url}{path}")).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                *tally
                    .lock()
                    .await
                    .entry(("fault".into(), first))
                    .or_default() += 1;
                *tally
                    .lock()
                    .await
                    .entry(("after_fault".into(), second))
                    .or_default() += 1;
                if !(500..600).contains(&first) || second != 200 {
                    unexpected
                        .lock()
                        .await
                        .push(format!("{path} ({kind}): {first} then {second}"));
                }
            }
        })
    };
    let mut samples = vec![sample(pid, started)];
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(5).min(deadline - Instant::now())).await;
        samples.push(sample(pid, started));
    }
    for w in workers {
        w.await.expect("worker");
    }
    faults.await.expect("faults");
    samples.push(sample(pid, started));

    let tally = tally.lock().await.clone();
    let unexpected = unexpected.lock().await.clone();
    let total: u64 = tally.values().sum();
    let verdict = flatness(&samples, seconds);
    if let Ok(path) = std::env::var("SOAK_REPORT") {
        let report = report(seconds, total, &tally, &samples, &unexpected, &verdict);
        std::fs::write(&path, report).expect("write soak report");
        eprintln!("soak report: {path}");
    }
    assert!(
        unexpected.is_empty(),
        "unexpected statuses:\n{}\n--- log tail ---\n{}",
        unexpected.join("\n"),
        tail(&sparta.log())
    );
    assert!(total > 0, "no requests made");
    if let Err(e) = verdict {
        panic!("not flat: {e}");
    }
}

/// Growth after warm-up: the first fifth of the run is warm-up; the last
/// sample may not exceed the warm-up's by more than a margin. Only judged
/// on runs of 5 minutes or more (a short slice has no steady state).
fn flatness(samples: &[Sample], seconds: u64) -> Result<String, String> {
    let warm = samples
        .iter()
        .find(|s| s.at_s >= seconds as f64 / 5.0)
        .copied()
        .unwrap_or(samples[0]);
    let last = *samples.last().expect("samples");
    let summary = format!(
        "after warm-up ({:.0} s): RSS {} KiB, {} fds, {} threads; at the end: RSS {} KiB, {} fds, {} threads",
        warm.at_s, warm.rss_kib, warm.fds, warm.threads, last.rss_kib, last.fds, last.threads
    );
    if seconds < 300 {
        return Ok(format!("{summary} (not judged: shorter than 5 minutes)"));
    }
    let rss_bound = (warm.rss_kib * 3 / 2).max(warm.rss_kib + 64 * 1024);
    let mut bad = Vec::new();
    if last.rss_kib > rss_bound {
        bad.push(format!("RSS grew past {rss_bound} KiB"));
    }
    if last.fds > warm.fds + 32 {
        bad.push("open fds grew by more than 32".to_owned());
    }
    if last.threads > warm.threads + 8 {
        bad.push("threads grew by more than 8".to_owned());
    }
    if bad.is_empty() {
        Ok(format!("{summary}: flat"))
    } else {
        Err(format!("{summary}: {}", bad.join(", ")))
    }
}

fn report(
    seconds: u64,
    total: u64,
    tally: &Tally,
    samples: &[Sample],
    unexpected: &[String],
    verdict: &Result<String, String>,
) -> String {
    let mut out = format!(
        "# Soak {}\n\n`make soak` (SOAK_SECONDS={seconds}): {WORKERS} clients, {} ms pause between requests, \
         against the release binary in front of the fixture ({WIDE} wide modules); \
         a cold request (a module never asked) every {} ms, upstream faults every 3 s.\n\n",
        utc_now(),
        PAUSE.as_millis(),
        COLD_EVERY.as_millis()
    );
    out += &format!(
        "Requests: {total} ({:.0}/s). Unexpected statuses: {}.\n\nVerdict: {}\n\n",
        total as f64 / seconds as f64,
        unexpected.len(),
        match verdict {
            Ok(v) => v.clone(),
            Err(e) => format!("FAILED: {e}"),
        }
    );
    out += "| route | status | count |\n|---|---|---|\n";
    for ((route, status), n) in tally {
        out += &format!("| {route} | {status} | {n} |\n");
    }
    out += "\n| t (s) | RSS (KiB) | open fds | threads |\n|---|---|---|---|\n";
    let step = (samples.len() / 20).max(1);
    for (i, s) in samples.iter().enumerate() {
        if i % step == 0 || i + 1 == samples.len() {
            out += &format!(
                "| {:.0} | {} | {} | {} |\n",
                s.at_s, s.rss_kib, s.fds, s.threads
            );
        }
    }
    for u in unexpected {
        out += &format!("\n- unexpected: {u}");
    }
    out.push('\n');
    out
}

/// Today's date, UTC, from the system clock (no date crate in the tests).
fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
