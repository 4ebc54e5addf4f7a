//! Which addresses the proxy may dial for a name that isn't pinned in
//! `hosts:`: public unicast only (DESIGN.md §9). Everything else (loopback,
//! private, link-local with the cloud metadata services, CGNAT,
//! documentation, benchmarking, multicast, reserved, and IPv6 forms that
//! embed such an IPv4 address) needs a pin.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The public ones of the addresses a name resolved to, IPv4 first (a
/// host without IPv6 connectivity would wait on every v6 attempt); or,
/// when none is public, the first refused one and why, in the words the
/// agent gets back.
pub fn public_only(
    addrs: impl IntoIterator<Item = IpAddr>,
    host: &str,
) -> Result<Vec<IpAddr>, (IpAddr, String)> {
    let mut public = Vec::new();
    let mut refused = None;
    for ip in addrs {
        match check_public(ip) {
            Ok(()) => public.push(ip),
            Err(why) => {
                refused.get_or_insert((ip, why));
            }
        }
    }
    if public.is_empty() {
        let (ip, why) = refused.unwrap_or((IpAddr::from([0, 0, 0, 0]), "none"));
        return Err((
            ip,
            format!("{host} resolves to {ip}, {why}: not a public address (pin it in hosts to reach it)"),
        ));
    }
    public.sort_by_key(|ip| ip.is_ipv6());
    Ok(public)
}

/// `Err(why)` when `ip` isn't a public unicast address, naming its range.
pub fn check_public(ip: IpAddr) -> Result<(), &'static str> {
    match ip {
        IpAddr::V4(v4) => check_v4(v4),
        IpAddr::V6(v6) => check_v6(v6),
    }
}

fn check_v4(ip: Ipv4Addr) -> Result<(), &'static str> {
    let [a, b, c, _] = ip.octets();
    let why = match (a, b, c) {
        (0, _, _) => "\"this network\" 0.0.0.0/8",
        (10, _, _) => "private 10.0.0.0/8",
        (100, 64..=127, _) => "shared (CGNAT) 100.64.0.0/10",
        (127, _, _) => "loopback 127.0.0.0/8",
        (169, 254, _) => "link-local 169.254.0.0/16 (cloud metadata)",
        (172, 16..=31, _) => "private 172.16.0.0/12",
        (192, 0, 0) => "IETF protocol assignments 192.0.0.0/24",
        (192, 0, 2) => "documentation (TEST-NET-1) 192.0.2.0/24",
        (192, 88, 99) => "6to4 relay anycast 192.88.99.0/24",
        (192, 168, _) => "private 192.168.0.0/16",
        (198, 18..=19, _) => "benchmarking 198.18.0.0/15",
        (198, 51, 100) => "documentation (TEST-NET-2) 198.51.100.0/24",
        (203, 0, 113) => "documentation (TEST-NET-3) 203.0.113.0/24",
        (224..=239, _, _) => "multicast 224.0.0.0/4",
        (240..=255, _, _) => "reserved 240.0.0.0/4 (and broadcast)",
        _ => return Ok(()),
    };
    Err(why)
}

fn check_v6(ip: Ipv6Addr) -> Result<(), &'static str> {
    let s = ip.segments();
    // Forms that carry an IPv4 address: judged by that address, so
    // ::ffff:10.0.0.1 or 64:ff9b::a9fe:a9fe don't reach what 10.0.0.1 or
    // 169.254.169.254 can't.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return check_v4(v4).map_err(|_| "IPv4-mapped form of a non-public IPv4 address");
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let v4 = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
        return check_v4(v4).map_err(|_| "NAT64 form of a non-public IPv4 address");
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2]));
        return check_v4(v4).map_err(|_| "6to4 form of a non-public IPv4 address");
    }
    let why = if ip.is_unspecified() {
        "unspecified ::"
    } else if ip.is_loopback() {
        "loopback ::1"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "unique-local fc00::/7"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "link-local fe80::/10"
    } else if s[0] & 0xffc0 == 0xfec0 {
        "site-local fec0::/10"
    } else if s[0] & 0xff00 == 0xff00 {
        "multicast ff00::/8"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "documentation 2001:db8::/32"
    } else if s[0] & 0xfff0 == 0x3ff0 {
        "documentation 3fff::/20"
    } else if s[0] == 0x2001 && s[1] < 0x0200 {
        "IETF protocol assignments 2001::/23 (Teredo, benchmarking, ORCHID)"
    } else if s[0] & 0xe000 != 0x2000 {
        // Everything outside global unicast 2000::/3: IPv4-compatible
        // ::/96, discard 100::/64, local-use NAT64 64:ff9b:1::/48, ...
        "outside global unicast 2000::/3"
    } else {
        return Ok(());
    };
    Err(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        check_public(s.parse().unwrap()).is_ok()
    }

    #[test]
    fn ipv4() {
        for ok in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "169.253.1.1",
        ] {
            assert!(public(ok), "{ok}");
        }
        for bad in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.77.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!public(bad), "{bad}");
        }
    }

    #[test]
    fn ipv6() {
        for ok in [
            "2606:4700:4700::1111",
            "2a00:1450:4001:81b::200e",
            "::ffff:1.1.1.1",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:4860:4860::8888",
        ] {
            assert!(public(ok), "{ok}");
        }
        for bad in [
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:a00:1::1",
            "2002:7f00:1::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "2001::1",
            "2001:2::1",
            "2001:10::1",
            "::1.2.3.4",
            "100::1",
            "4000::1",
        ] {
            assert!(!public(bad), "{bad}");
        }
    }
}
