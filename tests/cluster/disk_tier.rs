//! The disk tier for zips on S3-backed replicas: a zip served from the tier
//! costs no S3 GET; a wrong tier file is found, dropped and read again from
//! the bucket; the tier survives a restart and is checked again after it.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sparta_e2e::{fixture, http_client, scratch_module, sha256_hex, version_path};

use crate::support::{
    Replica, ReplicaSpec, S3Env, fixture_count, fixture_truth, get, get_sha, serial, unique_prefix,
    within,
};

/// The sum of every series of `name` whose labels contain each of `labels`.
pub async fn metric_sum(replica: &Replica, name: &str, labels: &[&str]) -> f64 {
    let (status, _, body) = get(&http_client(), &format!("{}/metrics", replica.url)).await;
    assert_eq!(status, 200, "GET /metrics");
    let text = String::from_utf8_lossy(&body).into_owned();
    let mut sum = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (series, value) = match rest.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        // `name{...}` or bare `name`, never a longer name with this prefix.
        if !(series.is_empty() || series.starts_with('{')) {
            continue;
        }
        if labels.iter().all(|l| series.contains(l)) {
            sum += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    sum
}

/// S3 GETs this replica made, by Sparta's own count of storage calls.
async fn s3_gets(replica: &Replica) -> f64 {
    metric_sum(
        replica,
        "sparta_storage_operation_duration_seconds_count",
        &["op=\"get\""],
    )
    .await
}

fn tier_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "zip"));
    files.sort();
    files
}

async fn fetch_ok(replica: &Replica, path: &str, want_sha: &str, want_len: usize) {
    let (status, sha, len) = get_sha(&http_client(), &format!("{}{path}", replica.url))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(status, 200, "GET {path}");
    assert_eq!(
        (sha.as_str(), len),
        (want_sha, want_len as u64),
        "GET {path}: other bytes"
    );
}

fn with_tier(spec: ReplicaSpec, dir: &Path) -> ReplicaSpec {
    spec.arg(&[
        "--disk-cache-dir",
        dir.to_str().expect("utf-8 path"),
        "--disk-cache-size",
        "256MiB",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zips_from_the_disk_tier_cost_no_s3_get() {
    let _serial = serial().await;
    let s3env = S3Env::from_env();
    let fx = fixture();
    let prefix = unique_prefix("disk-tier");
    let tier_a = tempfile::tempdir().expect("tier dir");
    let tier_b = tempfile::tempdir().expect("tier dir");
    let spec = |name: &str| ReplicaSpec::s3(name, &s3env, &s3env.endpoint, &prefix, &fx.url);
    let a = Replica::start(with_tier(spec("a"), tier_a.path())).await;

    let zip = version_path(&scratch_module(), "v1.0.0", "zip");
    let truth = fixture_truth(&zip).await;
    let truth_sha = sha256_hex(&truth);

    // Cold: fetched, stored in the bucket, and copied into the tier.
    let before = fixture_count(&zip).await;
    fetch_ok(&a, &zip, &truth_sha, truth.len()).await;
    assert_eq!(fixture_count(&zip).await - before, 1, "one upstream fetch");
    let filled = within(Duration::from_secs(10), || async {
        tier_files(tier_a.path()).len() == 1
    })
    .await;
    assert!(
        filled,
        "the fetch fills the tier: {:?}",
        tier_files(tier_a.path())
    );

    // Warm: from the tier, not one S3 GET.
    let gets = s3_gets(&a).await;
    for _ in 0..3 {
        fetch_ok(&a, &zip, &truth_sha, truth.len()).await;
    }
    assert_eq!(
        s3_gets(&a).await,
        gets,
        "zips served from the tier must not GET from S3"
    );
    let hits = metric_sum(
        &a,
        "sparta_cache_lookups_total",
        &["tier=\"disk\"", "result=\"hit\""],
    )
    .await;
    assert!(hits >= 3.0, "disk tier hits: {hits}");

    // A byte range from the tier, also without S3.
    let resp = http_client()
        .get(format!("{}{zip}", a.url))
        .header("Range", "bytes=10-19")
        .send()
        .await
        .expect("range GET");
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(
        resp.bytes().await.expect("range body").as_ref(),
        &truth[10..20]
    );
    assert_eq!(
        s3_gets(&a).await,
        gets,
        "a range from the tier must not GET from S3"
    );

    // A flipped byte in the tier file: found before it is served, the zip
    // read again from the bucket (not upstream), and the tier refilled.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let file = tier_files(tier_a.path()).pop().expect("tier file");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .expect("open tier file");
        f.seek(SeekFrom::Start(truth.len() as u64 / 2))
            .expect("seek");
        let flipped = truth[truth.len() / 2] ^ 0xff;
        f.write_all(&[flipped]).expect("corrupt");
    }
    let fetched = fixture_count(&zip).await;
    fetch_ok(&a, &zip, &truth_sha, truth.len()).await;
    assert_eq!(
        metric_sum(&a, "sparta_disk_tier_corrupt_total", &[]).await,
        1.0,
        "the wrong tier file is counted"
    );
    let after_corrupt = s3_gets(&a).await;
    assert!(after_corrupt > gets, "the zip is read from S3 again");
    assert_eq!(
        fixture_count(&zip).await,
        fetched,
        "storage, not upstream, is the truth"
    );
    // That read refilled the tier: the next one is S3-free again.
    for _ in 0..100 {
        if tier_files(tier_a.path()).len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fetch_ok(&a, &zip, &truth_sha, truth.len()).await;
    assert_eq!(s3_gets(&a).await, after_corrupt, "refilled from the read");

    // A restart keeps the tier; its files are hashed again before serving.
    let a = a.restart().await;
    let gets = s3_gets(&a).await;
    fetch_ok(&a, &zip, &truth_sha, truth.len()).await;
    assert_eq!(
        s3_gets(&a).await,
        gets,
        "after a restart the tier still serves"
    );

    // Another replica on the same bucket fills its own tier on first read.
    let b = Replica::start(with_tier(spec("b"), tier_b.path())).await;
    fetch_ok(&b, &zip, &truth_sha, truth.len()).await;
    let b_gets = s3_gets(&b).await;
    assert!(b_gets >= 1.0, "b's first read comes from S3");
    for _ in 0..100 {
        if tier_files(tier_b.path()).len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        tier_files(tier_b.path()).len(),
        1,
        "the first read fills b's tier"
    );
    fetch_ok(&b, &zip, &truth_sha, truth.len()).await;
    assert_eq!(
        s3_gets(&b).await,
        b_gets,
        "b's second read comes from its tier"
    );
    assert_eq!(
        fixture_count(&zip).await - before,
        1,
        "still one upstream fetch in all"
    );
}
