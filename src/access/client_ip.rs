//! The client's IP address.
//!
//! APM Server believes `Forwarded`, `X-Real-IP` and `X-Forwarded-For` from anyone, so any
//! client can claim any address and slip past per-IP rate limits (its open issue #6424).
//! apmgate believes these headers only from peers in `trusted_proxies`, and walks the chain from
//! the right, skipping trusted hops, so the address is the last one a trusted proxy vouched for.
//! With `trusted_proxy_header`, only the header the proxies set is read: the others reach us as
//! the client wrote them.

use std::net::{IpAddr, SocketAddr};

use crate::policy::compiled::ProxyHeader;
use crate::policy::types::IpSet;

/// Where the client IP came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpSource {
    /// The socket peer.
    Socket,
    /// The `Forwarded` header.
    Forwarded,
    /// The `X-Real-IP` header.
    XRealIp,
    /// The `X-Forwarded-For` header.
    XForwardedFor,
}

impl IpSource {
    /// Name for explanations and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            IpSource::Socket => "socket peer address",
            IpSource::Forwarded => "Forwarded header",
            IpSource::XRealIp => "X-Real-IP header",
            IpSource::XForwardedFor => "X-Forwarded-For header",
        }
    }
}

/// The derived client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp {
    /// Client address.
    pub ip: IpAddr,
    /// Client port, when the header or socket gave one.
    pub port: Option<u16>,
    /// Where it came from.
    pub source: IpSource,
    /// The socket peer, when a header supplied the address (`source.nat.ip`).
    pub nat: Option<IpAddr>,
}

/// Parses one address as written in forwarding headers: `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`,
/// `"[::1]"`, `::1`.
pub fn parse_forwarded_addr(raw: &str) -> Option<(IpAddr, Option<u16>)> {
    let s = raw.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip, None));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some((sa.ip(), Some(sa.port())));
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse().ok().map(|ip| (ip, None));
    }
    None
}

/// Walks hops from the right (nearest proxy first) and returns the first address not in
/// `trusted`, or the leftmost when every hop is trusted.
fn walk<'a>(
    hops: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &IpSet,
) -> Option<(IpAddr, Option<u16>)> {
    let mut last = None;
    for hop in hops.rev() {
        let Some(addr) = parse_forwarded_addr(hop) else {
            // A hop we cannot read ends the chain: trust stops at the last readable one.
            break;
        };
        last = Some(addr);
        if !trusted.contains(addr.0) {
            break;
        }
    }
    last
}

/// Derives the client address from the socket peer and, if the peer is a trusted proxy, the
/// forwarding headers. `header` returns every value of a header (all lines, in order). With
/// `only`, the header the trusted proxies set, no other header is read: a proxy that appends to
/// `X-Forwarded-For` passes on whatever `Forwarded` or `X-Real-IP` its client wrote. Without it,
/// `Forwarded`, then `X-Real-IP`, then `X-Forwarded-For` are tried.
pub fn client_ip<'h>(
    peer: SocketAddr,
    header: impl Fn(&str) -> Vec<&'h str>,
    trusted: &IpSet,
    only: Option<ProxyHeader>,
) -> ClientIp {
    let socket = ClientIp {
        ip: peer.ip().to_canonical(),
        port: Some(peer.port()),
        source: IpSource::Socket,
        nat: None,
    };
    if trusted.is_empty() || !trusted.contains(peer.ip()) {
        return socket;
    }
    let from_header = |addr: (IpAddr, Option<u16>), source| ClientIp {
        ip: addr.0.to_canonical(),
        port: addr.1,
        source,
        nat: Some(peer.ip().to_canonical()),
    };
    let read = |which: ProxyHeader| -> Option<ClientIp> {
        match which {
            ProxyHeader::Forwarded => {
                let forwarded = header("forwarded");
                let fors: Vec<&str> = forwarded
                    .iter()
                    .flat_map(|v| v.split(','))
                    .filter_map(|element| {
                        element.split(';').find_map(|pair| {
                            let (k, v) = pair.split_once('=')?;
                            k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
                        })
                    })
                    .collect();
                walk(fors.into_iter(), trusted).map(|a| from_header(a, IpSource::Forwarded))
            }
            ProxyHeader::XRealIp => header("x-real-ip")
                .last()
                .and_then(|v| parse_forwarded_addr(v))
                .map(|a| from_header(a, IpSource::XRealIp)),
            ProxyHeader::XForwardedFor => {
                let xff = header("x-forwarded-for");
                walk(xff.iter().flat_map(|v| v.split(',')), trusted)
                    .map(|a| from_header(a, IpSource::XForwardedFor))
            }
        }
    };
    let derived = match only {
        Some(which) => read(which),
        None => read(ProxyHeader::Forwarded)
            .or_else(|| read(ProxyHeader::XRealIp))
            .or_else(|| read(ProxyHeader::XForwardedFor)),
    };
    derived.unwrap_or(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::grammar::parse_address_range;

    fn trusted(list: &[&str]) -> IpSet {
        let r: Vec<_> = list
            .iter()
            .map(|s| parse_address_range(s).unwrap())
            .collect();
        IpSet::new(&r, &[])
    }

    fn headers<'a>(h: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Vec<&'a str> {
        move |name| {
            h.iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
                .collect()
        }
    }

    #[test]
    fn untrusted_peer_cannot_spoof() {
        let h = [
            ("X-Forwarded-For", "1.1.1.1"),
            ("X-Real-IP", "2.2.2.2"),
            ("Forwarded", "for=3.3.3.3"),
        ];
        let ip = client_ip(
            "9.9.9.9:1234".parse().unwrap(),
            headers(&h),
            &trusted(&["10.0.0.0/8"]),
            None,
        );
        assert_eq!(ip.ip, "9.9.9.9".parse::<IpAddr>().unwrap());
        assert_eq!(ip.source, IpSource::Socket);
        assert_eq!(ip.nat, None);
    }

    #[test]
    fn xff_walks_from_the_right_skipping_trusted_hops() {
        let h = [("X-Forwarded-For", "6.6.6.6, 1.2.3.4, 10.0.0.2")];
        let ip = client_ip(
            "10.0.0.1:1".parse().unwrap(),
            headers(&h),
            &trusted(&["10.0.0.0/8"]),
            None,
        );
        assert_eq!(ip.ip, "1.2.3.4".parse::<IpAddr>().unwrap());
        assert_eq!(ip.source, IpSource::XForwardedFor);
        assert_eq!(ip.nat, Some("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn forwarded_header_with_ipv6_and_ports() {
        let h = [(
            "Forwarded",
            "for=1.1.1.1, for=\"[2001:db8::1]:4711\";proto=https",
        )];
        let ip = client_ip(
            "10.0.0.1:1".parse().unwrap(),
            headers(&h),
            &trusted(&["10.0.0.0/8"]),
            None,
        );
        assert_eq!(ip.ip, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(ip.port, Some(4711));
        assert_eq!(ip.source, IpSource::Forwarded);
    }

    #[test]
    fn x_real_ip_from_trusted_peer() {
        let h = [("X-Real-IP", "5.5.5.5")];
        let ip = client_ip(
            "[::ffff:10.0.0.1]:1".parse().unwrap(),
            headers(&h),
            &trusted(&["10.0.0.0/8"]),
            None,
        );
        assert_eq!(ip.ip, "5.5.5.5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_declared_header_is_the_only_one_believed() {
        let forged = [
            ("Forwarded", "for=3.3.3.3"),
            ("X-Real-IP", "2.2.2.2"),
            ("X-Forwarded-For", "1.1.1.1, 6.6.6.6"),
        ];
        let peer = "10.0.0.1:1".parse().unwrap();
        let proxies = trusted(&["10.0.0.0/8"]);
        let ip = |only| client_ip(peer, headers(&forged), &proxies, Some(only));
        let xff = ip(ProxyHeader::XForwardedFor);
        assert_eq!(xff.ip, "6.6.6.6".parse::<IpAddr>().unwrap());
        assert_eq!(xff.source, IpSource::XForwardedFor);
        assert_eq!(
            ip(ProxyHeader::Forwarded).ip,
            "3.3.3.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            ip(ProxyHeader::XRealIp).ip,
            "2.2.2.2".parse::<IpAddr>().unwrap()
        );
        // Without the declared header, the socket peer: another header does not stand in.
        let only_forwarded = [("Forwarded", "for=3.3.3.3")];
        let none = client_ip(
            peer,
            headers(&only_forwarded),
            &proxies,
            Some(ProxyHeader::XForwardedFor),
        );
        assert_eq!(none.source, IpSource::Socket);
        // Undeclared, today's order: Forwarded first.
        assert_eq!(
            client_ip(peer, headers(&forged), &proxies, None).source,
            IpSource::Forwarded
        );
    }
}
