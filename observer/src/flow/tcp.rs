//! Per-connection TCP state, shared by every analyzer: who the client is, how far the handshake
//! got, per-direction sequence space, FIN/RST. Analyzers read it; only [`TcpConn::observe`]
//! writes it, once per segment, before the analyzers run.

use super::key::Dir;
use super::seq::SeqNum;
use crate::decode::{TcpSegment, tcp_flags};
use crate::time::Timestamp;

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
    /// SYN segments sent by this side (retransmissions included).
    pub syns: u32,
    /// Highest sequence number sent + length (the next byte expected).
    pub next_seq: SeqNum,
    /// Highest acknowledgment this side sent, if any.
    pub ack: Option<SeqNum>,
    /// This side sent FIN.
    pub fin: bool,
    /// This side sent RST.
    pub rst: bool,
    /// Last advertised window (unscaled).
    pub window: u16,
    /// Payload bytes on the wire (retransmissions included).
    pub payload_bytes: u64,
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
}

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
    /// Time of the first SYN/ACK.
    pub synack_ts: Option<Timestamp>,
    /// Time the handshake completed.
    pub established_ts: Option<Timestamp>,
    /// Side that sent the first RST.
    pub reset_by: Option<Dir>,
    /// Phase in which the first RST arrived.
    pub reset_in: Option<Phase>,
}

impl TcpConn {
    /// Whether a SYN from `dir` with sequence `seq` starts a new connection that reuses this
    /// one's ports (it does when this direction already started with a different ISN).
    pub fn is_port_reuse(&self, dir: Dir, seg: &TcpSegment<'_>) -> bool {
        if !seg.has(tcp_flags::SYN) || seg.has(tcp_flags::ACK) {
            return false;
        }
        let h = &self.half[dir.idx()];
        h.seen && SeqNum(seg.seq) != h.base_seq
    }

    /// Updates the state with one segment travelling in `dir` at `ts`.
    pub fn observe(&mut self, dir: Dir, seg: &TcpSegment<'_>, ts: Timestamp) -> TcpUpdate {
        let before = self.phase;
        let mut ev = 0u16;
        let syn = seg.has(tcp_flags::SYN);
        let ack = seg.has(tcp_flags::ACK);
        let seq = SeqNum(seg.seq);
        let i = dir.idx();
        let first_from_side = !self.half[i].seen;
        {
            let h = &mut self.half[i];
            if first_from_side {
                h.seen = true;
                h.base_seq = seq;
                h.next_seq = seq;
            }
            let mut len = seg.seg_len;
            if syn {
                len += 1;
                h.syns += 1;
            }
            if seg.has(tcp_flags::FIN) {
                len += 1;
            }
            let end = seq.plus(len);
            if end > h.next_seq {
                h.next_seq = end;
            }
            if ack {
                let a = SeqNum(seg.ack);
                h.ack = Some(h.ack.map_or(a, |old| old.max(a)));
            }
            h.window = seg.window;
            h.payload_bytes += u64::from(seg.seg_len);
        }
        if syn && !ack {
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
        } else if syn && ack {
            ev |= TcpEvents::SYN_ACK;
            if self.client_dir.is_none() {
                self.client_dir = Some(dir.rev());
            }
            if self.synack_ts.is_none() {
                self.synack_ts = Some(ts);
            }
            if matches!(self.phase, Phase::New | Phase::SynSent) {
                self.phase = Phase::SynAckSeen;
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
        }
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
            window: 1000,
            options: &[],
            payload: &[],
            seg_len: len,
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
        assert_eq!(c.half[C.idx()].next_seq, SeqNum(101));
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
        assert_eq!(c.half[C.idx()].next_seq, SeqNum(0x80));
        // An old segment does not move it back.
        c.observe(C, &seg(A, 0xffff_ff00, 1, 0x80), t(2));
        assert_eq!(c.half[C.idx()].next_seq, SeqNum(0x80));
    }

    #[test]
    fn port_reuse_needs_a_different_isn() {
        let mut c = TcpConn::default();
        c.observe(C, &seg(S, 100, 0, 0), t(0));
        assert!(!c.is_port_reuse(C, &seg(S, 100, 0, 0)));
        assert!(c.is_port_reuse(C, &seg(S, 999, 0, 0)));
        assert!(!c.is_port_reuse(C, &seg(S | A, 999, 0, 0)));
    }
}
