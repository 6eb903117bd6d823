//! IP reassembly driven by a byte string of fragments: a few datagram ids, any offsets and
//! lengths (so fragments overlap, leave holes, run past the end or repeat), some with bytes
//! that disagree with the rest, some cut by the snap length, time moving on. Checked after
//! every fragment: the bytes held never exceed the limit and match what the table says, and a
//! datagram made whole holds exactly the bytes its fragments carried when none disagreed. At
//! the end nothing is left waiting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::decode::{FragmentPart, IpPacket, Transport};
use observer::defrag::{Added, Defrag, MAX_BYTES};
use observer::time::Timestamp;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

/// The byte a consistent sender puts at `offset` of datagram `id`.
fn byte(id: u32, offset: usize) -> u8 {
    (offset as u32).wrapping_mul(31).wrapping_add(id) as u8
}

fuzz_target!(|data: &[u8]| {
    let mut d = Defrag::new();
    let mut now: i64 = 0;
    // Datagrams that received a disagreeing fragment: their content is not checked.
    let mut tainted: HashSet<u32> = HashSet::new();
    let mut buf = Vec::new();
    for op in data.chunks(5) {
        let (a, b, c, e) = (op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0), *op.get(3).unwrap_or(&0));
        let step = *op.get(4).unwrap_or(&0);
        now = now.saturating_add(i64::from(step) * 500_000_000);
        let id = u32::from(a % 4);
        // Offsets in 8-byte units over the whole range (large ones run past 64 KiB).
        let offset = u32::from(u16::from_be_bytes([b, c])) * 8 % (70_000 / 8 * 8);
        let len = usize::from(e) * 8 + usize::from(a >> 7);
        let more = a & 0x10 != 0;
        let disagree = a & 0x20 != 0 && a & 0x40 != 0;
        let snapped = a & 0x40 != 0 && a & 0x20 == 0 && e & 1 == 1;
        buf.clear();
        buf.extend((0..len).map(|i| byte(id, offset as usize + i) ^ if disagree { 0xff } else { 0 }));
        if disagree {
            tainted.insert(id);
        }
        let captured = if snapped { len / 2 } else { len };
        let part = FragmentPart {
            id,
            offset,
            more,
            data: &buf[..captured],
            wire_len: len as u32,
            header_len: 20,
        };
        let ip = IpPacket {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            proto: 17,
            ip_len: 20 + len as u32,
            fragment: true,
            truncated: snapped,
            transport: Transport::Fragment(part),
            tunnel_depth: 0,
            outer: None,
            ident: 0,
            ttl: 64,
        };
        match d.add(&ip, part, Timestamp(now), 0, 1) {
            Added::Whole(w) => {
                assert_eq!(w.first.header_len(), 20);
                if !tainted.contains(&id) {
                    for (i, &x) in w.data.iter().enumerate() {
                        assert_eq!(x, byte(id, i), "datagram {id} byte {i}");
                    }
                }
                // A new datagram may reuse the id.
                tainted.remove(&id);
                d.recycle(w.data);
            }
            Added::Held | Added::Alone { .. } => {}
        }
        for g in d.take_given_up() {
            // All of the first fragment's bytes are at the start of its buffer.
            let Transport::Fragment(f) = g.first.packet(&g.data).transport else {
                panic!("a given-up first fragment is a fragment");
            };
            assert_eq!(f.data.len() as u32, f.wire_len);
        }
        assert!(d.held_bytes() <= MAX_BYTES);
        if a & 0x0f == 0x0f {
            d.expire(Some(Timestamp(now)));
            let _ = d.take_given_up().count();
        }
    }
    d.expire(None);
    let _ = d.take_given_up().count();
    assert_eq!(d.waiting(), 0);
    assert_eq!(d.held_bytes(), 0);
});
