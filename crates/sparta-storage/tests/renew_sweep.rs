//! Lease renewal while a fetch runs, and the start-up sweeps, on a real
//! local directory store (leases there use the overwrite fallback) and the
//! in-memory store (conditional updates).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sparta_storage::{S3Options, SKEW_MARGIN, STAGING_MAX_AGE, Store, sweep_spool};

async fn stores() -> Vec<(Store, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let local = Store::open(dir.path().to_str().unwrap(), &S3Options::default())
        .await
        .unwrap();
    let memory = Store::open("memory://", &S3Options::default())
        .await
        .unwrap();
    vec![(local, Some(dir)), (memory, None)]
}

fn counting() -> (Arc<AtomicUsize>, sparta_storage::OnRenewFailure) {
    let n = Arc::new(AtomicUsize::new(0));
    let m = Arc::clone(&n);
    (
        n,
        Arc::new(move || {
            m.fetch_add(1, Ordering::SeqCst);
        }),
    )
}

#[tokio::test]
async fn a_held_lease_outlives_its_ttl_and_an_unheld_one_does_not() {
    let ttl = Duration::from_secs(2);
    // Long enough past ttl + margin that an unrenewed lease has expired.
    let wait = ttl + ttl.min(SKEW_MARGIN) + Duration::from_secs(1);
    for (store, _dir) in stores().await {
        let lease = store
            .try_acquire_lease("_sparta/leases/a", "one", ttl)
            .await
            .unwrap()
            .unwrap();
        let (failures, on_failure) = counting();
        let guard = store.hold_lease(lease, ttl, on_failure);
        tokio::time::sleep(wait).await;
        assert!(
            store
                .try_acquire_lease("_sparta/leases/a", "two", ttl)
                .await
                .unwrap()
                .is_none(),
            "{}: a renewed lease was taken over",
            store.describe()
        );
        assert_eq!(failures.load(Ordering::SeqCst), 0);
        // Released: the next holder gets it at once.
        guard.release().await.unwrap();
        let next = store
            .try_acquire_lease("_sparta/leases/a", "two", ttl)
            .await
            .unwrap()
            .expect("free after release");
        // Not renewed (the guard of `next` is never made): expires.
        tokio::time::sleep(wait).await;
        let third = store
            .try_acquire_lease("_sparta/leases/a", "three", ttl)
            .await
            .unwrap()
            .expect("an unrenewed lease expires");
        assert_eq!(third.fence, next.fence + 1);
    }
}

#[tokio::test]
async fn a_lease_lost_while_held_is_counted_and_renewal_stops() {
    let ttl = Duration::from_millis(90);
    for (store, _dir) in stores().await {
        let lease = store
            .try_acquire_lease("_sparta/leases/b", "one", ttl)
            .await
            .unwrap()
            .unwrap();
        let (failures, on_failure) = counting();
        let guard = store.hold_lease(lease.clone(), ttl, on_failure);
        // Someone else's lease replaces ours (as after a takeover).
        store.release_lease(&lease).await.unwrap();
        let other = store
            .try_acquire_lease("_sparta/leases/b", "two", Duration::from_secs(600))
            .await
            .unwrap()
            .unwrap();
        for _ in 0..3000 {
            if failures.load(Ordering::SeqCst) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(failures.load(Ordering::SeqCst), 1, "{}", store.describe());
        // Our renewals never touched the new holder's lease.
        assert!(!store.renew_lease(&lease, ttl).await.unwrap());
        assert!(store.renew_lease(&other, ttl).await.unwrap());
        drop(guard);
    }
}

#[tokio::test]
async fn the_spool_sweep_removes_only_old_spool_files() {
    let dir = tempfile::tempdir().unwrap();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    for (name, old) in [
        ("sparta-zip-old", true),
        ("sparta-zip-new", false),
        ("someone-else-old", true),
    ] {
        let f = std::fs::File::create(dir.path().join(name)).unwrap();
        if old {
            f.set_modified(two_hours_ago).unwrap();
        }
    }
    let swept = sweep_spool(dir.path(), Duration::from_secs(3600)).unwrap();
    assert_eq!(swept.removed, 1);
    assert_eq!(swept.seen, 3);
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["someone-else-old", "sparta-zip-new"]);
}

#[tokio::test]
async fn the_staging_sweep_removes_only_old_staging_objects() {
    for (store, _dir) in stores().await {
        store
            .put_once("_sparta/staging/abc", Bytes::from_static(b"part"))
            .await
            .unwrap();
        store
            .put_once(
                "example.com/m/@v/v1.0.0.mod",
                Bytes::from_static(b"module m\n"),
            )
            .await
            .unwrap();
        // Fresh: kept.
        let swept = store.sweep_staging(STAGING_MAX_AGE).await.unwrap();
        assert_eq!((swept.seen, swept.removed), (1, 0));
        // Everything older than now counts as old.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let swept = store.sweep_staging(Duration::ZERO).await.unwrap();
        assert_eq!((swept.seen, swept.removed, swept.failed), (1, 1, 0));
        assert_eq!(
            store.list("").await.unwrap(),
            ["example.com/m/@v/v1.0.0.mod"],
            "{}",
            store.describe()
        );
    }
}
