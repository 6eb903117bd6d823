//! Frame decoder: the first two bytes (big-endian) are the link type, the rest is the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::decode::{Frame, Transport, decode};
use observer::source::{LinkType, Packet};
use observer::time::Timestamp;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let lt = u16::from_be_bytes([data[0], data[1]]);
    let frame = &data[2..];
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
