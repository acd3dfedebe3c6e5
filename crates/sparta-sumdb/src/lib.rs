//! The checksum database side of Sparta.
//!
//! [`Sumdb::proxy`] relays `/sumdb/<name>/...` for clients: lookups and full
//! tiles never change, so they are stored once and served from storage;
//! `latest` and partial tiles are kept in memory for a minute.
//! [`Sumdb::verify_mod`] and [`Sumdb::verify_zip`] check a hash against the
//! database before anything is stored, as the go command would: the lookup's
//! signed tree head must carry a valid signature by the configured key, and
//! the record must be included in that tree (an inclusion proof built from
//! tiles). [`verify_store`] re-checks everything already stored.

mod cached;
mod error;
mod fetch;
mod import;
pub mod path;
pub mod pattern;
mod prove;
mod verify_store;

pub use sparta_core::sumdb::{note, tlog};

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sparta_core::{ModulePath, Version};
use sparta_storage::{PutOutcome, Store};
use tracing::{debug, warn};

pub use error::SumdbError;
pub use import::Imported;
pub use path::SumdbPath;
pub use verify_store::{VerifyFailure, VerifyProgress, VerifyReport, verify_store};

use crate::note::Verifier;
use crate::pattern::Patterns;
use crate::prove::Proof;

/// Name of the go command's default checksum database.
pub const DEFAULT_NAME: &str = "sum.golang.org";
/// The go command's built-in verifier key for [`DEFAULT_NAME`].
pub const DEFAULT_KEY: &str =
    "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";

/// How long `latest`, partial tiles and unproven files are served from memory.
const FRESH_TTL: Duration = Duration::from_secs(60);

/// One checksum database and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    /// The database name, as in `/sumdb/<name>/` and its signatures.
    pub name: String,
    /// Verifier key in GOSUMDB form `name+hash+base64key`.
    pub verifier_key: String,
    /// Base URLs serving the sumdb protocol for this database, tried in order.
    pub sources: Vec<String>,
}

/// Checksum database settings.
#[derive(Debug, Clone)]
pub struct SumdbConfig {
    /// Databases served under `/sumdb/`; the first one verifies modules.
    pub databases: Vec<Database>,
    /// GONOSUMDB-style glob lists: matching modules are not verified.
    pub nosumdb: Vec<String>,
    /// Whether fetched modules are verified at all.
    pub verify: bool,
    /// Store unverified (with a warning) when the database cannot be reached.
    pub fail_open: bool,
}

/// A relayed checksum database file.
#[derive(Debug, Clone)]
pub struct SumdbFile {
    pub body: Bytes,
    pub content_type: &'static str,
    /// Lookups and full tiles: clients may cache them forever.
    pub immutable: bool,
    /// Where the answer came from, for cache metrics.
    pub tier: Tier,
}

/// Which tier answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Memory,
    Storage,
    Upstream,
}

impl Tier {
    /// The metrics label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Memory => "memory",
            Tier::Storage => "storage",
            Tier::Upstream => "upstream",
        }
    }
}

/// Outcome of a successful verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The database signs exactly this hash, in a tree that includes it.
    Verified,
    /// Not checked: a nosumdb pattern matched, verification is off, or the
    /// database was unreachable and fail-open is on.
    Skipped,
}

/// The checksum database service; cheap to clone.
#[derive(Clone)]
pub struct Sumdb {
    inner: Arc<Inner>,
}

struct Db {
    config: Database,
    verifier: Verifier,
}

struct Inner {
    dbs: Vec<Db>,
    nosumdb: Patterns,
    verify: bool,
    fail_open: bool,
    store: Store,
    http: reqwest::Client,
    /// `latest` and partial tiles, briefly.
    fresh: moka::future::Cache<String, (Bytes, Tier)>,
    /// Immutable files recently served, in front of storage; proven only.
    recent: moka::future::Cache<String, (Bytes, Tier)>,
    /// Lookups and full tiles not (yet) proven against a signed tree, and
    /// tiles fetched to supply a proof's other hashes: memory only, briefly.
    unproven: moka::future::Cache<String, Bytes>,
}

impl std::fmt::Debug for Sumdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .inner
            .dbs
            .iter()
            .map(|d| d.config.name.as_str())
            .collect();
        f.debug_struct("Sumdb")
            .field("databases", &names)
            .field("verify", &self.inner.verify)
            .field("fail_open", &self.inner.fail_open)
            .finish()
    }
}

impl Sumdb {
    /// Checks the configuration (keys, names, sources, patterns).
    pub fn new(config: SumdbConfig, store: Store) -> Result<Self, SumdbError> {
        let mut dbs = Vec::new();
        for db in config.databases {
            let verifier = Verifier::parse(&db.verifier_key)?;
            if verifier.name() != db.name {
                return Err(SumdbError::Invalid(format!(
                    "verifier key {} does not belong to database {}",
                    db.verifier_key, db.name
                )));
            }
            if db.sources.is_empty() {
                return Err(SumdbError::Invalid(format!(
                    "database {} has no source URL",
                    db.name
                )));
            }
            if dbs.iter().any(|d: &Db| d.config.name == db.name) {
                return Err(SumdbError::Invalid(format!(
                    "database {} configured twice",
                    db.name
                )));
            }
            dbs.push(Db {
                config: db,
                verifier,
            });
        }
        if config.verify && dbs.is_empty() {
            return Err(SumdbError::Invalid(
                "verification is on but no checksum database is configured".into(),
            ));
        }
        let http = sparta_upstream::http_client(Duration::from_secs(10))
            .map_err(|e| SumdbError::Invalid(format!("cannot build http client: {e}")))?;
        let weigher =
            |k: &String, v: &(Bytes, Tier)| u32::try_from(k.len() + v.0.len()).unwrap_or(u32::MAX);
        Ok(Sumdb {
            inner: Arc::new(Inner {
                dbs,
                nosumdb: Patterns::parse(&config.nosumdb)?,
                verify: config.verify,
                fail_open: config.fail_open,
                store,
                http,
                fresh: moka::future::Cache::builder()
                    .max_capacity(16 << 20)
                    .weigher(weigher)
                    .time_to_live(FRESH_TTL)
                    .build(),
                recent: moka::future::Cache::builder()
                    .max_capacity(32 << 20)
                    .weigher(weigher)
                    .time_to_idle(Duration::from_secs(600))
                    .build(),
                unproven: moka::future::Cache::builder()
                    .max_capacity(16 << 20)
                    .weigher(|k: &String, v: &Bytes| {
                        u32::try_from(k.len() + v.len()).unwrap_or(u32::MAX)
                    })
                    .time_to_live(FRESH_TTL)
                    .build(),
            }),
        })
    }

    /// Parses `name+hash+key` or `name+hash+key url` (GOSUMDB syntax); the
    /// default database may be named alone. Without a URL the database is
    /// reached through each upstream's `/sumdb/<name>`.
    pub fn parse_database(spec: &str, upstreams: &[String]) -> Result<Database, SumdbError> {
        let mut fields = spec.split_whitespace();
        let key = fields
            .next()
            .ok_or_else(|| SumdbError::Invalid("empty checksum database setting".into()))?;
        let url = fields.next();
        if fields.next().is_some() {
            return Err(SumdbError::Invalid(format!(
                "checksum database setting {spec:?}: want \"name+hash+key [url]\""
            )));
        }
        let key = if key == DEFAULT_NAME {
            DEFAULT_KEY
        } else {
            key
        };
        let verifier = Verifier::parse(key)?;
        let name = verifier.name().to_owned();
        let sources = match url {
            Some(url) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(SumdbError::Invalid(format!(
                        "checksum database URL {url:?} must start with http:// or https://"
                    )));
                }
                vec![url.trim_end_matches('/').to_owned()]
            }
            None => upstream_sources(&name, upstreams),
        };
        Ok(Database {
            name,
            verifier_key: key.to_owned(),
            sources,
        })
    }

    /// The go command's default database, reached through the upstreams.
    pub fn default_database(upstreams: &[String]) -> Database {
        Database {
            name: DEFAULT_NAME.to_owned(),
            verifier_key: DEFAULT_KEY.to_owned(),
            sources: upstream_sources(DEFAULT_NAME, upstreams),
        }
    }

    /// Names of the configured databases.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.dbs.iter().map(|d| d.config.name.as_str())
    }

    /// Relays `/sumdb/<name>/<path>` (`supported`, `latest`,
    /// `lookup/<mod>@<ver>`, `tile/...`). Unknown names and paths are
    /// NotFound without any fetch.
    pub async fn proxy(&self, name: &str, path: &str) -> Result<SumdbFile, SumdbError> {
        let db = self.db(name)?;
        let parsed = SumdbPath::parse(path)
            .ok_or_else(|| SumdbError::NotFound(format!("not a checksum database path: {path}")))?;
        self.get(db, &parsed).await
    }

    /// Checks a go.mod's hash against the database before it is stored.
    pub async fn verify_mod(
        &self,
        module: &ModulePath,
        version: &Version,
        gomod: &[u8],
    ) -> Result<Verdict, SumdbError> {
        let h1 = sparta_core::hash::gomod_h1(gomod);
        self.verify_line(module, version, true, &h1, self.inner.fail_open)
            .await
    }

    /// Checks a zip's `h1:` hash against the database before it is stored.
    pub async fn verify_zip(
        &self,
        module: &ModulePath,
        version: &Version,
        zip_h1: &str,
    ) -> Result<Verdict, SumdbError> {
        self.verify_line(module, version, false, zip_h1, self.inner.fail_open)
            .await
    }

    /// Whether `module` is checked at all (verification on, no nosumdb match).
    pub fn should_verify(&self, module: &ModulePath) -> bool {
        self.inner.verify && !self.inner.nosumdb.matches(module.as_str())
    }

    async fn verify_line(
        &self,
        module: &ModulePath,
        version: &Version,
        gomod: bool,
        got: &str,
        fail_open: bool,
    ) -> Result<Verdict, SumdbError> {
        if !self.should_verify(module) {
            return Ok(Verdict::Skipped);
        }
        let db = &self.inner.dbs[0];
        let record = match self.checked_record(db, module, version).await {
            Ok(record) => record,
            Err(SumdbError::Unavailable(reason)) if fail_open => {
                warn!(
                    module = %module,
                    version = %version,
                    database = %db.config.name,
                    error = %reason,
                    "checksum database unreachable: storing unverified (fail-open)"
                );
                return Ok(Verdict::Skipped);
            }
            Err(e) => return Err(e),
        };
        let want_version = if gomod {
            format!("{version}/go.mod")
        } else {
            version.to_string()
        };
        let expected = record.lines().find_map(|line| {
            let mut f = line.split(' ');
            match (f.next(), f.next(), f.next(), f.next()) {
                (Some(m), Some(v), Some(h), None) if m == module.as_str() && v == want_version => {
                    Some(h)
                }
                _ => None,
            }
        });
        let Some(expected) = expected else {
            return Err(SumdbError::NotFound(format!(
                "checksum database {} record for {module}@{version} has no {} line",
                db.config.name,
                if gomod { "go.mod" } else { "zip" }
            )));
        };
        if expected != got {
            warn!(module = %module, version = %want_version, expected, got, "checksum mismatch");
            return Err(SumdbError::Mismatch {
                module: module.to_string(),
                version: want_version,
                expected: expected.to_owned(),
                got: got.to_owned(),
            });
        }
        debug!(module = %module, version = %want_version, "verified against checksum database");
        Ok(Verdict::Verified)
    }

    /// The record text for module@version, after checking the note signature
    /// and the record's inclusion in the signed tree.
    async fn checked_record(
        &self,
        db: &Db,
        module: &ModulePath,
        version: &Version,
    ) -> Result<String, SumdbError> {
        let lookup = SumdbPath::Lookup(module.clone(), version.clone());
        let body = match self.get(db, &lookup).await {
            Err(SumdbError::NotFound(_)) => {
                return Err(SumdbError::NotFound(format!(
                    "checksum database {} has no record for {module}@{version} \
                     (list it in nosumdb if it is private)",
                    db.config.name
                )));
            }
            other => other?.body,
        };
        self.prove_record(db, &body).await
    }

    fn db(&self, name: &str) -> Result<&Db, SumdbError> {
        self.inner
            .dbs
            .iter()
            .find(|d| d.config.name == name)
            .ok_or_else(|| SumdbError::NotFound(format!("unknown checksum database {name}")))
    }

    /// One file through memory, storage (immutable files) and the sources.
    async fn get(&self, db: &Db, path: &SumdbPath) -> Result<SumdbFile, SumdbError> {
        let immutable = path.immutable();
        let content_type = path.content_type();
        if *path == SumdbPath::Supported {
            return Ok(SumdbFile {
                body: Bytes::new(),
                content_type,
                immutable,
                tier: Tier::Memory,
            });
        }
        let rel = path.to_path();
        let key = format!("{}/{rel}", db.config.name);
        if !immutable {
            let (body, tier) = self.fresh_file(db, &rel).await?;
            return Ok(SumdbFile {
                body,
                content_type,
                immutable,
                tier,
            });
        }
        let memory = match self.inner.recent.get(&key).await {
            Some((body, _)) => Some(body),
            None => self.inner.unproven.get(&key).await,
        };
        let (body, tier) = match memory {
            Some(body) => (body, Tier::Memory),
            None => {
                let (body, tier, proof) = self.fetch_immutable(db, path, &rel).await?;
                match proof {
                    Proof::Proven => self.inner.recent.insert(key, (body.clone(), tier)).await,
                    Proof::Unproven => self.inner.unproven.insert(key, body.clone()).await,
                }
                (body, tier)
            }
        };
        Ok(SumdbFile {
            body,
            content_type,
            immutable,
            tier,
        })
    }

    /// `latest` or a partial tile: from memory for a short while, else fetched.
    async fn fresh_file(&self, db: &Db, rel: &str) -> Result<(Bytes, Tier), SumdbError> {
        let key = format!("{}/{rel}", db.config.name);
        let entry = self
            .inner
            .fresh
            .entry_by_ref(&key)
            .or_try_insert_with(async { Ok((self.fetch(db, rel).await?, Tier::Upstream)) })
            .await
            .map_err(|e: Arc<SumdbError>| (*e).clone())?;
        let fresh = entry.is_fresh();
        let (body, tier) = entry.into_value();
        Ok((body, if fresh { tier } else { Tier::Memory }))
    }

    /// Storage first; on a miss fetch, prove, and store write-once only what
    /// is proven. A storage failure only costs a fetch, never the answer.
    async fn fetch_immutable(
        &self,
        db: &Db,
        path: &SumdbPath,
        rel: &str,
    ) -> Result<(Bytes, Tier, Proof), SumdbError> {
        let key = sparta_core::key::sumdb(&db.config.name, rel);
        match self.inner.store.get(&key).await {
            Ok(Some(body)) => return Ok((body, Tier::Storage, Proof::Proven)),
            Ok(None) => {}
            Err(e) => {
                warn!(key, error = %e, "checksum database file unreadable in storage, fetching")
            }
        }
        let body = self.fetch(db, rel).await?;
        let proof = self.prove(db, path, &body).await.inspect_err(|e| {
            warn!(key, error = %e, "refused an unproven checksum database file");
        })?;
        if proof == Proof::Proven {
            match self.inner.store.put_once(&key, body.clone()).await {
                Ok(PutOutcome::Created | PutOutcome::AlreadyExists) => {}
                Err(e) => warn!(key, error = %e, "could not store checksum database file"),
            }
        }
        Ok((body, Tier::Upstream, proof))
    }
}

fn upstream_sources(name: &str, upstreams: &[String]) -> Vec<String> {
    upstreams
        .iter()
        .map(|u| format!("{}/sumdb/{name}", u.trim_end_matches('/')))
        .collect()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_proof;
