//! Access control with the real go command: Sparta's own TLS, Basic auth
//! from a netrc, a GOAUTH command with a bearer token, module rules,
//! network lists, hostile Authorization headers and the audit log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use sparta_e2e::tls::TestCa;
use sparta_e2e::{GoEnv, Sparta, SpartaOptions, http_client, version_path};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// The hex SHA-256 of a token, as a token file holds it.
fn token_hash(token: &str) -> String {
    sparta_e2e::sha256_hex(token.as_bytes())
}

/// Credential files: alice (bcrypt) and the token `ci` in a token file.
struct Creds {
    htpasswd: PathBuf,
    tokens: PathBuf,
}

const ALICE_PASSWORD: &str = "wonderland-7";
const CI_TOKEN: &str = "sparta-ci-token-0123456789";

fn creds(dir: &Path) -> Creds {
    let htpasswd = dir.join("htpasswd");
    let hash = bcrypt::hash(ALICE_PASSWORD, 5).expect("bcrypt");
    write(
        &htpasswd,
        &format!("alice:{}\n", hash.replacen("$2b$", "$2y$", 1)),
    );
    let tokens = dir.join("tokens");
    write(&tokens, &format!("ci:{}\n", token_hash(CI_TOKEN)));
    Creds { htpasswd, tokens }
}

/// Sparta over TLS with the CA's certificate and extra flags.
async fn tls_sparta(ca: &TestCa, extra: &[&str]) -> Sparta {
    let mut args = vec![
        "--tls-cert",
        ca.cert.to_str().expect("utf-8"),
        "--tls-key",
        ca.key.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    Sparta::start(SpartaOptions::fixture().args(&args)).await
}

fn https(sparta: &Sparta) -> String {
    format!("https://127.0.0.1:{}", sparta.addr.port())
}

fn go_for(sparta: &Sparta, ca: &TestCa) -> GoEnv {
    let mut go = GoEnv::new(&https(sparta));
    go.set("SSL_CERT_FILE", ca.ca_pem.to_str().expect("utf-8"));
    go
}

/// A program importing fixture modules, tidied and built.
async fn tidy_and_build(go: &GoEnv) {
    let dir = go.work().join("app");
    write(
        &dir.join("go.mod"),
        "module example.test/app\n\ngo 1.21\n\nrequire fixture.test/graph/a v1.2.0\n",
    );
    write(
        &dir.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"fixture.test/graph/a\"\n)\n\nfunc main() { fmt.Println(a.Describe()) }\n",
    );
    go.ok(&dir, &["mod", "tidy"]).await;
    go.ok(&dir, &["build", "-o", "app", "."]).await;
    assert!(dir.join("app").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_downloads_over_sparta_tls_and_a_cert_swap_is_picked_up() {
    let ca = TestCa::new();
    let sparta = tls_sparta(&ca, &[]).await;
    let go = go_for(&sparta, &ca);
    let got = go.download(&["fixture.test/graph/c@v1.0.0"]).await;
    assert_eq!(got[0]["Version"], "v1.0.0");

    let client = ca.client();
    let first = client
        .get(format!("{}/healthz", https(&sparta)))
        .send()
        .await
        .expect("https");
    assert_eq!(first.status(), 200);
    assert_eq!(first.version(), reqwest::Version::HTTP_2, "h2 over ALPN");
    // Plain HTTP on the TLS port gets no answer.
    assert!(
        http_client()
            .get(format!("http://127.0.0.1:{}/healthz", sparta.addr.port()))
            .send()
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
    );

    let new_der = ca.issue("second");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        // A new client each time: a pooled connection keeps its old handshake.
        let resp = ca
            .client()
            .get(format!("{}/healthz", https(&sparta)))
            .send()
            .await
            .expect("https after swap");
        let served = resp
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|i| i.peer_certificate())
            .map(<[u8]>::to_vec);
        if served.as_deref() == Some(new_der.as_slice()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate was not served within 30s:\n{}",
            sparta.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The go command still trusts it (same CA) and keeps working.
    let got = go.download(&["fixture.test/graph/c@v1.1.0"]).await;
    assert_eq!(got[0]["Version"], "v1.1.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netrc_basic_auth_downloads_tidies_and_builds() {
    let ca = TestCa::new();
    let c = creds(ca.dir());
    let sparta = tls_sparta(&ca, &["--htpasswd", c.htpasswd.to_str().unwrap()]).await;

    // No credentials: the go command fails and shows our 401 text.
    let bare = go_for(&sparta, &ca);
    let out = bare
        .run(
            &bare.work(),
            &["mod", "download", "fixture.test/graph/c@v1.0.0"],
        )
        .await;
    assert!(!out.ok, "downloaded without credentials");
    assert!(
        out.stderr.contains("401 Unauthorized") && out.stderr.contains("authentication required"),
        "stderr:\n{}",
        out.stderr
    );

    // A wrong password is refused too.
    let mut wrong = go_for(&sparta, &ca);
    let netrc = wrong.work().join("netrc-wrong");
    write(
        &netrc,
        &format!(
            "machine 127.0.0.1:{} login alice password nope\n",
            sparta.addr.port()
        ),
    );
    wrong.set("NETRC", netrc.to_str().unwrap());
    let out = wrong
        .run(
            &wrong.work(),
            &["mod", "download", "fixture.test/graph/c@v1.0.0"],
        )
        .await;
    assert!(
        !out.ok && out.stderr.contains("invalid credentials"),
        "stderr:\n{}",
        out.stderr
    );

    let mut go = go_for(&sparta, &ca);
    let netrc = go.work().join("netrc");
    write(
        &netrc,
        &format!(
            "machine 127.0.0.1:{} login alice password {ALICE_PASSWORD}\n",
            sparta.addr.port()
        ),
    );
    go.set("NETRC", netrc.to_str().unwrap());
    let got = go.download(&["fixture.test/graph/c@v1.0.0"]).await;
    assert_eq!(got[0]["Version"], "v1.0.0");
    tidy_and_build(&go).await;
    assert!(
        !sparta.log().contains(ALICE_PASSWORD),
        "a password reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goauth_command_with_a_bearer_token() {
    let ca = TestCa::new();
    let c = creds(ca.dir());
    let sparta = tls_sparta(&ca, &["--auth-tokens", c.tokens.to_str().unwrap()]).await;
    let script = |name: &str, token: &str| -> PathBuf {
        let path = ca.dir().join(name);
        write(
            &path,
            &format!(
                "#!/bin/sh\ncat >/dev/null 2>&1 || true\nprintf '%s\\n\\nAuthorization: Bearer %s\\n\\n' '{}' '{token}'\n",
                https(&sparta)
            ),
        );
        let mut perm = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&path, perm).unwrap();
        path
    };
    let mut go = go_for(&sparta, &ca);
    go.set("GOAUTH", script("goauth-good", CI_TOKEN).to_str().unwrap());
    tidy_and_build(&go).await;

    let mut bad = go_for(&sparta, &ca);
    bad.set(
        "GOAUTH",
        script("goauth-bad", "not-the-token").to_str().unwrap(),
    );
    let out = bad
        .run(
            &bad.work(),
            &["mod", "download", "fixture.test/graph/c@v1.0.0"],
        )
        .await;
    assert!(!out.ok, "a wrong token downloaded");
    assert!(
        out.stderr.contains("invalid credentials"),
        "stderr:\n{}",
        out.stderr
    );
    assert!(!sparta.log().contains(CI_TOKEN), "a token reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_authorization_headers_get_4xx_and_leak_nothing() {
    let dir = tempfile::TempDir::new().unwrap();
    let c = creds(dir.path());
    let audit = dir.path().join("audit.log");
    let mut sparta = Sparta::for_fixture(&[
        "--htpasswd",
        c.htpasswd.to_str().unwrap(),
        "--auth-tokens",
        c.tokens.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ])
    .await;
    let client = http_client();
    let url = format!(
        "{}{}",
        sparta.url,
        version_path("fixture.test/graph/c", "v1.0.0", "info")
    );
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secret = "TOPSECRET-do-not-log";
    let cases: Vec<String> = vec![
        format!("Bearer {}", "x".repeat(6000)),
        format!("Basic {}", b64(&format!("alice:{}", "y".repeat(5000)))),
        "Basic !!!not-base64!!!".into(),
        format!("Basic {}", b64("no-colon")),
        format!("Basic {}", b64(&format!("eve\r\nX-Admin: true:{secret}"))),
        format!("Basic {}", b64(&format!("eve\u{0}:{secret}"))),
        format!("Basic {}", b64(&format!("alice:{secret}"))),
        format!("Digest username=\"alice\", response=\"{secret}\""),
        format!("Negotiate {secret}"),
        "Bearer".into(),
        "".into(),
        format!("Bearer {secret}"),
    ];
    for value in &cases {
        let resp = client
            .get(&url)
            .header("authorization", value.as_str())
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        assert!((400..500).contains(&status), "{status} for {:.40}", value);
        let body = resp.text().await.unwrap_or_default();
        assert!(!body.contains(secret), "the body echoes a secret: {body}");
    }
    // Raw bytes a client library would refuse to send.
    let raw = sparta_e2e::raw_request(
        sparta.addr,
        "GET",
        format!(
            "{} HTTP/1.1\r\nAuthorization: Basic \u{7f}\u{1}{secret}\r\nX-Pad: 1",
            version_path("fixture.test/graph/c", "v1.0.0", "info")
        )
        .as_bytes(),
    )
    .await;
    assert!((400..500).contains(&raw.status), "raw: {}", raw.head);

    // Thousands of distinct bad tokens: each refused, none remembered.
    let bad = futures::stream::iter(0..3000)
        .map(|i| {
            let client = client.clone();
            let url = url.clone();
            async move {
                client
                    .get(&url)
                    .bearer_auth(format!("bad-token-{i}-{secret}"))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<u16>>()
        .await;
    assert!(
        bad.iter().all(|s| *s == 401),
        "not all 401: {:?}",
        &bad[..10]
    );

    // The good credentials still work, and Sparta is alive.
    let ok = client
        .get(&url)
        .bearer_auth(CI_TOKEN)
        .send()
        .await
        .expect("good token");
    assert_eq!(ok.status(), 200);
    assert!(sparta.alive().await, "sparta died:\n{}", sparta.log());
    let metrics = client
        .get(format!("{}/metrics", sparta.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sparta_access_decisions_total{decision=\"bad_credentials\"}"),
        "metrics:\n{metrics}"
    );
    // Every refusal and the good request are audited; wait for them all
    // (and for the request log lines) before looking for secrets.
    let n = cases.len() + bad.len() + 1;
    let audit_text = wait_lines(&audit, n).await.join("\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let log = loop {
        let log = sparta.log();
        if log.lines().filter(|l| l.contains("request")).count() >= n
            || std::time::Instant::now() > deadline
        {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for text in [&log, &audit_text] {
        assert!(!text.contains(secret), "a secret reached a log");
        assert!(!text.contains(CI_TOKEN) && !text.contains(ALICE_PASSWORD));
    }
    assert!(
        audit_text
            .lines()
            .any(|l| l.contains("\"decision\":\"bad_credentials\""))
    );
    assert!(
        audit_text
            .lines()
            .any(|l| l.contains("\"principal\":\"token:ci\""))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_excluded_module_is_never_fetched_and_go_get_says_why() {
    let fixture = sparta_e2e::fixture();
    let module = sparta_e2e::scratch_module();
    let rule = format!("exclude {module} withdrawn: compromised maintainer account");
    let ranged = "exclude fixture.test/graph/c@<v1.2.0 CVE-2026-0001: use v1.2.0 or later";
    let sparta = Sparta::for_fixture(&["--module-rule", &rule, "--module-rule", ranged]).await;
    let go = GoEnv::new(&sparta.url);
    let dir = go.work().join("getter");
    write(
        &dir.join("go.mod"),
        "module example.test/getter\n\ngo 1.21\n",
    );
    let out = go.run(&dir, &["get", &format!("{module}@v1.0.0")]).await;
    assert!(!out.ok, "excluded module fetched");
    assert!(
        out.stderr.contains("403 Forbidden")
            && out.stderr.contains("compromised maintainer account"),
        "stderr:\n{}",
        out.stderr
    );
    let out = go.run(&dir, &["get", &format!("{module}@latest")]).await;
    assert!(
        !out.ok && out.stderr.contains("compromised"),
        "stderr:\n{}",
        out.stderr
    );
    let stats = fixture.stats(&format!("/{module}/")).await;
    assert!(
        stats.values().all(|n| *n == 0),
        "the fixture was asked: {stats:?}"
    );

    // The ranged rule: v1.1.0 refused with its reason, v1.2.0 served.
    let out = go.run(&dir, &["get", "fixture.test/graph/c@v1.1.0"]).await;
    assert!(
        !out.ok && out.stderr.contains("CVE-2026-0001"),
        "stderr:\n{}",
        out.stderr
    );
    go.ok(&dir, &["get", "fixture.test/graph/c@v1.2.0"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_lists_and_forwarded_addresses() {
    let client = http_client();
    let info = version_path("fixture.test/graph/c", "v1.0.0", "info");

    // Deny wins inside the allowed range.
    let denied = Sparta::for_fixture(&["--allow", "127.0.0.0/8", "--deny", "127.0.0.1/32"]).await;
    let r = client
        .get(format!("{}{info}", denied.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("not allowed"));
    let r = client
        .get(format!("{}/healthz", denied.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "probes stay open");
    drop(denied);

    // Not in the allow list; a spoofed X-Forwarded-For from a direct
    // (untrusted) client changes nothing.
    let only10 = Sparta::for_fixture(&["--allow", "10.0.0.0/8,fd00::/8"]).await;
    let r = client
        .get(format!("{}{info}", only10.url))
        .header("x-forwarded-for", "10.1.2.3")
        .header("forwarded", "for=10.1.2.3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a spoofed header let a client in");
    drop(only10);

    // Behind a trusted proxy (loopback here), the forwarded address counts
    // and the audit log shows it.
    let dir = tempfile::TempDir::new().unwrap();
    let audit = dir.path().join("audit.log");
    let behind = Sparta::for_fixture(&[
        "--trusted-proxies",
        "127.0.0.1",
        "--allow",
        "10.0.0.0/8",
        "--deny",
        "10.9.0.0/16",
        "--audit-log",
        audit.to_str().unwrap(),
    ])
    .await;
    let send = |xff: &'static str| {
        client
            .get(format!("{}{info}", behind.url))
            .header("x-forwarded-for", xff)
            .send()
    };
    assert_eq!(send("6.6.6.6, 10.1.2.3").await.unwrap().status(), 200);
    assert_eq!(send("10.1.2.3, 10.9.0.5").await.unwrap().status(), 403);
    assert_eq!(send("192.0.2.1").await.unwrap().status(), 403);
    // Lines from different connections may reach the file in any order
    // (each worker thread buffers its own).
    let lines = wait_lines(&audit, 3).await;
    let served = lines
        .iter()
        .find(|l| l.contains("\"client\":\"10.1.2.3\""))
        .unwrap_or_else(|| panic!("no line for 10.1.2.3: {lines:?}"));
    assert!(served.contains("\"tier\":"), "{served}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"client\":\"10.9.0.5\"") && l.contains("denied_address")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn audit_lines_name_the_tier_that_served_each_file() {
    let dir = tempfile::TempDir::new().unwrap();
    let audit = dir.path().join("audit.log");
    let sparta = Sparta::for_fixture(&["--audit-log", audit.to_str().unwrap()]).await;
    let client = http_client();
    // Cold (fetched on a task of the flight's own: the tier must still
    // reach the request that started it), then warm.
    let files = ["info", "mod", "zip"];
    for _ in 0..2 {
        for file in files {
            let url = format!(
                "{}{}",
                sparta.url,
                version_path("fixture.test/graph/b", "v1.0.0", file)
            );
            let r = client.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
        }
    }
    let lines = wait_lines(&audit, 6).await;
    let tiers: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["file"].as_str().unwrap().to_owned(),
                v["tier"].as_str().unwrap_or("none").to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("info", "upstream"),
        ("mod", "upstream"),
        ("zip", "upstream"),
        ("info", "memory"),
        ("mod", "memory"),
    ]
    .iter()
    .map(|(f, t)| (f.to_string(), t.to_string()))
    .collect();
    assert_eq!(tiers[..5], want[..], "{lines:#?}");
    // A fetched zip is served while it is stored: a second request in that
    // time joins the same fetch (upstream), after it the store answers.
    assert_eq!(tiers[5].0, "zip");
    assert!(
        ["storage", "upstream"].contains(&tiers[5].1.as_str()),
        "{lines:#?}"
    );
}

/// Waits (bounded) until the audit file holds `n` lines; returns them.
async fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "audit log has {} of {n} lines",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_keeps_every_line_of_a_burst() {
    let dir = tempfile::TempDir::new().unwrap();
    let c = creds(dir.path());
    let audit = dir.path().join("audit.log");
    let sparta = Sparta::for_fixture(&[
        "--auth-tokens",
        c.tokens.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ])
    .await;
    let client = http_client();
    let paths: Vec<String> = ["v1.0.0", "v1.1.0", "v1.2.0"]
        .iter()
        .flat_map(|v| {
            ["info", "mod", "zip"].map(|ext| version_path("fixture.test/graph/c", v, ext))
        })
        .collect();
    const N: usize = 2000;
    let statuses = futures::stream::iter(0..N)
        .map(|i| {
            let client = client.clone();
            let url = format!("{}{}", sparta.url, paths[i % paths.len()]);
            async move {
                client
                    .get(&url)
                    .bearer_auth(CI_TOKEN)
                    .header("x-request-id", format!("burst-{i}"))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<u16>>()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{:?}", &statuses[..10]);
    let lines = wait_lines(&audit, N).await;
    assert_eq!(lines.len(), N, "extra audit lines");
    let mut ids: Vec<usize> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            assert_eq!(v["principal"], "token:ci");
            assert_eq!(v["status"], 200);
            assert_eq!(v["module"], "fixture.test/graph/c");
            assert!(
                ["memory", "storage", "upstream", "joined"].contains(&v["tier"].as_str().unwrap())
            );
            assert!(v["bytes"].as_u64().unwrap() > 0);
            v["request_id"].as_str().unwrap()["burst-".len()..]
                .parse()
                .unwrap()
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..N).collect::<Vec<_>>());
    assert!(!std::fs::read_to_string(&audit).unwrap().contains(CI_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_to_the_admin_address() {
    let dir = tempfile::TempDir::new().unwrap();
    let c = creds(dir.path());
    let admin = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let admin_s = admin.to_string();
    let sparta = Sparta::for_fixture(&[
        "--htpasswd",
        c.htpasswd.to_str().unwrap(),
        "--admin-listen",
        &admin_s,
    ])
    .await;
    let client = http_client();
    let main = client
        .get(format!("{}/metrics", sparta.url))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 404, "metrics still on the main address");
    let r = client
        .get(format!("{}/healthz", sparta.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client.get(format!("{}/", sparta.url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers().get("www-authenticate").unwrap(),
        "Basic realm=\"sparta\""
    );
    let m = client
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 200);
    let text = m.text().await.unwrap();
    assert!(
        text.contains("sparta_access_decisions_total{decision=\"unauthenticated\"} 1"),
        "{text}"
    );
    let r = client
        .get(format!(
            "http://{admin}{}",
            version_path("fixture.test/graph/c", "v1.0.0", "info")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the admin address serves no modules");
}
