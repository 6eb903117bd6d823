//! Bidirectional flow keys.

use std::net::IpAddr;

/// A flow's identity, the same for both directions: the endpoint that sorts first is `lo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Lower endpoint address.
    pub lo_ip: IpAddr,
    /// Higher endpoint address.
    pub hi_ip: IpAddr,
    /// Lower endpoint port.
    pub lo_port: u16,
    /// Higher endpoint port.
    pub hi_port: u16,
    /// IP protocol number.
    pub proto: u8,
}

/// Which way a packet travels relative to the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From `lo` to `hi`.
    LoToHi = 0,
    /// From `hi` to `lo`.
    HiToLo = 1,
}

impl Dir {
    /// The opposite direction.
    pub fn rev(self) -> Dir {
        match self {
            Dir::LoToHi => Dir::HiToLo,
            Dir::HiToLo => Dir::LoToHi,
        }
    }

    /// Index for per-direction arrays.
    pub fn idx(self) -> usize {
        self as usize
    }
}

impl FlowKey {
    /// The key of a packet from `src:sport` to `dst:dport`, and the packet's direction.
    pub fn new(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: u8) -> (FlowKey, Dir) {
        if (src, sport) <= (dst, dport) {
            (
                FlowKey {
                    lo_ip: src,
                    hi_ip: dst,
                    lo_port: sport,
                    hi_port: dport,
                    proto,
                },
                Dir::LoToHi,
            )
        } else {
            (
                FlowKey {
                    lo_ip: dst,
                    hi_ip: src,
                    lo_port: dport,
                    hi_port: sport,
                    proto,
                },
                Dir::HiToLo,
            )
        }
    }

    /// The sender of packets travelling in `dir`.
    pub fn src(&self, dir: Dir) -> (IpAddr, u16) {
        match dir {
            Dir::LoToHi => (self.lo_ip, self.lo_port),
            Dir::HiToLo => (self.hi_ip, self.hi_port),
        }
    }

    /// The receiver of packets travelling in `dir`.
    pub fn dst(&self, dir: Dir) -> (IpAddr, u16) {
        self.src(dir.rev())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_share_one_key() {
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        let b: IpAddr = "10.0.0.1".parse().unwrap();
        let (k1, d1) = FlowKey::new(a, 40000, b, 80, 6);
        let (k2, d2) = FlowKey::new(b, 80, a, 40000, 6);
        assert_eq!(k1, k2);
        assert_ne!(d1, d2);
        assert_eq!(k1.src(d1), (a, 40000));
        assert_eq!(k1.dst(d1), (b, 80));
    }

    #[test]
    fn same_address_orders_by_port() {
        let a: IpAddr = "::1".parse().unwrap();
        let (k, d) = FlowKey::new(a, 9000, a, 80, 17);
        assert_eq!((k.lo_port, k.hi_port), (80, 9000));
        assert_eq!(d, Dir::HiToLo);
    }
}
