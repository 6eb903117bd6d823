//! The flow table driven by a byte string of operations: create (from a small key space, so
//! keys collide), touch, remove, expire and drain, with time moving forwards and backwards.
//! After every operation the table's own invariants are checked: it never holds more than its
//! limit, every held key is found again, and what leaves it is counted once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::flow::{Dir, EndReason, Flow, FlowConfig, FlowKey, FlowTable};
use observer::time::Timestamp;
use std::net::{IpAddr, Ipv4Addr};

fuzz_target!(|data: &[u8]| {
    let limit = usize::from(data.first().copied().unwrap_or(0) % 16) + 1;
    let mut t: FlowTable<()> = FlowTable::new(FlowConfig {
        max_flows: limit,
        tcp_idle: 5_000,
        udp_idle: 3_000,
        closed_linger: 1_000,
        ..FlowConfig::default()
    });
    let mut ended: Vec<(Flow<()>, EndReason)> = Vec::new();
    let mut held: Vec<(FlowKey, u32)> = Vec::new();
    let mut now: i64 = 0;
    let mut created = 0u64;
    let mut gone = 0u64;
    for op in data.get(1..).unwrap_or_default().chunks(3) {
        let (a, b, c) = (op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0));
        // Time: mostly forwards, sometimes backwards.
        now = now.saturating_add(i64::from(b as i8) * 100);
        let ts = Timestamp(now);
        ended.clear();
        match a % 5 {
            0 | 1 => {
                let src = IpAddr::V4(Ipv4Addr::new(10, 0, 0, c % 4));
                let dst = IpAddr::V4(Ipv4Addr::new(10, 0, 1, c / 64));
                let proto = if a & 0x80 != 0 { 17 } else { 6 };
                let (key, dir) = FlowKey::new(src, u16::from(b % 8), dst, 80, proto);
                let (idx, new) = t.get_or_create(key, dir, ts, &mut ended);
                created += u64::from(new);
                t.touch(idx, dir, ts, u32::from(c));
            }
            2 => {
                if !held.is_empty() {
                    let (key, _) = held[usize::from(c) % held.len()];
                    if let Some(idx) = t.find(&key) {
                        t.touch(idx, Dir::LoToHi, ts, 40);
                    }
                }
            }
            3 => {
                if !held.is_empty() {
                    let (key, _) = held[usize::from(c) % held.len()];
                    if let Some(idx) = t.find(&key) {
                        ended.push((t.remove(idx), EndReason::PortReuse));
                    }
                }
            }
            _ => {
                if c % 8 == 0 {
                    t.drain(ts, &mut ended);
                } else {
                    t.expire(ts, &mut ended);
                }
            }
        }
        gone += ended.len() as u64;
        assert!(t.len() <= limit, "{} flows held, limit {limit}", t.len());
        assert_eq!(created, gone + t.len() as u64, "a flow was lost or counted twice");
        held.retain(|(k, _)| t.find(k).is_some());
        for (f, _) in &ended {
            assert!(t.find(&f.key).is_none_or(|i| t.get_mut(i).id != f.id));
        }
        for idx in t.creation_order() {
            let key = t.get_mut(idx).key;
            assert_eq!(t.find(&key), Some(idx));
            if !held.iter().any(|(k, _)| *k == key) {
                held.push((key, idx));
            }
        }
    }
});
