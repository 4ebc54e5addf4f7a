//! The fake addresses the DNS stub hands out: one per name, from
//! 127.77.0.0/16, allocated on the first query and stable for the run. A
//! connection to (fake address, port) on a transparent listener maps back
//! to the name through the same table. The agent never sees a real
//! address, so it can't pin, rebind or reuse one.
//!
//! 127.0.0.0/8 is on-link through `lo` in the sandbox's namespace, so the
//! addresses need no route, and the transparent listeners on 0.0.0.0:PORT
//! accept connections to all of them.

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// The first two octets of every fake address.
pub const NET: [u8; 2] = [127, 77];

/// Names to fake addresses and back. Bounded: once `capacity` names have
/// an address, new names get none (the stub answers SERVFAIL); names
/// already in the table keep theirs.
#[derive(Debug)]
pub struct FakeTable {
    by_name: HashMap<String, Ipv4Addr>,
    /// Index `i` is the name of 127.77.x.y with `(x << 8 | y) == i + 1`.
    by_index: Vec<String>,
    capacity: usize,
}

/// Host offsets 1 ..= 65534: neither 127.77.0.0 nor 127.77.255.255.
pub const MAX_CAPACITY: usize = 65534;

impl FakeTable {
    pub fn new(capacity: usize) -> FakeTable {
        FakeTable {
            by_name: HashMap::new(),
            by_index: Vec::new(),
            capacity: capacity.min(MAX_CAPACITY),
        }
    }

    /// The address of `name` (normalized: lower case, no trailing dot),
    /// allocating the next free one on first use; `None` when the table is
    /// full.
    pub fn address(&mut self, name: &str) -> Option<Ipv4Addr> {
        if let Some(&ip) = self.by_name.get(name) {
            return Some(ip);
        }
        if self.by_index.len() >= self.capacity {
            return None;
        }
        let offset = u16::try_from(self.by_index.len() + 1).ok()?;
        let [hi, lo] = offset.to_be_bytes();
        let ip = Ipv4Addr::new(NET[0], NET[1], hi, lo);
        self.by_index.push(name.to_string());
        self.by_name.insert(name.to_string(), ip);
        Some(ip)
    }

    /// The name a fake address was handed out for.
    pub fn name(&self, ip: Ipv4Addr) -> Option<&str> {
        let [a, b, hi, lo] = ip.octets();
        if [a, b] != NET {
            return None;
        }
        let offset = usize::from(u16::from_be_bytes([hi, lo]));
        offset
            .checked_sub(1)
            .and_then(|i| self.by_index.get(i))
            .map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_index.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_per_name_and_maps_back() {
        let mut t = FakeTable::new(3);
        let a = t.address("api.example.com").unwrap();
        assert_eq!(a, Ipv4Addr::new(127, 77, 0, 1));
        let b = t.address("files.example.org").unwrap();
        assert_eq!(b, Ipv4Addr::new(127, 77, 0, 2));
        assert_eq!(t.address("api.example.com"), Some(a));
        assert_eq!(t.name(a), Some("api.example.com"));
        assert_eq!(t.name(b), Some("files.example.org"));
        assert_eq!(t.name(Ipv4Addr::new(127, 77, 0, 3)), None);
        assert_eq!(t.name(Ipv4Addr::new(127, 77, 0, 0)), None);
        assert_eq!(t.name(Ipv4Addr::new(127, 0, 0, 1)), None);
        assert_eq!(t.name(Ipv4Addr::new(10, 77, 0, 1)), None);
        // Full: new names get nothing, old ones keep theirs.
        assert!(t.address("c").is_some());
        assert_eq!(t.address("d"), None);
        assert_eq!(t.address("api.example.com"), Some(a));
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn the_whole_range() {
        let mut t = FakeTable::new(usize::MAX);
        let mut last = None;
        for i in 0..MAX_CAPACITY {
            last = t.address(&format!("n{i}"));
            assert!(last.is_some(), "{i}");
        }
        assert_eq!(last, Some(Ipv4Addr::new(127, 77, 255, 254)));
        assert_eq!(t.address("one-more"), None);
        assert_eq!(t.name(Ipv4Addr::new(127, 77, 255, 254)), Some("n65533"));
        assert_eq!(t.name(Ipv4Addr::new(127, 77, 1, 0)), Some("n255"));
    }
}
