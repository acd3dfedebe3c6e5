//! Layering with figment: one provider per set flag and per set env var, so
//! an error or `sparta config` names exactly where a value came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args};
use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::Settings;

/// Settings as loaded, with where each value came from.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    /// Setting name -> its source (`flag --x`, `env SPARTA_X`, `file <path>`, `default`).
    pub sources: BTreeMap<String, String>,
    /// Doubtful but workable combinations, logged at start-up.
    pub warnings: Vec<String>,
}

/// One layer of values under one name.
struct Layer {
    name: String,
    data: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.data.clone()))
    }
}

/// The setting names, in flag order, and whether each is a list.
fn setting_args() -> Vec<(String, bool)> {
    Settings::augment_args(clap::Command::new("sparta"))
        .get_arguments()
        .map(|a| {
            let list = matches!(a.get_action(), ArgAction::Append);
            (a.get_id().to_string(), list)
        })
        .collect()
}

/// Text as figment reads env vars: `true`, `30`, `[a, b]` become typed values.
fn parse_value(raw: &str) -> Value {
    if raw.is_empty() {
        return Value::from(String::new());
    }
    raw.parse()
        .unwrap_or_else(|_: std::convert::Infallible| Value::from(raw.to_owned()))
}

impl Loaded {
    /// Loads from the parsed command line, the given environment and the
    /// TOML file named by `--config`/`SPARTA_CONFIG`, then checks the result.
    pub fn new(
        config: Option<&Path>,
        matches: &ArgMatches,
        env: &BTreeMap<String, String>,
    ) -> Result<Loaded> {
        let args = setting_args();
        let command = Settings::augment_args(clap::Command::new("sparta"));

        let mut defaults = Dict::new();
        for arg in command.get_arguments() {
            if let Some(d) = arg.get_default_values().first() {
                defaults.insert(arg.get_id().to_string(), parse_value(&d.to_string_lossy()));
            }
        }
        let mut figment = Figment::new().merge(Layer {
            name: "default".into(),
            data: defaults,
        });
        if let Some(path) = config {
            figment = figment.merge(Toml::file(absolute(path)?));
        }
        for (id, _) in &args {
            let var = format!("SPARTA_{}", id.to_uppercase());
            if let Some(raw) = env.get(&var) {
                figment = figment.merge(Layer {
                    name: format!("env {var}"),
                    data: Dict::from([(id.clone(), parse_value(raw))]),
                });
            }
        }
        for (id, list) in &args {
            if matches.value_source(id) != Some(ValueSource::CommandLine) {
                continue;
            }
            let raw: Vec<Value> = matches
                .get_raw(id)
                .into_iter()
                .flatten()
                .map(|v| parse_value(&v.to_string_lossy()))
                .collect();
            let value = match (list, raw.len()) {
                (false, 1) => raw.into_iter().next().expect("one value"),
                _ => Value::from(raw),
            };
            figment = figment.merge(Layer {
                name: format!("flag --{}", id.replace('_', "-")),
                data: Dict::from([(id.clone(), value)]),
            });
        }

        let mut settings: Settings = figment.extract().map_err(describe)?;
        let mut sources = BTreeMap::new();
        for (id, _) in &args {
            if let Some(meta) = figment.find_metadata(id) {
                let source = match &meta.source {
                    Some(figment::Source::File(p)) => format!("file {}", p.display()),
                    _ => meta.name.to_string(),
                };
                sources.insert(id.clone(), source);
            }
        }
        let warnings = super::check::finish(&mut settings, &mut sources, env)?;
        Ok(Loaded {
            settings,
            sources,
            warnings,
        })
    }

    /// The effective configuration as TOML, each line with its source;
    /// secrets redacted.
    pub fn render(&self) -> Result<String> {
        let table = toml::Table::try_from(&self.settings).context("cannot render settings")?;
        let mut out =
            String::from("# effective settings: flag > env (SPARTA_*) > file > default\n");
        for (id, _) in setting_args() {
            let source = self.sources.get(&id).map(String::as_str).unwrap_or("unset");
            match table.get(&id) {
                Some(v) => {
                    let v = redact(&id, v.clone());
                    out.push_str(&format!("{id} = {v}  # {source}\n"));
                }
                None => out.push_str(&format!("# {id} is unset\n")),
            }
        }
        Ok(out)
    }
}

/// Figment resolves a relative file name by searching parent directories;
/// the file named must be the file read.
fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    if !abs.is_file() {
        return Err(anyhow!(
            "cannot read config file {}: no such file",
            path.display()
        ));
    }
    Ok(abs)
}

/// Every problem figment found, one per line, without its profile prefix.
fn describe(e: figment::Error) -> anyhow::Error {
    let lines: Vec<String> = e
        .into_iter()
        .map(|e| {
            format!(
                "invalid setting: {}",
                e.to_string().replace("\"default.", "\"")
            )
        })
        .collect();
    anyhow!(lines.join("\n"))
}

/// Values of secret-looking settings hidden; credentials in URLs hidden.
fn redact(id: &str, v: toml::Value) -> toml::Value {
    let secret = ["token", "password", "secret", "credential", "private_key"]
        .iter()
        .any(|w| id.contains(w));
    match v {
        _ if secret => toml::Value::String("<redacted>".into()),
        toml::Value::String(s) => toml::Value::String(super::values::redact_userinfo(&s)),
        toml::Value::Array(a) => toml::Value::Array(a.into_iter().map(|v| redact(id, v)).collect()),
        other => other,
    }
}
