//! `sparta serve`: the service built over the store and its sources, the
//! listeners, and the shutdown. `build_service` is shared with `warm`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sparta_server::{AppState, Coordination, Metrics, Proxy, ServiceConfig};
use sparta_storage::Store;
use sparta_sumdb::Sumdb;
use tracing::{info, warn};

use crate::config::{Leases, Settings};
use crate::{access, logsink, sweep};

/// The proxy service as `serve` builds it, for `serve` and `warm`.
pub(crate) struct Built {
    pub store: Store,
    pub proxy: Proxy,
    pub metrics: Metrics,
    pub coordination: Coordination,
    pub databases: Vec<String>,
}

/// Opens the store and builds the service over it: leases, checksum
/// databases, sources, the network mode.
pub(crate) async fn build_service(settings: &Settings) -> Result<Built> {
    let store = Store::open(&settings.storage, &settings.s3())
        .await
        .with_context(|| format!("cannot open storage {}", settings.storage))?;
    // In the background: a big backlog must not delay readiness.
    tokio::spawn({
        let (store, dir) = (store.clone(), settings.spool_dir());
        async move { sweep::at_start(&store, &dir).await }
    });

    // Leases coordinate fetches across replicas that share a store, and only
    // where it refuses a second create of the same key; otherwise each
    // replica fetches alone. A local directory is one replica's by default:
    // there a lease would cost a file per fetch and coordinate nothing.
    let want_leases = match settings.leases {
        Leases::Auto => store.is_shared(),
        Leases::On => true,
        Leases::Off => false,
    };
    let coordination = if !want_leases {
        Coordination::Local
    } else {
        match store.probe_conditional_put().await {
            Ok(true) => Coordination::Lease {
                ttl: settings.lease_ttl,
            },
            Ok(false) => {
                warn!(storage = %store.describe(), "store does not honour write-once puts; fetches are coordinated per replica only");
                Coordination::Local
            }
            Err(e) => {
                warn!(storage = %store.describe(), error = %e, "could not probe the store for write-once puts; fetches are coordinated per replica only");
                Coordination::Local
            }
        }
    };
    let sumdb_config = settings.sumdb_config()?;
    if !sumdb_config.verify {
        warn!("checksum verification is off: modules are stored as upstream serves them");
    } else if sumdb_config.fail_open {
        warn!("checksum database failures fail open: modules may be stored unverified");
    }
    let databases: Vec<String> = sumdb_config
        .databases
        .iter()
        .map(|d| d.name.clone())
        .collect();
    let sumdb = Sumdb::new(sumdb_config, store.clone())?;
    let metrics = Metrics::new();
    let sources = sources(settings, &metrics)?;
    if let Some(dropped) = logsink::DROPPED.get() {
        metrics.register(Box::new(dropped.clone()));
    }
    let holder = format!("{}-{}", hostname(), std::process::id());
    let download_modes = sparta_core::download::DownloadModes::parse(&settings.download_mode)
        .context("invalid --download-mode")?;
    if download_modes.presigns() {
        // Sign once now: a store or credentials that cannot is a start-up error.
        store
            .presigned_get("_sparta/probe/presign", settings.presign_ttl)
            .await
            .context("--download-mode presigned: the store cannot presign URLs")?;
    }
    let proxy = Proxy::new(
        store.clone(),
        sources,
        sumdb,
        metrics.clone(),
        ServiceConfig {
            cache_size: settings.cache_size(),
            list_ttl: settings.list_ttl,
            negative_ttl: settings.negative_ttl,
            spool_dir: settings.spool_dir(),
            coordination,
            holder,
            network: settings.network.mode(),
            download_modes,
            presign_ttl: settings.presign_ttl,
            disk_tier: settings.disk_tier(&metrics)?,
            limits: settings.limits(),
        },
    );
    Ok(Built {
        store,
        proxy,
        metrics,
        coordination,
        databases,
    })
}

pub(crate) async fn serve(settings: Settings, started: Instant) -> Result<()> {
    let Built {
        store,
        proxy,
        metrics,
        coordination,
        databases,
    } = build_service(&settings).await?;
    let access_settings = settings.access()?;
    let (access, audit, audit_guard) = access::build(&access_settings, &metrics)?;
    let state = Arc::new(AppState {
        proxy,
        metrics: metrics.clone(),
        path_prefix: settings.path_prefix.clone(),
        access,
        audit,
        admin_separate: access_settings.admin_listen.is_some(),
        warm: Default::default(),
    });
    let listener = bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let tls = match &access_settings.tls {
        Some(files) => Some(
            sparta_server::tls::ReloadingCert::open(files.clone())
                .with_context(|| format!("cannot load TLS certificate {}", files.cert.display()))?,
        ),
        None => None,
    };
    let (admin_stop, admin_task) = match &access_settings.admin_listen {
        Some(admin) => {
            let l = bind(*admin)
                .await
                .with_context(|| format!("cannot listen on {admin}"))?;
            info!(addr = %l.local_addr()?, "admin address (probes, /metrics)");
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(sparta_server::serve_admin(
                l,
                state.clone(),
                settings.serve_limits(),
                async move {
                    let _ = rx.await;
                },
            ));
            (Some(tx), Some(task))
        }
        None => (None, None),
    };
    let catalog = state.proxy.catalog().clone();
    let proxy = state.proxy.clone();
    // When shutdown was asked for: the grace period counts from then.
    let signalled = Arc::new(std::sync::OnceLock::new());
    let shutdown = {
        let signalled = signalled.clone();
        async move {
            shutdown_signal().await;
            let _ = signalled.set(Instant::now());
        }
    };
    metrics.ready.set(1);
    if let Some(path) = &settings.ready_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, addr.to_string())?;
        std::fs::rename(&tmp, path)?;
    }
    info!(
        addr = %addr,
        storage = %store.describe(),
        upstream = %settings.upstream(),
        routes = settings.route.len(),
        coordination = ?coordination,
        network = %settings.network.mode(),
        sumdb = ?databases,
        startup_ms = started.elapsed().as_millis() as u64,
        tls = tls.is_some(),
        "listening"
    );
    let workers = match settings.connection_workers() {
        0 => None,
        n => Some(
            sparta_server::ConnWorkers::start(n).context("cannot start the connection workers")?,
        ),
    };
    match tls {
        Some(cert) => {
            sparta_server::serve_tls(
                listener,
                workers.clone(),
                cert,
                state,
                settings.serve_limits(),
                shutdown,
                settings.shutdown_grace,
            )
            .await?
        }
        None => {
            sparta_server::serve(
                listener,
                workers.clone(),
                state,
                settings.serve_limits(),
                shutdown,
                settings.shutdown_grace,
            )
            .await?
        }
    }
    // Files answered before they were stored: their stores end first.
    let spent = signalled.get().map_or(Duration::ZERO, Instant::elapsed);
    if !proxy
        .settle(settings.shutdown_grace.saturating_sub(spent))
        .await
    {
        warn!(
            "fetched files still being stored when the grace period ended: fetched again when next asked"
        );
    }
    if let (Some(stop), Some(task)) = (admin_stop, admin_task) {
        let _ = stop.send(());
        let _ = task.await;
    }
    if let Some(guard) = audit_guard {
        let _ =
            tokio::task::spawn_blocking(move || guard.finish(std::time::Duration::from_secs(10)))
                .await;
    }
    // Catalog records of the last stored files, written off the requests'
    // path: in a segment before the process ends.
    if tokio::time::timeout(std::time::Duration::from_secs(10), catalog.flush())
        .await
        .is_err()
    {
        warn!("catalog records not written within 10 s; `sparta catalog --rebuild` recovers them");
    }
    info!("stopped");
    Ok(())
}

/// The routing table: a source chain per `--route` and one for `--upstream`.
/// The VCS fetcher exists only when `direct` appears in one of them, so no
/// other path can reach it.
fn sources(settings: &Settings, metrics: &Metrics) -> Result<sparta_server::Sources> {
    let default =
        sparta_core::proxylist::parse(settings.upstream()).context("invalid --upstream")?;
    let routes = sparta_core::routes::Routes::parse(&settings.route).context("invalid --route")?;
    let wants_direct = routes.any_direct() || default.iter().any(|e| e.is_direct());
    let direct: Option<Arc<dyn sparta_server::Source>> = if wants_direct {
        let vcs = vcs_fetcher(settings)?
            .with_metrics(metrics.registry())
            .context("cannot register the VCS metrics")?;
        Some(Arc::new(sparta_server::source::VcsSource(vcs)))
    } else {
        None
    };
    let origins = sparta_server::Origins {
        upstream_timeout: settings.upstream_timeout,
        upstream_idle_timeout: settings.upstream_idle_timeout,
        connect_timeout: std::time::Duration::from_secs(10),
        direct,
    };
    sparta_server::Sources::new(&default, routes, &origins).map_err(anyhow::Error::msg)
}

/// The VCS fetcher from its settings; its cache directory must be writable.
fn vcs_fetcher(s: &Settings) -> Result<sparta_vcs::Vcs> {
    let dir = &s.vcs_cache_dir;
    std::fs::create_dir_all(dir)
        .and_then(|()| tempfile::tempfile_in(dir).map(drop))
        .with_context(|| {
            format!(
                "--vcs-cache-dir {} is not a writable directory",
                dir.display()
            )
        })?;
    let maps = s
        .vcs_map
        .iter()
        .map(|m| sparta_vcs::VcsMap::parse(m))
        .collect::<Result<Vec<_>, _>>()
        .context("invalid --vcs-map")?;
    let netrc = s.vcs_netrc.clone().or_else(|| {
        std::env::var_os("NETRC")
            .map(std::path::PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".netrc")))
            .filter(|p| p.is_file())
    });
    let mut config = sparta_vcs::VcsConfig::new(dir.clone());
    config.cache_size = s.vcs_cache_size.as_u64();
    config.maps = maps;
    config.netrc = netrc;
    config.token_dir = s.vcs_token_dir.clone();
    config.ssh_key = s.vcs_ssh_key.clone();
    config.insecure = s.vcs_insecure.clone();
    config.net = sparta_vcs::NetPolicy {
        allow_loopback: s.vcs_allow_loopback,
        refuse_private: s.vcs_refuse_private,
    };
    config.op_timeout = s.vcs_timeout;
    config.max_repo_size = s.vcs_max_repo_size.as_u64();
    sparta_vcs::Vcs::new(config).context("cannot start the VCS fetcher")
}

/// Binds with a long accept queue: a CI fleet starting at once opens
/// thousands of connections, and with the default of 1024 the overflow waits
/// a whole SYN retry (1 s) before it is even accepted.
async fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Resolves on SIGTERM (every Kubernetes rollout) or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => info!(signal = "SIGINT", "shutdown requested"),
        _ = term => info!(signal = "SIGTERM", "shutdown requested"),
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sparta".to_owned())
}
