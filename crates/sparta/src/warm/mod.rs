//! `sparta warm`: pre-load module versions named in go.sum files, go.mod
//! files (resolved by the go command through Sparta itself), `go list -m
//! -json all` output or `module@version` lists. In-process against
//! `--storage` (the same service `serve` builds: checks, checksum
//! verification, write-once store, singleflight, leases), or through a
//! running Sparta with `--server`.

mod gomod;
mod remote;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use futures::StreamExt;
use sparta_core::warmlist::{WarmItem, WarmList};
use url::Url;

use crate::config::Settings;
use crate::progress::Progress;

/// `sparta warm` flags (the store and sources are `serve`'s settings).
#[derive(Debug, Clone, Args)]
pub struct WarmArgs {
    /// go.sum, go.mod, `go list -m -json all` output or module@version lists; `-` is stdin.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Warm a running Sparta at this URL (including any path prefix) instead of --storage.
    #[arg(long)]
    pub server: Option<Url>,
    /// File holding a bearer token for --server [default: $SPARTA_WARM_TOKEN].
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// netrc file with a login for --server's host [default: $NETRC, else ~/.netrc].
    #[arg(long)]
    pub netrc: Option<PathBuf>,
    /// Module versions fetched at a time.
    #[arg(long, default_value = "8", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
}

/// Where versions are fetched into.
enum Target {
    Local(sparta_server::Proxy),
    Remote(remote::Remote),
}

impl Target {
    async fn warm(&self, item: &WarmItem) -> Result<u64, String> {
        match self {
            Target::Local(proxy) => proxy.warm_one(item).await.map_err(|e| e.to_string()),
            Target::Remote(r) => r.warm(item).await,
        }
    }
}

/// Runs the warm; true when every version was fetched.
/// `settings` are serve's, for the in-process service; None with `--server`.
pub async fn run(settings: Option<Settings>, args: WarmArgs) -> Result<bool> {
    let target = match (&args.server, &settings) {
        (Some(url), _) => Target::Remote(remote::Remote::new(
            url.clone(),
            args.token_file.as_deref(),
            args.netrc.as_deref(),
        )?),
        (None, Some(settings)) => {
            Target::Local(crate::serve_cmd::build_service(settings).await?.proxy)
        }
        (None, None) => bail!("no settings for the in-process store"),
    };
    let target = Arc::new(target);
    let mut list = WarmList::default();
    for input in &args.inputs {
        read_input(&mut list, input, &target).await?;
    }
    if list.is_empty() {
        bail!("the inputs name no module version");
    }
    let progress = Progress::new("warm", list.len() as u64);
    futures::stream::iter(list.items())
        .for_each_concurrent(usize::from(args.concurrency), |item| {
            let (target, progress) = (Arc::clone(&target), progress.clone());
            async move {
                match target.warm(&item).await {
                    Ok(bytes) => progress.item_done(bytes),
                    Err(why) => progress.item_failed(&item.name(), &why),
                }
            }
        })
        .await;
    if let Target::Local(proxy) = target.as_ref() {
        // The catalog writes its records off the fetches' path.
        proxy.catalog().flush().await;
    }
    let summary = progress.finish();
    eprintln!("{}", summary.report());
    Ok(summary.failed == 0)
}

/// Adds one input's versions. A go.mod is resolved by the go command.
async fn read_input(list: &mut WarmList, input: &Path, target: &Arc<Target>) -> Result<()> {
    let text = if input == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
    } else {
        std::fs::read_to_string(input)
            .with_context(|| format!("cannot read {}", input.display()))?
    };
    let is_gomod = input.file_name().is_some_and(|n| n == "go.mod")
        || text
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("module "));
    if is_gomod {
        let dir = input
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let resolved = match target.as_ref() {
            Target::Remote(r) => gomod::resolve(dir, r.proxy_url(), r.go_env()).await?,
            Target::Local(proxy) => gomod::resolve_in_process(dir, proxy).await?,
        };
        return sparta_server::warm::parse_inputs(list, &resolved)
            .map_err(|e| anyhow::anyhow!("{}: go list output: {e}", input.display()));
    }
    sparta_server::warm::parse_inputs(list, &text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))
}
