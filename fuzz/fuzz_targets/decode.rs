//! Frame decoder: the first two bytes (big-endian) are the link type, the rest is the frame
//! (also read as an IP packet, and one behind a 14-byte Ethernet header, for the direct IPv4
//! reading's agreement with etherparse).
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::decode::{Frame, Transport, decode, ipv4_fast_path_agrees};
use observer::source::{LinkType, Packet};
use observer::time::Timestamp;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let lt = u16::from_be_bytes([data[0], data[1]]);
    let frame = &data[2..];
    // The direct IPv4 reading agrees with etherparse's on any bytes, whatever was cut.
    for ip in [frame, frame.get(14..).unwrap_or_default()] {
        assert!(ipv4_fast_path_agrees(ip, usize::from(data[0])));
    }
    let pkt = Packet {
        ts: Timestamp(0),
        link: LinkType(lt),
        data: frame,
        wire_len: frame.len() as u32,
        interface: 0,
        segments: 1,
    };
    match decode(&pkt) {
        Frame::Ip(ip) => {
            if let Transport::Tcp(seg) = ip.transport {
                std::hint::black_box(seg.parse_options());
            }
            std::hint::black_box(ip);
        }
        other => {
            std::hint::black_box(other);
        }
    }
});
