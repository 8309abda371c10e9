//! Pod IP leases on the sim's pod network, 10.88.0.0/16 (containerd's default bridge range):
//! `.0.1` is the gateway, leases run from 10.88.0.2 to 10.88.255.254, handed out next-fit so a
//! released address is not reused at once.

use std::collections::HashSet;
use std::net::Ipv4Addr;

const NETWORK: u32 = u32::from_be_bytes([10, 88, 0, 0]);
const FIRST_HOST: u32 = 2;
const LAST_HOST: u32 = 0xfffe;

/// The leased host numbers of the pod network.
#[derive(Debug)]
pub(crate) struct IpPool {
    leased: HashSet<u32>,
    next: u32,
}

impl Default for IpPool {
    fn default() -> Self {
        IpPool {
            leased: HashSet::new(),
            next: FIRST_HOST,
        }
    }
}

impl IpPool {
    /// Leases a free address, or `None` when all are taken.
    pub(crate) fn lease(&mut self) -> Option<Ipv4Addr> {
        for _ in FIRST_HOST..=LAST_HOST {
            let host = self.next;
            self.next = if host == LAST_HOST {
                FIRST_HOST
            } else {
                host + 1
            };
            if self.leased.insert(host) {
                return Some(Ipv4Addr::from(NETWORK | host));
            }
        }
        None
    }

    /// Returns an address to the pool; addresses outside it are ignored.
    pub(crate) fn release(&mut self, ip: Ipv4Addr) {
        let ip = u32::from(ip);
        if ip & 0xffff_0000 == NETWORK {
            self.leased.remove(&(ip & 0xffff));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_unique_and_in_range() {
        let mut pool = IpPool::default();
        let first = pool.lease().unwrap();
        let second = pool.lease().unwrap();
        assert_eq!(first, Ipv4Addr::new(10, 88, 0, 2));
        assert_eq!(second, Ipv4Addr::new(10, 88, 0, 3));
    }

    #[test]
    fn released_addresses_come_back_after_wrapping() {
        let mut pool = IpPool::default();
        let mut all = HashSet::new();
        while let Some(ip) = pool.lease() {
            assert!(all.insert(ip), "{ip} leased twice");
        }
        assert_eq!(all.len(), 65533);
        assert!(all.contains(&Ipv4Addr::new(10, 88, 255, 254)));
        assert!(!all.contains(&Ipv4Addr::new(10, 88, 255, 255)));
        pool.release(Ipv4Addr::new(10, 88, 1, 7));
        assert_eq!(pool.lease(), Some(Ipv4Addr::new(10, 88, 1, 7)));
        assert_eq!(pool.lease(), None);
    }
}
