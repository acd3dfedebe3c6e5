//! A go.mod resolved as the go command resolves it: `go list -m -json all`
//! with GOPROXY at Sparta (a running one, or the in-process service served
//! on a loopback port for the duration), so the module graph comes through
//! the same upstreams and checks as everything else.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// How long the go command may take to resolve one go.mod.
const GO_TIMEOUT: Duration = Duration::from_secs(600);

/// The `go list -m -json all` output for the module whose go.mod is in
/// `dir`, resolved through the proxy at `proxy_url`. The go.mod is read
/// through `-modfile` from a copy, so the original and its go.sum are never
/// changed.
pub async fn resolve(
    dir: &Path,
    proxy_url: &str,
    extra_env: Vec<(String, String)>,
) -> Result<String> {
    let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
    let modfile = scratch.path().join("go.mod");
    std::fs::copy(dir.join("go.mod"), &modfile)
        .with_context(|| format!("cannot read {}", dir.join("go.mod").display()))?;
    if dir.join("go.sum").exists() {
        std::fs::copy(dir.join("go.sum"), scratch.path().join("go.sum"))
            .context("cannot copy go.sum")?;
    }
    let go = std::env::var_os("GO").unwrap_or_else(|| "go".into());
    let p = |name: &str| scratch.path().join(name);
    let mut cmd = tokio::process::Command::new(go);
    cmd.args(["list", "-m", "-json", "-mod=mod"])
        .arg(format!("-modfile={}", modfile.display()))
        .arg("all")
        .current_dir(dir)
        .env("GOPROXY", proxy_url)
        // Sparta verifies what it stores; the graph is read, not trusted.
        .env("GOSUMDB", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GOPATH", p("gopath"))
        .env("GOMODCACHE", p("gopath/pkg/mod"))
        .env("GOCACHE", p("gocache"))
        .env_remove("GOPRIVATE")
        .env_remove("GONOPROXY")
        .envs(extra_env)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(GO_TIMEOUT, cmd.output())
        .await
        .context("go list -m -json all timed out")?
        .context("cannot run the go command (set GO or put go on PATH)")?;
    if !out.status.success() {
        bail!(
            "go list -m -json all in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).context("go list printed something that is not UTF-8")
}

/// [`resolve`] through the in-process service, served on a loopback port
/// only while the go command runs.
pub async fn resolve_in_process(dir: &Path, proxy: &sparta_server::Proxy) -> Result<String> {
    let metrics = sparta_server::Metrics::new();
    let state = Arc::new(sparta_server::AppState {
        proxy: proxy.clone(),
        access: sparta_server::access::Access::new(Default::default(), &metrics),
        metrics,
        path_prefix: String::new(),
        audit: None,
        admin_separate: false,
        warm: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on a loopback port")?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sparta_server::serve(
        listener,
        None,
        state,
        sparta_server::ServeLimits::default(),
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    let resolved = resolve(dir, &url, Vec::new()).await;
    let _ = stop.send(());
    let _ = server.await;
    resolved
}
