//! observer's kernel programs.
//!
//! - `tc_ingress` / `tc_egress` (TC classifiers): keep per-flow counters in the `FLOWS` map
//!   and send to the `PACKETS` ring only what the analyzers need: SYN/FIN/RST, the first
//!   payload packets of each direction, zero-window transitions, DNS and ICMP. Everything else
//!   is counted, not copied. Retransmitted segments are never sampled: the socket tracepoint
//!   counts them.
//! - Tracepoints: `tcp/tcp_retransmit_skb` and `tcp/tcp_probe` update the flow's entry;
//!   `sock/inet_sock_set_state`, `tcp/tcp_send_reset` and `tcp/tcp_receive_reset` send
//!   [`KernelEvent`]s to the `EVENTS` ring.
//!
//! Every loss (ring full, map full, truncation) is counted per CPU in `COUNTERS`.
//! Field offsets of the tracepoints are the ones userspace verified against tracefs before
//! attaching (`observer::probe::tracefs`).

#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

use aya_ebpf::EbpfContext as _;
use aya_ebpf::bindings::{BPF_NOEXIST, TC_ACT_UNSPEC};
use aya_ebpf::helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_skb_load_bytes};
use aya_ebpf::macros::{classifier, map, tracepoint};
use aya_ebpf::maps::{HashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::{TcContext, TracePointContext};
use core::intrinsics::{AtomicOrdering, atomic_xadd};
use observer_wire::tracepoints::Field;
use observer_wire::{
    AF_INET, AF_INET6, EVENT_RING_BYTES, FlowKey, FlowState, KEV_RESET_RECEIVED, KEV_RESET_SENT,
    KEV_STATE, KernelEvent, MAX_FLOWS, PACKET_RING_BYTES, PAYLOAD_SAMPLES, PacketEvent,
    SAMPLE_ALWAYS, SAMPLE_CONTROL, SAMPLE_PAYLOAD, SAMPLE_WINDOW, SNAP_LEN, STALL_NS, SideState,
    TIME_GRAIN_NS, counter, tcp_state, tracepoints,
};

#[map]
static PACKETS: RingBuf = RingBuf::with_byte_size(PACKET_RING_BYTES, 0);
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(EVENT_RING_BYTES, 0);
#[map]
static FLOWS: HashMap<FlowKey, FlowState> = HashMap::with_max_entries(MAX_FLOWS, 0);
/// One per-CPU slot holding every counter (one lookup per packet, not one per counter).
#[map]
static COUNTERS: PerCpuArray<[u64; counter::COUNT as usize]> = PerCpuArray::with_max_entries(1, 0);

/// Flags for ring-buffer submits; userspace sets `BPF_RB_NO_WAKEUP` (batched wake-ups, it
/// polls) or 0 at load time.
#[unsafe(no_mangle)]
static WAKEUP_FLAGS: u64 = 0;

/// Offset from an `sk_buff` to `TCP_SKB_CB(skb)->tcp_gso_segs`, found by userspace in the
/// kernel's BTF; 0 when unknown (then each retransmitted skb counts as one segment).
#[unsafe(no_mangle)]
static SKB_GSO_SEGS_OFF: u64 = 0;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
/// Header bytes read to parse a packet: the TCP fixed header after IPv6 or IPv4 with up to
/// 24 bytes of options (longer options: the packet is counted unreadable).
const HDR_LOAD: u32 = 64;
/// Size of the header buffer: larger than anything the parser can index (the verifier may
/// see an offset's bound looser than the code's own checks; every index stays inside the
/// buffer whatever it sees).
const HDR: usize = 320;

#[inline(always)]
fn counters() -> Option<*mut [u64; counter::COUNT as usize]> {
    COUNTERS.get_ptr_mut(0)
}

/// Adds one to counter `i` of this CPU's slot `c` (no other CPU writes it).
#[inline(always)]
fn bump_in(c: *mut [u64; counter::COUNT as usize], i: u32) {
    unsafe {
        let p = (c as *mut u64).add((i & 15) as usize);
        if (i as usize) < counter::COUNT as usize {
            *p += 1;
        }
    }
}

#[inline(always)]
fn bump(i: u32) {
    if let Some(c) = counters() {
        bump_in(c, i);
    }
}

#[inline(always)]
fn wakeup_flags() -> u64 {
    unsafe { core::ptr::read_volatile(&WAKEUP_FLAGS) }
}

#[inline(always)]
fn add64(p: *mut u64, v: u64) {
    // BPF atomic add: the two directions of a flow may be handled on two CPUs at once.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, v) };
}

#[inline(always)]
fn add32(p: *mut u32, v: u32) {
    unsafe { atomic_xadd::<u32, u32, { AtomicOrdering::Relaxed }>(p, v) };
}

#[inline(always)]
fn byte(h: &[u8; HDR], i: usize) -> u8 {
    if i < HDR {
        unsafe { *h.get_unchecked(i) }
    } else {
        0
    }
}

#[inline(always)]
fn be16(h: &[u8; HDR], i: usize) -> u16 {
    (u16::from(byte(h, i)) << 8) | u16::from(byte(h, i + 1))
}

#[inline(always)]
fn be32(h: &[u8; HDR], i: usize) -> u32 {
    (u32::from(be16(h, i)) << 16) | u32::from(be16(h, i + 2))
}

/// True if the sender `(sport, sa)` comes first in a flow key: lower port first, then lower
/// address in byte order (compared as big-endian words). The one ordering rule: packets
/// (`key_from_header`) and the socket tracepoints (`flow_key`) both use it, so they meet in
/// one entry.
#[inline(always)]
fn sender_first(sport: u16, sa: &[u32; 4], dport: u16, da: &[u32; 4]) -> bool {
    if sport != dport {
        return sport < dport;
    }
    let mut w = 0;
    while w < 4 {
        let (a, b) = (u32::from_be(sa[w]), u32::from_be(da[w]));
        if a != b {
            return a < b;
        }
        w += 1;
    }
    true
}

/// An address as four words, in memory order.
#[inline(always)]
fn words(a: &[u8; 16]) -> [u32; 4] {
    let mut w = [0u32; 4];
    let mut i = 0;
    while i < 4 {
        w[i] = u32::from_ne_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]]);
        i += 1;
    }
    w
}

/// The canonical key of a packet or socket from (saddr, sport) to (daddr, dport), and the
/// key index of the sender.
#[inline(always)]
fn flow_key(
    ver: u8,
    proto: u8,
    saddr: [u8; 16],
    sport: u16,
    daddr: [u8; 16],
    dport: u16,
) -> (FlowKey, usize) {
    if sender_first(sport, &words(&saddr), dport, &words(&daddr)) {
        (
            FlowKey {
                addr: [saddr, daddr],
                port: [sport, dport],
                proto,
                ip_version: ver,
                pad: [0; 2],
            },
            0,
        )
    } else {
        (
            FlowKey {
                addr: [daddr, saddr],
                port: [dport, sport],
                proto,
                ip_version: ver,
                pad: [0; 2],
            },
            1,
        )
    }
}

/// The flow's entry, created if missing (counted when the map is full).
#[inline(always)]
fn flow_entry(
    key: &FlowKey,
    now: u64,
    cnt: *mut [u64; counter::COUNT as usize],
) -> Option<*mut FlowState> {
    if let Some(p) = FLOWS.get_ptr_mut(key) {
        return Some(p);
    }
    // Inserted from read-only data, not the stack (the BPF stack is 512 bytes).
    if FLOWS
        .insert(key, &ZERO_FLOW, u64::from(BPF_NOEXIST))
        .is_err()
    {
        // Either another CPU inserted it first (then the lookup below finds it) or the map
        // is full.
        if let Some(p) = FLOWS.get_ptr_mut(key) {
            return Some(p);
        }
        bump_in(cnt, counter::FLOW_MAP_FULL);
        return None;
    }
    let p = FLOWS.get_ptr_mut(key)?;
    unsafe { (*p).first_ns = now };
    Some(p)
}

static ZERO_FLOW: FlowState = FlowState::ZERO;

#[inline(always)]
fn side_of(st: *mut FlowState, i: usize) -> *mut SideState {
    unsafe { (*st).side.as_mut_ptr().add(i & 1) }
}

/// What every classifier returns: TC_ACT_UNSPEC, "no verdict, go on" (TCX_NEXT). The
/// programs only watch; other programs on the same hook (another probe, a CNI's, a
/// firewall's) must still run after them. Any other code (TC_ACT_PIPE too) ends a TCX chain.
const TC_ACT_NEXT: i32 = TC_ACT_UNSPEC;

// Four programs, the link-layer header length fixed in each (no per-packet lookup): 14 bytes
// on Ethernet and loopback devices, none on raw-IP devices (tun, WireGuard). Userspace attaches
// the pair that fits each interface.
#[classifier]
pub fn tc_ingress(ctx: TcContext) -> i32 {
    tc(&ctx, 0, 14);
    TC_ACT_NEXT
}

#[classifier]
pub fn tc_egress(ctx: TcContext) -> i32 {
    tc(&ctx, 1, 14);
    TC_ACT_NEXT
}

#[classifier]
pub fn tc_ingress_raw(ctx: TcContext) -> i32 {
    tc(&ctx, 0, 0);
    TC_ACT_NEXT
}

#[classifier]
pub fn tc_egress_raw(ctx: TcContext) -> i32 {
    tc(&ctx, 1, 0);
    TC_ACT_NEXT
}

/// Per-CPU scratch: the packet's first header bytes and the flow key built in place (the BPF
/// stack is 512 bytes).
#[repr(C)]
pub struct Scratch {
    key: FlowKey,
    h: [u8; HDR],
}

#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Four header bytes at `i` as they are in memory (for copying addresses a word at a time).
#[inline(always)]
fn word(h: &[u8; HDR], i: usize) -> u32 {
    u32::from_ne_bytes([byte(h, i), byte(h, i + 1), byte(h, i + 2), byte(h, i + 3)])
}

/// Writes the canonical key for a packet whose addresses are at `s_off`/`d_off` of the
/// header bytes (`words` 32-bit words long) into `key`; returns the key index of the sender
/// (order: [`sender_first`]).
#[inline(always)]
fn key_from_header(
    sc: &mut Scratch,
    ver: u8,
    proto: u8,
    (s_off, d_off, words): (usize, usize, usize),
    sport: u16,
    dport: u16,
) -> usize {
    let mut sa = [0u32; 4];
    let mut da = [0u32; 4];
    let mut w = 0;
    while w < 4 {
        if w < words {
            sa[w] = word(&sc.h, s_off + 4 * w);
            da[w] = word(&sc.h, d_off + 4 * w);
        }
        w += 1;
    }
    let sender_first = sender_first(sport, &sa, dport, &da);
    let (first, second) = if sender_first { (sa, da) } else { (da, sa) };
    let mut w = 0;
    while w < 4 {
        let (a, b) = (first[w].to_ne_bytes(), second[w].to_ne_bytes());
        sc.key.addr[0][4 * w..4 * w + 4].copy_from_slice(&a);
        sc.key.addr[1][4 * w..4 * w + 4].copy_from_slice(&b);
        w += 1;
    }
    sc.key.port = if sender_first {
        [sport, dport]
    } else {
        [dport, sport]
    };
    sc.key.proto = proto;
    sc.key.ip_version = ver;
    sc.key.pad = [0; 2];
    if sender_first { 0 } else { 1 }
}

#[inline(always)]
fn tc(ctx: &TcContext, egress: u8, l2: u32) {
    let Some(cnt) = counters() else {
        return;
    };
    bump_in(cnt, counter::TC_PACKETS);
    let skb = ctx.skb.skb;
    let (skb_len, protocol, ifindex, gso_segs) = unsafe {
        (
            (*skb).len,
            u16::from_be((*skb).protocol as u16),
            (*skb).ifindex,
            (*skb).gso_segs,
        )
    };
    let ver: u8 = match protocol {
        ETH_P_IP => 4,
        ETH_P_IPV6 => 6,
        _ => {
            bump_in(cnt, counter::NOT_TRACKED);
            return;
        }
    };
    if skb_len <= l2 {
        bump_in(cnt, counter::HEADER_UNREADABLE);
        return;
    }
    let ip_len = skb_len - l2;
    let Some(sp) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let sc: &mut Scratch = unsafe { &mut *sp };
    let n = if ip_len >= HDR_LOAD { HDR_LOAD } else { ip_len };
    if n < 20 || unsafe { bpf_skb_load_bytes(skb.cast(), l2, sc.h.as_mut_ptr().cast(), n) } != 0 {
        bump_in(cnt, counter::HEADER_UNREADABLE);
        return;
    }
    // Bytes past `n` are left from an earlier packet: every read below is checked against `n`.
    let n = n as usize;
    // IP header: protocol, where L4 starts, the addresses, how long the packet says it is.
    let (proto, l4, addrs, ip_total) = if ver == 4 {
        if byte(&sc.h, 0) >> 4 != 4 {
            bump_in(cnt, counter::HEADER_UNREADABLE);
            return;
        }
        let ihl = usize::from(byte(&sc.h, 0) & 0x0f) * 4;
        if be16(&sc.h, 6) & 0x1fff != 0 {
            bump_in(cnt, counter::FRAGMENTS);
            return;
        }
        (byte(&sc.h, 9), ihl, (12, 16, 1), u32::from(be16(&sc.h, 2)))
    } else {
        if n < 40 {
            bump_in(cnt, counter::HEADER_UNREADABLE);
            return;
        }
        (
            byte(&sc.h, 6),
            40,
            (8, 24, 4),
            u32::from(be16(&sc.h, 4)) + 40,
        )
    };
    // A GSO super-packet or BIG TCP may carry 0 or a per-segment length; the skb knows better.
    // Ethernet padding makes the skb longer than the IP packet: take the smaller when sane.
    let ip_bytes = if ip_total >= l4 as u32 && ip_total <= ip_len && gso_segs <= 1 {
        ip_total
    } else {
        ip_len
    };
    let segs = if gso_segs > 1 { gso_segs } else { 1 };
    let now = unsafe { bpf_ktime_get_ns() };
    let tcp = proto == 6;
    if !tcp && proto != 17 {
        if proto == 1 || proto == 58 {
            submit_packet(
                cnt,
                skb,
                l2,
                ip_len,
                ip_bytes,
                now,
                ifindex,
                egress,
                SAMPLE_ALWAYS,
                segs,
            );
        } else {
            bump_in(cnt, counter::NOT_TRACKED);
        }
        return;
    }
    if l4 + if tcp { 20 } else { 8 } > n {
        bump_in(cnt, counter::HEADER_UNREADABLE);
        return;
    }
    let sport = be16(&sc.h, l4);
    let dport = be16(&sc.h, l4 + 2);
    let (seq, flags, window, hdrs) = if tcp {
        let doff = usize::from(byte(&sc.h, l4 + 12) >> 4) * 4;
        (
            be32(&sc.h, l4 + 4),
            byte(&sc.h, l4 + 13),
            be16(&sc.h, l4 + 14),
            (l4 + doff) as u32,
        )
    } else {
        (0, 0, 1, l4 as u32 + 8)
    };
    let payload = ip_bytes.saturating_sub(hdrs);
    let i = key_from_header(sc, ver, proto, addrs, sport, dport);
    let dns = sport == 53 || dport == 53 || sport == 5353 || dport == 5353;
    let Some(st) = flow_entry(&sc.key, now, cnt) else {
        // The map is full: this flow's totals are lost (counted), but what is sampled whatever
        // the flow's state still goes (handshakes, FINs, resets, DNS), so refused or reset
        // connections and DNS failures are still seen.
        let reason = if tcp {
            if flags & (TCP_SYN | TCP_FIN | TCP_RST) != 0 {
                SAMPLE_CONTROL
            } else {
                0
            }
        } else if dns {
            SAMPLE_ALWAYS
        } else {
            0
        };
        if reason != 0 {
            submit_packet(
                cnt, skb, l2, ip_len, ip_bytes, now, ifindex, egress, reason, segs,
            );
        }
        return;
    };
    let s = side_of(st, i);
    let mut reason = 0u8;
    unsafe {
        add64(&raw mut (*s).packets, u64::from(segs));
        add64(&raw mut (*s).bytes, u64::from(ip_bytes));
        if payload > 0 {
            add64(&raw mut (*s).data_segments, u64::from(segs));
            add64(&raw mut (*s).payload, u64::from(payload));
        }
        // Both directions (often on two CPUs) share the entry: write the shared fields only
        // when they change (at most once a millisecond for the time), so the cache line is
        // not bounced between CPUs on every packet.
        if now.wrapping_sub((*st).last_ns) > TIME_GRAIN_NS {
            (*st).last_ns = now;
        }
        if tcp {
            if (*s).flags & flags != flags {
                (*s).flags |= flags;
            }
            let syn = flags & TCP_SYN != 0;
            let fin = flags & TCP_FIN != 0;
            let seq_end = seq
                .wrapping_add(payload)
                .wrapping_add(u32::from(syn))
                .wrapping_add(u32::from(fin));
            let next = (*s).next_seq;
            let new_data = next == 0 || (seq_end.wrapping_sub(next) as i32) > 0;
            // A segment starting below what this side already sent is sent again (all of it,
            // or old data with new appended; a SYN again): a retransmission, seen here for the host's own
            // sockets (egress) and its peers' (ingress) — the capture path's rule too.
            let resent =
                next != 0 && (payload > 0 || fin || syn) && (next.wrapping_sub(seq) as i32) > 0;
            if new_data {
                (*s).next_seq = seq_end;
            }
            if resent {
                add64(&raw mut (*s).retransmitted_bytes, u64::from(payload));
                // After a silence of at least the minimum RTO it is a stall (the sender
                // waited for a timer).
                let last = (*s).last_ns;
                let silence = now.wrapping_sub(last);
                if last != 0 && silence >= STALL_NS && silence < 1 << 62 {
                    let us = silence / 1000;
                    (*s).stalls += 1;
                    (*s).stalled_us += us;
                    let us = if us > u32::MAX as u64 {
                        u32::MAX
                    } else {
                        us as u32
                    };
                    if us > (*s).longest_stall_us {
                        (*s).longest_stall_us = us;
                    }
                }
            }
            if syn || flags & TCP_RST != 0 || (fin && new_data) {
                reason = SAMPLE_CONTROL;
            } else if payload > 0 && new_data && (*s).samples < PAYLOAD_SAMPLES {
                (*s).samples += 1;
                reason = SAMPLE_PAYLOAD;
            }
            let zero = (window == 0) as u8;
            if zero != (*s).zero_window && flags & TCP_RST == 0 {
                (*s).zero_window = zero;
                if reason == 0 {
                    reason = SAMPLE_WINDOW;
                }
            }
        } else if dns {
            reason = SAMPLE_ALWAYS;
        } else if (*s).samples < PAYLOAD_SAMPLES {
            (*s).samples += 1;
            reason = SAMPLE_PAYLOAD;
        }
        // This endpoint's last packet (after the stall check above, which needs the one
        // before), at the same grain as the flow's.
        if now.wrapping_sub((*s).last_ns) > TIME_GRAIN_NS {
            (*s).last_ns = now;
        }
    }
    if reason != 0 {
        submit_packet(
            cnt, skb, l2, ip_len, ip_bytes, now, ifindex, egress, reason, segs,
        );
    }
}

/// Copies the packet (from the IP header, at most [`SNAP_LEN`] bytes) to the packet ring.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn submit_packet(
    cnt: *mut [u64; counter::COUNT as usize],
    skb: *mut aya_ebpf::bindings::__sk_buff,
    l2: u32,
    ip_len: u32,
    ip_bytes: u32,
    now: u64,
    ifindex: u32,
    egress: u8,
    reason: u8,
    segs: u32,
) {
    let Some(mut e) = PACKETS.reserve::<PacketEvent>(0) else {
        bump_in(cnt, counter::PACKET_RING_FULL);
        return;
    };
    let ev = e.as_mut_ptr();
    let cap = if ip_len >= SNAP_LEN as u32 {
        SNAP_LEN as u32
    } else {
        ip_len
    };
    // The compiler knows cap >= 1 (ip_len > 0) and drops a `cap > 0` test; the verifier needs
    // to see the bound, so state it as arithmetic: (cap - 1) & 511 is in [0, 511] and equals
    // cap - 1 for cap in [1, 512].
    let cap = ((cap.wrapping_sub(1)) & (SNAP_LEN as u32 - 1)) + 1;
    unsafe {
        (*ev).ts_ns = now;
        (*ev).ifindex = ifindex;
        (*ev).ip_len = ip_bytes;
        (*ev).egress = egress;
        (*ev).reason = reason;
        (*ev).gso_segs = segs as u16;
        (*ev).pad = [0; 2];
        (*ev).cap_len = 0;
        if cap > 0 && bpf_skb_load_bytes(skb.cast(), l2, (*ev).data.as_mut_ptr().cast(), cap) == 0 {
            (*ev).cap_len = cap as u16;
        }
    }
    if ip_len > SNAP_LEN as u32 {
        bump_in(cnt, counter::TRUNCATED);
    }
    e.submit(wakeup_flags());
    bump_in(cnt, counter::TC_SAMPLED);
}

// Tracepoint records are read straight from the context (the verifier allows aligned loads
// inside the record), not through a bpf_probe_read_kernel call per field: several times
// cheaper on tcp_probe, which runs for every ACK the host receives.

/// One byte of the record.
#[inline(always)]
fn ctx_u8(ctx: &TracePointContext, off: usize) -> u8 {
    unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u8).add(off)) }
}

/// A 2-byte field (offset 2-aligned, as every 2-byte field in these records is).
#[inline(always)]
fn rd16(ctx: &TracePointContext, f: Field) -> u16 {
    unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u8).add(f.offset) as *const u16) }
}

/// A 4-byte field (offset 4-aligned).
#[inline(always)]
fn rd32(ctx: &TracePointContext, f: Field) -> u32 {
    unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u8).add(f.offset) as *const u32) }
}

/// An 8-byte field (offset 8-aligned).
#[inline(always)]
fn rd64(ctx: &TracePointContext, f: Field) -> u64 {
    unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u8).add(f.offset) as *const u64) }
}

/// `n` bytes at `off` into a 16-byte address (byte loads: these fields are not always aligned).
#[inline(always)]
fn addr_at(ctx: &TracePointContext, off: usize, n: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        if i < n {
            a[i] = ctx_u8(ctx, off + i);
        }
        i += 1;
    }
    a
}

/// True if the 16-byte address at `off` is IPv4-mapped (`::ffff:a.b.c.d`): what the socket
/// tracepoints give for a dual-stack (AF_INET6) socket talking IPv4.
#[inline(always)]
fn v4_mapped_at(ctx: &TracePointContext, off: usize) -> bool {
    let mut i = 0;
    while i < 10 {
        if ctx_u8(ctx, off + i) != 0 {
            return false;
        }
        i += 1;
    }
    ctx_u8(ctx, off + 10) == 0xff && ctx_u8(ctx, off + 11) == 0xff
}

/// Family and addresses of a tracepoint with `saddr[4]`/`daddr[4]` and `saddr_v6`/`daddr_v6`
/// fields. A dual-stack socket talking IPv4 (family AF_INET6, IPv4-mapped addresses) is
/// given as AF_INET with its IPv4 addresses, as its packets carry them, so it meets their
/// flow entry.
#[inline(always)]
fn tp_addrs(
    ctx: &TracePointContext,
    family: u16,
    v4: (Field, Field),
    v6: (Field, Field),
) -> (u16, [u8; 16], [u8; 16]) {
    if family == AF_INET {
        (
            family,
            addr_at(ctx, v4.0.offset, 4),
            addr_at(ctx, v4.1.offset, 4),
        )
    } else if v4_mapped_at(ctx, v6.1.offset) {
        (
            AF_INET,
            addr_at(ctx, v6.0.offset + 12, 4),
            addr_at(ctx, v6.1.offset + 12, 4),
        )
    } else {
        (
            family,
            addr_at(ctx, v6.0.offset, 16),
            addr_at(ctx, v6.1.offset, 16),
        )
    }
}

/// Family and addresses of a tracepoint with 28-byte sockaddr fields (family at +0, port at
/// +2 in network order, IPv4 address at +4, IPv6 at +8); IPv4-mapped IPv6 addresses as IPv4
/// (see [`tp_addrs`]).
#[inline(always)]
fn sockaddr_pair(ctx: &TracePointContext, sa: Field, da: Field) -> (u16, [u8; 16], [u8; 16]) {
    let family = rd16(ctx, sa);
    if family == AF_INET {
        (
            family,
            addr_at(ctx, sa.offset + 4, 4),
            addr_at(ctx, da.offset + 4, 4),
        )
    } else if v4_mapped_at(ctx, da.offset + 8) {
        (
            AF_INET,
            addr_at(ctx, sa.offset + 8 + 12, 4),
            addr_at(ctx, da.offset + 8 + 12, 4),
        )
    } else {
        (
            family,
            addr_at(ctx, sa.offset + 8, 16),
            addr_at(ctx, da.offset + 8, 16),
        )
    }
}

/// The port of a sockaddr field (network order in the record).
#[inline(always)]
fn sockaddr_port(ctx: &TracePointContext, sa: Field) -> u16 {
    (u16::from(ctx_u8(ctx, sa.offset + 2)) << 8) | u16::from(ctx_u8(ctx, sa.offset + 3))
}

#[inline(always)]
fn ip_version(family: u16) -> u8 {
    if family == AF_INET6 { 6 } else { 4 }
}

/// Sends a socket event (from the local socket's point of view) to the event ring.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn send_event(
    kind: u32,
    a: u32,
    b: u32,
    sport: u16,
    dport: u16,
    family: u16,
    saddr: [u8; 16],
    daddr: [u8; 16],
) {
    let ev = KernelEvent {
        ts_ns: unsafe { bpf_ktime_get_ns() },
        kind,
        a,
        b,
        sport,
        dport,
        family,
        pad: [0; 6],
        saddr,
        daddr,
    };
    match EVENTS.reserve::<KernelEvent>(0) {
        Some(mut e) => {
            e.write(ev);
            e.submit(wakeup_flags());
            bump(counter::EVENTS);
        }
        None => bump(counter::EVENT_RING_FULL),
    }
}

#[tracepoint]
pub fn tcp_retransmit_skb(ctx: TracePointContext) -> u32 {
    use tracepoints::retransmit as f;
    bump(counter::RETRANSMITS);
    // The stack gives up before sending on these (and does not count them in TcpRetransSegs):
    // -EBUSY (the first copy is still queued), -EAGAIN, -ENOMEM, -EHOSTUNREACH.
    let err = rd32(&ctx, f::ERR) as i32;
    if err == -16 || err == -11 || err == -12 || err == -113 {
        bump(counter::RETRANSMITS_NOT_SENT);
        return 0;
    }
    let state = rd32(&ctx, f::STATE) as i32;
    let sport = rd16(&ctx, f::SPORT);
    let dport = rd16(&ctx, f::DPORT);
    let (family, s, d) = tp_addrs(
        &ctx,
        rd16(&ctx, f::FAMILY),
        (f::SADDR, f::DADDR),
        (f::SADDR_V6, f::DADDR_V6),
    );
    let off = unsafe { core::ptr::read_volatile(&SKB_GSO_SEGS_OFF) };
    let mut segs = 1u32;
    if off != 0 {
        let skb = rd64(&ctx, f::SKBADDR);
        if skb != 0 {
            let n = unsafe { bpf_probe_read_kernel((skb + off) as *const u16) }.unwrap_or(1);
            if n > 1 {
                segs = u32::from(n);
            }
        }
    }
    let (key, i) = flow_key(ip_version(family), 6, s, sport, d, dport);
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(cnt) = counters() else {
        return 0;
    };
    if let Some(st) = flow_entry(&key, now, cnt) {
        let side = side_of(st, i);
        unsafe {
            add32(&raw mut (*side).retransmissions, segs);
            if state as u32 == tcp_state::SYN_SENT {
                add32(&raw mut (*side).syn_retransmissions, 1);
            }
            (*st).last_ns = now;
        }
    }
    0
}

#[tracepoint]
pub fn tcp_probe(ctx: TracePointContext) -> u32 {
    use tracepoints::probe as f;
    let (family, s, d) = sockaddr_pair(&ctx, f::SADDR, f::DADDR);
    let sport = rd16(&ctx, f::SPORT);
    let dport = rd16(&ctx, f::DPORT);
    let srtt = rd32(&ctx, f::SRTT);
    let cwnd = rd32(&ctx, f::SND_CWND);
    let (key, i) = flow_key(ip_version(family), 6, s, sport, d, dport);
    // Only flows already tracked: tcp_probe alone never creates an entry.
    if let Some(st) = FLOWS.get_ptr_mut(&key) {
        unsafe {
            // Runs for every ACK: write only what changed (the entry's cache line is shared
            // with the TC programs on other CPUs).
            if (*st).srtt_us != srtt || (*st).snd_cwnd != cwnd {
                (*st).srtt_us = srtt;
                (*st).snd_cwnd = cwnd;
                (*st).srtt_side = i as u8;
            }
        }
        bump(counter::PROBE_UPDATES);
    }
    0
}

#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    use tracepoints::set_state as f;
    if rd16(&ctx, f::PROTOCOL) != 6 {
        return 0;
    }
    let old = rd32(&ctx, f::OLDSTATE);
    let new = rd32(&ctx, f::NEWSTATE);
    if old != tcp_state::SYN_SENT && old != tcp_state::SYN_RECV && new != tcp_state::CLOSE {
        return 0;
    }
    let (family, saddr, daddr) = tp_addrs(
        &ctx,
        rd16(&ctx, f::FAMILY),
        (f::SADDR, f::DADDR),
        (f::SADDR_V6, f::DADDR_V6),
    );
    send_event(
        KEV_STATE,
        old,
        new,
        rd16(&ctx, f::SPORT),
        rd16(&ctx, f::DPORT),
        family,
        saddr,
        daddr,
    );
    0
}

#[tracepoint]
pub fn tcp_send_reset(ctx: TracePointContext) -> u32 {
    use tracepoints::send_reset as f;
    let (family, saddr, daddr) = sockaddr_pair(&ctx, f::SADDR, f::DADDR);
    let state = rd32(&ctx, f::STATE) as i32;
    let sport = sockaddr_port(&ctx, f::SADDR);
    let dport = sockaddr_port(&ctx, f::DADDR);
    send_event(
        KEV_RESET_SENT,
        state as u32,
        rd32(&ctx, f::REASON),
        sport,
        dport,
        family,
        saddr,
        daddr,
    );
    0
}

#[tracepoint]
pub fn tcp_receive_reset(ctx: TracePointContext) -> u32 {
    use tracepoints::receive_reset as f;
    let (family, saddr, daddr) = tp_addrs(
        &ctx,
        rd16(&ctx, f::FAMILY),
        (f::SADDR, f::DADDR),
        (f::SADDR_V6, f::DADDR_V6),
    );
    send_event(
        KEV_RESET_RECEIVED,
        0,
        0,
        rd16(&ctx, f::SPORT),
        rd16(&ctx, f::DPORT),
        family,
        saddr,
        daddr,
    );
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
