//! `@latest` from source by the go command's rule: the `retract`
//! directives in the go.mod of the latest version leave out the versions
//! they name; when every tag is retracted, the default branch's
//! pseudo-version, on no retracted base. The go command's own
//! `GOPROXY=direct` answer is the reference each time.

use sparta_e2e::git::GitServer;
use sparta_e2e::{Sparta, http_client};

use crate::direct::{go_direct, sparta_for};

/// Sparta's `@latest` answer: (status, Version).
async fn latest(sparta: &Sparta, module: &str) -> (u16, String) {
    let resp = http_client()
        .get(format!("{}/{module}/@latest", sparta.url))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    (status, body["Version"].as_str().unwrap_or("").to_owned())
}

/// What `go list -m module@latest` resolves to with `GOPROXY=direct`.
async fn direct_latest(git: &GitServer, module: &str) -> String {
    let go = go_direct(git, false);
    let out = go
        .ok(
            &go.work(),
            &["list", "-m", "-json", &format!("{module}@latest")],
        )
        .await;
    let v: serde_json::Value = serde_json::from_str(&out).expect("go list JSON");
    v["Version"].as_str().expect("Version").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_latest_leaves_out_retracted_versions() {
    let git = GitServer::start();
    let mut repo = git.repo("retracted");
    let m = repo.module();
    let code = "package retracted\n\nfunc Name() string { return \"r\" }\n";
    repo.write("go.mod", &format!("module {m}\n\ngo 1.21\n"))
        .write("r.go", code);
    repo.commit("first");
    repo.tag("v1.0.0");
    repo.write("r.go", &format!("{code}// two\n"));
    repo.commit("second");
    repo.tag("v1.1.0");
    // v1.2.0 retracts itself and v1.1.0: latest is v1.0.0.
    repo.write(
        "go.mod",
        &format!(
            "module {m}\n\ngo 1.21\n\nretract (\n\tv1.2.0 // published by mistake\n\tv1.1.0\n)\n"
        ),
    );
    repo.commit("retract");
    repo.tag("v1.2.0");
    repo.push();
    // Answers that change (list, latest) are not remembered between the steps.
    let sparta = sparta_for(&git, &["--list-ttl", "1ms"]).await;
    assert_eq!(
        direct_latest(&git, &m).await,
        "v1.0.0",
        "the go command's rule"
    );
    assert_eq!(latest(&sparta, &m).await, (200, "v1.0.0".to_owned()));

    // Every tag retracted (a range): the default branch's pseudo-version,
    // as the go command picks; a retracted tag is no pseudo-version base.
    repo.write(
        "go.mod",
        &format!("module {m}\n\ngo 1.21\n\nretract [v1.0.0, v1.3.0]\n"),
    );
    repo.commit("retract all");
    repo.tag("v1.3.0");
    repo.write("r.go", &format!("{code}// after\n"));
    repo.commit("after the last tag");
    repo.push();
    let want = direct_latest(&git, &m).await;
    assert!(want.starts_with("v0.0.0-"), "direct resolves {want}");
    assert_eq!(latest(&sparta, &m).await, (200, want));
}
