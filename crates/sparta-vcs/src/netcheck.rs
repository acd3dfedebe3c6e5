//! Address safety: which hosts a discovery request or a git remote may reach.
//! We resolve the host ourselves, check every address, and connect only to
//! the checked ones (no second lookup that DNS rebinding could change).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{NetPolicy, VcsError};

/// Why an address is refused, or None if the policy allows it.
pub(crate) fn refusal(ip: IpAddr, policy: NetPolicy) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4, policy),
        IpAddr::V6(v6) => refusal_v6(v6, policy),
    }
}

fn refusal_v4(ip: Ipv4Addr, policy: NetPolicy) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_link_local() {
        return Some("a link-local address");
    }
    // Cloud metadata services outside 169.254/16 (Alibaba, Oracle).
    if ip == Ipv4Addr::new(100, 100, 100, 200) || ip == Ipv4Addr::new(192, 0, 0, 192) {
        return Some("a cloud metadata address");
    }
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || o[0] == 0 {
        return Some("not a unicast address");
    }
    if ip.is_loopback() && !policy.allow_loopback {
        return Some("a loopback address");
    }
    let cgnat = o[0] == 100 && (o[1] & 0xc0) == 64;
    if (ip.is_private() || cgnat) && policy.refuse_private {
        return Some("a private address");
    }
    None
}

fn refusal_v6(ip: Ipv6Addr, policy: NetPolicy) -> Option<&'static str> {
    let s = ip.segments();
    if (s[0] & 0xffc0) == 0xfe80 {
        return Some("a link-local address");
    }
    // AWS's IPv6 metadata endpoint.
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some("a cloud metadata address");
    }
    if ip.is_unspecified() || ip.is_multicast() {
        return Some("not a unicast address");
    }
    if ip.is_loopback() && !policy.allow_loopback {
        return Some("a loopback address");
    }
    if (s[0] & 0xfe00) == 0xfc00 && policy.refuse_private {
        return Some("a private address");
    }
    None
}

/// Resolves `host:port` and checks every address; any refused address
/// refuses the host (a name that mixes public and metadata addresses is
/// hostile). Returns the checked addresses.
pub(crate) async fn resolve_checked(
    host: &str,
    port: u16,
    policy: NetPolicy,
) -> Result<Vec<SocketAddr>, VcsError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| VcsError::NotFound(format!("cannot resolve host {host}: {e}")))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(VcsError::NotFound(format!("host {host} has no addresses")));
    }
    for a in &addrs {
        if let Some(why) = refusal(a.ip(), policy) {
            return Err(VcsError::Refused(format!(
                "host {host} resolves to {why} ({}), which is not allowed",
                a.ip()
            )));
        }
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn policy() {
        let strict = NetPolicy {
            allow_loopback: false,
            refuse_private: true,
        };
        let open = NetPolicy {
            allow_loopback: true,
            refuse_private: false,
        };
        for always in [
            "169.254.169.254",
            "169.254.1.1",
            "fe80::1",
            "fd00:ec2::254",
            "100.100.100.200",
            "0.0.0.0",
            "::ffff:169.254.169.254",
            "224.0.0.1",
        ] {
            assert!(refusal(ip(always), open).is_some(), "{always}");
        }
        for lo in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert!(refusal(ip(lo), strict).is_some(), "{lo}");
            assert!(refusal(ip(lo), open).is_none(), "{lo}");
        }
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "fd12::1",
            "100.64.0.1",
        ] {
            assert!(refusal(ip(private), strict).is_some(), "{private}");
            assert!(refusal(ip(private), open).is_none(), "{private}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1", "172.32.0.1"] {
            assert!(refusal(ip(public), strict).is_none(), "{public}");
        }
    }

    #[tokio::test]
    async fn literal_hosts_are_checked_without_lookup() {
        let open = NetPolicy {
            allow_loopback: true,
            refuse_private: false,
        };
        assert!(matches!(
            resolve_checked("169.254.169.254", 80, open).await,
            Err(VcsError::Refused(_))
        ));
        assert_eq!(
            resolve_checked("[::1]", 8080, open).await.unwrap()[0].port(),
            8080
        );
        assert!(matches!(
            resolve_checked("127.0.0.1", 80, NetPolicy::default()).await,
            Err(VcsError::Refused(_))
        ));
    }
}
