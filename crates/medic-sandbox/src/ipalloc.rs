//! Pod IPs from a loopback range (127.1.0.0/16 by default), unique per pod.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

#[derive(Debug)]
pub struct IpAllocator {
    base: u32,
    size: u32,
    next: u32,
    by_offset: BTreeMap<u32, String>,
    by_pod: BTreeMap<String, u32>,
}

impl IpAllocator {
    /// A range given as CIDR; only 127.0.0.0/8 ranges are accepted, and /8 to /30.
    pub fn new(cidr: &str) -> Result<Self, String> {
        let (addr, prefix) = cidr
            .split_once('/')
            .ok_or_else(|| format!("pod CIDR {cidr:?} is not of the form a.b.c.d/n"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("pod CIDR {cidr:?}: bad address"))?;
        let prefix: u32 = prefix
            .parse()
            .map_err(|_| format!("pod CIDR {cidr:?}: bad prefix"))?;
        if !(8..=30).contains(&prefix) {
            return Err(format!("pod CIDR {cidr:?}: prefix must be /8 to /30"));
        }
        if !addr.is_loopback() {
            return Err(format!(
                "pod CIDR {cidr:?} is not loopback: the sandbox uses only 127.0.0.0/8"
            ));
        }
        let size = 1u32 << (32 - prefix);
        let base = u32::from(addr) & !(size - 1);
        Ok(Self {
            base,
            size,
            // .0 is the network; start at .2 so .1 stays free as a "gateway" look-alike.
            next: 2,
            by_offset: BTreeMap::new(),
            by_pod: BTreeMap::new(),
        })
    }

    /// The pod's address: the one it already has, or the next free one (addresses are handed
    /// out round-robin so a just-released IP is not reused at once).
    pub fn allocate(&mut self, pod_uid: &str) -> Option<Ipv4Addr> {
        if let Some(off) = self.by_pod.get(pod_uid) {
            return Some(self.addr(*off));
        }
        let usable = self.size.saturating_sub(3); // network, .1 and broadcast
        for _ in 0..usable {
            let off = self.next;
            self.next = if self.next + 1 >= self.size - 1 {
                2
            } else {
                self.next + 1
            };
            if let std::collections::btree_map::Entry::Vacant(e) = self.by_offset.entry(off) {
                e.insert(pod_uid.to_string());
                self.by_pod.insert(pod_uid.to_string(), off);
                return Some(self.addr(off));
            }
        }
        None
    }

    /// Re-reserves an address a pod already carries (after a kubelet restart); false if it is
    /// outside the range or held by another pod.
    pub fn reserve(&mut self, pod_uid: &str, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        if v < self.base || v >= self.base + self.size {
            return false;
        }
        let off = v - self.base;
        if off < 2 || off >= self.size - 1 {
            return false;
        }
        match self.by_offset.get(&off) {
            Some(owner) => owner == pod_uid,
            None => {
                if let Some(old) = self.by_pod.remove(pod_uid) {
                    self.by_offset.remove(&old);
                }
                self.by_offset.insert(off, pod_uid.to_string());
                self.by_pod.insert(pod_uid.to_string(), off);
                true
            }
        }
    }

    pub fn release(&mut self, pod_uid: &str) {
        if let Some(off) = self.by_pod.remove(pod_uid) {
            self.by_offset.remove(&off);
        }
    }

    pub fn in_use(&self) -> usize {
        self.by_pod.len()
    }

    fn addr(&self, off: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_stable_and_released() {
        let mut a = IpAllocator::new("127.1.0.0/16").unwrap();
        let x = a.allocate("a").unwrap();
        let y = a.allocate("b").unwrap();
        assert_ne!(x, y);
        assert_eq!(a.allocate("a"), Some(x));
        assert_eq!(x, Ipv4Addr::new(127, 1, 0, 2));
        a.release("a");
        // Round-robin: the released address is not handed out next.
        assert_ne!(a.allocate("c"), Some(x));
        assert_eq!(a.in_use(), 2);
    }

    #[test]
    fn rejects_non_loopback_and_exhausts() {
        assert!(IpAllocator::new("10.0.0.0/16").is_err());
        assert!(IpAllocator::new("127.1.0.0").is_err());
        let mut a = IpAllocator::new("127.9.9.0/29").unwrap();
        let got: Vec<_> = (0..10).filter_map(|i| a.allocate(&i.to_string())).collect();
        assert_eq!(got.len(), 5); // 8 - network - .1 - broadcast
        assert!(got.iter().all(|ip| ip.is_loopback()));
    }

    #[test]
    fn reserve_keeps_existing_ip() {
        let mut a = IpAllocator::new("127.1.0.0/16").unwrap();
        assert!(a.reserve("p", Ipv4Addr::new(127, 1, 3, 4)));
        assert!(!a.reserve("q", Ipv4Addr::new(127, 1, 3, 4)));
        assert!(!a.reserve("q", Ipv4Addr::new(127, 2, 0, 4)));
        assert_eq!(a.allocate("p"), Some(Ipv4Addr::new(127, 1, 3, 4)));
    }
}
