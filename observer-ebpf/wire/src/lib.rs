//! The wire between observer's kernel programs (`observer-ebpf`) and userspace
//! (`observer::probe`): map keys and values, ring-buffer records, counter indices.
//!
//! Every type is `#[repr(C)]`, built from fixed-width integers, with explicit padding, and its
//! size is asserted at compile time on both sides, so a change on one side that the other does
//! not share fails to build instead of misreading memory.

#![no_std]

/// Bytes of each sampled packet copied into its ring-buffer record, from the IP header on.
pub const SNAP_LEN: usize = 512;

/// Payload-carrying packets sampled per flow direction (for protocol identification: request
/// lines and headers, TLS hellos). Later payload is only counted.
pub const PAYLOAD_SAMPLES: u16 = 4;

/// Resolution of the last-activity times in the flow map (ns): both directions share an
/// entry, so times are written at most once a millisecond, not on every packet.
pub const TIME_GRAIN_NS: u64 = 1_000_000;

/// Silence before a retransmission that makes it a stall (ns): Linux's minimum RTO, as the
/// capture path uses.
pub const STALL_NS: u64 = 200_000_000;

/// Default size of the packet ring buffer (bytes, a power of two).
pub const PACKET_RING_BYTES: u32 = 1 << 23;
/// Default size of the kernel-event ring buffer (bytes, a power of two).
pub const EVENT_RING_BYTES: u32 = 1 << 20;
/// Default capacity of the kernel flow map.
pub const MAX_FLOWS: u32 = 65_536;

/// Address family values as the kernel writes them.
pub const AF_INET: u16 = 2;
/// IPv6.
pub const AF_INET6: u16 = 10;

/// A flow in the kernel map: the two endpoints in a canonical order (lower port first, then
/// lower address), so both directions of a connection and the socket tracepoints (which see it
/// from the local side) meet in one entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowKey {
    /// Endpoint addresses; IPv4 in the first 4 bytes, the rest zero.
    pub addr: [[u8; 16]; 2],
    /// Endpoint ports (host byte order), same order as `addr`.
    pub port: [u16; 2],
    /// IP protocol (6 TCP, 17 UDP).
    pub proto: u8,
    /// 4 or 6.
    pub ip_version: u8,
    /// Zero.
    pub pad: [u8; 2],
}

/// One direction of a flow in the kernel map: what endpoint `i` of the key sent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SideState {
    /// Packets (GSO super-packets count as their segments).
    pub packets: u64,
    /// IP bytes (headers included).
    pub bytes: u64,
    /// Segments carrying payload.
    pub data_segments: u64,
    /// Payload bytes (TCP or UDP payload).
    pub payload: u64,
    /// Segments retransmitted by the host's TCP stack (tracepoint `tcp/tcp_retransmit_skb`,
    /// each skb counted as the segments it carries when the kernel's BTF says where that is,
    /// as `TcpRetransSegs` counts), SYNs included.
    pub retransmissions: u32,
    /// Of those, SYN retransmissions (the tracepoint in SYN_SENT).
    pub syn_retransmissions: u32,
    /// One past the highest TCP sequence number sent (0 until the first segment).
    pub next_seq: u32,
    /// Payload packets sampled so far.
    pub samples: u16,
    /// Last advertised window was zero.
    pub zero_window: u8,
    /// TCP flags seen (OR of every segment's flags byte).
    pub flags: u8,
    /// Monotonic time of this endpoint's last packet (ns, [`TIME_GRAIN_NS`] resolution).
    pub last_ns: u64,
    /// Retransmissions this endpoint sent after being silent for at least [`STALL_NS`]
    /// (RTO-style stalls, seen at TC: old sequence numbers sent again).
    pub stalls: u32,
    /// The longest such silence (µs).
    pub longest_stall_us: u32,
    /// All such silences (µs).
    pub stalled_us: u64,
    /// Payload bytes of segments sent again (old sequence numbers seen at TC).
    pub retransmitted_bytes: u64,
}

impl SideState {
    /// All zero.
    pub const ZERO: SideState = SideState {
        packets: 0,
        bytes: 0,
        data_segments: 0,
        payload: 0,
        retransmissions: 0,
        syn_retransmissions: 0,
        next_seq: 0,
        samples: 0,
        zero_window: 0,
        flags: 0,
        last_ns: 0,
        stalls: 0,
        longest_stall_us: 0,
        stalled_us: 0,
        retransmitted_bytes: 0,
    };
}

/// A flow's kernel state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowState {
    /// Monotonic time of the first packet or event (ns).
    pub first_ns: u64,
    /// Monotonic time of the last packet or event (ns).
    pub last_ns: u64,
    /// Per endpoint of the key.
    pub side: [SideState; 2],
    /// Smoothed RTT of the local socket (µs, from `tcp/tcp_probe`), 0 if never seen.
    pub srtt_us: u32,
    /// Congestion window of the local socket (segments).
    pub snd_cwnd: u32,
    /// Which endpoint of the key is the local socket `srtt_us` belongs to.
    pub srtt_side: u8,
    /// Zero.
    pub pad: [u8; 7],
}

impl FlowState {
    /// All zero (the kernel inserts this, then sets `first_ns`).
    pub const ZERO: FlowState = FlowState {
        first_ns: 0,
        last_ns: 0,
        side: [SideState::ZERO; 2],
        srtt_us: 0,
        snd_cwnd: 0,
        srtt_side: 0,
        pad: [0; 7],
    };
}

/// A sampled packet: header fields the kernel already knew and the first bytes from the IP
/// header on.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PacketEvent {
    /// Monotonic time (ns).
    pub ts_ns: u64,
    /// Interface index it crossed.
    pub ifindex: u32,
    /// Length from the IP header to the end of the packet (a GSO super-packet's whole length).
    pub ip_len: u32,
    /// Bytes of `data` that are valid.
    pub cap_len: u16,
    /// 0 ingress, 1 egress.
    pub egress: u8,
    /// Why it was sampled ([`SAMPLE_CONTROL`] and friends).
    pub reason: u8,
    /// Segments a GSO super-packet stands for (1 otherwise).
    pub gso_segs: u16,
    /// Zero.
    pub pad: [u8; 2],
    /// The packet from the IP header on.
    pub data: [u8; SNAP_LEN],
}

/// The kernel programs' names (as bpftool lists them): the tracepoints, then the TC
/// classifiers (Ethernet/loopback and raw-IP variants).
pub const PROGRAMS: &[&str] = &[
    "tcp_retransmit_skb",
    "tcp_probe",
    "inet_sock_set_state",
    "tcp_send_reset",
    "tcp_receive_reset",
    "tc_ingress",
    "tc_egress",
    "tc_ingress_raw",
    "tc_egress_raw",
];

/// Sampled: SYN, FIN or RST.
pub const SAMPLE_CONTROL: u8 = 1;
/// Sampled: one of the first payload packets of its direction.
pub const SAMPLE_PAYLOAD: u8 = 2;
/// Sampled: the advertised window became zero or left zero.
pub const SAMPLE_WINDOW: u8 = 3;
/// Sampled: DNS or ICMP (always sent).
pub const SAMPLE_ALWAYS: u8 = 4;

/// A kernel event: socket state change or reset, from the local socket's point of view.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelEvent {
    /// Monotonic time (ns).
    pub ts_ns: u64,
    /// [`KEV_STATE`], [`KEV_RESET_SENT`] or [`KEV_RESET_RECEIVED`].
    pub kind: u32,
    /// Old state (state change) or socket state (reset sent).
    pub a: u32,
    /// New state (state change) or reset reason (reset sent).
    pub b: u32,
    /// Local port (host order).
    pub sport: u16,
    /// Remote port (host order).
    pub dport: u16,
    /// [`AF_INET`] or [`AF_INET6`].
    pub family: u16,
    /// Zero.
    pub pad: [u8; 6],
    /// Local address (IPv4 in the first 4 bytes).
    pub saddr: [u8; 16],
    /// Remote address.
    pub daddr: [u8; 16],
}

/// `sock/inet_sock_set_state` for TCP (only transitions out of SYN_SENT/SYN_RECV and into CLOSE).
pub const KEV_STATE: u32 = 1;
/// `tcp/tcp_send_reset`.
pub const KEV_RESET_SENT: u32 = 2;
/// `tcp/tcp_receive_reset`.
pub const KEV_RESET_RECEIVED: u32 = 3;

/// TCP states as the kernel numbers them.
pub mod tcp_state {
    /// ESTABLISHED.
    pub const ESTABLISHED: u32 = 1;
    /// SYN_SENT.
    pub const SYN_SENT: u32 = 2;
    /// SYN_RECV.
    pub const SYN_RECV: u32 = 3;
    /// CLOSE.
    pub const CLOSE: u32 = 7;
}

/// Per-CPU counter indices (the `COUNTERS` per-CPU array).
pub mod counter {
    /// Packets the TC programs ran on.
    pub const TC_PACKETS: u32 = 0;
    /// Packets sent to the packet ring.
    pub const TC_SAMPLED: u32 = 1;
    /// Samples lost: packet ring full.
    pub const PACKET_RING_FULL: u32 = 2;
    /// Flows not tracked: flow map full.
    pub const FLOW_MAP_FULL: u32 = 3;
    /// Samples cut at [`crate::SNAP_LEN`].
    pub const TRUNCATED: u32 = 4;
    /// Kernel events sent to the event ring.
    pub const EVENTS: u32 = 5;
    /// Kernel events lost: event ring full.
    pub const EVENT_RING_FULL: u32 = 6;
    /// `tcp_retransmit_skb` hits.
    pub const RETRANSMITS: u32 = 7;
    /// Packets that were not IPv4/IPv6 TCP, UDP or ICMP (passed, not tracked).
    pub const NOT_TRACKED: u32 = 8;
    /// Packets whose headers could not be read.
    pub const HEADER_UNREADABLE: u32 = 9;
    /// `tcp_probe` hits that updated a flow.
    pub const PROBE_UPDATES: u32 = 10;
    /// IPv4 fragments after the first (passed, not tracked).
    pub const FRAGMENTS: u32 = 11;
    /// `tcp_retransmit_skb` hits where the stack gave up before sending (-EBUSY: the first
    /// copy still queued, -EAGAIN, -ENOMEM, -EHOSTUNREACH): not retransmissions, and not in
    /// the kernel's TcpRetransSegs either.
    pub const RETRANSMITS_NOT_SENT: u32 = 12;
    /// Number of counters.
    pub const COUNT: u32 = 13;
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == 40);
const _: () = assert!(core::mem::size_of::<SideState>() == 80);
const _: () = assert!(core::mem::size_of::<FlowState>() == 16 + 160 + 16);
const _: () = assert!(core::mem::size_of::<PacketEvent>() == 24 + SNAP_LEN);
const _: () = assert!(core::mem::size_of::<KernelEvent>() == 64);

/// Tracepoint fields the kernel programs read: offsets and sizes as this kernel's tracefs
/// `format` files give them. The kernel programs read these constants; userspace checks them
/// against `/sys/kernel/tracing/events/<category>/<name>/format` before attaching and refuses
/// to attach on any difference.
pub mod tracepoints {
    /// One field of a tracepoint record.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Field {
        /// Name in the format file.
        pub name: &'static str,
        /// Byte offset in the record.
        pub offset: usize,
        /// Size in bytes.
        pub size: usize,
    }

    const fn f(name: &'static str, offset: usize, size: usize) -> Field {
        Field { name, offset, size }
    }

    /// A tracepoint and the fields read from it.
    #[derive(Clone, Copy, Debug)]
    pub struct Tracepoint {
        /// Category (`tcp`, `sock`).
        pub category: &'static str,
        /// Name, also the kernel program's name.
        pub name: &'static str,
        /// Fields read.
        pub fields: &'static [Field],
    }

    /// `tcp/tcp_retransmit_skb`.
    pub mod retransmit {
        use super::{Field, f};
        /// The retransmitted skb (kernel pointer).
        pub const SKBADDR: Field = f("skbaddr", 8, 8);
        /// Socket state.
        pub const STATE: Field = f("state", 24, 4);
        /// Local port (host order).
        pub const SPORT: Field = f("sport", 28, 2);
        /// Remote port.
        pub const DPORT: Field = f("dport", 30, 2);
        /// Address family.
        pub const FAMILY: Field = f("family", 32, 2);
        /// Local IPv4 address.
        pub const SADDR: Field = f("saddr", 34, 4);
        /// Remote IPv4 address.
        pub const DADDR: Field = f("daddr", 38, 4);
        /// Local IPv6 address.
        pub const SADDR_V6: Field = f("saddr_v6", 42, 16);
        /// Remote IPv6 address.
        pub const DADDR_V6: Field = f("daddr_v6", 58, 16);
        /// The retransmission's outcome (0, or a negative errno).
        pub const ERR: Field = f("err", 76, 4);
    }

    /// `tcp/tcp_probe`.
    pub mod probe {
        use super::{Field, f};
        /// Local sockaddr (28 bytes: family, port, IPv4 at +4 or IPv6 at +8).
        pub const SADDR: Field = f("saddr", 8, 28);
        /// Remote sockaddr.
        pub const DADDR: Field = f("daddr", 36, 28);
        /// Local port (host order).
        pub const SPORT: Field = f("sport", 64, 2);
        /// Remote port.
        pub const DPORT: Field = f("dport", 66, 2);
        /// Address family.
        pub const FAMILY: Field = f("family", 68, 2);
        /// Congestion window.
        pub const SND_CWND: Field = f("snd_cwnd", 88, 4);
        /// Smoothed RTT (µs).
        pub const SRTT: Field = f("srtt", 100, 4);
    }

    /// `sock/inet_sock_set_state`.
    pub mod set_state {
        use super::{Field, f};
        /// Old state.
        pub const OLDSTATE: Field = f("oldstate", 16, 4);
        /// New state.
        pub const NEWSTATE: Field = f("newstate", 20, 4);
        /// Local port (host order).
        pub const SPORT: Field = f("sport", 24, 2);
        /// Remote port.
        pub const DPORT: Field = f("dport", 26, 2);
        /// Address family.
        pub const FAMILY: Field = f("family", 28, 2);
        /// IP protocol.
        pub const PROTOCOL: Field = f("protocol", 30, 2);
        /// Local IPv4 address.
        pub const SADDR: Field = f("saddr", 32, 4);
        /// Remote IPv4 address.
        pub const DADDR: Field = f("daddr", 36, 4);
        /// Local IPv6 address.
        pub const SADDR_V6: Field = f("saddr_v6", 40, 16);
        /// Remote IPv6 address.
        pub const DADDR_V6: Field = f("daddr_v6", 56, 16);
    }

    /// `tcp/tcp_send_reset`.
    pub mod send_reset {
        use super::{Field, f};
        /// Socket state.
        pub const STATE: Field = f("state", 24, 4);
        /// Why the reset was sent (`enum sk_rst_reason`).
        pub const REASON: Field = f("reason", 28, 4);
        /// Local sockaddr (28 bytes).
        pub const SADDR: Field = f("saddr", 32, 28);
        /// Remote sockaddr.
        pub const DADDR: Field = f("daddr", 60, 28);
    }

    /// `tcp/tcp_receive_reset`.
    pub mod receive_reset {
        use super::{Field, f};
        /// Local port (host order).
        pub const SPORT: Field = f("sport", 16, 2);
        /// Remote port.
        pub const DPORT: Field = f("dport", 18, 2);
        /// Address family.
        pub const FAMILY: Field = f("family", 20, 2);
        /// Local IPv4 address.
        pub const SADDR: Field = f("saddr", 22, 4);
        /// Remote IPv4 address.
        pub const DADDR: Field = f("daddr", 26, 4);
        /// Local IPv6 address.
        pub const SADDR_V6: Field = f("saddr_v6", 30, 16);
        /// Remote IPv6 address.
        pub const DADDR_V6: Field = f("daddr_v6", 46, 16);
    }

    /// Every tracepoint the kernel programs attach to, with the fields they read.
    pub const ALL: &[Tracepoint] = &[
        Tracepoint {
            category: "tcp",
            name: "tcp_retransmit_skb",
            fields: &[
                retransmit::SKBADDR,
                retransmit::STATE,
                retransmit::SPORT,
                retransmit::DPORT,
                retransmit::FAMILY,
                retransmit::SADDR,
                retransmit::DADDR,
                retransmit::SADDR_V6,
                retransmit::DADDR_V6,
                retransmit::ERR,
            ],
        },
        Tracepoint {
            category: "tcp",
            name: "tcp_probe",
            fields: &[
                probe::SADDR,
                probe::DADDR,
                probe::SPORT,
                probe::DPORT,
                probe::FAMILY,
                probe::SND_CWND,
                probe::SRTT,
            ],
        },
        Tracepoint {
            category: "sock",
            name: "inet_sock_set_state",
            fields: &[
                set_state::OLDSTATE,
                set_state::NEWSTATE,
                set_state::SPORT,
                set_state::DPORT,
                set_state::FAMILY,
                set_state::PROTOCOL,
                set_state::SADDR,
                set_state::DADDR,
                set_state::SADDR_V6,
                set_state::DADDR_V6,
            ],
        },
        Tracepoint {
            category: "tcp",
            name: "tcp_send_reset",
            fields: &[
                send_reset::STATE,
                send_reset::REASON,
                send_reset::SADDR,
                send_reset::DADDR,
            ],
        },
        Tracepoint {
            category: "tcp",
            name: "tcp_receive_reset",
            fields: &[
                receive_reset::SPORT,
                receive_reset::DPORT,
                receive_reset::FAMILY,
                receive_reset::SADDR,
                receive_reset::DADDR,
                receive_reset::SADDR_V6,
                receive_reset::DADDR_V6,
            ],
        },
    ];
}
