//! `/catalog`, `/index` and `sparta catalog`: what the store holds, from the
//! catalog's segment objects, across restarts, replicas and a rebuild.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use sparta_e2e::{
    Sparta, SpartaOptions, fixture, http_client, parse_json_stream, scratch_module, sparta_bin,
    version_path,
};

async fn get(url: &str) -> (u16, String) {
    let resp = http_client().get(url).send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// Every (module, version) of `/catalog`, walked page by page.
async fn catalog(sparta: &Sparta, page: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut token = String::new();
    for _ in 0..100 {
        let url = format!("{}/catalog?pagesize={page}&token={token}", sparta.url);
        let (status, body) = get(&url).await;
        assert_eq!(status, 200, "{url}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("catalog JSON");
        let modules = v["modules"].as_array().expect("modules");
        assert!(modules.len() <= page, "page over its size: {body}");
        for m in modules {
            out.push((
                m["module"].as_str().expect("module").to_owned(),
                m["version"].as_str().expect("version").to_owned(),
            ));
        }
        let next = v["next"].as_str().expect("next");
        if next.is_empty() {
            return out;
        }
        token = next.replace('+', "%2B");
    }
    panic!("catalog paging did not end");
}

async fn fetch_version(sparta: &Sparta, module: &str, version: &str) {
    for ext in ["info", "mod", "zip"] {
        let (status, _) = get(&format!(
            "{}{}",
            sparta.url,
            version_path(module, version, ext)
        ))
        .await;
        assert_eq!(status, 200, "{module}@{version}.{ext}");
    }
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(m, v)| (m.to_string(), v.to_string()))
        .collect()
}

/// `sparta catalog` on a store: its stdout lines as (module, version).
fn cli_catalog(storage: &std::path::Path, rebuild: bool) -> BTreeSet<(String, String)> {
    let mut cmd = Command::new(sparta_bin());
    cmd.arg("catalog")
        .arg("--storage")
        .arg(storage)
        .args(["--upstream", "http://127.0.0.1:9"]);
    if rebuild {
        cmd.arg("--rebuild");
    }
    let out = cmd.output().expect("run sparta catalog");
    assert!(
        out.status.success(),
        "sparta catalog failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "line {l:?}");
            (f[0].to_owned(), f[1].to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_and_index_list_stored_versions_across_restarts_replicas_and_rebuilds() {
    let _ = fixture();
    let module = scratch_module();
    let sparta = Sparta::for_fixture(&[]).await;
    let (status, body) = get(&format!("{}/catalog", sparta.url)).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"modules": [], "next": ""})
    );

    fetch_version(&sparta, &module, "v1.0.0").await;
    fetch_version(&sparta, &module, "v1.1.0").await;
    fetch_version(&sparta, "fixture.test/Upper/Case", "v1.0.0").await;
    fetch_version(&sparta, "fixture.test/incompat", "v2.0.0+incompatible").await;
    let want = pairs(&[
        (&module, "v1.0.0"),
        (&module, "v1.1.0"),
        ("fixture.test/Upper/Case", "v1.0.0"),
        ("fixture.test/incompat", "v2.0.0+incompatible"),
    ]);
    for page in [1, 3, 1000] {
        let got = catalog(&sparta, page).await;
        assert_eq!(got.len(), want.len(), "each version once, page {page}");
        assert_eq!(
            got.into_iter().collect::<BTreeSet<_>>(),
            want,
            "page {page}"
        );
    }

    // The index: oldest first, `since` inclusive, `limit` honoured.
    let (status, body) = get(&format!("{}/index", sparta.url)).await;
    assert_eq!(status, 200);
    let lines = parse_json_stream(&body);
    assert_eq!(lines.len(), 4, "{body}");
    let stamps: Vec<&str> = lines
        .iter()
        .map(|l| l["Timestamp"].as_str().expect("Timestamp"))
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    let got: BTreeSet<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["Path"].as_str().unwrap().to_owned(),
                l["Version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, want);
    let (_, later) = get(&format!("{}/index?since={}", sparta.url, stamps[2])).await;
    assert_eq!(parse_json_stream(&later), lines[2..].to_vec());
    let (_, one) = get(&format!("{}/index?limit=1", sparta.url)).await;
    assert_eq!(parse_json_stream(&one), lines[..1].to_vec());

    // Bad parameters are the client's fault: 400 with a reason.
    for bad in [
        "/index?since=yesterday",
        "/index?limit=-1",
        "/catalog?pagesize=0",
        "/catalog?pagesize=lots",
    ] {
        let (status, body) = get(&format!("{}{bad}", sparta.url)).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(!body.is_empty());
    }

    // A second replica on the same store sees the first one's versions,
    // and a version stored by the first later.
    let replica = Sparta::start(SpartaOptions::fixture().with_dir(sparta.dir.clone())).await;
    assert_eq!(
        catalog(&replica, 1000)
            .await
            .into_iter()
            .collect::<BTreeSet<_>>(),
        want
    );
    fetch_version(&sparta, "fixture.test/graph/c", "v1.0.0").await;
    let mut want = want;
    want.insert(("fixture.test/graph/c".into(), "v1.0.0".into()));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got: BTreeSet<_> = catalog(&replica, 1000).await.into_iter().collect();
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica never saw the new version: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(replica);

    // A restart (empty memory) reads it back from the store.
    let storage = sparta.storage.clone();
    let sparta = sparta.restart(&[]).await;
    assert_eq!(
        catalog(&sparta, 2)
            .await
            .into_iter()
            .collect::<BTreeSet<_>>(),
        want
    );
    // Stopped, the store stays (the directory lives while a handle does).
    let _dir = sparta.dir.clone();
    drop(sparta);

    // The command line prints the same; with the catalog's objects gone, a
    // rebuild from the store's listing finds every version again.
    assert_eq!(cli_catalog(&storage, false), want);
    std::fs::remove_dir_all(storage.join("_sparta/catalog")).expect("remove catalog");
    assert!(cli_catalog(&storage, false).is_empty());
    assert_eq!(cli_catalog(&storage, true), want);
    assert_eq!(cli_catalog(&storage, false), want, "the rebuild was stored");
}

/// Two replicas on one S3 bucket (the real S3-compatible server): each
/// sees what the other stored, through the catalog's write-once segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_bucket_share_the_catalog() {
    let Some((endpoint, bucket, access, secret)) = crate::aws_env::server() else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let storage = format!("s3://{bucket}/e2e-catalog/{}-{nanos}", std::process::id());
    let endpoint = format!("--s3-endpoint={endpoint}");
    let args = [
        "--storage",
        storage.as_str(),
        endpoint.as_str(),
        "--s3-path-style",
        "--s3-allow-http",
        "--s3-region=us-east-1",
    ];
    let start = || {
        let mut opts = SpartaOptions::fixture().args(&args);
        opts.env = vec![
            ("AWS_ACCESS_KEY_ID".into(), access.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), secret.clone()),
        ];
        Sparta::start(opts)
    };
    let a = start().await;
    let b = start().await;
    let (ma, mb) = (scratch_module(), scratch_module());
    fetch_version(&a, &ma, "v1.0.0").await;
    fetch_version(&b, &mb, "v1.1.0").await;
    let want = pairs(&[(&ma, "v1.0.0"), (&mb, "v1.1.0")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    for replica in [&a, &b] {
        loop {
            let got: BTreeSet<_> = catalog(replica, 1).await.into_iter().collect();
            if got == want {
                break;
            }
            assert!(Instant::now() < deadline, "{}: {got:?}", replica.url);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
