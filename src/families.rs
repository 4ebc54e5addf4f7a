//! Socket address families by name, for `network.socket_families`.
//!
//! Filter B lets `socket` and `socketpair` open only the families a plan
//! allows (DESIGN.md §5): AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK unless a
//! profile adds more. Profiles name them; the filter compares numbers. The
//! numbers are the same on every architecture (`include/linux/socket.h`,
//! Linux 6.18); a unit test checks them against libc's `AF_*`.

/// `(name, number)` of every family a profile may name, in number order.
/// AF_UNSPEC (0) is not a family a socket can have.
pub(crate) const FAMILIES: &[(&str, u32)] = &[
    ("AF_UNIX", 1),
    ("AF_INET", 2),
    ("AF_AX25", 3),
    ("AF_IPX", 4),
    ("AF_APPLETALK", 5),
    ("AF_NETROM", 6),
    ("AF_BRIDGE", 7),
    ("AF_ATMPVC", 8),
    ("AF_X25", 9),
    ("AF_INET6", 10),
    ("AF_ROSE", 11),
    ("AF_DECnet", 12),
    ("AF_NETBEUI", 13),
    ("AF_SECURITY", 14),
    ("AF_KEY", 15),
    ("AF_NETLINK", 16),
    ("AF_PACKET", 17),
    ("AF_ASH", 18),
    ("AF_ECONET", 19),
    ("AF_ATMSVC", 20),
    ("AF_RDS", 21),
    ("AF_SNA", 22),
    ("AF_IRDA", 23),
    ("AF_PPPOX", 24),
    ("AF_WANPIPE", 25),
    ("AF_LLC", 26),
    ("AF_IB", 27),
    ("AF_MPLS", 28),
    ("AF_CAN", 29),
    ("AF_TIPC", 30),
    ("AF_BLUETOOTH", 31),
    ("AF_IUCV", 32),
    ("AF_RXRPC", 33),
    ("AF_ISDN", 34),
    ("AF_PHONET", 35),
    ("AF_IEEE802154", 36),
    ("AF_CAIF", 37),
    ("AF_ALG", 38),
    ("AF_NFC", 39),
    ("AF_VSOCK", 40),
    ("AF_KCM", 41),
    ("AF_QIPCRTR", 42),
    ("AF_SMC", 43),
    ("AF_XDP", 44),
    ("AF_MCTP", 45),
];

/// The families every sandbox may open: AF_UNIX, AF_INET, AF_INET6,
/// AF_NETLINK (`ip`, `ss` and glibc's `getaddrinfo` use netlink).
pub(crate) const DEFAULT: [&str; 4] = ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"];

/// The number of family `name`: the kernel's spelling (`AF_PACKET`), in any
/// case, with or without the `AF_` prefix; also the aliases `AF_LOCAL` and
/// `AF_ROUTE`.
pub(crate) fn number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("AF_") {
        upper
    } else {
        format!("AF_{upper}")
    };
    let full = match full.as_str() {
        "AF_LOCAL" => "AF_UNIX",
        "AF_ROUTE" => "AF_NETLINK",
        other => other,
    };
    FAMILIES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(full))
        .map(|&(_, nr)| nr)
}

/// The canonical name of family `nr`.
pub(crate) fn name(nr: u32) -> Option<&'static str> {
    FAMILIES.iter().find(|&&(_, n)| n == nr).map(|&(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_libc() {
        let libc = [
            ("AF_UNIX", libc::AF_UNIX),
            ("AF_INET", libc::AF_INET),
            ("AF_INET6", libc::AF_INET6),
            ("AF_NETLINK", libc::AF_NETLINK),
            ("AF_PACKET", libc::AF_PACKET),
            ("AF_KEY", libc::AF_KEY),
            ("AF_DECnet", libc::AF_DECnet),
            ("AF_RDS", libc::AF_RDS),
            ("AF_CAN", libc::AF_CAN),
            ("AF_TIPC", libc::AF_TIPC),
            ("AF_BLUETOOTH", libc::AF_BLUETOOTH),
            ("AF_ALG", libc::AF_ALG),
            ("AF_VSOCK", libc::AF_VSOCK),
            ("AF_XDP", libc::AF_XDP),
        ];
        for (n, nr) in libc {
            assert_eq!(number(n), Some(nr as u32), "{n}");
            assert_eq!(name(nr as u32), Some(n));
        }
        // Consecutive from 1, every one once.
        for (i, &(_, nr)) in FAMILIES.iter().enumerate() {
            assert_eq!(nr as usize, i + 1);
        }
        assert_eq!(number("AF_MCTP"), Some(45));
        assert_eq!(number("AF_KCM"), Some(41));
    }

    #[test]
    fn spellings() {
        assert_eq!(number("packet"), Some(17));
        assert_eq!(number("af_packet"), Some(17));
        assert_eq!(number("AF_LOCAL"), Some(1));
        assert_eq!(number("route"), Some(16));
        assert_eq!(number("decnet"), Some(12));
        assert_eq!(number("AF_UNSPEC"), None);
        assert_eq!(number("AF_PAKET"), None);
        assert_eq!(number(""), None);
        let default: Vec<u32> = DEFAULT.iter().filter_map(|d| number(d)).collect();
        assert_eq!(
            default,
            crate::sandbox::seccomp::Rules::default().socket_families
        );
    }
}
