//! The HTTP client both upstream clients share (module proxies and checksum
//! databases): redirects are never followed, names never resolve to
//! link-local or cloud metadata addresses (nor to loopback unless the name is
//! `localhost`), error bodies are read only a few KiB deep, and `Retry-After`
//! is parsed for the callers that honour it.
//!
//! A configured URL with an IP literal is not resolved, so a loopback upstream
//! configured as `http://127.0.0.1:port` is used as given: only addresses the
//! operator did not write down are refused.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Bytes of a non-2xx body read for its reason; the rest is dropped unread.
pub const ERROR_BODY_LIMIT: usize = 4 << 10;

/// Builds a client that never follows redirects and resolves names through
/// [`GuardedResolver`].
pub fn http_client(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver))
        .user_agent(concat!("sparta/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Resolves with the system resolver, dropping addresses a configured host
/// name must never reach: link-local (where cloud metadata services live),
/// the metadata addresses outside it, unspecified addresses, and loopback for
/// any name but `localhost`. A name left with no address fails to connect.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let local_name = is_localhost_name(&host);
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allowed_resolved(a.ip(), local_name))
                .collect();
            if found.is_empty() {
                return Err(format!(
                    "{host} resolves to no address an upstream may have \
                     (loopback, link-local and metadata addresses are refused for names)"
                )
                .into());
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

fn is_localhost_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// Whether a resolved address may be dialled for a name.
pub fn allowed_resolved(ip: IpAddr, localhost_name: bool) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if ip.is_unspecified() || is_metadata(ip) {
        return false;
    }
    if ip.is_loopback() {
        return localhost_name;
    }
    match ip {
        IpAddr::V4(v4) => !v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

/// Cloud metadata endpoints outside the link-local ranges.
fn is_metadata(ip: IpAddr) -> bool {
    match ip {
        // Alibaba Cloud.
        IpAddr::V4(v4) => v4.octets() == [100, 100, 100, 200],
        // AWS IMDS over IPv6.
        IpAddr::V6(v6) => v6.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254],
    }
}

/// Reads at most [`ERROR_BODY_LIMIT`] bytes of a body, within `idle` per
/// chunk; a body that fails or stalls yields what arrived.
pub async fn bounded_error_body(mut response: reqwest::Response, idle: Duration) -> Bytes {
    let mut out = BytesMut::new();
    while out.len() < ERROR_BODY_LIMIT {
        match tokio::time::timeout(idle, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let room = ERROR_BODY_LIMIT - out.len();
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    out.freeze()
}

/// The first line of an error body, trimmed and cut to 512 characters.
pub fn reason_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.lines()
        .next()
        .unwrap_or("")
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(512)
        .collect()
}

/// `Retry-After` in delta-seconds; HTTP dates are treated as absent (an
/// upstream clock is not trusted for a wait).
pub fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(http::header::RETRY_AFTER)?;
    let text = value.to_str().ok()?.trim();
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().map(Duration::from_secs)
}

/// Formats an error with its sources, which reqwest keeps out of `Display`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolved_addresses_are_sorted() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for bad in [
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "fd00:ec2::254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "::ffff:169.254.169.254",
        ] {
            assert!(!allowed_resolved(ip(bad), true), "{bad}");
        }
        for lo in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(!allowed_resolved(ip(lo), false), "{lo}");
            assert!(allowed_resolved(ip(lo), true), "{lo}");
        }
        for good in ["10.0.0.1", "192.0.2.7", "2001:db8::1", "100.100.100.201"] {
            assert!(allowed_resolved(ip(good), false), "{good}");
        }
        assert!(is_localhost_name("localhost"));
        assert!(is_localhost_name("Proxy.Localhost."));
        assert!(!is_localhost_name("localhost.example"));
    }

    #[test]
    fn reason_lines_are_short_and_clean() {
        assert_eq!(reason_line(b"  not found: x\nmore"), "not found: x");
        assert_eq!(reason_line(b"a\x1b[31mb"), "a[31mb");
        assert_eq!(reason_line(&[b'x'; 2000]).len(), 512);
        assert_eq!(reason_line(b""), "");
    }
}
