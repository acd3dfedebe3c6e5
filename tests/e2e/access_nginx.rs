//! Debian's nginx in front of Sparta with deploy/nginx/sparta.conf: the go
//! command builds through it over TLS, nginx's deny holds, and Sparta's
//! audit log shows the client address nginx passed, while a spoofed
//! X-Forwarded-For sent straight to Sparta is ignored.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sparta_e2e::tls::TestCa;
use sparta_e2e::{GoEnv, Sparta, version_path};

/// A running nginx, stopped on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

fn nginx_bin() -> PathBuf {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!("nginx is not installed: run `bash scripts/install-nginx.sh` (make tools)");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Nginx {
    /// Renders the deployment's site file for loopback and starts nginx.
    async fn start(ca: &TestCa, upstream: SocketAddr, allow: &[&str]) -> Nginx {
        let dir = ca.dir().join("nginx");
        std::fs::create_dir_all(dir.join("tmp")).expect("mkdir");
        let port = free_port();
        let site =
            std::fs::read_to_string(sparta_e2e::workspace_root().join("deploy/nginx/sparta.conf"))
                .expect("deploy/nginx/sparta.conf");
        let allow: String = allow.iter().map(|a| format!("allow {a}; ")).collect();
        let site = site
            .replace("@LISTEN@", &format!("127.0.0.1:{port}"))
            .replace("@CERT@", ca.cert.to_str().unwrap())
            .replace("@KEY@", ca.key.to_str().unwrap())
            .replace("@UPSTREAM@", &upstream.to_string())
            .replace("@ALLOW@", &allow);
        let unfilled = site
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains('@'));
        assert!(!unfilled, "an unfilled placeholder:\n{site}");
        std::fs::write(dir.join("sparta.conf"), site).expect("write site");
        let d = dir.display();
        // Workers run as root so they can use the test's private temp dir.
        let is_root = std::env::var("USER").map(|u| u == "root").unwrap_or(false)
            || Command::new("id")
                .arg("-u")
                .output()
                .map(|o| o.stdout.starts_with(b"0"))
                .unwrap_or(false);
        let user = if is_root { "user root;\n" } else { "" };
        let main = format!(
            "{user}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/tmp/body;\n  \
             proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  \
             uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n  \
             include {d}/sparta.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).expect("write nginx.conf");
        let child = Command::new(nginx_bin())
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let mut n = Nginx { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Ok(Some(status)) = n.child.try_wait() {
                panic!("nginx exited ({status}):\n{}", n.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen:\n{}",
                n.error_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        n
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new(nginx_bin())
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .args(["-s", "stop"])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A client that trusts the CA and connects from `from` (any 127/8 address).
fn client_from(ca: &TestCa, from: &str) -> reqwest::Client {
    let ca_cert = reqwest::Certificate::from_pem(&std::fs::read(&ca.ca_pem).unwrap()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(ca_cert)
        .local_address(from.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(60))
        .no_proxy()
        .build()
        .unwrap()
}

async fn audit_line(path: &Path, needle: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains(needle)) {
            return serde_json::from_str(l).expect("json");
        }
        assert!(
            Instant::now() < deadline,
            "no audit line with {needle}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_builds_through_nginx_tls_and_the_audit_log_sees_the_real_client() {
    let ca = TestCa::new();
    let audit = ca.dir().join("audit.log");
    let htpasswd = ca.dir().join("htpasswd");
    write(
        &htpasswd,
        &format!("bob:{}\n", bcrypt::hash("bobs-password", 5).unwrap()),
    );
    let sparta = Sparta::for_fixture(&[
        "--trusted-proxies",
        "127.0.0.1",
        "--audit-log",
        audit.to_str().unwrap(),
        "--htpasswd",
        htpasswd.to_str().unwrap(),
    ])
    .await;
    let nginx = Nginx::start(&ca, sparta.addr, &["127.0.0.1", "127.0.0.3"]).await;
    let front = format!("https://127.0.0.1:{}", nginx.port);

    // The go command through nginx over TLS, credentials from a netrc.
    let mut go = GoEnv::new(&front);
    go.set("SSL_CERT_FILE", ca.ca_pem.to_str().unwrap());
    let netrc = go.work().join("netrc");
    write(
        &netrc,
        &format!(
            "machine 127.0.0.1:{} login bob password bobs-password\n",
            nginx.port
        ),
    );
    go.set("NETRC", netrc.to_str().unwrap());
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
    let built = audit_line(&audit, "\"module\":\"fixture.test/graph/a\"").await;
    assert_eq!(built["client"], "127.0.0.1");
    assert_eq!(built["principal"], "user:bob");

    // nginx's deny holds: 127.0.0.2 is not on its allow list.
    let info = version_path("fixture.test/graph/b", "v1.0.0", "info");
    let r = client_from(&ca, "127.0.0.2")
        .get(format!("{front}{info}"))
        .basic_auth("bob", Some("bobs-password"))
        .send()
        .await
        .expect("request from 127.0.0.2");
    assert_eq!(r.status(), 403);
    assert!(
        r.text().await.unwrap().contains("nginx"),
        "the 403 is nginx's"
    );

    // From 127.0.0.3, with a spoofed header nginx overwrites: Sparta's
    // audit shows the address nginx saw.
    let r = client_from(&ca, "127.0.0.3")
        .get(format!("{front}{info}"))
        .basic_auth("bob", Some("bobs-password"))
        .header("x-forwarded-for", "6.6.6.6")
        .send()
        .await
        .expect("request from 127.0.0.3");
    assert_eq!(r.status(), 200);
    let line = audit_line(&audit, "fixture.test/graph/b/@v/v1.0.0.info").await;
    assert_eq!(line["client"], "127.0.0.3", "{line}");

    // Straight to Sparta from an untrusted peer: the header is ignored.
    let mod_path = version_path("fixture.test/graph/b", "v1.0.0", "mod");
    let r = reqwest::Client::builder()
        .local_address("127.0.0.4".parse::<IpAddr>().unwrap())
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}{mod_path}", sparta.url))
        .basic_auth("bob", Some("bobs-password"))
        .header("x-forwarded-for", "10.1.1.1")
        .send()
        .await
        .expect("direct request");
    assert_eq!(r.status(), 200);
    let line = audit_line(&audit, "fixture.test/graph/b/@v/v1.0.0.mod").await;
    assert_eq!(line["client"], "127.0.0.4", "{line}");
    drop(nginx);
}
