//! Start-up of the access layer and the audit log, and `sparta token`.

use std::io::Read;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use sparta_server::Metrics;
use sparta_server::access::{Access, AccessConfig};
use sparta_server::audit::{AuditGuard, AuditLog};
use tracing::info;

use crate::config::AccessSettings;

/// `sparta token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Reads a token on stdin and prints its `--auth-tokens` line (`NAME:sha256hex`).
    Hash {
        /// The token's name, as the audit log will show it.
        name: String,
    },
}

/// Runs `sparta token`.
pub fn token_command(cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Hash { name } => {
            if name.is_empty() || name.contains([':', '\n', '\r']) {
                bail!("a token name is non-empty and holds no ':' or newline");
            }
            let mut token = String::new();
            std::io::stdin()
                .take(64 * 1024)
                .read_to_string(&mut token)
                .context("cannot read the token from stdin")?;
            let token = token.trim_end_matches(['\n', '\r']);
            if token.is_empty() {
                bail!("no token on stdin");
            }
            println!("{name}:{}", sparta_access::hash_token(token));
            Ok(())
        }
    }
}

/// The access layer and the audit log from settings.
pub fn build(
    s: &AccessSettings,
    metrics: &Metrics,
) -> Result<(Access, Option<AuditLog>, Option<AuditGuard>)> {
    let auth = sparta_access::Authenticator::open(s.htpasswd.as_deref(), s.auth_tokens.as_deref())
        .context("cannot load credentials")?;
    if let Some(a) = &auth {
        let (users, tokens) = a.counts();
        info!(users, tokens, "client authentication on");
    }
    let config = AccessConfig {
        net: sparta_access::NetPolicy {
            allow: sparta_access::net::parse_nets(&s.allow)?,
            deny: sparta_access::net::parse_nets(&s.deny)?,
        },
        trusted_proxies: sparta_access::net::parse_nets(&s.trusted_proxies)?,
        rules: sparta_access::ModuleRules::parse(&s.module_rules)?,
        auth: auth.map(std::sync::Arc::new),
    };
    let access = Access::new(config, metrics);
    let (audit, guard) = match &s.audit_log {
        Some(sink) => {
            let (log, guard) = AuditLog::open(sink, metrics)
                .with_context(|| format!("cannot open the audit log {sink:?}"))?;
            (Some(log), Some(guard))
        }
        None => (None, None),
    };
    Ok((access, audit, guard))
}
