//! Settings for `sparta serve`: flags, their `SPARTA_*` env vars, and an
//! optional TOML file. A flag or env var wins over the file, which wins over
//! the default.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Deserialize;

/// `sparta serve` flags. Every one is optional here so the TOML file can
/// fill the gaps; defaults are applied in [`ServeArgs::resolve`].
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of these settings (keys are flag names with `_`).
    #[arg(long, env = "SPARTA_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address to listen on [default: 0.0.0.0:3000]; port 0 picks a free one.
    #[arg(long, env = "SPARTA_LISTEN")]
    pub listen: Option<String>,

    /// Storage: a local path, file:///abs/path, memory://, or s3://bucket/prefix [default: ./sparta-data].
    #[arg(long, env = "SPARTA_STORAGE")]
    pub storage: Option<String>,

    /// Upstream proxies in GOPROXY syntax: `,` falls through on 404/410, `|` on any error
    /// [default: the GOPROXY environment variable without direct/off].
    #[arg(long, env = "SPARTA_UPSTREAM")]
    pub upstream: Option<String>,

    /// Memory cache budget for .info, .mod, list and latest answers [default: 256MiB].
    #[arg(long, env = "SPARTA_CACHE_SIZE")]
    pub cache_size: Option<String>,

    /// How long list, latest and query answers stay fresh [default: 60s].
    #[arg(long, env = "SPARTA_LIST_TTL")]
    pub list_ttl: Option<String>,

    /// How long a not-found answer is remembered [default: 60s].
    #[arg(long, env = "SPARTA_NEGATIVE_TTL")]
    pub negative_ttl: Option<String>,

    /// Limit for one whole upstream fetch of a zip, body included; small files get
    /// at most 2m of it [default: 30m].
    #[arg(long, env = "SPARTA_UPSTREAM_TIMEOUT")]
    pub upstream_timeout: Option<String>,

    /// An upstream body that sends nothing for this long fails [default: 30s].
    #[arg(long, env = "SPARTA_UPSTREAM_IDLE_TIMEOUT")]
    pub upstream_idle_timeout: Option<String>,

    /// Directory where zips are spooled while checked [default: the system temp dir].
    #[arg(long, env = "SPARTA_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Serve the proxy under this path prefix, e.g. /go [default: none].
    #[arg(long, env = "SPARTA_PATH_PREFIX")]
    pub path_prefix: Option<String>,

    /// Log format: text or json [default: text].
    #[arg(long, env = "SPARTA_LOG_FORMAT")]
    pub log_format: Option<String>,

    /// Time to finish in-flight requests after SIGTERM [default: 30s].
    #[arg(long, env = "SPARTA_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<String>,

    /// How long a replica's fetch lease lasts before others take over [default: 30s].
    #[arg(long, env = "SPARTA_LEASE_TTL")]
    pub lease_ttl: Option<String>,

    /// Fetch leases across replicas: auto (on for s3://, off for a local
    /// store), on (a directory shared by replicas, e.g. NFS), or off [default: auto].
    #[arg(long, env = "SPARTA_LEASES")]
    pub leases: Option<String>,

    /// S3 endpoint URL for S3-compatible stores (MinIO, COS, ...) [default: AWS].
    #[arg(long, env = "SPARTA_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// S3 region [default: from the AWS environment, else us-east-1].
    #[arg(long, env = "SPARTA_S3_REGION")]
    pub s3_region: Option<String>,

    /// Use path-style S3 requests (endpoint/bucket/key) instead of virtual-hosted ones.
    #[arg(long, env = "SPARTA_S3_PATH_STYLE", num_args = 0..=1, default_missing_value = "true")]
    pub s3_path_style: Option<bool>,

    /// Allow plain-http S3 endpoints (local MinIO, tests).
    #[arg(long, env = "SPARTA_S3_ALLOW_HTTP", num_args = 0..=1, default_missing_value = "true")]
    pub s3_allow_http: Option<bool>,

    /// Checksum database in GOSUMDB form, `name+hash+key [url]`; repeatable. Without a URL it is
    /// reached through each upstream's /sumdb/<name> [default: the go command's default database].
    #[arg(long, env = "SPARTA_SUMDB")]
    #[serde(default)]
    pub sumdb: Vec<String>,

    /// Modules not verified against the checksum database (GONOSUMDB/GOPRIVATE glob list); repeatable.
    #[arg(long, env = "SPARTA_NOSUMDB")]
    #[serde(default)]
    pub nosumdb: Vec<String>,

    /// Verify every fetched .mod and .zip against the checksum database before storing it [default: true].
    #[arg(long, env = "SPARTA_SUMDB_VERIFY", num_args = 0..=1, default_missing_value = "true")]
    pub sumdb_verify: Option<bool>,

    /// Store modules unverified (logged loudly) when the checksum database cannot be reached.
    #[arg(long, env = "SPARTA_SUMDB_FAIL_OPEN", num_args = 0..=1, default_missing_value = "true")]
    pub sumdb_fail_open: Option<bool>,

    /// Write the bound address to this file once listening (for scripts and tests).
    #[arg(long, env = "SPARTA_READY_FILE")]
    pub ready_file: Option<PathBuf>,
}

/// When fetches are coordinated across replicas through the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leases {
    /// On for stores meant to be shared (buckets), off for a local store.
    Auto,
    On,
    Off,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Fully resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub storage: String,
    pub upstream: String,
    pub cache_size: u64,
    pub list_ttl: Duration,
    pub negative_ttl: Duration,
    pub upstream_timeout: Duration,
    pub upstream_idle_timeout: Duration,
    pub spool_dir: PathBuf,
    pub path_prefix: String,
    pub log_format: LogFormat,
    pub shutdown_grace: Duration,
    pub lease_ttl: Duration,
    pub leases: Leases,
    pub s3: sparta_storage::S3Options,
    pub sumdb: Vec<String>,
    pub nosumdb: Vec<String>,
    pub sumdb_verify: bool,
    pub sumdb_fail_open: bool,
    pub ready_file: Option<PathBuf>,
}

impl Settings {
    /// The checksum database settings, with sources resolved against the upstreams.
    pub fn sumdb_config(&self) -> Result<sparta_sumdb::SumdbConfig> {
        let upstreams: Vec<String> = sparta_core::proxylist::parse(&self.upstream)?
            .into_iter()
            .map(|p| p.url)
            .collect();
        let databases = if self.sumdb.is_empty() {
            vec![sparta_sumdb::Sumdb::default_database(&upstreams)]
        } else {
            self.sumdb
                .iter()
                .map(|spec| sparta_sumdb::Sumdb::parse_database(spec, &upstreams))
                .collect::<Result<_, _>>()
                .context("invalid --sumdb")?
        };
        Ok(sparta_sumdb::SumdbConfig {
            databases,
            nosumdb: self.nosumdb.clone(),
            verify: self.sumdb_verify,
            fail_open: self.sumdb_fail_open,
        })
    }
}

impl ServeArgs {
    /// Merges flags/env over the TOML file over defaults, and checks values.
    pub fn resolve(self) -> Result<Settings> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<ServeArgs>(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => ServeArgs::default(),
        };
        let a = self.overlay(file);
        let upstream = match a.upstream {
            Some(u) => u,
            None => default_upstream()?,
        };
        sparta_core::proxylist::parse(&upstream).context("invalid --upstream")?;
        let path_prefix = a.path_prefix.unwrap_or_default();
        let path_prefix = path_prefix.trim_end_matches('/').to_owned();
        if !path_prefix.is_empty() && !path_prefix.starts_with('/') {
            bail!("--path-prefix must start with '/': {path_prefix:?}");
        }
        let log_format = match a.log_format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => bail!("--log-format must be text or json, not {other:?}"),
        };
        let leases = match a.leases.as_deref().unwrap_or("auto") {
            "auto" => Leases::Auto,
            "on" => Leases::On,
            "off" => Leases::Off,
            other => bail!("--leases must be auto, on or off, not {other:?}"),
        };
        Ok(Settings {
            listen: a.listen.unwrap_or_else(|| "0.0.0.0:3000".to_owned()),
            storage: a.storage.unwrap_or_else(|| "./sparta-data".to_owned()),
            upstream,
            cache_size: parse_size(a.cache_size.as_deref().unwrap_or("256MiB"))
                .context("invalid --cache-size")?,
            list_ttl: parse_duration(a.list_ttl.as_deref().unwrap_or("60s"))
                .context("invalid --list-ttl")?,
            negative_ttl: parse_duration(a.negative_ttl.as_deref().unwrap_or("60s"))
                .context("invalid --negative-ttl")?,
            upstream_timeout: parse_duration(a.upstream_timeout.as_deref().unwrap_or("30m"))
                .context("invalid --upstream-timeout")?,
            upstream_idle_timeout: parse_duration(
                a.upstream_idle_timeout.as_deref().unwrap_or("30s"),
            )
            .context("invalid --upstream-idle-timeout")?,
            spool_dir: a.spool_dir.unwrap_or_else(std::env::temp_dir),
            path_prefix,
            log_format,
            shutdown_grace: parse_duration(a.shutdown_grace.as_deref().unwrap_or("30s"))
                .context("invalid --shutdown-grace")?,
            lease_ttl: parse_duration(a.lease_ttl.as_deref().unwrap_or("30s"))
                .context("invalid --lease-ttl")?,
            leases,
            s3: sparta_storage::S3Options {
                endpoint: a.s3_endpoint,
                region: a.s3_region,
                path_style: a.s3_path_style.unwrap_or(false),
                allow_http: a.s3_allow_http.unwrap_or(false),
            },
            sumdb: a.sumdb,
            nosumdb: a.nosumdb,
            sumdb_verify: a.sumdb_verify.unwrap_or(true),
            sumdb_fail_open: a.sumdb_fail_open.unwrap_or(false),
            ready_file: a.ready_file,
        })
    }

    /// Fields set here win over the same fields in `file`.
    fn overlay(self, file: ServeArgs) -> ServeArgs {
        ServeArgs {
            config: self.config,
            listen: self.listen.or(file.listen),
            storage: self.storage.or(file.storage),
            upstream: self.upstream.or(file.upstream),
            cache_size: self.cache_size.or(file.cache_size),
            list_ttl: self.list_ttl.or(file.list_ttl),
            negative_ttl: self.negative_ttl.or(file.negative_ttl),
            upstream_timeout: self.upstream_timeout.or(file.upstream_timeout),
            upstream_idle_timeout: self.upstream_idle_timeout.or(file.upstream_idle_timeout),
            spool_dir: self.spool_dir.or(file.spool_dir),
            path_prefix: self.path_prefix.or(file.path_prefix),
            log_format: self.log_format.or(file.log_format),
            shutdown_grace: self.shutdown_grace.or(file.shutdown_grace),
            lease_ttl: self.lease_ttl.or(file.lease_ttl),
            leases: self.leases.or(file.leases),
            s3_endpoint: self.s3_endpoint.or(file.s3_endpoint),
            s3_region: self.s3_region.or(file.s3_region),
            s3_path_style: self.s3_path_style.or(file.s3_path_style),
            s3_allow_http: self.s3_allow_http.or(file.s3_allow_http),
            sumdb: if self.sumdb.is_empty() {
                file.sumdb
            } else {
                self.sumdb
            },
            nosumdb: if self.nosumdb.is_empty() {
                file.nosumdb
            } else {
                self.nosumdb
            },
            sumdb_verify: self.sumdb_verify.or(file.sumdb_verify),
            sumdb_fail_open: self.sumdb_fail_open.or(file.sumdb_fail_open),
            ready_file: self.ready_file.or(file.ready_file),
        }
    }
}

/// The proxies of `$GOPROXY`, less `direct` and `off`, which Sparta cannot
/// serve; each kept entry keeps the separator that followed it.
fn default_upstream() -> Result<String> {
    let goproxy = std::env::var("GOPROXY").unwrap_or_default();
    let mut out = String::new();
    let mut pending_sep = None;
    let mut start = 0;
    let ends = goproxy
        .char_indices()
        .chain(std::iter::once((goproxy.len(), ',')));
    for (i, c) in ends.filter(|(_, c)| *c == ',' || *c == '|') {
        let entry = goproxy[start..i].trim();
        start = i + 1;
        if entry.is_empty() || entry == "direct" || entry == "off" {
            continue;
        }
        if let Some(sep) = pending_sep {
            out.push(sep);
        }
        out.push_str(entry);
        pending_sep = Some(c);
    }
    if out.is_empty() {
        bail!(
            "no upstream: pass --upstream (GOPROXY syntax, e.g. https://proxy.example.com) or set SPARTA_UPSTREAM or GOPROXY"
        );
    }
    Ok(out)
}

/// Parses `256MiB`, `1GiB`, `500kB`, `1048576` into bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a size"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "k" | "kB" | "KB" => 1_000,
        "KiB" | "Ki" => 1 << 10,
        "M" | "MB" => 1_000_000,
        "MiB" | "Mi" => 1 << 20,
        "G" | "GB" => 1_000_000_000,
        "GiB" | "Gi" => 1 << 30,
        other => bail!("unknown size unit {other:?} (use B, kB, KiB, MB, MiB, GB, GiB)"),
    };
    n.checked_mul(mult).context("size overflows")
}

/// Parses `500ms`, `60s`, `2m`, `1h`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a duration"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        other => bail!("unknown duration unit {other:?} (use ms, s, m, h)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("MiB").is_err());
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn file_fills_gaps_and_flags_win() {
        let dir = std::env::temp_dir().join(format!("sparta-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sparta.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9\"\nupstream = \"http://127.0.0.1:1\"\ncache_size = \"1MiB\"\ns3_path_style = true\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            listen: Some("127.0.0.1:7".into()),
            ..ServeArgs::default()
        };
        let s = args.resolve().unwrap();
        assert_eq!(s.listen, "127.0.0.1:7");
        assert_eq!(s.upstream, "http://127.0.0.1:1");
        assert_eq!(s.cache_size, 1 << 20);
        assert!(s.s3.path_style);
        std::fs::write(&path, "no_such_key = 1\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        assert!(args.resolve().is_err(), "unknown keys are refused");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
