//! `sparta`: a cloud-native Go module proxy.

mod access;
mod bundle;
mod catalog_cmd;
mod config;
mod logfmt;
mod logsink;
#[allow(dead_code)] // not every user takes every report
mod progress;
mod serve_cmd;
mod storage_cmd;
mod sweep;
mod telemetry;
mod warm;

use std::io::IsTerminal;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use sparta_storage::Store;
use sparta_sumdb::Sumdb;
use tracing::{info, warn};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{Loaded, LogFormat, ServeArgs, Settings};

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
            let served = runtime()?.block_on(serve_cmd::serve(loaded.settings, started));
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
    // One hand-written format for both shapes (logfmt): the request id is a
    // top-level JSON field, and text lines keep the default layout.
    let fmt: BoxedFmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer)
        .event_format(logfmt::LineFormat {
            json: format == LogFormat::Json,
            ansi,
        })
        .boxed();
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
