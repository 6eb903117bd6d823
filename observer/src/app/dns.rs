//! DNS over TCP (RFC 7766): each direction of a connection to port 53 is a stream of
//! messages, each after a two-byte length. The bytes are taken in order and once (a
//! retransmitted or repeated segment is skipped, as for HTTP); a message cut across segments is
//! joined and several in one segment are all read. Of each message the first [`KEEP`] bytes are
//! kept (header, question and the usual answers); the rest of a longer one (a zone transfer) is
//! skipped and counted. After a capture gap the direction resumes at the next segment that
//! starts with a length and a DNS header that parses as a message of its direction.

use crate::decode::TcpSegment;
use crate::flow::SeqNum;
use crate::proto::dns::{self, Message};
use crate::time::Timestamp;
use std::net::IpAddr;

/// Bytes of each message kept and parsed; the rest of a longer message is skipped
/// (`stats.limits.dns_tcp_messages_cut`).
pub const KEEP: usize = 4096;

/// Queries of one connection remembered while they wait for their answer (for the close).
const MAX_PENDING: usize = 64;

/// What the tracker completed for the analyzers, in order. (A message is held in place: the
/// events' vector is reused from segment to segment, so no allocation per message.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum DnsEvent {
    /// A whole message, parsed.
    Message {
        /// When its last byte was seen.
        ts: Timestamp,
        /// Sent by the connection's client.
        from_client: bool,
        /// The message.
        msg: Message,
        /// Its A/AAAA answers (when a response): this range of [`DnsEvents::answers`].
        answers: std::ops::Range<usize>,
    },
    /// A query (its id and [`dns::question_key`]) waiting when a gap in the server's stream
    /// began: its answer may have been in it (it stays waiting: one read later answers it).
    Lost {
        /// The query's id.
        id: u16,
        /// Its question's key.
        key: u64,
    },
    /// A gap in the server's stream began while queries beyond the [`MAX_PENDING`] followed
    /// on the connection were sent on it (not known one by one): every query of the
    /// connection still waiting may have had its answer in it.
    LostUntracked,
}

/// The events of one segment (buffers reused from segment to segment).
#[derive(Debug, Default)]
pub struct DnsEvents {
    /// The events.
    pub events: Vec<DnsEvent>,
    /// The answers of every message among them.
    pub answers: Vec<(IpAddr, u32)>,
}

impl DnsEvents {
    /// Empties both buffers (keeping their room).
    pub fn clear(&mut self) {
        self.events.clear();
        self.answers.clear();
    }
}

/// Counters of one connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct DnsTcpStats {
    /// Whole messages read (both ways).
    pub messages: u64,
    /// … of which responses.
    pub responses: u64,
    /// Messages longer than [`KEEP`]: only their first bytes were parsed.
    pub cut: u64,
    /// Whole messages that did not parse as DNS.
    pub unparsed: u64,
    /// Capture gaps (a direction's bytes missing): the message being read is lost and
    /// reading resumes at the next message start.
    pub gaps: u64,
    /// Queries not followed for their answer on their connection: [`MAX_PENDING`] were
    /// waiting on it.
    pub untracked: u64,
}

impl DnsTcpStats {
    /// Adds `o`'s counts.
    pub fn add(&mut self, o: &DnsTcpStats) {
        self.messages += o.messages;
        self.responses += o.responses;
        self.cut += o.cut;
        self.unparsed += o.unparsed;
        self.gaps += o.gaps;
        self.untracked += o.untracked;
    }
}

#[derive(Debug, Default)]
struct Stream {
    /// The next sequence number expected.
    expect: Option<SeqNum>,
    /// The length prefix read so far (`have_len` of its 2 bytes).
    len_bytes: [u8; 2],
    have_len: u8,
    /// Bytes of the current message still to come; 0 between messages.
    remaining: usize,
    /// The current message's length.
    msg_len: usize,
    /// Its first [`KEEP`] bytes (allocated once, at the first message).
    buf: Vec<u8>,
    /// Some of its kept bytes were not captured (snap length): not parsed.
    damaged: bool,
    /// After a gap (or from a capture that began mid-stream): waiting for a segment that
    /// starts a message.
    resync: bool,
    /// Freed for the run's parsing budget: no longer read.
    dead: bool,
    /// Segments captured ahead of the bytes expected.
    held: super::HeldRun,
}

/// DNS over TCP on one connection.
#[derive(Debug, Default)]
pub struct DnsTracker {
    client: Stream,
    server: Stream,
    /// Queries waiting for their answer: (id, question key).
    pending: Vec<(u16, u64)>,
    /// Some query sent on the connection was not put in `pending` (it was full).
    untracked: bool,
    /// Counters.
    pub stats: DnsTcpStats,
}

/// Whether `data`, the start of a segment, starts with a whole DNS header of a message of
/// its direction (a query from the client, a response from the server) after a plausible
/// length: where reading may resume after a gap.
fn starts_message(data: &[u8], from_client: bool) -> bool {
    let Some(len) = data
        .get(..2)
        .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
    else {
        return false;
    };
    if len < 12 {
        return false;
    }
    let body = &data[2..data.len().min(2 + len)];
    dns::parse(body).is_some_and(|m| m.response != from_client && m.opcode <= 6)
}

impl DnsTracker {
    /// A tracker for a new connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Heap bytes held (the two message buffers and the pending queries).
    pub fn buffered_bytes(&self) -> usize {
        self.client.buf.capacity()
            + self.server.buf.capacity()
            + self.client.held.capacity()
            + self.server.held.capacity()
            + self.pending.capacity() * std::mem::size_of::<(u16, u64)>()
    }

    /// Frees the buffers: the connection's messages are no longer read.
    pub fn shed(&mut self) {
        for s in [&mut self.client, &mut self.server] {
            s.buf = Vec::new();
            s.held.free();
            s.dead = true;
        }
        self.pending = Vec::new();
    }

    /// The connection ended: segments still held for bytes that never came are read after
    /// their gap.
    pub fn on_end(&mut self, out: &mut DnsEvents) {
        self.release_held(true, None, out);
        self.release_held(false, None, out);
    }

    /// The queries waiting for their answer: (id, [`dns::question_key`]).
    pub fn pending(&self) -> &[(u16, u64)] {
        &self.pending
    }

    /// One direction's reading state.
    fn stream(&mut self, from_client: bool) -> &mut Stream {
        if from_client {
            &mut self.client
        } else {
            &mut self.server
        }
    }

    /// One TCP segment of the connection. `start`: the direction's first data byte, when its
    /// SYN was seen (else reading starts at the first segment that starts a message).
    pub fn on_segment(
        &mut self,
        from_client: bool,
        seg: &TcpSegment<'_>,
        start: Option<SeqNum>,
        ts: Timestamp,
        out: &mut DnsEvents,
    ) {
        if seg.seg_len == 0 {
            return;
        }
        if seg.flags & crate::decode::tcp_flags::ACK != 0 {
            self.on_ack(from_client, SeqNum(seg.ack), out);
        }
        let s = self.stream(from_client);
        if s.dead {
            return;
        }
        if s.expect.is_none() && start.is_none() {
            // Picked up mid-stream: where a message starts is unknown.
            s.resync = true;
        }
        let seq = SeqNum(seg.seq);
        if s.expect.or(start).is_some_and(|e| seq.diff(e) > 0) {
            // Ahead of the bytes expected: held while the bytes before it may still come.
            s.expect.get_or_insert(start.unwrap_or(seq));
            if s.held.offer(seg, ts) {
                return;
            }
            // Not held: what is held is read after its gap, then this segment.
            self.release_held(from_client, None, out);
        }
        self.take(from_client, seg, start, ts, out);
        let s = self.stream(from_client);
        if let (Some(at), Some(e)) = (s.held.start(), s.expect) {
            if at.diff(e) <= 0 {
                // The bytes before the held run came: it continues the stream, now.
                self.release_held(from_client, Some(ts), out);
            }
        }
    }

    /// `from_client`'s side acknowledged the other's bytes up to `ack` (a segment with or
    /// without payload): past the start of the hole before the other direction's held run,
    /// the hole was filled where the peer is, not in the capture: the run is read after its
    /// gap.
    pub fn on_ack(&mut self, from_client: bool, ack: SeqNum, out: &mut DnsEvents) -> bool {
        let other = self.stream(!from_client);
        if other.held.start().is_some() && other.expect.is_some_and(|e| ack.diff(e) > 0) {
            self.release_held(!from_client, None, out);
            return true;
        }
        false
    }

    /// Reads the segments `from_client`'s direction held: at `now` when the bytes before them
    /// came, else (`None`: they never will) after a gap, each as of when it was captured.
    fn release_held(&mut self, from_client: bool, now: Option<Timestamp>, out: &mut DnsEvents) {
        let Some(run) = self.stream(from_client).held.take() else {
            return;
        };
        for (piece, ts) in run.pieces() {
            self.take(from_client, &piece, None, now.unwrap_or(ts), out);
        }
        let s = self.stream(from_client);
        if !s.dead {
            s.held.give_back(run, KEEP);
        }
    }

    /// Segment `seg` of `from_client`'s direction, read in order.
    fn take(
        &mut self,
        from_client: bool,
        seg: &TcpSegment<'_>,
        start: Option<SeqNum>,
        ts: Timestamp,
        out: &mut DnsEvents,
    ) {
        let seq = SeqNum(seg.seq);
        let s = self.stream(from_client);
        let taken = super::take_in_order(&mut s.expect, start.unwrap_or(seq), seg);
        if taken.gap {
            // Bytes before this segment were not captured: the message being read is lost.
            self.gap(from_client, out);
        }
        let Some((skip, captured, wire)) = taken.new else {
            return; // a retransmission of what was already read
        };
        let s = self.stream(from_client);
        if s.resync {
            if skip > 0 || !starts_message(seg.payload, from_client) {
                return;
            }
            s.resync = false;
        }
        self.consume(from_client, captured, wire, ts, out);
    }

    /// A gap in one direction: what was being read is dropped; after one in the server's
    /// direction the queries waiting may have had their answers in it.
    fn gap(&mut self, from_client: bool, out: &mut DnsEvents) {
        self.stats.gaps += 1;
        let s = self.stream(from_client);
        s.resync = true;
        s.have_len = 0;
        s.remaining = 0;
        s.buf.clear();
        if !from_client {
            out.events.extend(
                self.pending
                    .iter()
                    .map(|&(id, key)| DnsEvent::Lost { id, key }),
            );
            if self.untracked {
                out.events.push(DnsEvent::LostUntracked);
            }
        }
    }

    /// `wire` bytes of the direction in order, of which `data` were captured.
    fn consume(
        &mut self,
        from_client: bool,
        mut data: &[u8],
        mut wire: usize,
        ts: Timestamp,
        out: &mut DnsEvents,
    ) {
        while wire > 0 {
            let s = self.stream(from_client);
            if s.remaining == 0 {
                // The length prefix.
                if data.is_empty() {
                    // Not captured: where the next message starts is unknown.
                    self.gap(from_client, out);
                    return;
                }
                s.len_bytes[usize::from(s.have_len)] = data[0];
                s.have_len += 1;
                data = &data[1..];
                wire -= 1;
                if s.have_len < 2 {
                    continue;
                }
                s.have_len = 0;
                s.msg_len = usize::from(u16::from_be_bytes(s.len_bytes));
                s.remaining = s.msg_len;
                s.buf.clear();
                s.damaged = false;
                // Grown to the largest message kept so far, at most `KEEP`: no allocation per
                // message once it has grown.
                s.buf.reserve(s.msg_len.min(KEEP));
                continue;
            }
            let n = s.remaining.min(wire);
            let c = n.min(data.len());
            let room = KEEP.saturating_sub(s.buf.len());
            s.buf.extend_from_slice(&data[..c.min(room)]);
            if c < n && s.buf.len() < KEEP.min(s.msg_len) {
                s.damaged = true;
            }
            data = &data[c..];
            wire -= n;
            s.remaining -= n;
            if s.remaining == 0 {
                self.message(from_client, ts, out);
            }
        }
    }

    /// The current message of a direction is whole.
    fn message(&mut self, from_client: bool, ts: Timestamp, out: &mut DnsEvents) {
        let s = if from_client {
            &self.client
        } else {
            &self.server
        };
        self.stats.messages += 1;
        if s.msg_len > KEEP {
            self.stats.cut += 1;
        }
        let parsed = if s.damaged { None } else { dns::parse(&s.buf) };
        let Some(msg) = parsed else {
            self.stats.unparsed += 1;
            return;
        };
        let start = out.answers.len();
        if msg.response && msg.question && msg.answers > 0 {
            dns::answer_addresses_append(&s.buf, &mut out.answers);
        }
        let key = dns::question_key(&msg.qname, msg.qtype);
        if msg.response {
            self.stats.responses += 1;
            let at = self
                .pending
                .iter()
                .position(|&(id, k)| id == msg.id && (!msg.question || k == key));
            if let Some(i) = at {
                self.pending.remove(i);
            }
        } else if self.pending.len() < MAX_PENDING {
            self.pending.push((msg.id, key));
        } else {
            // Judged by its timeout alone, not at the close; a gap in the server's stream
            // makes the outcome of every query waiting on the connection unknown.
            self.stats.untracked += 1;
            self.untracked = true;
        }
        out.events.push(DnsEvent::Message {
            ts,
            from_client,
            msg,
            answers: start..out.answers.len(),
        });
    }
}
