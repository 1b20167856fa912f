//! Which addresses egress refuses: the special-purpose IPv4 and IPv6 ranges (private,
//! loopback, link-local, translated and mapped forms of them), and the worker's own protected
//! addresses, compared as the host they are on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub(super) fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

pub(super) fn in_v6(ip: Ipv6Addr, net: [u16; 8], len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

/// IPv4 special-purpose ranges (IANA registry) that std has no stable method for.
pub(super) const V4_RANGES: &[([u8; 4], u32, &str)] = &[
    ([0, 0, 0, 0], 8, "\"this network\" (0.0.0.0/8)"),
    (
        [100, 64, 0, 0],
        10,
        "shared carrier-grade NAT space (100.64.0.0/10)",
    ),
    (
        [192, 0, 0, 0],
        24,
        "IETF protocol assignments (192.0.0.0/24)",
    ),
    ([192, 88, 99, 0], 24, "6to4 relay anycast (192.88.99.0/24)"),
    ([198, 18, 0, 0], 15, "benchmarking (198.18.0.0/15)"),
    ([240, 0, 0, 0], 4, "reserved (240.0.0.0/4)"),
];

/// Why `ip` is not a public unicast address, or `None` when it is one.
pub(super) fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("unspecified (0.0.0.0)")
    } else if ip.is_loopback() {
        Some("loopback (127.0.0.0/8)")
    } else if ip.is_private() {
        Some("private (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)")
    } else if ip.is_link_local() {
        Some("link-local (169.254.0.0/16)")
    } else if ip.is_broadcast() {
        Some("broadcast (255.255.255.255)")
    } else if ip.is_multicast() {
        Some("multicast (224.0.0.0/4)")
    } else if ip.is_documentation() {
        Some("documentation (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24)")
    } else {
        V4_RANGES
            .iter()
            .find(|(net, len, _)| in_v4(ip, *net, *len))
            .map(|(_, _, why)| *why)
    }
}

/// IPv6 special-purpose ranges (IANA registry) without a stable std method, checked after
/// the embedded-IPv4 forms; 2001::/23 comes after its more specific entries.
pub(super) const V6_RANGES: &[([u16; 8], u32, &str)] = &[
    (
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "local-use NAT64 (64:ff9b:1::/48)",
    ),
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only (100::/64)"),
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "Teredo (2001::/32)"),
    (
        [0x2001, 2, 0, 0, 0, 0, 0, 0],
        48,
        "benchmarking (2001:2::/48)",
    ),
    (
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        "documentation (2001:db8::/32)",
    ),
    (
        [0x3fff, 0, 0, 0, 0, 0, 0, 0],
        20,
        "documentation (3fff::/20)",
    ),
    (
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "IETF protocol assignments (2001::/23)",
    ),
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local (fec0::/10)"),
];

/// The IPv4 address embedded in a NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address.
pub(super) fn translated_v4(ip: Ipv6Addr) -> Option<(Ipv4Addr, &'static str)> {
    let o = ip.octets();
    if in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        Some((
            Ipv4Addr::new(o[12], o[13], o[14], o[15]),
            "NAT64 (64:ff9b::/96)",
        ))
    } else if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        Some((Ipv4Addr::new(o[2], o[3], o[4], o[5]), "6to4 (2002::/16)"))
    } else {
        None
    }
}

/// The IPv4 address of an IPv4-compatible address (::a.b.c.d, not :: or ::1).
pub(super) fn compatible_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    (s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1)).then(|| {
        let o = ip.octets();
        Ipv4Addr::new(o[12], o[13], o[14], o[15])
    })
}

/// Why `ip` is not a public unicast address, or `None` when it is one.
pub(super) fn special_v6(ip: Ipv6Addr) -> Option<String> {
    if ip.is_unspecified() {
        return Some("unspecified (::)".into());
    }
    if ip.is_loopback() {
        return Some("loopback (::1)".into());
    }
    if ip.is_multicast() {
        return Some("multicast (ff00::/8)".into());
    }
    if ip.is_unique_local() {
        return Some("unique local (fc00::/7)".into());
    }
    if ip.is_unicast_link_local() {
        return Some("link-local (fe80::/10)".into());
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(format!("IPv4-mapped (::ffff:0:0/96) of {v4}"));
    }
    if let Some(v4) = compatible_v4(ip) {
        return Some(format!("IPv4-compatible (::/96) of {v4}"));
    }
    if let Some((v4, form)) = translated_v4(ip) {
        return special_v4(v4).map(|why| format!("{form} of {v4}, {why}"));
    }
    if let Some((_, _, why)) = V6_RANGES.iter().find(|(n, l, _)| in_v6(ip, *n, *l)) {
        return Some((*why).into());
    }
    if !in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        return Some("not global unicast (outside 2000::/3)".into());
    }
    None
}

/// Why a production worker must not reach `ip` on a contract's behalf, or `None`.
pub(super) fn special(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4).map(str::to_string),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

/// `ip` with IPv6 forms that stand for an IPv4 address (mapped, compatible, NAT64, 6to4)
/// replaced by that address.
pub(super) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .or_else(|| compatible_v4(v6))
            .or_else(|| translated_v4(v6).map(|(v4, _)| v4))
            .map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is an address of this machine (connecting to it reaches a local socket).
pub(super) fn on_this_host(ip: IpAddr) -> bool {
    // Binding succeeds only for a local address; nothing is sent.
    ip.is_loopback() || ip.is_unspecified() || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// Whether connecting to `target` may reach the protected address `protected`.
pub(super) fn reaches(target: SocketAddr, protected: SocketAddr) -> bool {
    if target.port() != protected.port() {
        return false;
    }
    let (t, p) = (canonical(target.ip()), canonical(protected.ip()));
    t == p || (on_this_host(t) && on_this_host(p))
}
