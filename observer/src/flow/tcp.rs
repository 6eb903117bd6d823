//! Per-connection TCP state, shared by every analyzer: who the client is, how far the handshake
//! got, per-direction sequence space, FIN/RST, and the per-segment sequence analysis with the
//! semantics Wireshark users know (retransmission, fast and spurious retransmission,
//! out-of-order, lost segment, duplicate ACK, zero window, window full, keep-alive, zero-window
//! probe, window update). Analyzers read it; only [`TcpConn::observe`] writes it, once per
//! segment, before the analyzers run.

use super::key::Dir;
use super::seq::SeqNum;
use crate::decode::{TcpSegment, tcp_flags};
use crate::time::{Nanos, Timestamp};

/// What the sequence analysis found about one segment (a bit set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegFlags(pub u16);

impl SegFlags {
    /// Data (or SYN/FIN) below the highest sequence sent, not otherwise explained.
    pub const RETRANSMISSION: u16 = 1;
    /// A retransmission answering two or more duplicate ACKs within 20 ms.
    pub const FAST_RETRANSMISSION: u16 = 1 << 1;
    /// A retransmission of data the receiver had already acknowledged.
    pub const SPURIOUS_RETRANSMISSION: u16 = 1 << 2;
    /// Below the highest sequence, but too soon after it to be a retransmission.
    pub const OUT_OF_ORDER: u16 = 1 << 3;
    /// Starts beyond the highest sequence: an earlier segment was not captured.
    pub const LOST_SEGMENT: u16 = 1 << 4;
    /// A pure ACK repeating the previous one (same seq, ack and window).
    pub const DUPLICATE_ACK: u16 = 1 << 5;
    /// Advertises a zero receive window.
    pub const ZERO_WINDOW: u16 = 1 << 6;
    /// Fills the peer's advertised window exactly.
    pub const WINDOW_FULL: u16 = 1 << 7;
    /// A keep-alive (0 or 1 byte one below the next sequence).
    pub const KEEP_ALIVE: u16 = 1 << 8;
    /// One byte sent into a zero window.
    pub const ZERO_WINDOW_PROBE: u16 = 1 << 9;
    /// Only the window changed.
    pub const WINDOW_UPDATE: u16 = 1 << 10;
    /// The ACK answering a keep-alive (not a duplicate ACK).
    pub const KEEP_ALIVE_ACK: u16 = 1 << 11;
    /// The ACK answering a zero-window probe (not a duplicate ACK).
    pub const ZERO_WINDOW_PROBE_ACK: u16 = 1 << 12;

    /// Any retransmission kind (plain, fast, spurious).
    pub const ANY_RETRANSMISSION: u16 =
        Self::RETRANSMISSION | Self::FAST_RETRANSMISSION | Self::SPURIOUS_RETRANSMISSION;

    /// True if any bit of `mask` is set.
    pub fn has(self, mask: u16) -> bool {
        self.0 & mask != 0
    }
}

/// Per-direction counters of the sequence analysis.
#[derive(Clone, Copy, Debug, Default)]
pub struct SeqCounters {
    /// Segments carrying payload.
    pub data_segments: u64,
    /// Plain retransmissions.
    pub retransmissions: u64,
    /// Fast retransmissions.
    pub fast_retransmissions: u64,
    /// Spurious retransmissions.
    pub spurious_retransmissions: u64,
    /// Payload bytes retransmitted (all kinds).
    pub retransmitted_bytes: u64,
    /// Out-of-order segments.
    pub out_of_order: u64,
    /// Segments after a gap (previous segment not captured).
    pub lost_segments: u64,
    /// Duplicate ACKs sent by this side.
    pub duplicate_acks: u64,
    /// Zero-window advertisements by this side.
    pub zero_windows: u64,
    /// Segments that filled the peer's window.
    pub window_full: u64,
    /// Keep-alives.
    pub keep_alives: u64,
    /// Retransmissions that came after a silence longer than the stall threshold (RTO-like).
    pub stalls: u64,
    /// Longest such silence.
    pub longest_stall: Nanos,
    /// Sum of such silences.
    pub stalled: Nanos,
    /// Stalls by what was resent after them, indexed by [`Resent`].
    pub stalls_before: [u32; 3],
    /// The longest stall by what was resent after it, indexed by [`Resent`], in milliseconds
    /// (kept small: every flow holds two of these). A kernel source's stalls (what it resent
    /// is not known) count as data.
    pub longest_stall_before_ms: [u32; 3],
}

/// What a retransmission after a stall resent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resent {
    /// Payload (with or without a SYN or FIN).
    Data = 0,
    /// A SYN or SYN/ACK without payload: the handshake waited.
    Syn = 1,
    /// A FIN without payload: everything the side sent before it had been acknowledged.
    Fin = 2,
}

impl SeqCounters {
    /// At least `stalls` stalls before resending `what`, the longest `longest` (truncated to
    /// milliseconds, so that it never grows past a threshold).
    pub fn raise_stalls_before(&mut self, what: Resent, stalls: u64, longest: Nanos) {
        let i = what as usize;
        let stalls = u32::try_from(stalls).unwrap_or(u32::MAX);
        self.stalls_before[i] = self.stalls_before[i].max(stalls);
        let ms = u32::try_from(longest / 1_000_000).unwrap_or(u32::MAX);
        self.longest_stall_before_ms[i] = self.longest_stall_before_ms[i].max(ms);
    }

    /// The longest stall before resending `what`.
    pub fn longest_stall_before(&self, what: Resent) -> Nanos {
        Nanos::from(self.longest_stall_before_ms[what as usize]) * 1_000_000
    }

    /// All retransmission kinds.
    pub fn all_retransmissions(&self) -> u64 {
        self.retransmissions + self.fast_retransmissions + self.spurious_retransmissions
    }
}

/// How far a connection has got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    /// No segment yet.
    #[default]
    New,
    /// A SYN was seen, nothing back yet.
    SynSent,
    /// The SYN/ACK was seen, the client's ACK not yet.
    SynAckSeen,
    /// Handshake completed, or the connection was picked up mid-stream.
    Established,
    /// At least one side sent FIN.
    Closing,
    /// Both sides sent FIN, or a RST was seen.
    Closed,
}

/// One direction of a TCP connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpHalf {
    /// A segment was seen from this side.
    pub seen: bool,
    /// The first sequence number of this side (the ISN when its SYN was seen).
    pub base_seq: SeqNum,
    /// The ISN this side's SYN/ACK had before it answered with another one (`base_seq`).
    pub earlier_isn: Option<SeqNum>,
    /// SYN segments sent by this side (retransmissions included; at most 65,535 counted).
    pub syns: u16,
    /// FIN segments without payload sent by this side (retransmissions included; a FIN
    /// riding on data is one of the data segments).
    pub bare_fins: u16,
    /// SYN segments carrying data (TCP Fast Open) sent by this side: each is one of the data
    /// segments as well as one of the SYNs (at most 65,535 counted).
    pub data_syns: u16,
    /// Highest sequence number sent + length (the next byte expected), once data, SYN or FIN
    /// was seen from this side.
    pub next_seq: Option<SeqNum>,
    /// When `next_seq` last advanced.
    pub next_seq_ts: Timestamp,
    /// Time of this side's latest segment.
    pub last_ts: Timestamp,
    /// Acknowledgment of this side's latest ACK, and when it was sent.
    pub last_ack: Option<(SeqNum, Timestamp)>,
    /// Consecutive duplicate ACKs sent by this side.
    pub dup_acks_in_row: u32,
    /// Window scale shift this side announced in its SYN.
    pub wscale: Option<u8>,
    /// MSS this side announced in its SYN.
    pub mss: Option<u16>,
    /// All options this side's SYN carried.
    pub syn_options: Option<crate::decode::TcpOptions>,
    /// Last advertised window, scaled when scaling is in effect.
    pub window_scaled: u32,
    /// Whether a window was seen from this side.
    pub window_seen: bool,
    /// Analysis flags of this side's latest segment.
    pub last_analysis: u16,
    /// The segment being timed for an RTT sample: its end sequence and when it was sent
    /// (one at a time, as classic TCP timing does; dropped on any retransmission — Karn).
    pub timing: Option<(SeqNum, Timestamp)>,
    /// Sequence analysis counters.
    pub counters: SeqCounters,
    /// Highest acknowledgment this side sent, if any.
    pub ack: Option<SeqNum>,
    /// The first acknowledgment this side sent: with `ack`, whether the other side's data
    /// moved on while the capture watched, even if none of it was captured.
    pub first_ack: Option<SeqNum>,
    /// This side sent FIN.
    pub fin: bool,
    /// This side sent RST.
    pub rst: bool,
    /// Last advertised window (unscaled).
    pub window: u16,
    /// The TTL (or hop limit) this side's latest packet other than a RST arrived with: what
    /// the hops between it and the capture left of its own (0: none yet, or a source that
    /// gives none; a packet arriving with no hop left is never forwarded to be seen). Fed by
    /// [`TcpConn::note_ttl`].
    pub ttl: u8,
    /// The TTL of the connection's first RST, sent in this side's name once established,
    /// when it differs from `ttl` (0 otherwise): see [`TcpConn::path_reset_ttls`].
    pub path_rst_ttl: u8,
    /// Data segments this side sent after which the bytes in flight left less than a
    /// segment of the receiver's advertised window open: it had to wait for the receiver (a
    /// window that is no multiple of the segment size is never filled to the byte). Counted
    /// by the bandwidth analyzer.
    pub window_bound: u32,
    /// Payload bytes on the wire (retransmissions included).
    pub payload_bytes: u64,
    /// The latest four segments' digests ([`TcpSegment::digest`]) and times (in units of
    /// 1,024 ns, wrapping), to tell a copy of the same frame ([`TcpConn::is_copy`]).
    pub recent: [(u32, u32); 4],
}

/// What a segment did to the connection (a bit set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpEvents(pub u16);

impl TcpEvents {
    /// The first SYN of the connection.
    pub const SYN: u16 = 1;
    /// A SYN repeated by the same side.
    pub const SYN_RETRY: u16 = 1 << 1;
    /// The SYN/ACK.
    pub const SYN_ACK: u16 = 1 << 2;
    /// The client's ACK that completed the handshake.
    pub const HANDSHAKE_DONE: u16 = 1 << 3;
    /// A FIN.
    pub const FIN: u16 = 1 << 4;
    /// A RST.
    pub const RST: u16 = 1 << 5;
    /// The connection was first seen without its SYN.
    pub const MIDSTREAM: u16 = 1 << 6;
    /// The client's first ACK after its SYN: the initial RTT is known from here on.
    pub const INITIAL_RTT: u16 = 1 << 7;

    /// True if any bit of `mask` is set.
    pub fn has(self, mask: u16) -> bool {
        self.0 & mask != 0
    }
}

/// The result of observing one segment.
#[derive(Clone, Copy, Debug)]
pub struct TcpUpdate {
    /// The phase before this segment.
    pub before: Phase,
    /// What changed.
    pub events: TcpEvents,
    /// What the sequence analysis found.
    pub analysis: SegFlags,
    /// For a retransmission after a stall: how long the sender had been silent.
    pub stall: Option<Nanos>,
    /// An RTT sample: this segment acknowledged the timed data of the other side.
    pub rtt: Option<Nanos>,
}

/// Minimum silence before a retransmission counts as an RTO-style stall (Linux's minimum RTO).
pub const MIN_STALL: Nanos = 200_000_000;

/// How far apart two captures of one frame may be ([`TcpConn::is_copy`]): the copies of
/// `tcpdump -i any` or a mirror port are microseconds apart. A retransmission of an identical
/// segment that soon is a fast one, after the other side's duplicate ACKs (which `is_copy`
/// looks for); a timer's comes later (a tail-loss probe after 2 round trips, 200 ms for
/// Linux's minimum RTO).
pub const COPY_WINDOW: Nanos = 1_000_000;

/// TCP connection state.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConn {
    /// Per direction, indexed by [`Dir::idx`].
    pub half: [TcpHalf; 2],
    /// Direction of client → server, when known.
    pub client_dir: Option<Dir>,
    /// Current phase.
    pub phase: Phase,
    /// The connection was picked up without its SYN.
    pub midstream: bool,
    /// Time of the first SYN.
    pub syn_ts: Option<Timestamp>,
    /// Time of the most recent SYN (retransmissions included).
    pub last_syn_ts: Option<Timestamp>,
    /// Time of the first SYN/ACK.
    pub synack_ts: Option<Timestamp>,
    /// Time the handshake completed.
    pub established_ts: Option<Timestamp>,
    /// The client sent a segment with ACK, neither SYN nor RST: it had the server's SYN/ACK,
    /// whether or not the capture did. (A client's RST/ACK after its SYNs went unanswered, as
    /// some stacks and middleboxes send when they give up, acknowledges nothing.)
    pub client_acked: bool,
    /// Time of the first non-SYN ACK after the SYN (the end of Wireshark's initial RTT,
    /// whether or not the SYN/ACK was captured).
    pub first_ack_ts: Option<Timestamp>,
    /// The initial RTT, fixed when `first_ack_ts` was set.
    pub irtt: Option<Nanos>,
    /// Side that sent the first RST.
    pub reset_by: Option<Dir>,
    /// Phase in which the first RST arrived.
    pub reset_in: Option<Phase>,
    /// Window scaling is in effect (both SYNs carried the option).
    pub scaling: bool,
    /// Smoothed RTT as the host's own TCP stack computed it (a kernel probe's `tcp_probe`),
    /// with the direction its socket sends in; never inferred from packets.
    pub host_srtt: Option<(Dir, Nanos)>,
    /// Fed by a sampling source (the kernel probe sends SYN/FIN/RST, the first payload
    /// segments and window transitions only): sequence analysis of the gaps would invent
    /// retransmissions and loss, so it is left to the source's own counts (merged into the
    /// counters); zero-window transitions are still analysed.
    pub sampled: bool,
}

impl TcpConn {
    /// Records the TTL `dir`'s segment arrived with, after [`TcpConn::observe`] made `update`
    /// of it: the first RST of an established connection is judged against that direction's
    /// packets before it ([`TcpConn::path_reset_ttls`]); any other segment's TTL is kept
    /// ([`TcpHalf::ttl`]). A TTL of 0 (a source that gives none) judges nothing.
    pub fn note_ttl(&mut self, dir: Dir, ttl: u8, update: &TcpUpdate) {
        let h = &mut self.half[dir.idx()];
        if !update.events.has(TcpEvents::RST) {
            h.ttl = ttl;
        } else if update.before == Phase::Established
            && self.reset_by == Some(dir)
            && h.ttl != 0
            && h.ttl != ttl
        {
            h.path_rst_ttl = ttl;
        }
    }

    /// The first RST of the established connection arrived with another TTL than its
    /// direction's packets before it: (theirs, the reset's). Something on the path (a
    /// firewall, a load balancer, an injector) sent it in that endpoint's name, so `reset_by`
    /// names the side it claimed to come from, not the one that reset.
    pub fn path_reset_ttls(&self) -> Option<(u8, u8)> {
        let h = &self.half[self.reset_by?.idx()];
        (h.path_rst_ttl != 0).then_some((h.ttl, h.path_rst_ttl))
    }

    /// Whether the connection's first RST came from something on the path, not from the
    /// endpoint it claims (see [`TcpConn::path_reset_ttls`]).
    pub fn reset_by_path(&self) -> bool {
        self.path_reset_ttls().is_some()
    }

    /// Whether a SYN from `dir` with sequence `seq` starts a new connection that reuses this
    /// one's ports (it does when this direction already started with a different ISN).
    pub fn is_port_reuse(&self, dir: Dir, seg: &TcpSegment<'_>) -> bool {
        if !seg.has(tcp_flags::SYN) || seg.has(tcp_flags::ACK) {
            return false;
        }
        let h = &self.half[dir.idx()];
        h.seen && SeqNum(seg.seq) != h.base_seq
    }

    /// Whether a segment travelling in `dir` at `ts` with `digest` ([`TcpSegment::digest`]) is
    /// a copy of one of the latest four of its direction, captured within [`COPY_WINDOW`] of
    /// it: the same frame seen twice (`tcpdump -i any` on a bridge or VLAN, a mirror port
    /// copying both ways, a capture merged with itself). Without an IPv4 identification
    /// (IPv6, or 0) there must also be nothing from the other side in between: a
    /// retransmission sent that soon is a fast one, which answers the other side's duplicate
    /// ACKs ([`TcpConn::observe`] forgets such frames when the other side sends); one sent
    /// again carries a new identification. Otherwise it is noted as the latest.
    pub fn is_copy(&mut self, dir: Dir, digest: u32, ts: Timestamp) -> bool {
        let h = &self.half[dir.idx()];
        // The latest frame of this direction is older than the window: so is every one noted
        // (and a wrapped time cannot match).
        let recent = h.seen && ts.since(h.last_ts).abs() <= COPY_WINDOW;
        self.copy_or_note(dir, digest, ts, recent)
    }

    /// Whether `digest` at `ts` matches one of the latest four frames of `dir` within
    /// [`COPY_WINDOW`] (only looked for when `look`); if not, it is noted as the latest.
    fn copy_or_note(&mut self, dir: Dir, digest: u32, ts: Timestamp, look: bool) -> bool {
        // In units of 1,024 ns, wrapping every 73 minutes; never 0, which marks a free slot.
        let now = ((ts.0 >> 10) as u32) | 1;
        let window = (COPY_WINDOW >> 10) as u32;
        let h = &mut self.half[dir.idx()];
        if look
            && h.recent.iter().any(|&(d, t)| {
                d == digest && t != 0 && (now.wrapping_sub(t) as i32).unsigned_abs() <= window
            })
        {
            return true;
        }
        h.recent = [(digest, now), h.recent[0], h.recent[1], h.recent[2]];
        false
    }

    /// A frame of `dir` was sent: the other side's next frame is no copy of one of its frames
    /// before, unless their identifications say so.
    fn forget_unidentified(&mut self, dir: Dir) {
        for e in &mut self.half[dir.rev().idx()].recent {
            if e.0 & crate::decode::IDENTIFIED == 0 {
                *e = (0, 0);
            }
        }
    }

    /// [`TcpConn::is_copy`] for a UDP datagram with `digest` ([`UdpDatagram::digest`]); a UDP
    /// flow's TCP state is otherwise unused, and its rings of recent frames serve here. A copy
    /// of one of the latest four datagrams of its direction within [`COPY_WINDOW`]: with an
    /// IPv4 identification nothing else is needed (a datagram sent again carries a new one);
    /// without, nothing may have come from the other side in between (an application
    /// answered and sending again that fast is not a capture artefact). No timer re-sends a
    /// query within 1 ms: DNS clients wait 0.4–5 s. (The times noted wrap every 73 minutes:
    /// an entry that old still in the ring matches only within the same 1 ms of a later lap.)
    ///
    /// [`UdpDatagram::digest`]: crate::decode::UdpDatagram::digest
    pub fn is_datagram_copy(&mut self, dir: Dir, digest: u32, ts: Timestamp) -> bool {
        if self.copy_or_note(dir, digest, ts, true) {
            return true;
        }
        self.forget_unidentified(dir);
        false
    }

    /// Handshake round trip as seen from the capture point: the most recent SYN to the
    /// client's ACK (Wireshark's `tcp.analysis.initial_rtt`), less the server's wait before
    /// resending its SYN/ACK when it did; also the out-of-order and stall thresholds.
    pub fn initial_rtt(&self) -> Option<Nanos> {
        self.irtt
    }

    /// Updates the state with one segment travelling in `dir` at `ts`.
    pub fn observe(&mut self, dir: Dir, seg: &TcpSegment<'_>, ts: Timestamp) -> TcpUpdate {
        let before = self.phase;
        let mut ev = 0u16;
        let syn = seg.has(tcp_flags::SYN);
        let ack = seg.has(tcp_flags::ACK);
        let seq = SeqNum(seg.seq);
        let i = dir.idx();
        self.forget_unidentified(dir);
        let mut resent_earlier = false;
        let mut foreign = false;
        if syn {
            let o = seg.parse_options();
            let h = &mut self.half[i];
            if ack && h.syns > 0 && h.payload_bytes == 0 && h.base_seq != seq {
                if h.earlier_isn == Some(seq) {
                    // The SYN/ACK of the attempt before, sent again (two servers behind one
                    // address answering in turn).
                    resent_earlier = true;
                } else if !matches!(self.phase, Phase::New | Phase::SynSent | Phase::SynAckSeen) {
                    // Once the connection is open, a SYN/ACK with an ISN never seen (another
                    // server answering a copy of the SYN) is not part of it: left out of the
                    // sequence analysis.
                    foreign = true;
                } else {
                    // Another initial sequence number before any data: the server started
                    // its handshake afresh (it lost the first attempt's state), it did not
                    // retransmit. Its sequence space starts here; otherwise all it sends below
                    // the first ISN would count as retransmitted. (A client's SYN with another
                    // ISN is a new connection: `is_port_reuse`.)
                    h.earlier_isn = Some(h.base_seq);
                    h.base_seq = seq;
                    h.next_seq = None;
                    h.timing = None;
                }
            }
            if !foreign {
                h.wscale = o.wscale;
                h.mss = o.mss;
                h.syn_options = Some(o);
                if ack {
                    self.scaling =
                        self.half[dir.rev().idx()].wscale.is_some() && o.wscale.is_some();
                }
            }
        }
        // A segment of the client's after its SYN carries the sequence number that follows
        // what it sent (a stray ACK of an earlier connection on the same ports does not).
        let follows_syn = Some(dir) != self.client_dir
            || self.syn_ts.is_none()
            || self.half[i].next_seq == Some(seq);
        let (analysis, stall, rtt) = if foreign {
            (SegFlags(0), None, None)
        } else if resent_earlier {
            // Outside the current sequence space: counted, not analyzed against it.
            if self.sampled {
                (SegFlags(0), None, None)
            } else {
                self.half[i].counters.retransmissions += 1;
                (SegFlags(SegFlags::RETRANSMISSION), None, None)
            }
        } else {
            self.analyze(dir, seg, ts)
        };
        {
            let h = &mut self.half[i];
            if !h.seen {
                h.seen = true;
                h.base_seq = seq;
            }
            if syn {
                h.syns = h.syns.saturating_add(1);
                // (Counted among the data segments only when analyzed.)
                if seg.seg_len > 0 && !foreign && !resent_earlier {
                    h.data_syns = h.data_syns.saturating_add(1);
                }
            }
            if seg.has(tcp_flags::FIN) && seg.seg_len == 0 {
                h.bare_fins = h.bare_fins.saturating_add(1);
            }
            if ack {
                let a = SeqNum(seg.ack);
                h.ack = Some(h.ack.map_or(a, |old| old.max(a)));
                h.first_ack.get_or_insert(a);
            }
            h.window = seg.window;
            h.payload_bytes += u64::from(seg.seg_len);
            h.last_ts = ts;
        }
        if syn && !ack {
            self.last_syn_ts = Some(ts);
            if self.half[i].syns > 1 {
                ev |= TcpEvents::SYN_RETRY;
            } else {
                ev |= TcpEvents::SYN;
            }
            if self.phase == Phase::New {
                self.phase = Phase::SynSent;
                self.client_dir = Some(dir);
                self.syn_ts = Some(ts);
            }
        } else if syn && ack && !foreign {
            ev |= TcpEvents::SYN_ACK;
            if self.client_dir.is_none() {
                self.client_dir = Some(dir.rev());
            }
            if matches!(self.phase, Phase::New | Phase::SynSent) {
                self.phase = Phase::SynAckSeen;
            } else if self.phase == Phase::Established
                && self.synack_ts.is_none()
                && self.established_ts.is_none()
                && !self.midstream
            {
                // The client's ACK was stamped before the SYN/ACK (two capture ports, queues
                // merged): the handshake completes now.
                ev |= TcpEvents::HANDSHAKE_DONE;
                self.established_ts = Some(ts);
            }
            if self.synack_ts.is_none() {
                self.synack_ts = Some(ts);
            }
        } else if self.phase == Phase::New {
            ev |= TcpEvents::MIDSTREAM;
            self.midstream = true;
            self.phase = Phase::Established;
            if self.client_dir.is_none() {
                self.client_dir = Some(guess_client(dir, seg));
            }
        } else if self.phase == Phase::SynAckSeen
            && ack
            && Some(dir) == self.client_dir
            && !seg.has(tcp_flags::RST)
        {
            ev |= TcpEvents::HANDSHAKE_DONE;
            self.phase = Phase::Established;
            self.established_ts = Some(ts);
        } else if self.phase == Phase::SynSent
            && ack
            && Some(dir) == self.client_dir
            && !seg.has(tcp_flags::RST)
            && follows_syn
        {
            // The client acknowledges a SYN/ACK the capture missed: the connection is open
            // (a reset from here on aborts it, it does not refuse it). No handshake is timed.
            self.phase = Phase::Established;
        }
        if ack && !syn && Some(dir) == self.client_dir && !seg.has(tcp_flags::RST) && follows_syn {
            self.client_acked = true;
        }
        // The first non-SYN segment with ACK after the SYN, from either side: usually the
        // client's ACK, or the server's RST/ACK of a refused connection.
        // A zero interval (same timestamp) is no measurement: keep looking, as Wireshark does.
        if self.first_ack_ts.is_none() && ack && !syn {
            let mut since_syn = self.last_syn_ts.map(|s| ts.since(s));
            // The server sent its SYN/ACK again (the client's ACK was lost): the wait for its
            // timer is no round trip. The path's is to its first SYN/ACK, and from its latest
            // to this ACK.
            let server = &self.half[dir.rev().idx()];
            if let (Some(s), Some(first)) = (self.last_syn_ts, self.synack_ts)
                && Some(dir) == self.client_dir
                && server.syns > 1
                && first >= s
                && server.last_ts > first
            {
                since_syn = Some(first.since(s) + ts.since(server.last_ts));
            }
            if let Some(rtt) = since_syn.filter(|r| *r > 0) {
                self.first_ack_ts = Some(ts);
                self.irtt = Some(rtt);
                ev |= TcpEvents::INITIAL_RTT;
            }
        }
        if seg.has(tcp_flags::FIN) && !self.half[i].fin {
            self.half[i].fin = true;
            ev |= TcpEvents::FIN;
            if self.phase != Phase::Closed {
                self.phase = if self.half[dir.rev().idx()].fin {
                    Phase::Closed
                } else {
                    Phase::Closing
                };
            }
        }
        if seg.has(tcp_flags::RST) {
            ev |= TcpEvents::RST;
            if self.reset_by.is_none() {
                self.reset_by = Some(dir);
                self.reset_in = Some(self.phase);
            }
            self.half[i].rst = true;
            self.phase = Phase::Closed;
        }
        TcpUpdate {
            before,
            events: TcpEvents(ev),
            analysis,
            stall,
            rtt,
        }
    }

    fn scaled_window(&self, dir: Dir, seg: &TcpSegment<'_>) -> u32 {
        let raw = u32::from(seg.window);
        if seg.has(tcp_flags::SYN) || !self.scaling {
            return raw;
        }
        raw << self.half[dir.idx()].wscale.unwrap_or(0)
    }

    /// Wireshark-compatible sequence analysis of one segment; updates next_seq, last_ack,
    /// window and the counters.
    fn analyze(
        &mut self,
        dir: Dir,
        seg: &TcpSegment<'_>,
        ts: Timestamp,
    ) -> (SegFlags, Option<Nanos>, Option<Nanos>) {
        use SegFlags as F;
        let (i, r) = (dir.idx(), dir.rev().idx());
        let seglen = seg.seg_len;
        let seq = SeqNum(seg.seq);
        let ackn = SeqNum(seg.ack);
        let syn_fin = seg.flags & (tcp_flags::SYN | tcp_flags::FIN) != 0;
        let ctl = seg.flags & (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) != 0;
        let window = self.scaled_window(dir, seg);
        let ooo_threshold = self.initial_rtt().filter(|r| *r > 0).unwrap_or(3_000_000);
        let stall_threshold = self
            .initial_rtt()
            .map_or(MIN_STALL, |r| (3 * r).max(MIN_STALL));
        let sampled = self.sampled;
        let (fwd, rev) = if i == 0 {
            let (a, b) = self.half.split_at_mut(1);
            (&mut a[0], &mut b[0])
        } else {
            let (a, b) = self.half.split_at_mut(1);
            (&mut b[0], &mut a[0])
        };
        let _ = r;
        let mut a = 0u16;
        let same_ack = fwd.last_ack.map(|(l, _)| l) == Some(ackn);
        'fwd: {
            let Some(next) = fwd.next_seq else {
                if window == 0 && !ctl {
                    a |= F::ZERO_WINDOW;
                }
                break 'fwd;
            };
            if seglen == 1 && seq == next && rev.window_seen && rev.window_scaled == 0 {
                a |= F::ZERO_WINDOW_PROBE;
                break 'fwd;
            }
            if window == 0 && !ctl {
                a |= F::ZERO_WINDOW;
            }
            if seq > next && seg.flags & tcp_flags::RST == 0 {
                a |= F::LOST_SEGMENT;
            }
            if seglen <= 1 && seq == next.plus(u32::MAX) && !ctl {
                a |= F::KEEP_ALIVE;
            }
            if seglen == 0 && window != fwd.window_scaled && seq == next && same_ack && !ctl {
                a |= F::WINDOW_UPDATE;
            }
            if seglen > 0 && !ctl && rev.window_seen {
                if let Some((rack, _)) = rev.last_ack {
                    if seq.plus(seglen) == rack.plus(rev.window_scaled) {
                        a |= F::WINDOW_FULL;
                    }
                }
            }
            let repeats_ack = seglen == 0 && window == fwd.window_scaled && seq == next && !ctl;
            if repeats_ack && window > 0 && same_ack && rev.last_analysis & F::KEEP_ALIVE != 0 {
                a |= F::KEEP_ALIVE_ACK;
                break 'fwd;
            }
            if repeats_ack
                && window == 0
                && fwd
                    .last_ack
                    .is_some_and(|(l, _)| l == ackn || l.plus(1) == ackn)
                && rev.last_analysis & F::ZERO_WINDOW_PROBE != 0
            {
                a |= F::ZERO_WINDOW_PROBE_ACK;
                break 'fwd;
            }
            if repeats_ack && window > 0 && same_ack {
                a |= F::DUPLICATE_ACK;
            }
        }
        if a & F::DUPLICATE_ACK != 0 {
            fwd.dup_acks_in_row += 1;
        } else {
            fwd.dup_acks_in_row = 0;
        }
        if (seglen > 0 || syn_fin) && a & F::KEEP_ALIVE == 0 {
            let mut not_advanced = fwd.next_seq.is_some_and(|n| seq < n);
            if seglen > 1 && fwd.next_seq.is_some_and(|n| n.plus(u32::MAX) == seq) {
                not_advanced = false;
            }
            let rev_ack = rev.last_ack;
            if not_advanced
                && rev.dup_acks_in_row >= 2
                && rev_ack.is_some_and(|(l, t)| l == seq && (0..20_000_000).contains(&ts.since(t)))
            {
                a |= F::FAST_RETRANSMISSION;
            } else if seglen > 0 && rev_ack.is_some_and(|(l, _)| seq.plus(seglen) <= l) {
                a |= F::SPURIOUS_RETRANSMISSION;
            } else if not_advanced
                // Time running backwards counts as "long ago", as in Wireshark's unsigned math.
                && (0..ooo_threshold).contains(&ts.since(fwd.next_seq_ts))
                && fwd.next_seq != Some(seq.plus(seglen + u32::from(syn_fin)))
            {
                a |= F::OUT_OF_ORDER;
            } else if not_advanced {
                a |= F::RETRANSMISSION;
            }
        }
        if sampled {
            a &= F::ZERO_WINDOW | F::ZERO_WINDOW_PROBE;
        }
        let mut stall = None;
        if a & F::ANY_RETRANSMISSION != 0 && fwd.seen {
            let silence = ts.since(fwd.last_ts);
            if silence >= stall_threshold {
                stall = Some(silence);
            }
        }
        // Counters.
        let c = &mut fwd.counters;
        if seglen > 0 {
            c.data_segments += 1;
        }
        let flags = SegFlags(a);
        if flags.has(F::RETRANSMISSION) {
            c.retransmissions += 1;
        }
        if flags.has(F::FAST_RETRANSMISSION) {
            c.fast_retransmissions += 1;
        }
        if flags.has(F::SPURIOUS_RETRANSMISSION) {
            c.spurious_retransmissions += 1;
        }
        if flags.has(F::ANY_RETRANSMISSION) {
            c.retransmitted_bytes += u64::from(seglen);
        }
        if flags.has(F::OUT_OF_ORDER) {
            c.out_of_order += 1;
        }
        if flags.has(F::LOST_SEGMENT) {
            c.lost_segments += 1;
        }
        if flags.has(F::DUPLICATE_ACK) {
            c.duplicate_acks += 1;
        }
        if flags.has(F::ZERO_WINDOW) {
            c.zero_windows += 1;
        }
        if flags.has(F::WINDOW_FULL) {
            c.window_full += 1;
        }
        if flags.has(F::KEEP_ALIVE) {
            c.keep_alives += 1;
        }
        if let Some(s) = stall {
            c.stalls += 1;
            c.stalled += s;
            c.longest_stall = c.longest_stall.max(s);
            let what = if seglen > 0 {
                Resent::Data
            } else if seg.has(tcp_flags::SYN) {
                Resent::Syn
            } else {
                Resent::Fin
            };
            let one_more = u64::from(c.stalls_before[what as usize]) + 1;
            c.raise_stalls_before(what, one_more, s);
        }
        // Advance the sequence space. Bare ACKs count too: the first one of a side starts it
        // (so a repeated bare ACK is a duplicate) and one beyond it moves it (a gap). A RST
        // does not, whatever it carries: its sequence number may be anything, and neither
        // the FIN nor the diagnostic text (RFC 9293, 3.5.3) a RST may carry is data the
        // other side will ever acknowledge (it would count as in flight when the connection
        // was reset).
        if seg.flags & tcp_flags::RST == 0 {
            let end = seq.plus(
                seglen + u32::from(seg.has(tcp_flags::SYN)) + u32::from(seg.has(tcp_flags::FIN)),
            );
            let advances = fwd.next_seq.is_none_or(|n| end > n);
            if advances && a & F::ZERO_WINDOW_PROBE == 0 {
                fwd.next_seq = Some(end);
                fwd.next_seq_ts = ts;
            }
        }
        // RTT timing (Karn's rule: nothing retransmitted is timed).
        if a & (F::ANY_RETRANSMISSION | F::OUT_OF_ORDER) != 0 {
            fwd.timing = None;
        } else if seglen > 0 && fwd.timing.is_none() && a & F::ZERO_WINDOW_PROBE == 0 {
            fwd.timing = Some((seq.plus(seglen), ts));
        }
        let mut rtt = None;
        if seg.has(tcp_flags::ACK) {
            if let Some((end, sent)) = rev.timing {
                if ackn >= end {
                    // An ACK beyond everything the capture saw the other side send covers
                    // segments it missed (a capture with gaps, or one cut and spliced): it
                    // says nothing about when the timed segment arrived.
                    let d = ts.since(sent);
                    if d >= 0 && rev.next_seq.is_none_or(|n| ackn <= n) {
                        rtt = Some(d);
                    }
                    rev.timing = None;
                }
            }
        }
        fwd.window_scaled = window;
        fwd.window_seen = true;
        fwd.last_analysis = a;
        if seg.has(tcp_flags::ACK) {
            fwd.last_ack = Some((ackn, ts));
        }
        (flags, stall, rtt)
    }
}

/// Without a SYN, the side sending from the higher (ephemeral-looking) port is the client.
fn guess_client(dir: Dir, seg: &TcpSegment<'_>) -> Dir {
    if seg.sport < seg.dport && seg.sport < 1024 {
        dir.rev()
    } else {
        dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u8, seq: u32, ack: u32, len: u32) -> TcpSegment<'static> {
        TcpSegment {
            sport: 40000,
            dport: 80,
            seq,
            ack,
            flags,
            window: 65535,
            options: &[],
            payload: &[],
            seg_len: len,
            checksum: 0,
        }
    }

    const S: u8 = tcp_flags::SYN;
    const A: u8 = tcp_flags::ACK;
    const R: u8 = tcp_flags::RST;
    const F: u8 = tcp_flags::FIN;
    const C: Dir = Dir::LoToHi;
    const SV: Dir = Dir::HiToLo;

    fn t(ms: i64) -> Timestamp {
        Timestamp(ms * 1_000_000)
    }

    #[test]
    fn new_syn_synack_ack_establishes() {
        let mut c = TcpConn::default();
        let u = c.observe(C, &seg(S, 100, 0, 0), t(0));
        assert!(u.events.has(TcpEvents::SYN));
        assert_eq!(c.phase, Phase::SynSent);
        assert_eq!(c.client_dir, Some(C));
        c.observe(SV, &seg(S | A, 500, 101, 0), t(10));
        assert_eq!(c.phase, Phase::SynAckSeen);
        let u = c.observe(C, &seg(A, 101, 501, 0), t(11));
        assert!(u.events.has(TcpEvents::HANDSHAKE_DONE));
        assert_eq!(c.phase, Phase::Established);
        assert_eq!(c.established_ts, Some(t(11)));
        assert_eq!(c.half[C.idx()].next_seq, Some(SeqNum(101)));
    }

    #[test]
    fn a_client_ack_after_a_missed_synack_opens_the_connection() {
        let mut c = TcpConn::default();
        c.observe(C, &seg(S, 100, 0, 0), t(0));
        let u = c.observe(C, &seg(A, 101, 501, 10), t(12));
        assert!(!u.events.has(TcpEvents::HANDSHAKE_DONE));
        assert_eq!(c.phase, Phase::Established);
        assert_eq!(c.established_ts, None);
        c.observe(SV, &seg(R, 501, 0, 0), t(20));
        assert_eq!(c.reset_in, Some(Phase::Established));
        // A client's RST/ACK acknowledges nothing: the attempt stays in SynSent.
        let mut c = TcpConn::default();
        c.observe(C, &seg(S, 100, 0, 0), t(0));
        c.observe(C, &seg(R | A, 101, 0, 0), t(5));
        assert_eq!(c.reset_in, Some(Phase::SynSent));
    }

    #[test]
    fn a_syn_ack_with_another_isn_starts_the_servers_sequence_afresh() {
        // nDPI's tls_multiple_synack_different_seq: the server's third SYN/ACK has a lower ISN
        // than the one before; all it sent after it counted as retransmitted, with stalls.
        let mut c = TcpConn::default();
        c.observe(C, &seg(S, 100, 0, 0), t(0));
        c.observe(SV, &seg(S | A, 9_000, 101, 0), t(1));
        let u = c.observe(SV, &seg(S | A, 9_000, 101, 0), t(2_000));
        assert!(u.analysis.has(SegFlags::RETRANSMISSION));
        let u = c.observe(SV, &seg(S | A, 5_000, 101, 0), t(14_000));
        assert!(!u.analysis.has(SegFlags::ANY_RETRANSMISSION));
        c.observe(C, &seg(A, 101, 5_001, 500), t(14_100));
        let u = c.observe(SV, &seg(A, 5_001, 601, 1000), t(14_200));
        assert!(!u.analysis.has(SegFlags::ANY_RETRANSMISSION));
        assert_eq!(u.stall, None);
        assert_eq!(c.half[SV.idx()].counters.retransmissions, 1);
        assert_eq!(c.half[SV.idx()].next_seq, Some(SeqNum(6_001)));
        // suricata-verify's tcp-fastopen-10-syn-data-ignore: two ISNs answered in turn; each
        // one seen before is a retransmission, and the sequence space stays the latest one's.
        let mut c = TcpConn::default();
        c.observe(C, &seg(S, 100, 0, 0), t(0));
        c.observe(SV, &seg(S | A, 9_000, 101, 0), t(1));
        let u = c.observe(SV, &seg(S | A, 5_000, 101, 0), t(500));
        assert!(!u.analysis.has(SegFlags::ANY_RETRANSMISSION));
        let u = c.observe(SV, &seg(S | A, 9_000, 101, 0), t(1_000));
        assert!(u.analysis.has(SegFlags::RETRANSMISSION));
        let u = c.observe(SV, &seg(S | A, 5_000, 101, 0), t(1_500));
        assert!(u.analysis.has(SegFlags::RETRANSMISSION));
        assert_eq!(c.half[SV.idx()].counters.retransmissions, 2);
        assert_eq!(c.half[SV.idx()].next_seq, Some(SeqNum(5_001)));
    }

    #[test]
    fn a_client_ack_stamped_before_the_syn_ack_still_completes_the_handshake() {
        let mut c = TcpConn::default();
        c.observe(C, &seg(S, 100, 0, 0), t(0));
        c.observe(C, &seg(A, 101, 501, 0), t(10));
        let u = c.observe(SV, &seg(S | A, 500, 101, 0), t(10));
        assert!(u.events.has(TcpEvents::HANDSHAKE_DONE));
        assert_eq!(c.established_ts, Some(t(10)));
        // A stray ACK of an earlier connection (its sequence far from this SYN's) opens
        // nothing: the server's RST then refuses the attempt.
        let mut c = TcpConn::default();
        c.observe(C, &seg(S, 1000, 0, 0), t(0));
        c.observe(C, &seg(A, 55_555, 77_777, 0), t(1));
        assert_eq!(c.phase, Phase::SynSent);
        assert!(!c.client_acked);
        c.observe(SV, &seg(R | A, 0, 1001, 0), t(2));
        assert_eq!(c.reset_in, Some(Phase::SynSent));
    }

    #[test]
    fn a_syn_ack_with_a_new_isn_after_the_handshake_is_left_out() {
        // A second server answering a copy of the SYN once the connection is open.
        let mut c = established();
        let u = c.observe(SV, &seg(S | A, 90_000, 101, 0), t(20));
        assert_eq!(u.analysis.0, 0);
        assert!(!u.events.has(TcpEvents::SYN_ACK));
        let u = c.observe(SV, &seg(A, 501, 101, 100), t(30));
        assert_eq!(u.analysis.0, 0, "{:?}", u.analysis);
        assert_eq!(c.half[SV.idx()].next_seq, Some(SeqNum(601)));
    }

    #[test]
    fn a_copy_is_within_a_millisecond_with_nothing_from_the_other_side_between() {
        // As the pipeline does: a frame that is no copy is then observed.
        let mut c = established();
        assert!(!c.is_copy(SV, 7, t(20)));
        c.observe(SV, &seg(A, 501, 101, 100), t(20));
        assert!(c.is_copy(SV, 7, Timestamp(t(20).0 + 500_000)));
        // The other side spoke (a duplicate ACK): the same bytes again are a fast
        // retransmission.
        c.observe(C, &seg(A, 101, 501, 0), Timestamp(t(20).0 + 600_000));
        assert!(!c.is_copy(SV, 7, Timestamp(t(20).0 + 700_000)));
        // With an IPv4 identification the copy is told whatever came between.
        let id7 = 7 | crate::decode::IDENTIFIED;
        let mut c = established();
        assert!(!c.is_copy(SV, id7, t(20)));
        c.observe(SV, &seg(A, 501, 101, 100), t(20));
        c.observe(C, &seg(A, 101, 601, 0), Timestamp(t(20).0 + 100_000));
        assert!(c.is_copy(SV, id7, Timestamp(t(20).0 + 200_000)));
        // The same digest 2^42 ns later (where the 1,024 ns units wrap) is no copy either.
        let mut c = established();
        assert!(!c.is_copy(SV, 9, t(20)));
        c.observe(SV, &seg(A, 501, 101, 0), t(20));
        let later = Timestamp(t(20).0 + (1 << 42));
        assert!(!c.is_copy(SV, 9, later));
    }

    #[test]
    fn synsent_rst_from_server_is_closed_in_synsent() {
        let mut c = TcpConn::default();
        c.observe(C, &seg(S, 1, 0, 0), t(0));
        let u = c.observe(SV, &seg(R | A, 0, 2, 0), t(1));
        assert!(u.events.has(TcpEvents::RST));
        assert_eq!(u.before, Phase::SynSent);
        assert_eq!(c.reset_by, Some(SV));
        assert_eq!(c.reset_in, Some(Phase::SynSent));
        assert_eq!(c.phase, Phase::Closed);
    }

    /// Feeds one segment with its TTL, as the pipeline does.
    fn with_ttl(c: &mut TcpConn, dir: Dir, s: &TcpSegment<'_>, ms: i64, ttl: u8) -> TcpUpdate {
        let u = c.observe(dir, s, t(ms));
        c.note_ttl(dir, ttl, &u);
        u
    }

    #[test]
    fn a_reset_is_judged_against_its_directions_ttl() {
        // The server's packets arrive with TTL 58; a RST in its name with 250 came from the
        // path, one with 58 from the server; a RST before the handshake completed is not
        // judged (nothing of the server's to compare but its SYN/ACK, and a refusal's RST is
        // the stack's own).
        for (rst_ttl, from_path) in [(250u8, true), (58, false)] {
            let mut c = TcpConn::default();
            with_ttl(&mut c, C, &seg(S, 100, 0, 0), 0, 64);
            with_ttl(&mut c, SV, &seg(S | A, 500, 101, 0), 1, 58);
            with_ttl(&mut c, C, &seg(A, 101, 501, 0), 2, 64);
            with_ttl(&mut c, SV, &seg(R | A, 501, 101, 0), 3, rst_ttl);
            assert_eq!(c.reset_by, Some(SV));
            assert_eq!(c.reset_by_path(), from_path, "RST TTL {rst_ttl}");
            assert_eq!(
                c.path_reset_ttls(),
                from_path.then_some((58, rst_ttl)),
                "RST TTL {rst_ttl}"
            );
            assert_eq!((c.half[C.idx()].ttl, c.half[SV.idx()].ttl), (64, 58));
        }
        let mut c = TcpConn::default();
        with_ttl(&mut c, C, &seg(S, 100, 0, 0), 0, 64);
        with_ttl(&mut c, SV, &seg(S | A, 500, 101, 0), 1, 58);
        with_ttl(&mut c, SV, &seg(R | A, 501, 101, 0), 3, 250);
        assert!(!c.reset_by_path());
    }

    #[test]
    fn synsent_syn_again_is_a_retry() {
        let mut c = TcpConn::default();
        c.observe(C, &seg(S, 7, 0, 0), t(0));
        let u = c.observe(C, &seg(S, 7, 0, 0), t(1000));
        assert!(u.events.has(TcpEvents::SYN_RETRY));
        assert!(!u.events.has(TcpEvents::SYN));
        assert_eq!(c.half[C.idx()].syns, 2);
        assert_eq!(c.phase, Phase::SynSent);
    }

    #[test]
    fn new_data_segment_is_midstream() {
        let mut c = TcpConn::default();
        let mut s = seg(A, 1000, 2000, 100);
        s.sport = 443;
        s.dport = 50000;
        let u = c.observe(C, &s, t(0));
        assert!(u.events.has(TcpEvents::MIDSTREAM));
        assert!(c.midstream);
        // The sender uses the well-known port, so the other side is the client.
        assert_eq!(c.client_dir, Some(SV));
    }

    #[test]
    fn established_fin_both_ways_closes() {
        let mut c = TcpConn::default();
        c.observe(C, &seg(S, 1, 0, 0), t(0));
        c.observe(SV, &seg(S | A, 1, 2, 0), t(1));
        c.observe(C, &seg(A, 2, 2, 0), t(2));
        c.observe(C, &seg(F | A, 2, 2, 0), t(3));
        assert_eq!(c.phase, Phase::Closing);
        c.observe(SV, &seg(F | A, 2, 3, 0), t(4));
        assert_eq!(c.phase, Phase::Closed);
        assert_eq!(c.reset_by, None);
    }

    #[test]
    fn sequence_space_tracks_highest_end_across_wrap() {
        let mut c = TcpConn::default();
        c.observe(C, &seg(A, 0xffff_ff00, 1, 0x80), t(0));
        c.observe(C, &seg(A, 0xffff_ff80, 1, 0x100), t(1));
        assert_eq!(c.half[C.idx()].next_seq, Some(SeqNum(0x80)));
        // An old segment does not move it back.
        c.observe(C, &seg(A, 0xffff_ff00, 1, 0x80), t(2));
        assert_eq!(c.half[C.idx()].next_seq, Some(SeqNum(0x80)));
    }

    #[test]
    fn port_reuse_needs_a_different_isn() {
        let mut c = TcpConn::default();
        c.observe(C, &seg(S, 100, 0, 0), t(0));
        assert!(!c.is_port_reuse(C, &seg(S, 100, 0, 0)));
        assert!(c.is_port_reuse(C, &seg(S, 999, 0, 0)));
        assert!(!c.is_port_reuse(C, &seg(S | A, 999, 0, 0)));
    }

    fn seg_w(flags: u8, seq: u32, ack: u32, len: u32, window: u16) -> TcpSegment<'static> {
        TcpSegment {
            window,
            ..seg(flags, seq, ack, len)
        }
    }

    /// An established connection: client ISN 100, server ISN 500, handshake RTT 10 ms.
    fn established() -> TcpConn {
        let mut c = TcpConn::default();
        c.observe(C, &seg(S, 100, 0, 0), t(0));
        c.observe(SV, &seg(S | A, 500, 101, 0), t(5));
        c.observe(C, &seg(A, 101, 501, 0), t(10));
        c
    }

    #[test]
    fn established_resent_segment_after_silence_is_a_retransmission_and_a_stall() {
        let mut c = established();
        assert!(c.observe(SV, &seg(A, 501, 101, 1000), t(20)).analysis.0 == 0);
        let u = c.observe(SV, &seg(A, 501, 101, 1000), t(400));
        assert!(u.analysis.has(SegFlags::RETRANSMISSION), "{:?}", u.analysis);
        // Silent 380 ms: more than 3 x 10 ms and more than the 200 ms minimum.
        assert_eq!(u.stall, Some(380_000_000));
        let h = &c.half[SV.idx()].counters;
        assert_eq!(
            (h.retransmissions, h.stalls, h.retransmitted_bytes),
            (1, 1, 1000)
        );
        assert_eq!(h.all_retransmissions(), 1);
    }

    #[test]
    fn established_three_dup_acks_then_resend_is_fast_retransmission() {
        let mut c = established();
        c.observe(SV, &seg(A, 501, 101, 1000), t(20));
        c.observe(SV, &seg(A, 1501, 101, 1000), t(21)); // this one will be "lost"
        c.observe(SV, &seg(A, 2501, 101, 1000), t(22));
        c.observe(C, &seg(A, 101, 1501, 0), t(30));
        let mut dups = 0;
        for k in 0..3 {
            let u = c.observe(C, &seg(A, 101, 1501, 0), t(31 + k));
            dups += u32::from(u.analysis.has(SegFlags::DUPLICATE_ACK));
        }
        assert_eq!(dups, 3);
        let u = c.observe(SV, &seg(A, 1501, 101, 1000), t(40));
        assert!(
            u.analysis.has(SegFlags::FAST_RETRANSMISSION),
            "{:?}",
            u.analysis
        );
        assert!(!u.analysis.has(SegFlags::RETRANSMISSION));
        assert_eq!(c.half[C.idx()].counters.duplicate_acks, 3);
        assert_eq!(c.half[SV.idx()].counters.all_retransmissions(), 1);
    }

    #[test]
    fn established_resend_of_acked_data_is_spurious() {
        let mut c = established();
        c.observe(SV, &seg(A, 501, 101, 1000), t(20));
        c.observe(C, &seg(A, 101, 1501, 0), t(30));
        let u = c.observe(SV, &seg(A, 501, 101, 1000), t(300));
        assert!(
            u.analysis.has(SegFlags::SPURIOUS_RETRANSMISSION),
            "{:?}",
            u.analysis
        );
    }

    #[test]
    fn established_gap_is_lost_segment_and_quick_fill_is_out_of_order() {
        let mut c = established();
        c.observe(SV, &seg(A, 501, 101, 1000), t(20));
        let u = c.observe(SV, &seg(A, 2501, 101, 1000), t(21));
        assert!(u.analysis.has(SegFlags::LOST_SEGMENT));
        // The missing segment arrives 1 ms later (less than the 10 ms handshake RTT).
        let u = c.observe(SV, &seg(A, 1501, 101, 1000), t(22));
        assert!(u.analysis.has(SegFlags::OUT_OF_ORDER), "{:?}", u.analysis);
        assert_eq!(c.half[SV.idx()].counters.all_retransmissions(), 0);
    }

    #[test]
    fn established_zero_window_keepalive_and_probe() {
        let mut c = established();
        let u = c.observe(C, &seg_w(A, 101, 501, 0, 0), t(20));
        assert!(u.analysis.has(SegFlags::ZERO_WINDOW));
        // One byte into the zero window is a probe, not data and not a retransmission.
        let u = c.observe(SV, &seg(A, 501, 101, 1), t(30));
        assert!(u.analysis.has(SegFlags::ZERO_WINDOW_PROBE));
        c.observe(C, &seg_w(A, 101, 501, 0, 1000), t(40));
        // Keep-alive: zero bytes at next_seq - 1.
        let u = c.observe(C, &seg(A, 100, 501, 0), t(5000));
        assert!(u.analysis.has(SegFlags::KEEP_ALIVE));
        assert!(!u.analysis.has(SegFlags::ANY_RETRANSMISSION));
        assert_eq!(c.half[C.idx()].counters.zero_windows, 1);
    }

    #[test]
    fn synsent_same_syn_again_counts_as_retransmission() {
        let mut c = TcpConn::default();
        c.observe(C, &seg(S, 7, 0, 0), t(0));
        let u = c.observe(C, &seg(S, 7, 0, 0), t(1000));
        assert!(u.analysis.has(SegFlags::RETRANSMISSION));
        assert_eq!(u.stall, Some(1_000_000_000));
    }

    #[test]
    fn data_acked_gives_an_rtt_sample_but_not_after_retransmission() {
        let mut c = established();
        c.observe(SV, &seg(A, 501, 101, 1000), t(20));
        let u = c.observe(C, &seg(A, 101, 1501, 0), t(27));
        assert_eq!(u.rtt, Some(7_000_000));
        // Karn: the resent segment is not timed, and its ACK gives no sample.
        c.observe(SV, &seg(A, 1501, 101, 1000), t(30));
        c.observe(SV, &seg(A, 1501, 101, 1000), t(300));
        let u = c.observe(C, &seg(A, 101, 2501, 0), t(310));
        assert_eq!(u.rtt, None);
    }

    #[test]
    fn an_ack_beyond_the_data_seen_gives_no_rtt_sample() {
        // nDPI's tls-appdata.pcap: excerpts of one connection minutes apart; the server's last
        // segment of one excerpt (1000 bytes from 501) is acknowledged 400 s later by an ACK
        // covering data the capture never saw.
        let mut c = established();
        c.observe(SV, &seg(A, 501, 101, 1000), t(20));
        let u = c.observe(C, &seg(A, 101, 900_000, 0), t(400_000));
        assert_eq!(u.rtt, None);
        // The next segment is timed again, and an ACK of exactly what was seen is a sample.
        c.observe(SV, &seg(A, 900_000, 101, 100), t(400_010));
        let u = c.observe(C, &seg(A, 101, 900_100, 0), t(400_013));
        assert_eq!(u.rtt, Some(3_000_000));
    }

    #[test]
    fn window_scale_is_applied_only_when_both_sides_offer_it() {
        let mut c = TcpConn::default();
        let mut syn = seg(S, 1, 0, 0);
        let opts = [3u8, 3, 7, 1];
        syn.options = &opts;
        c.observe(C, &syn, t(0));
        let mut synack = seg(S | A, 9, 2, 0);
        let opts2 = [3u8, 3, 2, 1];
        synack.options = &opts2;
        c.observe(SV, &synack, t(1));
        assert!(c.scaling);
        c.observe(C, &seg_w(A, 2, 10, 0, 100), t(2));
        assert_eq!(c.half[C.idx()].window_scaled, 100 << 7);
    }
}
