//! Settings for `sparta serve`, `verify` and `config`: one struct whose fields
//! are the flags. Each field `foo_bar` is also read from `SPARTA_FOO_BAR` and
//! from the TOML key `foo_bar`; figment layers them (flag > env > file >
//! default, see [`load`]), so adding a setting is adding a field here.

mod check;
mod load;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use clap::{ArgAction, Args, ValueEnum};
use serde::{Deserialize, Serialize};
use url::Url;

pub use load::Loaded;

/// `sparta serve` settings: the flags, and the shape of the TOML file.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "0.0.0.0:3000")]
    pub listen: SocketAddr,

    /// Storage: a local path, file:///abs/path, memory://, or s3://bucket/prefix.
    #[arg(long, default_value = "./sparta-data")]
    pub storage: String,

    /// Upstream proxies in GOPROXY syntax: `,` falls through on 404/410, `|` on any error
    /// [default: the GOPROXY environment variable without direct/off].
    #[arg(long)]
    pub upstream: Option<String>,

    /// Memory cache budget for .info, .mod, list and latest answers.
    #[arg(long, default_value = "256MiB")]
    #[serde(with = "values::size")]
    pub cache_size: ByteSize,

    /// How long list, latest and query answers stay fresh.
    #[arg(long, default_value = "60s", value_parser = values::parse_duration)]
    #[serde(with = "values::duration")]
    pub list_ttl: Duration,

    /// How long a not-found answer is remembered.
    #[arg(long, default_value = "60s", value_parser = values::parse_duration)]
    #[serde(with = "values::duration")]
    pub negative_ttl: Duration,

    /// Limit for one whole upstream fetch of a zip, body included; small files get at most 2m of it.
    #[arg(long, default_value = "30m", value_parser = values::parse_duration)]
    #[serde(with = "values::duration")]
    pub upstream_timeout: Duration,

    /// An upstream body that sends nothing for this long fails.
    #[arg(long, default_value = "30s", value_parser = values::parse_duration)]
    #[serde(with = "values::duration")]
    pub upstream_idle_timeout: Duration,

    /// Directory where zips are spooled while checked [default: the system temp dir].
    #[arg(long)]
    pub spool_dir: Option<PathBuf>,

    /// A local directory that keeps copies of zips in front of the store
    /// (least recently used go first; never the source of truth) [default: none].
    #[arg(long)]
    pub disk_cache_dir: Option<PathBuf>,

    /// Byte budget of the disk tier for zips (--disk-cache-dir).
    #[arg(long, default_value = "10GiB")]
    #[serde(with = "values::size")]
    pub disk_cache_size: ByteSize,

    // Fetch limits (crates/sparta-server/src/limits.rs); 0 turns one off.
    /// Concurrent fetches from sources in all; over it a fetch waits, then gets 503.
    #[arg(long, default_value = "64")]
    pub max_fetches: usize,
    /// Concurrent fetches per upstream host (the first proxy of a list; a module's host for direct).
    #[arg(long, default_value = "16")]
    pub max_fetches_per_host: usize,
    /// Spool bytes cold zips may reserve at once (Content-Length, else the 500 MiB zip limit).
    #[arg(long, default_value = "2GiB")]
    #[serde(with = "values::size")]
    pub spool_budget: ByteSize,
    /// How long a fetch over a limit waits before it is answered 503 with Retry-After.
    #[arg(long, default_value = "10s", value_parser = values::parse_duration)]
    #[serde(with = "values::duration")]
    pub fetch_queue_wait: Duration,

    /// Serve the proxy under this path prefix, e.g. /go [default: none].
    #[arg(long, default_value = "")]
    pub path_prefix: String,

    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Time to finish in-flight requests after SIGTERM.
    #[arg(long, default_value = "30s", value_parser = values::parse_duration)]
    #[serde(with = "values::duration")]
    pub shutdown_grace: Duration,

    /// Time for a request head to arrive: from connect for a new connection, from its first byte
    /// for a later request; then the connection is closed.
    #[arg(long, default_value = "10s", value_parser = values::parse_duration)]
    #[serde(with = "values::duration")]
    pub header_read_timeout: Duration,

    /// A kept-alive connection with no request in flight is closed after this.
    #[arg(long, default_value = "60s", value_parser = values::parse_duration)]
    #[serde(with = "values::duration")]
    pub idle_timeout: Duration,

    /// An answer whose writes stay blocked this long (the client stopped reading) is cut and its
    /// connection closed; 0 turns it off.
    #[arg(long, default_value = "60s", value_parser = values::parse_duration)]
    #[serde(with = "values::duration")]
    pub send_timeout: Duration,

    /// Open client connections per listener; more wait in the kernel's accept queue.
    #[arg(long, default_value = "4096")]
    pub max_connections: usize,

    /// Threads that serve client connections, each with a runtime of its own (default: one per
    /// CPU the process may use); 0 serves them on the shared runtime.
    #[arg(long)]
    pub connection_workers: Option<usize>,

    /// Largest request head (request line and headers); a bigger one gets 431 (at least 8KiB).
    #[arg(long, default_value = "32KiB")]
    #[serde(with = "values::size")]
    pub max_header_bytes: ByteSize,

    /// How long a replica's fetch lease lasts before others take over.
    #[arg(long, default_value = "30s", value_parser = values::parse_duration)]
    #[serde(with = "values::duration")]
    pub lease_ttl: Duration,

    /// Fetch leases across replicas: auto (on for s3://, off for a local
    /// store), on (a directory shared by replicas, e.g. NFS), or off.
    #[arg(long, value_enum, default_value = "auto")]
    pub leases: Leases,

    /// strict: fetch misses from the sources; offline: never contact a source (upstream, VCS or
    /// checksum database), answer list/@latest from stored versions, 404 what is not stored;
    /// fallback: fetch, but answer from the store when a source fails (not on 404/410).
    #[arg(long, value_enum, default_value = "strict")]
    pub network: Network,

    /// S3 endpoint URL for S3-compatible stores (MinIO, COS, ...) [default: AWS].
    #[arg(long)]
    pub s3_endpoint: Option<Url>,

    /// S3 region [default: from the AWS environment, else us-east-1].
    #[arg(long)]
    pub s3_region: Option<String>,

    /// Use path-style S3 requests (endpoint/bucket/key) instead of virtual-hosted ones.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub s3_path_style: bool,

    /// Allow plain-http S3 endpoints (local MinIO, tests).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub s3_allow_http: bool,

    /// Checksum database in GOSUMDB form, `name+hash+key [url]`; repeatable. Without a URL it is
    /// reached through each upstream's /sumdb/<name> [default: the go command's default database].
    #[arg(long)]
    #[serde(default, deserialize_with = "values::one_or_many")]
    pub sumdb: Vec<String>,

    /// Modules not verified against the checksum database (GONOSUMDB/GOPRIVATE glob list); repeatable.
    #[arg(long)]
    #[serde(default, deserialize_with = "values::one_or_many")]
    pub nosumdb: Vec<String>,

    /// Verify every fetched .mod and .zip against the checksum database before storing it.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value = "true", default_missing_value = "true")]
    pub sumdb_verify: bool,

    /// Store modules unverified (logged loudly) when the checksum database cannot be reached.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub sumdb_fail_open: bool,

    /// Write the bound address to this file once listening (for scripts and tests).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,

    // Sources: per-module routes and the VCS fetcher behind `direct`.
    /// Route modules to a GOPROXY list (`direct` and `off` allowed): `glob[,glob]=list`, globs as in
    /// GOPRIVATE, e.g. `git.corp.example.com/*=direct`; repeatable, first match wins [default: none].
    #[arg(long)]
    #[serde(default, deserialize_with = "values::one_or_many")]
    pub route: Vec<String>,
    /// Download mode per module pattern, `glob[,glob]=mode` (globs as in --route; first match wins;
    /// unmatched modules are sync): sync, async (404 at once, fetch in the background),
    /// redirect:URL (302 to URL/<path>), presigned (zips: 302 to a presigned URL of the stored
    /// object; s3://, gs:// or az:// storage), none or none:403 (serve only what is stored); repeatable.
    #[arg(long)]
    #[serde(default, deserialize_with = "values::one_or_many")]
    pub download_mode: Vec<String>,
    /// How long the presigned URLs of the `presigned` download mode last (at most 7 days); its
    /// 302s may be cached for half of it.
    #[arg(long, default_value = "5m", value_parser = values::parse_duration)]
    #[serde(with = "values::duration")]
    pub presign_ttl: Duration,
    /// Directory for the bare git mirrors `direct` fetches into; must be writable when `direct` is used.
    #[arg(long, default_value = "./sparta-vcs")]
    pub vcs_cache_dir: PathBuf,
    /// Bound on all mirrors' bytes; least recently used ones are evicted.
    #[arg(long, default_value = "10GiB")]
    #[serde(with = "values::size")]
    pub vcs_cache_size: ByteSize,
    /// Static repository map for hosts without go-get meta tags, `glob=template`
    /// (`{path}`, `{host}`, `{rest}` of the matched prefix); repeatable [default: none].
    #[arg(long)]
    #[serde(default, deserialize_with = "values::one_or_many")]
    pub vcs_map: Vec<String>,
    /// netrc file with git credentials [default: $NETRC, else ~/.netrc if it exists].
    #[arg(long)]
    pub vcs_netrc: Option<PathBuf>,
    /// Directory of files named by host, each holding a token for that host [default: none].
    #[arg(long)]
    pub vcs_token_dir: Option<PathBuf>,
    /// SSH private key for ssh:// remotes [default: none].
    #[arg(long)]
    pub vcs_ssh_key: Option<PathBuf>,
    /// Module globs (GOINSECURE syntax) whose discovery and git may use plain http; repeatable.
    #[arg(long)]
    #[serde(default, deserialize_with = "values::one_or_many")]
    pub vcs_insecure: Vec<String>,
    /// Allow go-get and git targets on loopback addresses (tests).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub vcs_allow_loopback: bool,
    /// Refuse go-get and git targets on private address ranges.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub vcs_refuse_private: bool,
    /// Limit for each git or discovery operation.
    #[arg(long, default_value = "300s", value_parser = values::parse_duration)]
    #[serde(with = "values::duration")]
    pub vcs_timeout: Duration,
    /// Largest repository a mirror may grow to.
    #[arg(long, default_value = "2GiB")]
    #[serde(with = "values::size")]
    pub vcs_max_repo_size: ByteSize,

    // Access control: see [`Settings::access`] and docs/CONTRACTS.md.
    /// Client address ranges that may use the proxy (CIDR, IPv4 or IPv6); repeatable or
    /// comma-separated [default: every address].
    #[arg(long)]
    #[serde(default, deserialize_with = "values::one_or_many")]
    pub allow: Vec<String>,

    /// Client address ranges refused, also inside an allowed range; repeatable or comma-separated.
    #[arg(long)]
    #[serde(default, deserialize_with = "values::one_or_many")]
    pub deny: Vec<String>,

    /// Peers whose X-Forwarded-For/Forwarded headers are believed (the reverse proxy or
    /// Ingress controller); repeatable or comma-separated [default: none].
    #[arg(long)]
    #[serde(default, deserialize_with = "values::one_or_many")]
    pub trusted_proxies: Vec<String>,

    /// Module rule `allow|exclude PATTERN[@RANGE] [REASON]`; repeatable (one a line in the
    /// environment variable), the first match decides.
    #[arg(long)]
    #[serde(default, deserialize_with = "values::one_or_many")]
    pub module_rule: Vec<String>,

    /// htpasswd file (bcrypt or SHA-256 crypt) for Basic authentication; reloaded on change.
    #[arg(long)]
    pub htpasswd: Option<PathBuf>,

    /// File of `name:sha256hex` token hashes for Bearer authentication; reloaded on change.
    #[arg(long)]
    pub auth_tokens: Option<PathBuf>,

    /// Audit log: a file path, stderr, or off.
    #[arg(long, default_value = "off")]
    pub audit_log: String,

    /// TLS certificate chain (PEM); with tls_key, serves HTTPS and HTTP/2. Reloaded on change.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,

    /// Separate plain-HTTP address for /metrics and the probes, never access-checked;
    /// when set, /metrics leaves the main address [default: none].
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
}

/// Access control settings, checked by [`Settings::access`].
#[derive(Debug, Clone, Default)]
pub struct AccessSettings {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub trusted_proxies: Vec<String>,
    pub module_rules: Vec<String>,
    pub htpasswd: Option<PathBuf>,
    pub auth_tokens: Option<PathBuf>,
    pub audit_log: Option<sparta_server::audit::AuditSink>,
    pub tls: Option<sparta_server::tls::CertFiles>,
    pub admin_listen: Option<SocketAddr>,
}

/// The settings' flags plus where the TOML file is.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TOML file with any of these settings (keys are flag names with `_`).
    #[arg(long, env = "SPARTA_CONFIG")]
    pub config: Option<PathBuf>,

    /// Read through the `ArgMatches`, which tell a flag from a default.
    #[command(flatten)]
    #[allow(dead_code)]
    pub settings: Settings,
}

/// When fetches are coordinated across replicas through the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Leases {
    /// On for stores meant to be shared (buckets), off for a local store.
    Auto,
    On,
    Off,
}

/// Whether misses may be fetched (see `sparta_core::network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    Strict,
    Offline,
    Fallback,
}

impl Network {
    /// The core's mode.
    pub fn mode(self) -> sparta_core::network::NetworkMode {
        use sparta_core::network::NetworkMode;
        match self {
            Network::Strict => NetworkMode::Strict,
            Network::Offline => NetworkMode::Offline,
            Network::Fallback => NetworkMode::Fallback,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Settings {
    /// The upstream chain; [`load`] fills it from `$GOPROXY` when unset.
    pub fn upstream(&self) -> &str {
        self.upstream.as_deref().unwrap_or_default()
    }

    /// The spool directory; [`load`] fills it with the temp dir when unset.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool_dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    /// The disk tier for zips, opened (its index rebuilt), if configured.
    pub fn disk_tier(
        &self,
        metrics: &sparta_server::Metrics,
    ) -> anyhow::Result<Option<std::sync::Arc<sparta_server::service::disk_tier::DiskTier>>> {
        use anyhow::Context;
        let Some(dir) = &self.disk_cache_dir else {
            return Ok(None);
        };
        let tier = sparta_server::service::disk_tier::DiskTier::open(
            dir,
            self.disk_cache_size.as_u64(),
            metrics,
        )
        .with_context(|| format!("disk_cache_dir {} cannot be used", dir.display()))?;
        Ok(Some(std::sync::Arc::new(tier)))
    }

    /// The fetch limits for the service.
    pub fn limits(&self) -> sparta_server::limits::LimitsConfig {
        sparta_server::limits::LimitsConfig {
            max_fetches: self.max_fetches,
            max_fetches_per_host: self.max_fetches_per_host,
            spool_budget: self.spool_budget.as_u64(),
            queue_wait: self.fetch_queue_wait,
        }
    }

    /// The memory cache budget in bytes.
    pub fn cache_size(&self) -> u64 {
        self.cache_size.as_u64()
    }

    /// The S3 options for the storage crate.
    pub fn s3(&self) -> sparta_storage::S3Options {
        sparta_storage::S3Options {
            // object_store joins paths to the endpoint itself.
            endpoint: self
                .s3_endpoint
                .as_ref()
                .map(|u| u.as_str().trim_end_matches('/').to_owned()),
            region: self.s3_region.clone(),
            path_style: self.s3_path_style,
            allow_http: self.s3_allow_http,
        }
    }

    /// The connection limits of every listener.
    pub fn serve_limits(&self) -> sparta_server::ServeLimits {
        sparta_server::ServeLimits {
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            max_header_bytes: usize::try_from(self.max_header_bytes.as_u64()).unwrap_or(usize::MAX),
            send_timeout: self.send_timeout,
        }
    }

    /// How many connection workers to start: the setting, else one per CPU
    /// the process may use (its cgroup's quota counts); 0 for none.
    pub fn connection_workers(&self) -> usize {
        self.connection_workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    /// The access settings, each list and rule parsed once for its error.
    pub fn access(&self) -> anyhow::Result<AccessSettings> {
        use anyhow::Context;
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(sparta_server::tls::CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => None,
            _ => anyhow::bail!("tls_cert and tls_key go together"),
        };
        sparta_access::net::parse_nets(&self.allow).context("invalid allow")?;
        sparta_access::net::parse_nets(&self.deny).context("invalid deny")?;
        sparta_access::net::parse_nets(&self.trusted_proxies).context("invalid trusted_proxies")?;
        sparta_access::ModuleRules::parse(&self.module_rule).context("invalid module_rule")?;
        Ok(AccessSettings {
            allow: self.allow.clone(),
            deny: self.deny.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            module_rules: self.module_rule.clone(),
            htpasswd: self.htpasswd.clone(),
            auth_tokens: self.auth_tokens.clone(),
            audit_log: sparta_server::audit::AuditSink::parse(&self.audit_log),
            tls,
            admin_listen: self.admin_listen,
        })
    }

    /// The checksum database settings, with sources resolved against the upstreams.
    pub fn sumdb_config(&self) -> anyhow::Result<sparta_sumdb::SumdbConfig> {
        use anyhow::Context;
        let upstreams =
            sparta_core::proxylist::proxy_urls(&sparta_core::proxylist::parse(self.upstream())?);
        let mut databases = if self.sumdb.is_empty() {
            vec![sparta_sumdb::Sumdb::default_database(&upstreams)]
        } else {
            self.sumdb
                .iter()
                .map(|spec| sparta_sumdb::Sumdb::parse_database(spec, &upstreams))
                .collect::<Result<_, _>>()
                .context("invalid sumdb")?
        };
        // With no proxy in upstream (only `direct`/`off`), a database is
        // reached at its own name, as the go command does.
        for db in databases.iter_mut().filter(|d| d.sources.is_empty()) {
            db.sources = vec![format!("https://{}", db.name)];
        }
        Ok(sparta_sumdb::SumdbConfig {
            databases,
            nosumdb: self.nosumdb.clone(),
            verify: self.sumdb_verify,
            fail_open: self.sumdb_fail_open,
        })
    }
}

#[cfg(test)]
mod tests;
