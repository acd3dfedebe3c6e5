//! Who may use the proxy, decided by pure code over typed inputs: network
//! allow/deny lists, the client address behind trusted proxies, module
//! rules, and credentials from reloadable htpasswd and token files.

pub mod auth;
pub mod credentials;
pub mod error;
pub mod net;
pub mod rules;

pub use auth::{Authenticator, Principal};
pub use credentials::{AuthFailure, hash_token};
pub use error::AccessError;
pub use net::{NetPolicy, client_addr};
pub use rules::{ModuleRules, ModuleVerdict};

/// Re-exported so callers name ranges without depending on `ipnet`.
pub use ipnet::IpNet;
