//! A toxiproxy server on a loopback port, for slow or failing links in
//! tests (built by scripts/install-toxiproxy.sh into target/tools/bin).
//! Scripts drive the same server with `toxiproxy-cli`; this helper only
//! starts it and speaks its HTTP API.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running toxiproxy-server; killed on drop.
pub struct Toxiproxy {
    child: Child,
    /// `http://127.0.0.1:PORT` of the API.
    pub api: String,
    client: reqwest::Client,
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Toxiproxy {
    /// Installs (if needed) and starts the server; waits until its API answers.
    pub async fn start() -> Toxiproxy {
        let root = crate::workspace_root();
        let out = Command::new("bash")
            .arg(root.join("scripts/install-toxiproxy.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/install-toxiproxy.sh");
        assert!(out.status.success(), "installing toxiproxy failed");
        let server = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let port = free_port();
        let child = Command::new(&server)
            .args(["-host", "127.0.0.1", "-port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start toxiproxy-server");
        let t = Toxiproxy {
            child,
            api: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while t
            .client
            .get(format!("{}/version", t.api))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "toxiproxy did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        t
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.api));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("toxiproxy api");
        let status = resp.status();
        assert!(
            status.is_success(),
            "toxiproxy {method} {path}: {status} {}",
            resp.text().await.unwrap_or_default()
        );
    }

    /// Creates proxy `name` from a new loopback port to `upstream`
    /// (`host:port`); returns the port it listens on.
    pub async fn proxy(&self, name: &str, upstream: &str) -> u16 {
        let port = free_port();
        self.call(
            reqwest::Method::POST,
            "/proxies",
            Some(json!({"name": name, "listen": format!("127.0.0.1:{port}"), "upstream": upstream, "enabled": true})),
        )
        .await;
        port
    }

    /// Adds a toxic, e.g. `("reset_peer", "upstream", json!({"timeout": 0}))`.
    pub async fn toxic(
        &self,
        proxy: &str,
        name: &str,
        kind: &str,
        stream: &str,
        attributes: Value,
    ) {
        self.call(
            reqwest::Method::POST,
            &format!("/proxies/{proxy}/toxics"),
            Some(json!({"name": name, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attributes})),
        )
        .await;
    }

    /// Removes a toxic.
    pub async fn heal(&self, proxy: &str, name: &str) {
        self.call(
            reqwest::Method::DELETE,
            &format!("/proxies/{proxy}/toxics/{name}"),
            None,
        )
        .await;
    }

    /// Turns a proxy on or off (off: connections refused, open ones closed).
    pub async fn enable(&self, proxy: &str, on: bool) {
        self.call(
            reqwest::Method::POST,
            &format!("/proxies/{proxy}"),
            Some(json!({"enabled": on})),
        )
        .await;
    }
}

impl Drop for Toxiproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
