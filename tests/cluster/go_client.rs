//! The real `go` command through Sparta on S3 storage.

use std::time::Duration;

use sparta_e2e::{GoEnv, fixture, version_path};

use crate::support::{Replica, ReplicaSpec, S3, S3Env, serial, unique_prefix};

fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_client_on_s3() {
    let _serial = serial().await;
    let s3env = S3Env::from_env();
    let fx = fixture();
    let prefix = unique_prefix("go-client");
    let sparta = Replica::start(ReplicaSpec::s3(
        "go",
        &s3env,
        &s3env.endpoint,
        &prefix,
        &fx.url,
    ))
    .await;
    let sums = {
        let resp = sparta_e2e::http_client()
            .get(format!("{}/_fixture/sums", fx.url))
            .send()
            .await
            .expect("fixture sums");
        sparta_e2e::Sums::parse(&resp.text().await.expect("sums"))
    };
    let go = GoEnv::new(&sparta.url);

    let targets = [
        ("fixture.test/large", "v1.0.0"),
        ("fixture.test/Upper/Case", "v1.0.0"),
        ("fixture.test/incompat", "v2.0.0+incompatible"),
        ("fixture.test/graph/c", "v1.3.0-rc.1"),
    ];
    let args: Vec<String> = targets.iter().map(|(m, v)| format!("{m}@{v}")).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    let got = go.download(&args).await;
    eprintln!(
        "go mod download of {} modules: {:?}",
        targets.len(),
        started.elapsed()
    );
    assert_eq!(got.len(), targets.len(), "go mod download printed {got:?}");
    for (m, v) in targets {
        let entry = got
            .iter()
            .find(|e| e["Path"] == m && e["Version"] == v)
            .unwrap_or_else(|| panic!("no download result for {m}@{v}: {got:?}"));
        let (zip_sum, mod_sum) = sums.get(m, v);
        assert_eq!(entry["Sum"], zip_sum.as_str(), "zip hash of {m}@{v}");
        assert_eq!(
            entry["GoModSum"],
            mod_sum.as_str(),
            "go.mod hash of {m}@{v}"
        );
    }

    // A program importing fixture modules builds and runs.
    let dir = go.work().join("app");
    write(
        &dir.join("go.mod"),
        "module example.test/app\n\ngo 1.21\n\nrequire (\n\
         \tfixture.test/graph/a v1.2.0\n\
         \tfixture.test/Upper/Case v1.1.0\n\
         \tfixture.test/large v1.0.0\n)\n",
    );
    write(
        &dir.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\n\tupcase \"fixture.test/Upper/Case\"\n\
         \t\"fixture.test/graph/a\"\n\t_ \"fixture.test/large\"\n)\n\n\
         func main() {\n\tfmt.Println(a.Describe())\n\tfmt.Println(upcase.Hello())\n}\n",
    );
    go.ok(&dir, &["mod", "tidy"]).await;
    go.ok(&dir, &["build", "-o", "app", "."]).await;
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(dir.join("app")).output(),
    )
    .await
    .expect("program timed out")
    .expect("run program");
    assert!(out.status.success(), "program failed: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "a v1.2.0 -> b v1.1.0 -> c v1.2.0\nUpper/Case v1.1.0\n"
    );
    // go.sum written by the go command matches the fixture's hashes.
    let go_sum = std::fs::read_to_string(dir.join("go.sum")).expect("go.sum");
    let written = sparta_e2e::Sums::parse(&go_sum);
    for (m, v) in [
        ("fixture.test/graph/a", "v1.2.0"),
        ("fixture.test/graph/b", "v1.1.0"),
        ("fixture.test/graph/c", "v1.2.0"),
        ("fixture.test/Upper/Case", "v1.1.0"),
        ("fixture.test/large", "v1.0.0"),
    ] {
        assert_eq!(written.get(m, v), sums.get(m, v), "go.sum line for {m}@{v}");
    }

    // Everything went through the bucket: the zips are stored there.
    let keys = S3::new(&s3env).list(&format!("{prefix}/")).await;
    for (m, v) in [
        ("fixture.test/large", "v1.0.0"),
        ("fixture.test/graph/a", "v1.2.0"),
        ("fixture.test/Upper/Case", "v1.1.0"),
    ] {
        let key = format!("{prefix}{}", version_path(m, v, "zip"));
        assert!(keys.contains(&key), "{key} not in the bucket: {keys:?}");
    }
}
