//! Go module proxy rules with no I/O.
//!
//! Everything here is pure: parsing and validating module paths and versions
//! (golang.org/x/mod/module and semver rules), `!` case escaping, parsing a
//! GOPROXY request path into a typed [`ProxyRequest`], the storage key layout,
//! module zip checks and `h1:` hashes, the checksum database's note and
//! tree formats, and GOPROXY list parsing, `Range` headers.

pub mod civil;
pub mod download;
pub mod error;
pub mod escape;
pub mod glob;
pub mod gomod;
pub mod hash;
pub mod jsontext;
pub mod key;
pub mod module;
pub mod modzip;
pub mod network;
pub mod proxylist;
pub mod range;
pub mod request;
pub mod routes;
pub mod sumdb;
pub mod version;
pub mod warmlist;
pub mod zipcheck;

pub use error::CoreError;
pub use module::ModulePath;
pub use request::{FileKind, ProxyRequest};
pub use version::{InfoVersion, Version};
