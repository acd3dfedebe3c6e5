//! `/version`: what this binary is, as deploy tooling polls it.

use serde::Serialize;

/// Build facts recorded by build.rs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BuildInfo {
    pub version: &'static str,
    pub commit: &'static str,
    pub build_date: &'static str,
    pub rustc: &'static str,
}

/// This binary's build facts.
pub const BUILD: BuildInfo = BuildInfo {
    version: env!("CARGO_PKG_VERSION"),
    commit: env!("SPARTA_COMMIT"),
    build_date: env!("SPARTA_BUILD_DATE"),
    rustc: env!("SPARTA_RUSTC"),
};

/// `sparta --version`: the version and the commit it was built from.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SPARTA_COMMIT"),
    ", ",
    env!("SPARTA_BUILD_DATE"),
    ")"
);

/// The `/version` body.
pub fn json() -> String {
    let mut body = serde_json::to_string(&BUILD).expect("static strings serialize");
    body.push('\n');
    body
}
