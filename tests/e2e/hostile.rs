//! Hostile request paths and methods: always a 4xx, never a 5xx, Sparta stays
//! up, and nothing outside its storage directory is read or written.

use sparta_e2e::{Sparta, fixture, http_client, raw_request};

/// Lists every file under a directory with its content (outside the parts
/// Sparta owns), to prove nothing else was touched.
fn snapshot(dir: &std::path::Path, skip: &[&std::path::Path]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if skip.iter().any(|s| p.starts_with(s)) {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.display().to_string(),
                    std::fs::read(&p).unwrap_or_default(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_are_4xx_and_harmless() {
    let mut sparta = Sparta::for_fixture(&[]).await;
    let root = sparta.dir.path().to_path_buf();
    // Planted beside and above the store: a traversal that reaches them
    // would serve the marker.
    let marker = "SPARTA-E2E-SECRET-6f1c0d";
    std::fs::write(root.join("secret.txt"), marker).expect("plant");
    std::fs::create_dir_all(root.join("evil/@v")).expect("plant dir");
    for f in ["list", "v1.0.0.info", "v1.0.0.mod", "v1.0.0.zip"] {
        std::fs::write(root.join("evil/@v").join(f), marker).expect("plant");
    }
    let log_path = root.join(
        std::fs::read_dir(&root)
            .expect("read_dir")
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("sparta-"))
            .expect("log file")
            .file_name(),
    );
    let spool = root.join("spool");
    let store = sparta.storage.clone();
    let skip = [store.as_path(), spool.as_path(), log_path.as_path()];
    let before = snapshot(&root, &skip);

    let long_elem = "a".repeat(10_000);
    let long_path = format!("/fixture.test/{long_elem}/@v/list");
    let long_version = format!("/fixture.test/graph/c/@v/v1.0.0-{long_elem}.info");
    let long_module = format!("/fixture.test/{}/@latest", "x/".repeat(5_000));
    // Cases the go protocol rules decide: the answer must be 404 or 410.
    let not_found: Vec<&[u8]> = vec![
        b"/..",
        b"/../secret.txt",
        b"/../../../../../../etc/passwd",
        b"/fixture.test/../../secret.txt",
        b"/fixture.test/x/@v/../../../secret.txt",
        b"/%2e%2e/secret.txt",
        b"/%2e%2e/%2e%2e/secret.txt",
        b"/fixture.test/%2e%2e/%2e%2e/secret.txt",
        b"/..%2fsecret.txt",
        b"/..%2fevil/@v/list",
        b"/%2e%2e%2fevil/@v/v1.0.0.mod",
        b"/%2e%2e/evil/@v/v1.0.0.zip",
        b"/fixture.test%2f..%2f..%2fsecret.txt/@v/list",
        b"/fixture.test/graph%2fc/@v/list",
        b"/fixture.test/graph/c/@v/v1.0.0.mod%2f..%2f..%2fsecret.txt",
        b"/fixture.test/a%00b/@v/list",
        b"/fixture.test/graph/c/@v/v1.0.0.mod%00",
        b"/fixture.test/graph/c/@v/v1.0.0%00.zip",
        b"/fixture.test/!!upper/@v/list",
        b"/fixture.test/!1/@v/list",
        b"/fixture.test/upper!/@v/list",
        b"/fixture.test/!/@v/list",
        b"/fixture.test/%21%21upper/@v/list",
        b"/fixture.test/Upper/Case/@v/list",
        b"/fixture.test/Upper/Case/@v/v1.0.0.zip",
        b"/Fixture.test/x/@v/list",
        b"/fixture.test/graph/c/@v/V1.0.0.info",
        b"/fixture.test/graph/c/@v/v1.2.zip",
        b"/fixture.test/graph/c/@v/v1.2.mod",
        b"/fixture.test/graph/c/@v/v1.0.0+meta.info",
        b"/fixture.test/graph/c/@v/v1.0.0+meta.zip",
        b"/fixture.test/graph/c/@v/v1.0.0+meta.mod",
        b"/fixture.test/graph/c/@v/v1.0.0.exe",
        b"/fixture.test/graph/c/@v/.info",
        b"/fixture.test/graph/c/@v/",
        b"/fixture.test/major/v2/@v/v1.0.0.mod",
        b"/fixture.test/major/v2/@v/v1.0.0.zip",
        b"/fixture.test/major/@v/v2.0.0.mod",
        b"/fixture.test/major/v1/@v/list",
        b"/fixture.test/con/@v/list",
        b"/fixture.test/x./@v/list",
        b"/nodot/x/@v/list",
        b"//@v/list",
        b"/@v/list",
        b"/-fixture.test/x/@v/list",
        b"/fixture.test/x%20y/@v/list",
        b"/fixture.test/x%ff/@v/list",
        b"/fixture.test/x%zz/@v/list",
        b"/fixture.test/x%5c..%5c..%5csecret.txt/@v/list",
        b"/storage/secret.txt",
        b"/fixture.test/graph/c/@v/list/../../../../secret.txt",
    ];
    // Cases the HTTP layer may refuse before any route sees them (raw bytes
    // that are not allowed in a request target, 10 kB paths): any 4xx.
    let malformed: Vec<&[u8]> = vec![
        b"/fixture.test/x y/@v/list",
        b"/fixture.test/a\0b/@v/list",
        b"/fixture.test/x\\..\\..\\secret.txt/@v/list",
        long_path.as_bytes(),
        long_version.as_bytes(),
        long_module.as_bytes(),
    ];
    let mut wrong = Vec::new();
    let cases = not_found
        .iter()
        .map(|t| (t, true))
        .chain(malformed.iter().map(|t| (t, false)));
    for (target, must_be_not_found) in cases {
        let r = raw_request(sparta.addr, "GET", target).await;
        let shown = String::from_utf8_lossy(&target[..target.len().min(80)]).into_owned();
        let ok = if must_be_not_found {
            r.status == 404 || r.status == 410
        } else {
            (400..500).contains(&r.status)
        };
        if !ok {
            wrong.push(format!("GET {shown}: {}", r.status));
        }
        if String::from_utf8_lossy(&r.body).contains(marker) {
            wrong.push(format!("GET {shown}: served the planted file"));
        }
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] {
        for target in [
            &b"/fixture.test/graph/c/@v/list"[..],
            b"/fixture.test/graph/c/@v/v1.0.0.zip",
            b"/fixture.test/graph/c/@latest",
        ] {
            let r = raw_request(sparta.addr, method, target).await;
            let want_405 = matches!(method, "POST" | "PUT" | "DELETE" | "PATCH");
            let ok = if want_405 {
                r.status == 405
            } else {
                (400..500).contains(&r.status)
            };
            if !ok {
                wrong.push(format!(
                    "{method} {}: {}",
                    String::from_utf8_lossy(target),
                    r.status
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "hostile requests answered wrongly:\n{}\n--- sparta log ---\n{}",
        wrong.join("\n"),
        sparta.log()
    );

    assert!(sparta.alive().await, "sparta died:\n{}", sparta.log());
    // A real request still works afterwards.
    let resp = http_client()
        .get(format!("{}/fixture.test/graph/c/@v/list", sparta.url))
        .send()
        .await
        .expect("list");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.expect("body"),
        String::from_utf8(fixture().truth("fixture.test/graph/c/@v/list").await).expect("utf8")
    );
    assert_eq!(
        before,
        snapshot(&root, &skip),
        "files outside the store changed"
    );
    let stored = sparta.stored();
    assert!(
        stored
            .keys()
            .all(|k| !k.contains("..") && !k.contains("secret")),
        "odd keys in storage: {stored:?}"
    );
}
