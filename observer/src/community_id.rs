//! Community ID v1 flow hashing (<https://github.com/corelight/community-id-spec>), so findings
//! can be joined with Zeek, Suricata, Elastic and Wireshark records of the same flow.

use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::net::IpAddr;

fn ip_bytes(ip: &IpAddr, out: &mut Vec<u8>) {
    match ip {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

/// The Community ID (`1:` + base64 of a SHA-1) of a TCP/UDP/SCTP flow with seed 0.
/// Other protocols are hashed without ports; ICMP's type/code port mapping from the
/// specification is not implemented (this tool only reports TCP and UDP flows).
pub fn community_id_v1(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: u8) -> String {
    let has_ports = matches!(proto, 6 | 17 | 132);
    let (sport, dport) = if has_ports { (sport, dport) } else { (0, 0) };
    // Order the endpoints so both directions hash alike.
    let swap = match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (a.octets(), sport) > (b.octets(), dport),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.octets(), sport) > (b.octets(), dport),
        _ => false,
    };
    let (src, sport, dst, dport) = if swap {
        (dst, dport, src, sport)
    } else {
        (src, sport, dst, dport)
    };
    let mut buf = Vec::with_capacity(2 + 32 + 2 + 4);
    buf.extend_from_slice(&0u16.to_be_bytes());
    ip_bytes(&src, &mut buf);
    ip_bytes(&dst, &mut buf);
    buf.push(proto);
    buf.push(0);
    if has_ports {
        buf.extend_from_slice(&sport.to_be_bytes());
        buf.extend_from_slice(&dport.to_be_bytes());
    }
    let digest = Sha1::digest(&buf);
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    // Independent oracle: tshark 4.0.17 `--enable-protocol communityid -T fields -e communityid`
    // on corpus captures (ndpi__443-curl.pcap frame 1, ndpi__1kxun.pcap first IPv4 UDP frame,
    // suricata-verify__community-id-ipv6__input.pcap).
    #[test]
    fn matches_tshark_for_tcp_udp_v4_v6() {
        assert_eq!(
            community_id_v1(ip("192.168.1.13"), 55523, ip("178.62.197.130"), 443, 6),
            "1:R7uRzRAqE89z8bjaMFo13Pj5oqg="
        );
        assert_eq!(
            community_id_v1(ip("192.168.5.44"), 59571, ip("224.0.0.252"), 5355, 17),
            "1:wtX+aZZ8ISsL+svDMUjqREKT1M0="
        );
        let a = ip("2600:1f13:f8:d400:3a6:303c:e011:18eb");
        assert_eq!(
            community_id_v1(a, 33892, ip("2001:4860:4860::8888"), 443, 6),
            "1:x48XA3YiAaOKTB0FEpvi+0cbuGg="
        );
        assert_eq!(
            community_id_v1(ip("2607:f8b0:400a:800::200e"), 443, a, 60202, 6),
            "1:njFHyHv2ATzLP9rSy0H6wbG73QU="
        );
    }

    #[test]
    fn direction_does_not_matter() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            community_id_v1(a, 1234, b, 80, 6),
            community_id_v1(b, 80, a, 1234, 6)
        );
        assert_ne!(
            community_id_v1(a, 1234, b, 80, 6),
            community_id_v1(a, 1234, b, 80, 17)
        );
    }
}
