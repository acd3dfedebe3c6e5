//! Shared freshness of list and latest answers: three replicas on one
//! bucket ask the upstream once per `--list-ttl` in all, and an unchanged
//! answer is not written again.

use std::time::Duration;

use sparta_e2e::{fixture, http_client, scratch_module};

use crate::support::{Replica, ReplicaSpec, S3, S3Env, fixture_count, get, serial, unique_prefix};

const TTL_SECS: u64 = 4;

async fn answer(replica: &Replica, path: &str) -> Vec<u8> {
    let (status, _, body) = get(&http_client(), &format!("{}{path}", replica.url)).await;
    assert_eq!(status, 200, "GET {path} via {}", replica.url);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_list_fetch_per_ttl_across_replicas() {
    let _serial = serial().await;
    let s3env = S3Env::from_env();
    let s3 = S3::new(&s3env);
    let fx = fixture();
    let prefix = unique_prefix("freshness");
    let ttl = format!("{TTL_SECS}s");
    let spec = |name: &str| {
        ReplicaSpec::s3(name, &s3env, &s3env.endpoint, &prefix, &fx.url).arg(&["--list-ttl", &ttl])
    };
    let a = Replica::start(spec("a")).await;
    let b = Replica::start(spec("b")).await;
    let c = Replica::start(spec("c")).await;
    let all = [&a, &b, &c];

    let module = scratch_module();
    let list = format!("/{module}/@v/list");
    let latest = format!("/{module}/@latest");
    let list_key = format!("{prefix}/{module}/@v/list");
    let record_key = format!("{prefix}/_sparta/fresh/{module}/@v/list");
    let (list0, latest0) = (fixture_count(&list).await, fixture_count(&latest).await);

    // Within one TTL: every replica answers, one upstream fetch in all.
    let first = answer(&a, &list).await;
    let first_latest = answer(&a, &latest).await;
    for r in all.iter().chain(all.iter()) {
        assert_eq!(answer(r, &list).await, first, "the same list everywhere");
        assert_eq!(
            answer(r, &latest).await,
            first_latest,
            "the same latest everywhere"
        );
    }
    assert_eq!(
        fixture_count(&list).await - list0,
        1,
        "list fetches within one TTL"
    );
    assert_eq!(
        fixture_count(&latest).await - latest0,
        1,
        "latest fetches within one TTL"
    );
    let stored = s3
        .last_modified(&list_key)
        .await
        .expect("the list is stored");
    let recorded = s3
        .last_modified(&record_key)
        .await
        .expect("the fetch is recorded");

    // After the TTL: one more fetch for all three; the unchanged list is not
    // written again (S3 times have whole seconds: wait past one), the
    // record of the fetch is.
    tokio::time::sleep(Duration::from_millis(TTL_SECS * 1000 + 1200)).await;
    for r in [&b, &c, &a, &b] {
        assert_eq!(answer(r, &list).await, first);
    }
    assert_eq!(
        fixture_count(&list).await - list0,
        2,
        "list fetches over two TTLs"
    );
    assert_eq!(
        s3.last_modified(&list_key).await.as_deref(),
        Some(stored.as_str()),
        "an unchanged list must not be written again"
    );
    assert_ne!(
        s3.last_modified(&record_key).await.as_deref(),
        Some(recorded.as_str()),
        "the new fetch is recorded"
    );
}
