//! Application-layer transaction tracking shared by the analyzers: HTTP/1.x requests and
//! responses reassembled in order from each TCP direction (bounded buffers, heads only;
//! bodies are hashed as they stream by, never stored).
//!
//! Call protocol: the pipeline calls [`on_tcp_payload`] for every TCP segment with payload,
//! after the TCP state was updated and before the analyzers run; the events it produces are
//! handed to the analyzers with the packet. At flow end, [`on_flow_end`] completes responses
//! delimited by the connection's close; requests still pending are unanswered. A connection
//! to TCP port 53 carries DNS ([`dns::DnsTracker`]): its whole messages are handed to the
//! analyzers one by one, like DNS datagrams.

pub mod dns;
pub mod http;
pub mod ident;

use crate::decode::TcpSegment;
use crate::flow::{Dir, SeqNum};
use crate::time::Timestamp;

pub use dns::{DnsEvent, DnsEvents, DnsTracker};
pub use http::{HttpEvent, HttpTracker, RequestInfo, ResponseInfo};
pub use ident::{ConnInfo, Credentials, Protocol, TlsInfo};

/// Client payload segments examined before a flow is declared not HTTP (a proxy or SOCKS
/// handshake may come first).
const DETECT_SEGMENTS: u8 = 4;

/// What the flow carries, as far as the app layer knows.
#[derive(Debug, Default)]
pub enum AppState {
    /// Nothing decided yet; the number of client payload segments examined.
    #[default]
    Unknown,
    /// Still undecided after this many client segments.
    Probing(u8),
    /// Still undecided, holding the client's segment captured ahead of its stream's first
    /// bytes (a capture on the receiver's side of a lost first segment sees the rest first);
    /// it is read after them if they start an HTTP request (one segment held, its payload
    /// copied: at most [`MAX_HELD`] bytes).
    Ahead(Box<Ahead>),
    /// HTTP/1.x.
    Http(Box<HttpTracker>),
    /// DNS over TCP (server port 53).
    Dns(Box<DnsTracker>),
    /// Something else (not tracked).
    Other,
}

/// Counters of the app layer.
#[derive(Clone, Debug, Default)]
pub struct AppStats {
    /// HTTP/1.x connections tracked.
    pub http_connections: u64,
    /// DNS-over-TCP connections followed.
    pub dns_connections: u64,
    /// Their messages (added as each connection ends).
    pub dns: dns::DnsTcpStats,
}

/// Where a connection's direction and its server port lead the app layer.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    /// The flow's id (it makes request ids unique within the run).
    pub flow_id: u64,
    /// The direction of the flow's client.
    pub client_dir: Dir,
    /// The server's port.
    pub server_port: u16,
    /// The direction of this segment.
    pub dir: Dir,
    /// Its direction's first data byte, when that direction's SYN was seen.
    pub start: Option<SeqNum>,
}

/// The client segment [`AppState::Ahead`] holds, and where the client's stream starts (the
/// bytes before the segment were not read).
#[derive(Debug)]
pub struct Ahead {
    start: SeqNum,
    held: HeldRun,
}

impl Ahead {
    /// The bytes held (heap capacity).
    pub fn capacity(&self) -> usize {
        self.held.capacity()
    }
}

/// One TCP segment with payload of the flow `at` describes. HTTP events go to `events`, DNS
/// messages to `dns`. Returns the credential kinds seen so far in the connection's HTTP heads
/// (`ident::Credentials` bits; 0 for other protocols).
pub fn on_tcp_payload(
    state: &mut AppState,
    stats: &mut AppStats,
    at: Segment,
    seg: &TcpSegment<'_>,
    ts: Timestamp,
    events: &mut Vec<HttpEvent>,
    dns: &mut DnsEvents,
) -> u32 {
    let from_client = at.dir == at.client_dir;
    if at.server_port == 53
        && matches!(
            state,
            AppState::Unknown | AppState::Probing(_) | AppState::Ahead(_)
        )
    {
        stats.dns_connections += 1;
        *state = AppState::Dns(Box::new(DnsTracker::new()));
    }
    if let AppState::Dns(d) = state {
        d.on_segment(from_client, seg, at.start, ts, dns);
        return 0;
    }
    if !from_client && !seg.payload.is_empty() && matches!(state, AppState::Ahead(_)) {
        // The server answers: the client's first bytes, sent before, were not captured.
        release_ahead(state, stats, at, events);
    }
    if !matches!(state, AppState::Http(_)) {
        if matches!(state, AppState::Other) || !from_client || seg.payload.is_empty() {
            return 0;
        }
        // A segment after its stream's first bytes, before any of them was captured: the
        // protocol is told by those. The first such segment waits for them; when a second
        // comes first, they were lost before the capture and it is examined as any other.
        let ahead = at.start.filter(|&s| SeqNum(seg.seq).diff(s) > 0);
        match std::mem::take(state) {
            AppState::Unknown if ahead.is_some() => {
                let mut held = HeldRun::default();
                if let Some(start) = ahead
                    && held.offer(seg, ts)
                {
                    *state = AppState::Ahead(Box::new(Ahead { start, held }));
                    return 0;
                }
            }
            AppState::Ahead(mut held) => {
                // The held segment is read after this one when this one starts the stream
                // (as the receiver read them: now), before it otherwise (the first bytes were
                // not captured: as of when it was).
                if ahead.is_some() {
                    read_held(state, stats, at, &mut held, None, events);
                    return examine(state, stats, at, seg, ts, events);
                }
                examine(state, stats, at, seg, ts, events);
                return read_held(state, stats, at, &mut held, Some(ts), events);
            }
            other => *state = other,
        }
    }
    examine(state, stats, at, seg, ts, events)
}

/// Segment `seg` of the connection `at` describes, whose protocol may not be known yet: a
/// client's decides it when it starts an HTTP request ([`probe`]). The credential kinds seen so
/// far in the connection's HTTP heads.
fn examine(
    state: &mut AppState,
    stats: &mut AppStats,
    at: Segment,
    seg: &TcpSegment<'_>,
    ts: Timestamp,
    events: &mut Vec<HttpEvent>,
) -> u32 {
    let from_client = at.dir == at.client_dir;
    let mut start = at.start;
    if from_client && !matches!(state, AppState::Http(_)) {
        if matches!(state, AppState::Probing(_)) {
            // Client bytes before this segment were captured (they were not HTTP: a SOCKS
            // or PROXY preamble): the HTTP stream starts here, after no hole.
            start = None;
        }
        probe(state, stats, at.flow_id, seg.payload);
    }
    match state {
        AppState::Http(h) => {
            h.on_segment(from_client, seg, start, ts, events);
            h.head_credentials
        }
        _ => 0,
    }
}

/// The client segment [`AppState::Ahead`] held, examined at `now` when the bytes before it
/// came (the receiver read it then), else (`None`: they were not captured) as of when it was
/// captured.
fn read_held(
    state: &mut AppState,
    stats: &mut AppStats,
    at: Segment,
    held: &mut Ahead,
    now: Option<Timestamp>,
    events: &mut Vec<HttpEvent>,
) -> u32 {
    let client = Segment {
        dir: at.client_dir,
        start: Some(held.start),
        ..at
    };
    let mut credentials = 0;
    if let Some(run) = held.held.take() {
        for (piece, ts) in run.pieces() {
            credentials = examine(state, stats, client, &piece, now.unwrap_or(ts), events);
        }
    }
    credentials
}

/// If `state` holds a client segment ([`AppState::Ahead`]) whose first bytes are now known
/// not to have been captured: it is read, as of when it was captured. Whether one was.
fn release_ahead(
    state: &mut AppState,
    stats: &mut AppStats,
    at: Segment,
    events: &mut Vec<HttpEvent>,
) -> bool {
    if !matches!(state, AppState::Ahead(_)) {
        return false;
    }
    if let AppState::Ahead(mut held) = std::mem::take(state) {
        read_held(state, stats, at, &mut held, None, events);
    }
    true
}

/// One more client segment of a connection whose protocol is not known yet: `state` becomes
/// HTTP if `payload` starts a request, else it counts the segment, up to [`DETECT_SEGMENTS`].
fn probe(state: &mut AppState, stats: &mut AppStats, flow_id: u64, payload: &[u8]) {
    let seen = match state {
        AppState::Probing(n) => *n,
        AppState::Other => return,
        _ => 0,
    };
    *state = if crate::proto::http1::looks_like_request(payload) {
        stats.http_connections += 1;
        AppState::Http(Box::new(HttpTracker::new(flow_id)))
    } else if seen + 1 >= DETECT_SEGMENTS {
        AppState::Other
    } else {
        AppState::Probing(seen + 1)
    };
}

/// Whether `state` may hold segments an acknowledgment releases ([`on_tcp_ack`] does nothing
/// otherwise).
pub fn holds_segments(state: &AppState) -> bool {
    matches!(
        state,
        AppState::Http(_) | AppState::Dns(_) | AppState::Ahead(_)
    )
}

/// A TCP segment without payload acknowledging `ack`, of the flow and from the direction `at`
/// describes: segments the other direction held ahead of a hole the acknowledgment passes are
/// read (a bare ACK or a FIN may be all the peer sends after the hole was filled where it
/// is). HTTP events go to `events`, DNS messages to `dns`. Whether a run was read.
pub fn on_tcp_ack(
    state: &mut AppState,
    stats: &mut AppStats,
    at: Segment,
    ack: u32,
    events: &mut Vec<HttpEvent>,
    dns: &mut DnsEvents,
) -> bool {
    let from_client = at.dir == at.client_dir;
    match state {
        AppState::Http(h) => h.on_ack(from_client, SeqNum(ack), events),
        AppState::Dns(d) => d.on_ack(from_client, SeqNum(ack), dns),
        // The server acknowledges the client's bytes up to the held segment: the first bytes
        // came, and were not captured.
        AppState::Ahead(held)
            if !from_client && held.held.start().is_some_and(|s| SeqNum(ack).diff(s) >= 0) =>
        {
            release_ahead(state, stats, at, events)
        }
        _ => false,
    }
}

/// The server of a TCP connection sent its FIN (HTTP: what the client sends from then on is
/// sent after the server closed).
pub fn on_server_fin(state: &mut AppState, ts: Timestamp) {
    if let AppState::Http(h) = state {
        h.server_closed(ts);
    }
}

/// What a segment brings to one direction of a connection whose bytes are read in order and
/// once ([`take_in_order`]).
pub(crate) struct Taken<'a> {
    /// Bytes before the segment were not captured: a gap in the direction's stream.
    pub gap: bool,
    /// Its bytes not taken before: how many of its first bytes were (a retransmission
    /// overlapping the last one), the captured rest and the rest's length on the wire; `None`
    /// when all of them were taken before.
    pub new: Option<(u32, &'a [u8], usize)>,
}

/// Takes segment `seg` (with payload) into its direction, `expect` being the sequence number
/// after the bytes taken so far (`None` before the first segment: the stream then starts at
/// `first`). HTTP/1.x and DNS over TCP read their streams so.
pub(crate) fn take_in_order<'a>(
    expect: &mut Option<SeqNum>,
    first: SeqNum,
    seg: &TcpSegment<'a>,
) -> Taken<'a> {
    let seq = SeqNum(seg.seq);
    let skip = expect.get_or_insert(first).diff(seq);
    let gap = skip < 0;
    let skip = skip.max(0) as u32;
    if skip >= seg.seg_len {
        return Taken { gap, new: None };
    }
    *expect = Some(seq.plus(seg.seg_len));
    let wire = (seg.seg_len - skip) as usize;
    let captured = seg.payload.get(skip as usize..).unwrap_or(&[]);
    let captured = &captured[..captured.len().min(wire)];
    Taken {
        gap,
        new: Some((skip, captured, wire)),
    }
}

/// Bytes a direction holds of segments captured ahead of the bytes it expects.
const MAX_HELD: usize = 16 * 1024;
/// Segments a direction holds so.
const MAX_HELD_SEGS: usize = 8;

/// One direction's segments captured ahead of the bytes it expects (a capture on the
/// receiver's side of a loss sees the later segments before the retransmission): one
/// contiguous run, at most [`MAX_HELD_SEGS`] segments and [`MAX_HELD`] bytes, held until the
/// bytes before it come or are known lost. HTTP/1.x and DNS over TCP hold segments so.
#[derive(Debug, Default)]
pub(crate) struct HeldRun {
    /// Where the run starts; `None` while nothing is held.
    at: Option<SeqNum>,
    bytes: Vec<u8>,
    /// Each segment's length and capture time (reading resumes at a segment's start after a
    /// gap).
    lens: [u16; MAX_HELD_SEGS],
    times: [Timestamp; MAX_HELD_SEGS],
    segs: u8,
}

/// A run taken out of its [`HeldRun`], to be read.
pub(crate) struct Released {
    at: SeqNum,
    bytes: Vec<u8>,
    lens: [u16; MAX_HELD_SEGS],
    times: [Timestamp; MAX_HELD_SEGS],
    segs: u8,
}

impl HeldRun {
    /// Where the run held starts, if one is.
    pub(crate) fn start(&self) -> Option<SeqNum> {
        self.at
    }

    /// Holds `seg`, captured at `ts` ahead of the bytes expected, if it continues the run and
    /// there is room: true when its bytes are held (now, or already: a copy). False when it does
    /// not continue the run, was cut by the snap length, or there is no room: the caller reads
    /// the run after its gap, then the segment.
    pub(crate) fn offer(&mut self, seg: &TcpSegment<'_>, ts: Timestamp) -> bool {
        let seq = SeqNum(seg.seq);
        let end = self.at.map(|at| at.plus(self.bytes.len() as u32));
        if let (Some(at), Some(end)) = (self.at, end) {
            if seq.diff(at) >= 0 && seq.plus(seg.seg_len).diff(end) <= 0 {
                return true;
            }
        }
        if seg.payload.len() != seg.seg_len as usize
            || end.is_some_and(|end| end != seq)
            || self.bytes.len() + seg.payload.len() > MAX_HELD
            || usize::from(self.segs) >= MAX_HELD_SEGS
        {
            return false;
        }
        if self.at.is_none() {
            self.bytes.clear();
            self.segs = 0;
            self.at = Some(seq);
        }
        self.bytes.extend_from_slice(seg.payload);
        self.lens[usize::from(self.segs)] = seg.payload.len() as u16;
        self.times[usize::from(self.segs)] = ts;
        self.segs += 1;
        true
    }

    /// Takes the run out to be read, if one is held; the next run starts empty (no segment
    /// and no byte of this one counts against its room).
    pub(crate) fn take(&mut self) -> Option<Released> {
        let at = self.at.take()?;
        Some(Released {
            at,
            bytes: std::mem::take(&mut self.bytes),
            lens: self.lens,
            times: self.times,
            segs: std::mem::take(&mut self.segs),
        })
    }

    /// Gives a read run's buffer back for the next one, when no run was held meanwhile and it
    /// is at most `keep` bytes.
    pub(crate) fn give_back(&mut self, run: Released, keep: usize) {
        let mut bytes = run.bytes;
        if self.at.is_none() && bytes.capacity() <= keep {
            bytes.clear();
            self.bytes = bytes;
        }
    }

    /// Heap bytes held.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Drops the run and frees its buffer.
    pub(crate) fn free(&mut self) {
        *self = Self::default();
    }
}

impl Released {
    /// Its segments in order, each with its capture time.
    pub(crate) fn pieces(&self) -> impl Iterator<Item = (TcpSegment<'_>, Timestamp)> {
        let mut from = 0usize;
        self.lens[..usize::from(self.segs)]
            .iter()
            .zip(&self.times)
            .map(move |(&len, &ts)| {
                let payload = &self.bytes[from..from + usize::from(len)];
                let seq = self.at.plus(from as u32).0;
                from += usize::from(len);
                let piece = TcpSegment {
                    sport: 0,
                    dport: 0,
                    seq,
                    ack: 0,
                    flags: 0,
                    window: 0,
                    options: &[],
                    payload,
                    seg_len: payload.len() as u32,
                    checksum: 0,
                };
                (piece, ts)
            })
    }
}

/// The flow `at` describes ended at `ts`: responses delimited by the close are complete, and
/// segments held for bytes that never came are read (HTTP events to `events`, DNS messages to
/// `dns`).
pub fn on_flow_end(
    state: &mut AppState,
    stats: &mut AppStats,
    at: Segment,
    ts: Timestamp,
    events: &mut Vec<HttpEvent>,
    dns: &mut DnsEvents,
) {
    release_ahead(state, stats, at, events);
    match state {
        AppState::Http(h) => h.on_close(ts, events),
        AppState::Dns(d) => {
            d.on_end(dns);
            stats.dns.add(&d.stats);
        }
        _ => {}
    }
}
