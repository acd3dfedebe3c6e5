//! Network lists and the client address: which peer is asking, and may it.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::AccessError;

/// Parses `10.0.0.0/8`, `fd00::/8` or a bare address (a /32 or /128).
pub fn parse_net(text: &str) -> Result<IpNet, AccessError> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| AccessError::Invalid(format!("not an address or CIDR range: {text:?}")))
}

/// Parses a list of ranges, each item possibly a comma-separated list itself
/// (how an environment variable carries several).
pub fn parse_nets<S: AsRef<str>>(items: &[S]) -> Result<Vec<IpNet>, AccessError> {
    items
        .iter()
        .flat_map(|s| s.as_ref().split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_net(&s))
        .collect()
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:10.1.2.3`) is the
/// IPv4 address, so IPv4 ranges match it.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|n| n.contains(&ip))
}

/// Allow and deny lists. Deny wins, also inside an allowed range; an empty
/// allow list allows every address not denied.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl NetPolicy {
    /// Whether any list is set (otherwise every address may ask).
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether `ip` may use the proxy.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if contains(&self.deny, ip) {
            return false;
        }
        self.allow.is_empty() || contains(&self.allow, ip)
    }
}

/// The client's address: the socket peer, unless the peer is a trusted
/// proxy, then the rightmost hop of the forwarding headers that is not a
/// trusted proxy. Hops to the right of it were added by proxies we trust;
/// hops to its left were written by the client and prove nothing.
///
/// `forwarded` holds the values of every `Forwarded` header, `xff` those of
/// every `X-Forwarded-For` header, in order. `Forwarded` is used when
/// present, as the standard form.
pub fn client_addr(peer: IpAddr, trusted: &[IpNet], forwarded: &[&str], xff: &[&str]) -> IpAddr {
    let peer = canonical(peer);
    if !contains(trusted, peer) {
        return peer;
    }
    let hops: Vec<&str> = if forwarded.is_empty() {
        xff.iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect()
    } else {
        forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(forwarded_for)
            .collect()
    };
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        // A hop we cannot read: the nearest hop we could read is the best
        // we know, and it was vouched for by a trusted proxy.
        let Some(ip) = parse_hop(hop) else {
            return nearest;
        };
        let ip = canonical(ip);
        if !contains(trusted, ip) {
            return ip;
        }
        nearest = ip;
    }
    nearest
}

/// The `for=` parameter of one `Forwarded` element, or "" without one.
fn forwarded_for(element: &str) -> &str {
    element
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
        .map(|(_, v)| v.trim().trim_matches('"'))
        .unwrap_or("")
}

/// An address as a hop writes it: `1.2.3.4`, `1.2.3.4:5678`, `[::1]`,
/// `[::1]:5678` or a bare IPv6 address.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (inner, _) = rest.split_once(']')?;
        return inner.parse().ok();
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(items: &[&str]) -> Vec<IpNet> {
        parse_nets(items).unwrap()
    }

    #[test]
    fn deny_wins_inside_an_allowed_range() {
        let p = NetPolicy {
            allow: nets(&["10.0.0.0/8", "fd00::/8"]),
            deny: nets(&["10.9.0.0/16"]),
        };
        assert!(p.permits(ip("10.1.2.3")));
        assert!(!p.permits(ip("10.9.2.3")));
        assert!(!p.permits(ip("192.168.1.1")));
        assert!(p.permits(ip("fd12::1")));
        assert!(!p.permits(ip("2001:db8::1")));
        assert!(
            p.permits(ip("::ffff:10.1.2.3")),
            "mapped IPv4 matches IPv4 ranges"
        );
        assert!(!p.permits(ip("::ffff:10.9.0.1")));
    }

    #[test]
    fn empty_allow_list_allows_all_but_denied() {
        let p = NetPolicy {
            allow: vec![],
            deny: nets(&["127.0.0.2"]),
        };
        assert!(p.permits(ip("127.0.0.1")));
        assert!(!p.permits(ip("127.0.0.2")));
        assert!(NetPolicy::default().is_open());
    }

    #[test]
    fn parses_lists_and_refuses_garbage() {
        assert_eq!(nets(&["10.0.0.0/8,192.168.0.0/16", "::1"]).len(), 3);
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("example.com").is_err());
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_sends() {
        let trusted = nets(&["127.0.0.1"]);
        let got = client_addr(ip("10.0.0.5"), &trusted, &[], &["1.2.3.4"]);
        assert_eq!(got, ip("10.0.0.5"));
        let got = client_addr(ip("10.0.0.5"), &[], &["for=1.2.3.4"], &[]);
        assert_eq!(got, ip("10.0.0.5"));
    }

    #[test]
    fn trusted_peer_gives_the_rightmost_untrusted_hop() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/24"]);
        // The client claimed 6.6.6.6; the first proxy saw 203.0.113.9.
        let xff = ["6.6.6.6, 203.0.113.9", "10.0.0.2"];
        assert_eq!(
            client_addr(ip("127.0.0.1"), &trusted, &[], &xff),
            ip("203.0.113.9")
        );
        let fwd = [r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https"#];
        assert_eq!(
            client_addr(ip("127.0.0.1"), &trusted, &fwd, &xff),
            ip("2001:db8::7")
        );
        // Every hop trusted: the leftmost one.
        assert_eq!(
            client_addr(ip("127.0.0.1"), &trusted, &[], &["10.0.0.3"]),
            ip("10.0.0.3")
        );
        // No header: the proxy itself.
        assert_eq!(
            client_addr(ip("127.0.0.1"), &trusted, &[], &[]),
            ip("127.0.0.1")
        );
        // Garbage to the right stops the walk at the nearest readable hop.
        assert_eq!(
            client_addr(ip("127.0.0.1"), &trusted, &[], &["1.2.3.4, junk"]),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_addr(ip("127.0.0.1"), &trusted, &[], &["1.2.3.4:999"]),
            ip("1.2.3.4")
        );
    }

    proptest::proptest! {
        #[test]
        fn hop_parsing_never_panics(s in ".{0,80}") {
            let trusted = nets(&["127.0.0.1"]);
            let _ = client_addr(ip("127.0.0.1"), &trusted, &[&s], &[&s]);
        }

        #[test]
        fn a_direct_client_never_chooses_its_address(a: [u8; 4], spoof: [u8; 4]) {
            let peer = IpAddr::from(a);
            let trusted = nets(&["127.0.0.0/8"]);
            proptest::prop_assume!(!trusted[0].contains(&peer));
            let xff = std::net::Ipv4Addr::from(spoof).to_string();
            proptest::prop_assert_eq!(client_addr(peer, &trusted, &[], &[&xff]), peer);
        }

        #[test]
        fn deny_always_wins(a: [u8; 4], len in 0u8..=32) {
            let addr = IpAddr::from(a);
            let net = IpNet::new(addr, len).unwrap().trunc();
            let p = NetPolicy { allow: vec![net], deny: vec![net] };
            proptest::prop_assert!(!p.permits(addr));
        }
    }
}
