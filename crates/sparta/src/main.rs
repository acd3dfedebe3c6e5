//! `sparta`: a cloud-native Go module proxy.

mod access;
mod bundle;
mod catalog_cmd;
mod config;
mod logfmt;
mod logsink;
#[allow(dead_code)] // not every user takes every report
mod progress;
mod storage_cmd;
mod sweep;
mod telemetry;
mod warm;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use sparta_server::{AppState, Coordination, Metrics, Proxy, ServiceConfig};
use sparta_storage::Store;
use sparta_sumdb::Sumdb;
use tracing::{info, warn};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{Leases, Loaded, LogFormat, ServeArgs, Settings};

/// Sparta, a Go module proxy (GOPROXY server) that stores every module version
/// once in local or S3-compatible storage and serves it forever after.
#[derive(Debug, Parser)]
#[command(name = "sparta", version = sparta_server::version::LONG_VERSION, about, long_about = None)]
// A flag given twice takes its last value, so a wrapper script can override.
#[command(args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the GOPROXY protocol.
    Serve(ServeArgs),
    /// Print the effective settings and where each came from (secrets redacted).
    Config(ServeArgs),
    /// Prepare the store.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Re-check every stored .zip and .mod against the checksum database.
    Verify {
        #[command(flatten)]
        args: ServeArgs,
        /// Delete the files that fail.
        #[arg(long)]
        delete: bool,
    },
    /// Pre-load module versions named in go.sum, go.mod, `go list -m -json all` output or
    /// module@version lists into the store (or a running Sparta with --server); exit 1 on failures.
    Warm {
        #[command(flatten)]
        args: ServeArgs,
        #[command(flatten)]
        warm: warm::WarmArgs,
    },
    /// Print the stored module versions (module, version, first stored).
    Catalog {
        #[command(flatten)]
        args: ServeArgs,
        /// Rebuild the catalog from a listing of the whole store first.
        #[arg(long)]
        rebuild: bool,
    },
    /// Write stored module files and the checksum-database files that prove
    /// them to one bundle (.tar.gz or .tar) for an air-gapped network.
    Export {
        #[command(flatten)]
        args: ServeArgs,
        /// The bundle to write.
        #[arg(short = 'o', long = "output")]
        output: std::path::PathBuf,
        /// Only files stored at or after this time (RFC 3339, UTC).
        #[arg(long = "since")]
        since: Option<String>,
        /// Only modules matching this comma-separated glob list (GOPRIVATE syntax).
        #[arg(long = "modules")]
        modules: Option<String>,
    },
    /// Check every file of a bundle and store what passes, write-once;
    /// exits 1 if any file was refused.
    Import {
        #[command(flatten)]
        args: ServeArgs,
        /// The bundle to read.
        bundle: std::path::PathBuf,
    },
    /// Bearer tokens for --auth-tokens.
    #[command(subcommand)]
    Token(access::TokenCommand),
}

#[derive(Debug, Subcommand)]
enum StorageCommand {
    /// Create the bucket (with --create-bucket) and set Sparta's lifecycle rules: abort
    /// multipart uploads incomplete after a day, expire <prefix>/_sparta/staging/ after a day.
    Init(storage_cmd::InitArgs),
}

fn main() -> Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let sub = matches.subcommand().map(|(_, m)| m).context("no command")?;
    let load =
        |args: &ServeArgs| Loaded::new(args.config.as_deref(), sub, &std::env::vars().collect());
    match cli.command {
        Command::Serve(args) => {
            let started = Instant::now();
            let loaded = load(&args)?;
            let traces = telemetry::init()?;
            let (telemetry, traces) = match traces {
                Some((t, layer)) => (Some(t), Some(layer)),
                None => (None, None),
            };
            let _logs = init_logging(loaded.settings.log_format, "info", traces);
            for w in &loaded.warnings {
                warn!("{w}");
            }
            if telemetry.is_some() {
                info!("exporting traces over OTLP");
            }
            let served = runtime()?.block_on(serve(loaded.settings, started));
            // Outside the runtime: the exporter flushes with a blocking client.
            if let Some(t) = telemetry {
                t.shutdown();
            }
            served
        }
        Command::Config(args) => {
            let loaded = load(&args)?;
            print!("{}", loaded.render()?);
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            Ok(())
        }
        Command::Token(cmd) => access::token_command(cmd),
        Command::Export {
            args,
            output,
            since,
            modules,
        } => {
            let settings = load(&args)?.settings;
            runtime()?.block_on(export(settings, output, since, modules))
        }
        Command::Import { args, bundle } => {
            let settings = load(&args)?.settings;
            if !runtime()?.block_on(import(settings, bundle))? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Catalog { args, rebuild } => {
            let settings = load(&args)?.settings;
            runtime()?.block_on(catalog_cmd::run(settings, rebuild))
        }
        Command::Storage(StorageCommand::Init(args)) => {
            runtime()?.block_on(storage_cmd::init(args))
        }
        Command::Warm { args, warm } => {
            // Through a running server no store or source is opened here,
            // so serve's settings (and their checks) do not apply.
            let settings = match warm.server {
                Some(_) => None,
                None => Some(load(&args)?.settings),
            };
            let format = settings.as_ref().map_or(LogFormat::Text, |s| s.log_format);
            // Warnings only: the progress report says what is going on.
            let logs = init_logging(format, "warn", NO_TRACES);
            let ok = runtime()?.block_on(warm::run(settings, warm))?;
            drop(logs);
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Verify { args, delete } => {
            let settings = load(&args)?.settings;
            let logs = init_logging(settings.log_format, "info", NO_TRACES);
            let ok = runtime()?.block_on(verify(settings, delete))?;
            drop(logs);
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // tokio's default 2 MiB worker stacks: the deep VCS futures are boxed
    // (sparta_vcs::Vcs), so unoptimized builds fit in them too.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn export(
    settings: Settings,
    output: std::path::PathBuf,
    since: Option<String>,
    modules: Option<String>,
) -> Result<()> {
    let since = since
        .map(|s| {
            sparta_catalog::index::parse_time(&s).with_context(|| {
                format!("--since {s:?}: want an RFC 3339 time in UTC, e.g. 2026-01-02T15:04:05Z")
            })
        })
        .transpose()?;
    let modules = modules
        .map(|m| sparta_core::glob::GlobList::parse(&m).map_err(anyhow::Error::msg))
        .transpose()
        .context("invalid --modules")?;
    let store = Store::open(&settings.storage, &settings.s3())
        .await
        .with_context(|| format!("cannot open storage {}", settings.storage))?;
    let sumdb = Sumdb::new(settings.sumdb_config()?, store.clone())?;
    let opts = bundle::export::ExportOptions {
        output,
        since,
        modules,
    };
    let files = bundle::export::export(&store, &sumdb, &opts).await?;
    println!("exported {files} files to {}", opts.output.display());
    Ok(())
}

/// Imports a bundle; true when nothing was refused.
async fn import(settings: Settings, bundle: std::path::PathBuf) -> Result<bool> {
    let store = Store::open(&settings.storage, &settings.s3())
        .await
        .with_context(|| format!("cannot open storage {}", settings.storage))?;
    let catalog =
        sparta_catalog::Catalog::new(store.clone(), &format!("import-{}", std::process::id()));
    let summary =
        bundle::import::import(&store, settings.sumdb_config()?, &catalog, &bundle).await?;
    println!(
        "imported {} files: {} stored, {} skipped (already stored and identical, or proof-only tiles), {} refused",
        summary.total, summary.done, summary.skipped, summary.failed
    );
    for (key, reason) in &summary.failures {
        println!("REFUSED {key}: {reason}");
    }
    eprintln!("{}", summary.report());
    Ok(summary.failed == 0)
}

/// Walks the store and re-checks every stored file; true when all passed.
async fn verify(settings: Settings, delete: bool) -> Result<bool> {
    let store = Store::open(&settings.storage, &settings.s3())
        .await
        .with_context(|| format!("cannot open storage {}", settings.storage))?;
    let sumdb = Sumdb::new(settings.sumdb_config()?, store.clone())?;
    let progress = progress::Progress::new("verify", 0);
    let counted = std::sync::atomic::AtomicBool::new(false);
    let report = sparta_sumdb::verify_store(&store, &sumdb, delete, |p| {
        if !counted.swap(true, std::sync::atomic::Ordering::Relaxed) {
            progress.add_total(p.total as u64);
        }
        progress.item_done(0);
    })
    .await?;
    let summary = progress.finish();
    eprintln!("{}", summary.status_line());
    for failure in &report.failures {
        let deleted = if failure.deleted { " (deleted)" } else { "" };
        println!("FAIL {}{deleted}: {}", failure.key, failure.reason);
    }
    println!(
        "checked {} files: {} verified, {} skipped, {} failed",
        report.total,
        report.verified,
        report.skipped,
        report.failures.len()
    );
    Ok(report.failures.is_empty())
}

/// Logs go through a background thread that batches writes, so request
/// logging costs a request a formatted line, not a write to stderr. Hold the
/// guard until exit: dropping it flushes what is queued.
/// Logging to stderr at `SPARTA_LOG`, else at `default_level`. `traces` is
/// the OTLP export layer, when trace export is on.
fn init_logging<L>(format: LogFormat, default_level: &str, traces: Option<L>) -> logsink::FlushGuard
where
    L: Layer<Layered<Filtered<BoxedFmt, EnvFilter, Registry>, Registry>> + Send + Sync,
{
    let filter =
        || EnvFilter::try_from_env("SPARTA_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let ansi = std::io::stderr().is_terminal();
    let dropped = logsink::DROPPED
        .get_or_init(logsink::dropped_counter)
        .clone();
    let (writer, guard) = logsink::batched(std::io::stderr(), format == LogFormat::Json, dropped);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    // JSON lines keep their shape whether or not spans are being made; the
    // request id is a top-level field (logfmt).
    let fmt: BoxedFmt = match format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .map_event_format(logfmt::WithRequestId)
            .boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter()))
        // Only sparta-trace's spans become trace spans: the request-id span
        // around each request is for log lines and must not be their parent.
        .with(traces.map(|t| {
            t.with_filter(filter())
                .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                    !meta.is_span() || meta.target() == "sparta_trace"
                }))
        }))
        .init();
    guard
}

/// The log-line layer, boxed so text and JSON are one type.
type BoxedFmt = Box<dyn Layer<Registry> + Send + Sync>;

/// For commands that export no traces.
const NO_TRACES: Option<tracing_subscriber::layer::Identity> = None;

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

async fn serve(settings: Settings, started: Instant) -> Result<()> {
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
    match tls {
        Some(cert) => {
            sparta_server::serve_tls(
                listener,
                cert,
                state,
                settings.serve_limits(),
                shutdown_signal(),
                settings.shutdown_grace,
            )
            .await?
        }
        None => {
            sparta_server::serve(
                listener,
                state,
                settings.serve_limits(),
                shutdown_signal(),
                settings.shutdown_grace,
            )
            .await?
        }
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
