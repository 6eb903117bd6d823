//! Decoding of everything the kernel programs hand over: packet and kernel-event records from
//! the ring buffers, and flow-map entries. The one place that knows the wire layout on the
//! userspace side; offsets come from the shared `#[repr(C)]` types, read from bytes (no
//! pointer casts). Records are borrowed, never copied: a packet's bytes stay in the ring until
//! the pipeline is done with them.

use crate::pipeline::{FlowTotals, SentTotals};
use crate::time::Timestamp;
use observer_wire::{AF_INET6, FlowKey, FlowState, KernelEvent, PacketEvent, SideState};
use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Bytes of a flow-map key.
pub const KEY_LEN: usize = size_of::<FlowKey>();
/// Bytes of a flow-map value.
pub const STATE_LEN: usize = size_of::<FlowState>();

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(a)
}

fn addr(b: &[u8], at: usize, v6: bool) -> IpAddr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    if v6 {
        IpAddr::V6(Ipv6Addr::from(a))
    } else {
        IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
    }
}

/// Converts the kernel's monotonic nanoseconds to capture (wall) time, once, at the source.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Wall time minus monotonic time, in nanoseconds.
    pub offset_ns: i64,
}

impl Clock {
    /// Capture time of a kernel timestamp.
    pub fn wall(&self, mono_ns: u64) -> Timestamp {
        Timestamp((mono_ns as i64).saturating_add(self.offset_ns))
    }
}

/// A sampled packet, borrowed from the ring.
#[derive(Clone, Copy, Debug)]
pub struct PacketRecord<'a> {
    /// Monotonic time (ns).
    pub ts_ns: u64,
    /// Interface index.
    pub ifindex: u32,
    /// Length from the IP header to the end of the packet.
    pub ip_len: u32,
    /// Sent (true) or received.
    pub egress: bool,
    /// Why it was sampled.
    pub reason: u8,
    /// Segments a GSO super-packet stands for (1 otherwise).
    pub gso_segs: u16,
    /// The packet from its IP header on.
    pub data: &'a [u8],
}

/// Decodes a packet-ring record; `None` if it is too short or claims more bytes than it has.
pub fn packet(b: &[u8]) -> Option<PacketRecord<'_>> {
    let head = offset_of!(PacketEvent, data);
    if b.len() < head {
        return None;
    }
    let cap = usize::from(u16_at(b, offset_of!(PacketEvent, cap_len)));
    let data = b.get(head..head + cap)?;
    Some(PacketRecord {
        ts_ns: u64_at(b, offset_of!(PacketEvent, ts_ns)),
        ifindex: u32_at(b, offset_of!(PacketEvent, ifindex)),
        ip_len: u32_at(b, offset_of!(PacketEvent, ip_len)),
        egress: b[offset_of!(PacketEvent, egress)] != 0,
        reason: b[offset_of!(PacketEvent, reason)],
        gso_segs: u16_at(b, offset_of!(PacketEvent, gso_segs)),
        data,
    })
}

/// A kernel event, from the local socket's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelRecord {
    /// Monotonic time (ns).
    pub ts_ns: u64,
    /// `KEV_*`.
    pub kind: u32,
    /// Old state, or the socket state of a reset sent.
    pub a: u32,
    /// New state, or a reset's reason.
    pub b: u32,
    /// Local endpoint.
    pub local: (IpAddr, u16),
    /// Remote endpoint.
    pub remote: (IpAddr, u16),
}

/// Decodes an event-ring record.
pub fn kernel_event(b: &[u8]) -> Option<KernelRecord> {
    if b.len() < size_of::<KernelEvent>() {
        return None;
    }
    let v6 = u16_at(b, offset_of!(KernelEvent, family)) == AF_INET6;
    Some(KernelRecord {
        ts_ns: u64_at(b, offset_of!(KernelEvent, ts_ns)),
        kind: u32_at(b, offset_of!(KernelEvent, kind)),
        a: u32_at(b, offset_of!(KernelEvent, a)),
        b: u32_at(b, offset_of!(KernelEvent, b)),
        local: (
            addr(b, offset_of!(KernelEvent, saddr), v6),
            u16_at(b, offset_of!(KernelEvent, sport)),
        ),
        remote: (
            addr(b, offset_of!(KernelEvent, daddr), v6),
            u16_at(b, offset_of!(KernelEvent, dport)),
        ),
    })
}

/// A flow-map entry as pipeline totals, plus the retransmitted SYNs (kept apart: the packets
/// themselves were sampled), and the kernel's first/last times.
#[derive(Clone, Copy, Debug)]
pub struct KernelFlow {
    /// Totals for the pipeline.
    pub totals: FlowTotals,
    /// SYN retransmissions per endpoint.
    pub syn_retransmissions: [u32; 2],
    /// Monotonic time of the last packet or event.
    pub last_ns: u64,
    /// TCP flags each endpoint sent (OR).
    pub flags: [u8; 2],
}

/// Decodes a flow-map entry.
pub fn flow(key: &[u8; KEY_LEN], st: &[u8; STATE_LEN], clock: Clock) -> KernelFlow {
    let v6 = key[offset_of!(FlowKey, ip_version)] == 6;
    let a0 = offset_of!(FlowKey, addr);
    let p0 = offset_of!(FlowKey, port);
    let ends = [
        (addr(key, a0, v6), u16_at(key, p0)),
        (addr(key, a0 + 16, v6), u16_at(key, p0 + 2)),
    ];
    let side = |i: usize| -> (SentTotals, u32, u8) {
        let at = offset_of!(FlowState, side) + i * size_of::<SideState>();
        (
            SentTotals {
                packets: u64_at(st, at + offset_of!(SideState, packets)),
                bytes: u64_at(st, at + offset_of!(SideState, bytes)),
                data_segments: u64_at(st, at + offset_of!(SideState, data_segments)),
                payload: u64_at(st, at + offset_of!(SideState, payload)),
                retransmissions: u64::from(u32_at(st, at + offset_of!(SideState, retransmissions))),
                stalls: u64::from(u32_at(st, at + offset_of!(SideState, stalls))),
                longest_stall: i64::from(u32_at(st, at + offset_of!(SideState, longest_stall_us)))
                    * 1000,
                stalled: (u64_at(st, at + offset_of!(SideState, stalled_us)) as i64)
                    .saturating_mul(1000),
                retransmitted_bytes: u64_at(st, at + offset_of!(SideState, retransmitted_bytes)),
            },
            u32_at(st, at + offset_of!(SideState, syn_retransmissions)),
            st[at + offset_of!(SideState, flags)],
        )
    };
    let (s0, syn0, f0) = side(0);
    let (s1, syn1, f1) = side(1);
    let last_ns = u64_at(st, offset_of!(FlowState, last_ns));
    let first_ns = u64_at(st, offset_of!(FlowState, first_ns));
    let srtt_us = u32_at(st, offset_of!(FlowState, srtt_us));
    let srtt = (srtt_us > 0).then(|| {
        (
            usize::from(st[offset_of!(FlowState, srtt_side)] & 1),
            i64::from(srtt_us) * 1000,
        )
    });
    KernelFlow {
        totals: FlowTotals {
            proto: key[offset_of!(FlowKey, proto)],
            ends,
            sent: [s0, s1],
            // (Zero for a moment after the kernel created the entry.)
            since: Some(first_ns).filter(|&t| t != 0).map(|t| clock.wall(t)),
            last: clock.wall(last_ns),
            srtt,
        },
        syn_retransmissions: [syn0, syn1],
        last_ns,
        flags: [f0, f1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(b: &mut [u8], at: usize, v: &[u8]) {
        b[at..at + v.len()].copy_from_slice(v);
    }

    #[test]
    fn packet_record_borrows_exactly_cap_len_bytes() {
        let head = offset_of!(PacketEvent, data);
        let mut b = vec![0u8; size_of::<PacketEvent>()];
        put(
            &mut b,
            offset_of!(PacketEvent, ts_ns),
            &123_456u64.to_ne_bytes(),
        );
        put(
            &mut b,
            offset_of!(PacketEvent, ifindex),
            &7u32.to_ne_bytes(),
        );
        put(
            &mut b,
            offset_of!(PacketEvent, ip_len),
            &1500u32.to_ne_bytes(),
        );
        put(
            &mut b,
            offset_of!(PacketEvent, cap_len),
            &3u16.to_ne_bytes(),
        );
        b[offset_of!(PacketEvent, egress)] = 1;
        b[offset_of!(PacketEvent, reason)] = observer_wire::SAMPLE_PAYLOAD;
        put(&mut b, head, &[0x45, 0, 0x05, 0xff]);
        let p = packet(&b).unwrap();
        assert_eq!(
            (p.ts_ns, p.ifindex, p.ip_len, p.egress),
            (123_456, 7, 1500, true)
        );
        assert_eq!(p.reason, observer_wire::SAMPLE_PAYLOAD);
        assert_eq!(p.data, &[0x45, 0, 0x05]);
        // A record claiming more bytes than it carries is refused, not read past.
        put(
            &mut b,
            offset_of!(PacketEvent, cap_len),
            &600u16.to_ne_bytes(),
        );
        assert!(packet(&b).is_none());
        assert!(packet(&b[..10]).is_none());
    }

    #[test]
    fn kernel_event_addresses_by_family() {
        let mut b = vec![0u8; size_of::<KernelEvent>()];
        put(
            &mut b,
            offset_of!(KernelEvent, kind),
            &observer_wire::KEV_STATE.to_ne_bytes(),
        );
        put(&mut b, offset_of!(KernelEvent, a), &2u32.to_ne_bytes());
        put(&mut b, offset_of!(KernelEvent, b), &7u32.to_ne_bytes());
        put(
            &mut b,
            offset_of!(KernelEvent, sport),
            &40000u16.to_ne_bytes(),
        );
        put(&mut b, offset_of!(KernelEvent, dport), &80u16.to_ne_bytes());
        put(
            &mut b,
            offset_of!(KernelEvent, family),
            &observer_wire::AF_INET.to_ne_bytes(),
        );
        put(&mut b, offset_of!(KernelEvent, saddr), &[10, 0, 0, 1]);
        put(&mut b, offset_of!(KernelEvent, daddr), &[10, 0, 0, 2]);
        let e = kernel_event(&b).unwrap();
        assert_eq!((e.a, e.b), (2, 7));
        assert_eq!(e.local, ("10.0.0.1".parse().unwrap(), 40000));
        assert_eq!(e.remote, ("10.0.0.2".parse().unwrap(), 80));
        put(
            &mut b,
            offset_of!(KernelEvent, family),
            &AF_INET6.to_ne_bytes(),
        );
        put(
            &mut b,
            offset_of!(KernelEvent, daddr),
            &Ipv6Addr::LOCALHOST.octets(),
        );
        assert_eq!(
            kernel_event(&b).unwrap().remote.0,
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        );
    }

    #[test]
    fn flow_entry_sides_and_times() {
        let mut k = [0u8; KEY_LEN];
        put(&mut k, offset_of!(FlowKey, addr), &[192, 0, 2, 1]);
        put(&mut k, offset_of!(FlowKey, addr) + 16, &[192, 0, 2, 2]);
        put(&mut k, offset_of!(FlowKey, port), &80u16.to_ne_bytes());
        put(
            &mut k,
            offset_of!(FlowKey, port) + 2,
            &50000u16.to_ne_bytes(),
        );
        k[offset_of!(FlowKey, proto)] = 6;
        k[offset_of!(FlowKey, ip_version)] = 4;
        let mut s = [0u8; STATE_LEN];
        let side1 = offset_of!(FlowState, side) + size_of::<SideState>();
        put(
            &mut s,
            side1 + offset_of!(SideState, packets),
            &11u64.to_ne_bytes(),
        );
        put(
            &mut s,
            side1 + offset_of!(SideState, bytes),
            &9000u64.to_ne_bytes(),
        );
        put(
            &mut s,
            side1 + offset_of!(SideState, retransmissions),
            &3u32.to_ne_bytes(),
        );
        put(
            &mut s,
            side1 + offset_of!(SideState, syn_retransmissions),
            &2u32.to_ne_bytes(),
        );
        put(
            &mut s,
            side1 + offset_of!(SideState, stalls),
            &2u32.to_ne_bytes(),
        );
        put(
            &mut s,
            side1 + offset_of!(SideState, longest_stall_us),
            &400_000u32.to_ne_bytes(),
        );
        put(
            &mut s,
            side1 + offset_of!(SideState, stalled_us),
            &700_000u64.to_ne_bytes(),
        );
        put(
            &mut s,
            offset_of!(FlowState, first_ns),
            &4_000_000_000u64.to_ne_bytes(),
        );
        put(
            &mut s,
            offset_of!(FlowState, last_ns),
            &5_000_000_000u64.to_ne_bytes(),
        );
        put(
            &mut s,
            offset_of!(FlowState, srtt_us),
            &1500u32.to_ne_bytes(),
        );
        s[offset_of!(FlowState, srtt_side)] = 1;
        let f = flow(&k, &s, Clock { offset_ns: 1_000 });
        assert_eq!(f.totals.ends[0], ("192.0.2.1".parse().unwrap(), 80));
        assert_eq!(f.totals.ends[1], ("192.0.2.2".parse().unwrap(), 50000));
        assert_eq!(f.totals.sent[0], SentTotals::default());
        assert_eq!(
            (
                f.totals.sent[1].packets,
                f.totals.sent[1].bytes,
                f.totals.sent[1].retransmissions
            ),
            (11, 9000, 3)
        );
        assert_eq!(f.syn_retransmissions, [0, 2]);
        let s1 = f.totals.sent[1];
        assert_eq!(
            (s1.stalls, s1.longest_stall, s1.stalled),
            (2, 400_000_000, 700_000_000)
        );
        assert_eq!(f.totals.since, Some(Timestamp(4_000_001_000)));
        assert_eq!(f.totals.last, Timestamp(5_000_001_000));
        assert_eq!(f.totals.srtt, Some((1, 1_500_000)));
    }
}
