//! Frame construction helpers (etherparse `PacketBuilder`).

use etherparse::PacketBuilder;
use std::net::IpAddr;

/// TCP flag bits for [`tcp_frame`].
pub mod fl {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

/// One TCP segment as an Ethernet frame (`ethernet` true) or a raw IP packet.
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    ethernet: bool,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + payload.len());
    macro_rules! finish {
        ($b:expr) => {{
            let mut b = $b.tcp(src.1, dst.1, seq, window);
            if flags & fl::SYN != 0 {
                b = b.syn();
            }
            if flags & fl::ACK != 0 {
                b = b.ack(ack);
            }
            if flags & fl::FIN != 0 {
                b = b.fin();
            }
            if flags & fl::RST != 0 {
                b = b.rst();
            }
            if flags & fl::PSH != 0 {
                b = b.psh();
            }
            b.write(&mut out, payload).expect("write to Vec");
        }};
    }
    match (src.0, dst.0, ethernet) {
        (IpAddr::V4(s), IpAddr::V4(d), true) => {
            finish!(PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(s.octets(), d.octets(), 64))
        }
        (IpAddr::V4(s), IpAddr::V4(d), false) => {
            finish!(PacketBuilder::ipv4(s.octets(), d.octets(), 64))
        }
        (IpAddr::V6(s), IpAddr::V6(d), true) => {
            finish!(PacketBuilder::ethernet2(MAC_A, MAC_B).ipv6(s.octets(), d.octets(), 64))
        }
        (IpAddr::V6(s), IpAddr::V6(d), false) => {
            finish!(PacketBuilder::ipv6(s.octets(), d.octets(), 64))
        }
        _ => panic!("mixed address families"),
    }
    out
}

/// One UDP datagram (IPv4) as an Ethernet frame or raw IP packet.
pub fn udp_frame(
    ethernet: bool,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + payload.len());
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.0, dst.0) else {
        panic!("udp_frame builds IPv4 only")
    };
    if ethernet {
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(s.octets(), d.octets(), 64)
            .udp(src.1, dst.1)
            .write(&mut out, payload)
            .expect("write to Vec");
    } else {
        PacketBuilder::ipv4(s.octets(), d.octets(), 64)
            .udp(src.1, dst.1)
            .write(&mut out, payload)
            .expect("write to Vec");
    }
    out
}
