//! `/version` describes the binary that answers it, and `sparta config`
//! shows where each setting came from.

use std::process::Command;

use sparta_e2e::{Sparta, http_client, sparta_bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_matches_the_binary() {
    let sparta = Sparta::for_fixture(&[]).await;
    let resp = http_client()
        .get(format!("{}/version", sparta.url))
        .send()
        .await
        .expect("GET /version");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let v: serde_json::Value = resp.json().await.expect("json");
    let field = |k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("no {k} in {v}"))
            .to_owned()
    };

    let out = Command::new(sparta_bin())
        .arg("--version")
        .output()
        .unwrap();
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        printed.trim(),
        format!(
            "sparta {} ({}, {})",
            field("version"),
            field("commit"),
            field("build_date")
        ),
    );
    let commit = field("commit");
    assert!(
        commit == "unknown"
            || (commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{commit}"
    );
    assert!(field("build_date").ends_with('Z'), "{v}");
    let rustc = Command::new("rustc").arg("--version").output().unwrap();
    assert_eq!(
        field("rustc"),
        String::from_utf8(rustc.stdout).unwrap().trim()
    );
}

#[test]
fn config_prints_sources_and_refuses_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sparta.toml");
    std::fs::write(&file, "cache_size = \"8MiB\"\nlist_ttl = \"5m\"\n").unwrap();
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(sparta_bin());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("SPARTA_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("config")
            .arg("--config")
            .arg(&file)
            .args(["--upstream", "http://127.0.0.1:1", "--storage", "s3://b/p"])
            .args(["--s3-endpoint", "http://me:s3cret@127.0.0.1:9"])
            .args(["--spool-dir", dir.path().join("spool").to_str().unwrap()])
            .args(extra)
            .env("SPARTA_LIST_TTL", "90s")
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .contains("s3_endpoint = \"http://me:<redacted>@127.0.0.1:9/\"  # flag --s3-endpoint"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret"), "{stdout}");
    assert!(
        stdout.contains("list_ttl = \"1m 30s\"  # env SPARTA_LIST_TTL"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "cache_size = \"8.0 MiB\"  # file {}",
            file.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("listen = \"0.0.0.0:3000\"  # default"),
        "{stdout}"
    );

    std::fs::write(&file, "cache_sise = \"8MiB\"\n").unwrap();
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cache_sise") && stderr.contains("sparta.toml"),
        "{stderr}"
    );
}
