//! Parsing a GOPROXY request path into a typed request.

use crate::{CoreError, InfoVersion, ModulePath, Version};

/// The kind of a per-version file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    Info,
    Mod,
    Zip,
}

impl FileKind {
    /// The file extension without the dot: `info`, `mod`, `zip`.
    pub fn ext(self) -> &'static str {
        match self {
            FileKind::Info => "info",
            FileKind::Mod => "mod",
            FileKind::Zip => "zip",
        }
    }
}

/// One GOPROXY protocol request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProxyRequest {
    /// `$module/@v/list`
    List(ModulePath),
    /// `$module/@latest`
    Latest(ModulePath),
    /// `$module/@v/$version.info`, canonical or a query.
    Info(ModulePath, InfoVersion),
    /// `$module/@v/$version.mod`, canonical only.
    Mod(ModulePath, Version),
    /// `$module/@v/$version.zip`, canonical only.
    Zip(ModulePath, Version),
}

impl ProxyRequest {
    /// Parses a raw, still percent-encoded URL path with the mount prefix and
    /// leading `/` removed, e.g. `github.com/%21azure/x/@v/v1.0.0.zip`.
    pub fn parse(raw_path: &str) -> Result<Self, CoreError> {
        let _ = raw_path;
        todo!()
    }

    /// The module this request is about.
    pub fn module(&self) -> &ModulePath {
        match self {
            ProxyRequest::List(m)
            | ProxyRequest::Latest(m)
            | ProxyRequest::Info(m, _)
            | ProxyRequest::Mod(m, _)
            | ProxyRequest::Zip(m, _) => m,
        }
    }

    /// The escaped URL path of this request relative to a proxy root
    /// (what Sparta asks upstream for), e.g. `github.com/!azure/x/@v/v1.0.0.zip`.
    pub fn upstream_path(&self) -> String {
        todo!()
    }
}
