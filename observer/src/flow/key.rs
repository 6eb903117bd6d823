//! Bidirectional flow keys.

use std::net::IpAddr;

/// A flow's identity, the same for both directions: the endpoint that sorts first is `lo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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

/// An IPv4 endpoint as one number ordered as `(IpAddr, u16)` orders IPv4 endpoints.
pub(crate) fn v4_endpoint(ip: std::net::Ipv4Addr, port: u16) -> u64 {
    (u64::from(ip.to_bits()) << 16) | u64::from(port)
}

/// Hashed as a few words rather than field by field (it is hashed for every packet).
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let tail = (u64::from(self.lo_port) << 24)
            | (u64::from(self.hi_port) << 8)
            | u64::from(self.proto);
        match (self.lo_ip, self.hi_ip) {
            (IpAddr::V4(lo), IpAddr::V4(hi)) => {
                state.write_u64((u64::from(lo.to_bits()) << 32) | u64::from(hi.to_bits()));
                state.write_u64(tail);
            }
            (lo, hi) => {
                for ip in [lo, hi] {
                    let bits = match ip {
                        IpAddr::V4(a) => u128::from(a.to_bits()),
                        IpAddr::V6(a) => a.to_bits(),
                    };
                    state.write_u128(bits);
                }
                // Marks the mixed and IPv6 keys apart from IPv4 ones of the same bits.
                state.write_u64(
                    tail | (u64::from(lo.is_ipv6()) << 41) | (u64::from(hi.is_ipv6()) << 40),
                );
            }
        }
    }
}

impl FlowKey {
    /// The key of a packet from `src:sport` to `dst:dport`, and the packet's direction.
    pub fn new(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: u8) -> (FlowKey, Dir) {
        let src_first = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => v4_endpoint(s, sport) <= v4_endpoint(d, dport),
            _ => (src, sport) <= (dst, dport),
        };
        if src_first {
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

    #[test]
    fn ipv4_endpoints_order_as_address_then_port() {
        // The numeric shortcut orders IPv4 endpoints exactly as `(IpAddr, u16)` does: few
        // distinct bytes, so equal addresses and ports come up often.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ip = |v: u64| std::net::Ipv4Addr::from((v as u32) & 0x0301_0103);
            let (a, b) = (ip(x), ip(x >> 32));
            let (pa, pb) = ((x >> 20) as u16 & 0x0103, (x >> 40) as u16 & 0x0103);
            assert_eq!(
                v4_endpoint(a, pa).cmp(&v4_endpoint(b, pb)),
                (IpAddr::V4(a), pa).cmp(&(IpAddr::V4(b), pb)),
                "{a}:{pa} {b}:{pb}"
            );
        }
    }

    #[test]
    fn keys_of_either_family_hash_apart() {
        use std::hash::BuildHasher;
        let h = |k: &FlowKey| rustc_hash::FxBuildHasher.hash_one(k);
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::10.0.0.1".parse().unwrap();
        let (a, _) = FlowKey::new(v4, 1, v4, 2, 6);
        let (b, _) = FlowKey::new(mapped, 1, mapped, 2, 6);
        let (c, _) = FlowKey::new(v4, 1, mapped, 2, 6);
        assert_ne!(a, b);
        assert!(h(&a) != h(&b) && h(&b) != h(&c) && h(&a) != h(&c));
        let (a2, _) = FlowKey::new(v4, 2, v4, 1, 6);
        assert_eq!(h(&a), h(&a2));
    }
}
