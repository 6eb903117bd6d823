//! Analyzers: one per fallacy (or family of findings), all fed the same packets and flows.
//!
//! Each analyzer is in two halves. Its per-flow half ([`FlowHalf`], all of them called through
//! [`FlowHalves`]) sees each packet with its flow: it reads and writes the flow (its own
//! `FlowExt` field) and nothing of the run, and leaves what the run needs to know in [`Facts`]
//! (plain values) or [`Note`]s. Its run-wide half ([`Analyzer`]) sees every packet in capture
//! order with those facts, but the flow only as a [`FlowInfo`] (who talks to whom, since
//! when): what it keeps per flow because of the run (a group a failed connection was counted
//! in) it keeps in a map by flow id until the flow ends. The halves can therefore run apart,
//! where the flow lives and where the run's state lives.
//!
//! Call protocol (the pipeline's side of the contract):
//! 1. for each decoded TCP or UDP packet, after the flow table and the shared TCP state were
//!    updated for it: every [`FlowHalf::on_packet`], then every [`Analyzer::on_packet`], then
//!    [`Analyzer::on_note`] for each note left, then [`Analyzer::on_http`] for each HTTP
//!    event the packet completed (likewise `on_icmp_error` for an ICMP error quoting a flow);
//! 2. [`Analyzer::on_flow_end`] once per flow when it leaves the table (idle, evicted, port
//!    reuse, end of input), in a deterministic order;
//! 3. [`Analyzer::on_tick`] about once per second of capture time, for time-based decisions;
//! 4. [`Analyzer::finish`] once at the end, then [`Analyzer::stats`] and
//!    [`Analyzer::summary`], and [`Analyzer::report`] when an HTML report was asked for.
//!
//! Time is always the capture time passed in. Findings are pushed onto `out`; the pipeline
//! writes them to the sinks as soon as the call returns.

pub mod administrators;
pub mod bandwidth;
pub mod cost;
pub mod homogeneity;
pub mod latency;
pub mod reliability;
pub mod retries;
pub mod security;
pub mod tcp_health;
pub mod topology;

use crate::app::{AppState, HttpEvent};
use crate::decode::IpPacket;
use crate::finding::Finding;
use crate::flow::tcp::TcpUpdate;
use crate::flow::{Dir, EndReason, Flow};
use crate::time::Timestamp;

/// Per-flow state beyond TCP: the shared application-layer tracking, and one field per
/// analyzer that needs its own.
#[derive(Debug, Default)]
pub struct FlowExt {
    /// Application-layer transactions (HTTP/1.x).
    pub app: AppState,
    /// What the connection carries: protocol, credentials in clear, TLS handshake.
    pub conn: crate::app::ConnInfo,
    /// ICMP destination-unreachable errors (other than fragmentation-needed) quoting a packet
    /// of this flow, set by the pipeline.
    pub icmp_unreachable: u16,
    /// The TCP health analyzer's per-flow state.
    pub tcp_health: tcp_health::TcpHealthFlow,
    /// The latency analyzer's per-flow state.
    pub latency: latency::LatencyFlow,
    /// The bandwidth analyzer's per-flow state.
    pub bandwidth: bandwidth::BandwidthFlow,
    /// The homogeneity analyzer's per-flow state.
    pub homogeneity: homogeneity::HomogeneityFlow,
    /// The topology analyzer's per-flow state.
    pub topology: topology::TopologyFlow,
    /// The cost analyzer's per-flow state.
    pub cost: cost::CostFlow,
    /// The reliability analyzer's per-flow state.
    pub reliability: reliability::ReliabilityFlow,
    /// The security analyzer's per-flow state.
    pub security: security::SecurityFlow,
    /// The parsing buffers' bytes last counted against the run's budget for them.
    pub buffered: usize,
    /// What a source's own totals credited this flow with (a kernel probe's flows only).
    pub source: Option<Box<crate::pipeline::SourceCredit>>,
}

impl FlowExt {
    /// Heap bytes held for parsing the connection's content: the TLS handshake, HTTP heads
    /// and requests waiting for their responses.
    pub fn buffered_bytes(&self) -> usize {
        let http = match &self.app {
            AppState::Http(h) => h.buffered_bytes(),
            AppState::Dns(d) => d.buffered_bytes(),
            AppState::Ahead(a) => a.capacity(),
            _ => 0,
        };
        self.conn.buffered_bytes() + http
    }

    /// Frees what [`FlowExt::buffered_bytes`] counts; the connection's TLS handshake and HTTP
    /// exchanges are no longer followed.
    pub fn shed(&mut self) {
        self.conn.shed();
        match &mut self.app {
            AppState::Http(h) => h.shed(),
            AppState::Dns(d) => d.shed(),
            AppState::Ahead(_) => self.app = AppState::Other,
            _ => {}
        }
    }
}

/// Groups of findings an analyzer keeps waiting (for their key to go quiet) at once. A group is
/// reported once idle; on a capture whose clock does not move (or moves slowly while new keys
/// keep coming) the waiting groups are instead all reported when this many are held, so their
/// memory stays bounded and nothing is lost (a busy key may then be reported in more than one
/// finding). Counted in `stats.limits.*_reported_early`.
pub const MAX_PENDING_GROUPS: usize = 65_536;

/// Bytes a hash map takes for one entry of key `K` and value `V` at worst: the entry and its
/// control byte, at the map's 7/8 load, in a table rounded up to a power of two.
pub(crate) const fn map_entry_bytes<K, V>() -> usize {
    (std::mem::size_of::<(K, V)>() + 1) * 8 / 7 * 2
}

/// What the run-wide halves keep for one flow at most, by its id, until it ends: tcp_health's
/// groups, bandwidth's link bytes at its start, the administrators' HTTP tally of an external
/// connection (its Host name is shared with the flow's HTTP tracker). Counted with each flow
/// against `[flows] max_memory_mb`.
pub const fn run_bytes_per_flow() -> usize {
    tcp_health::SIDE_BYTES + bandwidth::START_BYTES + administrators::HTTP_BYTES
}

/// Whether a group of findings first seen at `first` and last at `last` is due at `now`
/// (`None`: the input has ended): quiet for more than `after`, or, with `max_age`
/// ([`crate::config::ReportSection::active_group_secs`]), first seen more than `max_age` ago
/// while still growing — a lasting failure is reported while it lasts (what follows starts a
/// new group) instead of once it stops.
pub(crate) fn due(
    now: Option<Timestamp>,
    (first, last): (Timestamp, Timestamp),
    after: crate::time::Nanos,
    max_age: Option<crate::time::Nanos>,
) -> bool {
    now.is_none_or(|n| n.since(last) > after || max_age.is_some_and(|m| n.since(first) > m))
}

/// Removes the groups of `map` [`due`] at `now` (all of them for `None`) and returns them
/// oldest first (by their first time, then key), so that reports come out in the same order on
/// every run. `times` gives a group's first and last time.
pub(crate) fn take_due<K, G>(
    map: &mut rustc_hash::FxHashMap<K, G>,
    now: Option<Timestamp>,
    (after, max_age): (crate::time::Nanos, Option<crate::time::Nanos>),
    times: impl Fn(&G) -> (Timestamp, Timestamp),
) -> Vec<(K, G)>
where
    K: Clone + Ord + std::hash::Hash,
{
    let mut due: Vec<(Timestamp, K)> = map
        .iter()
        .filter(|(_, g)| due(now, times(g), after, max_age))
        .map(|(k, g)| (times(g).0, k.clone()))
        .collect();
    due.sort_unstable();
    due.into_iter()
        .filter_map(|(_, k)| map.remove(&k).map(|g| (k, g)))
        .collect()
}

/// Clients (or other addresses) a finding lists at most; beyond, its evidence says the list
/// was cut (`clients_truncated`).
pub(crate) const MAX_CLIENTS_LISTED: usize = 16;

/// Adds `ip` to `list` unless it is there; when `list` already holds `max`, sets `more`
/// instead.
pub(crate) fn push_listed(
    list: &mut Vec<std::net::IpAddr>,
    more: &mut bool,
    ip: std::net::IpAddr,
    max: usize,
) {
    if !list.contains(&ip) {
        if list.len() < max {
            list.push(ip);
        } else {
            *more = true;
        }
    }
}

/// How many clients a message names: the listed count, "more than" it when the list was cut.
pub(crate) fn clients_count(listed: usize, more: bool) -> String {
    if more {
        format!("more than {listed}")
    } else {
        listed.to_string()
    }
}

/// Whom a message names as a finding's clients: "1 client (ADDRESS)", "N clients", "more
/// than N clients" when the list was cut.
pub(crate) fn clients_named(clients: &[std::net::IpAddr], more: bool) -> String {
    match clients {
        [one] if !more => format!("1 client ({one})"),
        _ => format!("{} clients", clients_count(clients.len(), more)),
    }
}

/// What a finding aggregates: its connections (or requests, queries), when, and from whom.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// The first and last time.
    pub first: Timestamp,
    pub last: Timestamp,
    /// How many.
    pub count: u64,
    /// The first client (address, port): the finding's source.
    pub client: (std::net::IpAddr, u16),
    /// The clients' addresses, first seen first, at most [`MAX_CLIENTS_LISTED`].
    pub clients: Vec<std::net::IpAddr>,
    /// More clients than those listed.
    pub more_clients: bool,
}

impl Seen {
    /// Nothing yet; `client` at `ts` stands for the group until an earlier one is merged in.
    pub fn new(client: (std::net::IpAddr, u16), ts: Timestamp) -> Seen {
        Seen {
            first: ts,
            last: ts,
            count: 0,
            client,
            clients: Vec::new(),
            more_clients: false,
        }
    }

    /// One more, from `client` at `ts`.
    pub fn note(&mut self, client: (std::net::IpAddr, u16), ts: Timestamp) {
        self.first = self.first.min(ts);
        self.last = self.last.max(ts);
        self.count += 1;
        push_listed(
            &mut self.clients,
            &mut self.more_clients,
            client.0,
            MAX_CLIENTS_LISTED,
        );
    }

    /// `other`'s too (its first client stands for both if it came first).
    pub fn merge(&mut self, other: &Seen) {
        if other.first < self.first {
            self.client = other.client;
        }
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        self.count += other.count;
        self.more_clients |= other.more_clients;
        for &ip in &other.clients {
            push_listed(
                &mut self.clients,
                &mut self.more_clients,
                ip,
                MAX_CLIENTS_LISTED,
            );
        }
    }
}

/// A flow as the analyzers see it.
pub type AFlow = Flow<FlowExt>;

/// Whether `ip` is one host's address: not a multicast group, the broadcast address or the
/// unspecified one (mDNS, SSDP, LLMNR, DHCP: everyone on the link, no party depended on and no
/// traffic that leaves the link).
pub(crate) fn one_host(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified()),
        std::net::IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
    }
}

/// Bytes of `flow` sent but not acknowledged, both ways together (in flight when a RST ended
/// it: the state stays as the RST left it).
pub(crate) fn unacked_bytes(flow: &AFlow) -> u64 {
    let t = &flow.tcp;
    [0usize, 1]
        .iter()
        .map(|&d| match (t.half[d].next_seq, t.half[1 - d].ack) {
            (Some(next), Some(acked)) => next.diff(acked).max(0) as u64,
            _ => 0,
        })
        .sum()
}

/// Whether an HTTP request of `flow` is waiting for its response (acknowledged or not: a
/// server that takes a request in and resets the connection failed it all the same).
pub(crate) fn request_pending(flow: &AFlow) -> bool {
    matches!(&flow.ext.app, AppState::Http(h) if h.unanswered().next().is_some())
}

/// How a TCP connection attempt that got no captured SYN/ACK ended, as far as the capture
/// shows. The one verdict every analyzer that counts failed attempts uses, so that they agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoSynAck {
    /// The server (or something on its behalf) answered the SYN with RST.
    Refused,
    /// The attempt was answered, but the capture missed the SYN/ACK (or the server's whole
    /// direction): the server sent other packets, or the client acknowledged something, which
    /// it does only once it has the SYN/ACK (see [`crate::flow::tcp::TcpConn::client_acked`]).
    NotCaptured,
    /// Nothing came back but ICMP destination unreachable.
    Unreachable,
    /// The capture ended less than [`ANSWER_DUE`] after the first SYN: cut off by its end,
    /// the outcome unknown. (A client retries after that long, so a retried SYN had waited;
    /// a SYN captured twice within it, a duplicated frame, had not.)
    OpenAtEnd,
    /// Nothing came back.
    Unanswered,
}

/// How long before the end of the capture an attempt or query still unanswered then must have
/// started for its missing answer to count: the initial retransmission timeout (RFC 6298,
/// Linux), after which a client sends its SYN again.
pub(crate) const ANSWER_DUE: crate::time::Nanos = crate::time::NANOS_PER_SEC;

/// An attempt whose SYN was retried twice at least this long after the first is known to be
/// unanswered before its flow ends.
const RETRIED: crate::time::Nanos = 2 * crate::time::NANOS_PER_SEC;

/// The verdict on `flow` if it is a TCP connection attempt (a SYN was seen) without a
/// captured SYN/ACK; `None` otherwise. `input_end`: when the capture ended, for a flow ended
/// with it (then an attempt younger than [`ANSWER_DUE`] is [`NoSynAck::OpenAtEnd`]).
pub(crate) fn no_synack(flow: &AFlow, input_end: Option<Timestamp>) -> Option<NoSynAck> {
    let t = &flow.tcp;
    if flow.key.proto != 6 || t.syn_ts.is_none() || t.synack_ts.is_some() {
        return None;
    }
    let client = flow.client_dir();
    Some(
        if t.reset_in == Some(crate::flow::tcp::Phase::SynSent) && t.reset_by != t.client_dir {
            NoSynAck::Refused
        } else if flow.packets[client.rev().idx()] > 0 || t.client_acked {
            NoSynAck::NotCaptured
        } else if flow.ext.icmp_unreachable > 0 {
            NoSynAck::Unreachable
        } else if input_end
            .is_some_and(|end| t.syn_ts.is_some_and(|syn| end.since(syn) < ANSWER_DUE))
        {
            NoSynAck::OpenAtEnd
        } else {
            NoSynAck::Unanswered
        },
    )
}

/// Whether `flow` is an attempt left half-open with proof: its server answered with a SYN/ACK
/// and sent it again (so the handshake's final ACK never reached it), nothing acknowledged it,
/// nothing reset it and nothing was carried. A SYN flood from spoofed addresses leaves these,
/// as do clients whose ACKs are lost on the way back. The connection-health analyzer reports
/// them per server (`tcp.handshake.half_open`); the SYN/ACK timer's waits are not reported
/// again as a stall of each connection. A SYN/ACK sent once and never acknowledged proves
/// nothing (the capture may have missed the ACK): counted only.
pub(crate) fn half_open_resent(flow: &AFlow) -> bool {
    let t = &flow.tcp;
    let cd = flow.client_dir();
    flow.key.proto == 6
        && t.syn_ts.is_some()
        && t.synack_ts.is_some()
        && t.established_ts.is_none()
        && t.reset_by.is_none()
        && t.half[cd.rev().idx()].syns >= 2
        && t.half[cd.idx()].payload_bytes == 0
        && t.half[cd.rev().idx()].payload_bytes == 0
}

/// Whether `flow`'s handshake failed with nothing carried either way: it never got its SYN/ACK
/// (refused or unanswered), or it was left half-open with proof ([`half_open_resent`]). Such a
/// failure is the connection-health analyzer's finding; its SYN or SYN/ACK retries are not
/// reported again as the connection's retransmissions. One that carried data had its SYN/ACK
/// missed by the capture: its loss is ours.
pub(crate) fn handshake_failed_empty(flow: &AFlow) -> bool {
    let t = &flow.tcp;
    let cd = flow.client_dir();
    let never_answered = t.syn_ts.is_some()
        && t.synack_ts.is_none()
        && t.half[cd.idx()].payload_bytes == 0
        && t.half[cd.rev().idx()].payload_bytes == 0;
    never_answered || half_open_resent(flow)
}

/// Whether `pkt` is the client's second SYN retry (or a later one), at least 2 s after its
/// first SYN, with nothing back yet: a failed attempt known before the flow ends (about 3 s
/// with Linux's 1 s initial RTO; duplicated frames of one SYN do not count).
pub(crate) fn unanswered_after_retries(pkt: &PacketView<'_>, flow: &AFlow) -> bool {
    pkt.tcp
        .is_some_and(|u| u.events.has(crate::flow::tcp::TcpEvents::SYN_RETRY))
        && pkt.dir == flow.client_dir()
        && flow.tcp.half[pkt.dir.idx()].syns >= 3
        && flow.tcp.syn_ts.is_some_and(|t| pkt.ts.since(t) >= RETRIED)
        && no_synack(flow, None) == Some(NoSynAck::Unanswered)
}

/// IP fragments that reach no flow (see [`crate::defrag`]): the fragments held for a
/// datagram given up without its first fragment, or one fragment that is not a first and
/// could not be held (its datagram already given up, the table full, cut by the snap length,
/// or not fitting with the others). Their ports are not known, but the wire carried them.
#[derive(Clone, Copy, Debug)]
pub struct FragmentBytes {
    /// When (the first of them) was captured.
    pub ts: Timestamp,
    /// The capture interface.
    pub interface: u32,
    /// The datagram's source address.
    pub src: std::net::IpAddr,
    /// Its destination address.
    pub dst: std::net::IpAddr,
    /// Its IP protocol.
    pub proto: u8,
    /// Their IP bytes (each one's IP header and payload).
    pub bytes: u64,
    /// How many fragments.
    pub packets: u64,
    /// The length on the wire of the Ethernet frame of one fragment (0: not known, or more
    /// than one fragment).
    pub frame_len: u32,
}

/// One packet as the analyzers see it.
#[derive(Clone, Copy, Debug)]
pub struct PacketView<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// The decoded packet.
    pub ip: &'a IpPacket<'a>,
    /// Direction within the flow.
    pub dir: Dir,
    /// What this segment changed in the TCP state (TCP only).
    pub tcp: Option<TcpUpdate>,
    /// The capture interface (link) it was seen on.
    pub interface: u32,
    /// Wire segments the frame stands for (>1: an offload super-packet a kernel source
    /// reported as such; its length says nothing about the path's MSS).
    pub segments: u16,
    /// The length on the wire of the Ethernet frame that carried it (its VLAN tags, and the
    /// outer headers of a tunnel it came in, included), or 0 when not known: another link
    /// type, a first fragment analyzed after it was held. For a datagram reassembled from
    /// fragments, its fragments' frames as one (each with the last one's link header, and
    /// the 24 bytes of FCS, preamble and gap between them).
    pub frame_len: u32,
    /// A first fragment analyzed alone after its datagram was given up (see
    /// [`crate::defrag`]): its capture time is up to 3 s behind the capture's clock, which is
    /// no step back of that clock.
    pub late: bool,
    /// The DNS message it carries (UDP port 53), parsed once for every analyzer. The run-wide
    /// halves get it (and each message of DNS over TCP) through [`Analyzer::on_dns`].
    pub dns: Option<&'a crate::proto::dns::Message>,
}

/// One DNS message as the run-wide halves see it: a UDP datagram's, or one of a TCP
/// connection's (RFC 7766), parsed once for every analyzer.
#[derive(Clone, Copy, Debug)]
pub struct DnsView<'a> {
    /// When it was sent: the datagram's capture time, or the time of the segment that
    /// completed the message.
    pub ts: Timestamp,
    /// Its sender (address, port).
    pub src: (std::net::IpAddr, u16),
    /// Its receiver.
    pub dst: (std::net::IpAddr, u16),
    /// The transport: 17 (UDP) or 6 (TCP).
    pub proto: u8,
    /// The message.
    pub msg: &'a crate::proto::dns::Message,
    /// Its A/AAAA answers (address, TTL) when it is a response with a question.
    pub answers: &'a [(std::net::IpAddr, u32)],
}

/// A named counter reported in the run summary under `stats.<name>`.
pub type Counter = (&'static str, u64);

/// A flow as an analyzer's run-wide half sees it at one packet or event: who talks to whom,
/// since when. (The flow itself lives where its per-flow half runs.)
#[derive(Clone, Copy, Debug)]
pub struct FlowInfo {
    /// The flow's id in this run.
    pub id: u64,
    /// The flow's key.
    pub key: crate::flow::FlowKey,
    /// Direction client → server.
    pub client_dir: Dir,
    /// The flow's first packet time.
    pub first_ts: Timestamp,
    /// The TCP handshake's round trip, once measured.
    pub initial_rtt: Option<crate::time::Nanos>,
}

impl FlowInfo {
    /// `flow` as it is now.
    pub fn of(flow: &AFlow) -> FlowInfo {
        FlowInfo {
            id: flow.id,
            key: flow.key,
            client_dir: flow.client_dir(),
            first_ts: flow.first_ts,
            initial_rtt: flow.tcp.initial_rtt(),
        }
    }

    /// Client address and port.
    pub fn client(&self) -> (std::net::IpAddr, u16) {
        self.key.src(self.client_dir)
    }

    /// Server address and port.
    pub fn server(&self) -> (std::net::IpAddr, u16) {
        self.key.dst(self.client_dir)
    }
}

/// What the analyzers' per-flow halves ([`FlowHalf`]) found about one packet for their
/// run-wide halves ([`Analyzer::on_packet`]): one field per analyzer that needs one, each
/// reset for every packet. Plain values only, so that it can be handed from the thread that
/// holds the flow to the one that holds the run's state.
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts {
    /// The TCP health analyzer's.
    pub tcp_health: tcp_health::Facts,
    /// The retries analyzer's.
    pub retries: retries::Facts,
    /// The bandwidth analyzer's.
    pub bandwidth: bandwidth::Facts,
    /// The homogeneity analyzer's.
    pub homogeneity: homogeneity::Facts,
    /// The topology analyzer's.
    pub topology: topology::Facts,
    /// The reliability analyzer's.
    pub reliability: reliability::Facts,
}

/// What a per-flow half found about a packet that is not a plain value (see [`Facts`]).
#[derive(Clone, Debug)]
pub enum Note {
    /// The client closed, or either side reset, while this HTTP request (its `uid`) waited
    /// for its response.
    Abandoned(u64),
    /// A TLS handshake took this long, from the ClientHello to the client's first
    /// application data; the server's name, when the ClientHello named it.
    TlsHandshake(crate::time::Nanos, Option<String>),
    /// A connection open for `[report] active_group_secs` carried credentials in clear: it
    /// joins its group while still open.
    Cleartext {
        /// Its protocol.
        protocol: crate::app::Protocol,
        /// The credentials seen so far ([`crate::app::Credentials`]).
        credentials: u32,
        /// Its bytes so far, both ways.
        bytes: u64,
        /// This packet's time.
        at: Timestamp,
    },
}

/// The per-flow half of an analyzer: what it does with one packet of a flow that needs the
/// flow's state and nothing of the run's. It reads and writes the flow (its own `FlowExt`
/// field), leaves what the run-wide half needs in [`Facts`], and may report findings that
/// only the flow decides. Immutable (its configuration only), so that the threads that hold
/// the flows can share it.
pub trait FlowHalf: Send + Sync {
    /// A packet of `flow` (state already updated), before [`Analyzer::on_packet`]. What does
    /// not fit in [`Facts`] goes in `notes`, which the run-wide halves get next
    /// ([`Analyzer::on_note`]).
    fn on_packet(
        &self,
        _pkt: &PacketView<'_>,
        _flow: &mut AFlow,
        _facts: &mut Facts,
        _notes: &mut Vec<Note>,
        _out: &mut Vec<Finding>,
    ) {
    }

    /// An ICMP error about a packet of `flow` (see [`Analyzer::on_icmp_error`]), before it.
    fn on_icmp_error(
        &self,
        _from: std::net::IpAddr,
        _msg: &crate::decode::IcmpMessage<'_>,
        _dir: Dir,
        _flow: &mut AFlow,
        _facts: &mut Facts,
    ) {
    }
}

/// Every analyzer's per-flow half, in the order of [`Analyzers`], called directly (no dynamic
/// dispatch on the per-packet path).
pub struct FlowHalves {
    tcp_health: tcp_health::Half,
    reliability: reliability::Half,
    retries: retries::Half,
    latency: latency::Half,
    bandwidth: bandwidth::Half,
    homogeneity: homogeneity::Half,
    topology: topology::Half,
    cost: cost::Half,
    security: security::Half,
}

impl FlowHalves {
    /// The halves of the analyzers [`Analyzers::new`] makes for `cfg`.
    pub fn new(cfg: &crate::config::Config) -> FlowHalves {
        FlowHalves {
            tcp_health: tcp_health::Half,
            reliability: reliability::Half::new(&cfg.reliability),
            retries: retries::Half,
            latency: latency::Half,
            bandwidth: bandwidth::Half,
            homogeneity: homogeneity::Half,
            topology: topology::Half,
            cost: cost::Half::new(cfg),
            security: security::Half::new(cfg.report.active_group_max()),
        }
    }

    /// [`FlowHalf::on_packet`] of each.
    pub fn on_packet(
        &self,
        pkt: &PacketView<'_>,
        flow: &mut AFlow,
        facts: &mut Facts,
        notes: &mut Vec<Note>,
        out: &mut Vec<Finding>,
    ) {
        self.tcp_health.on_packet(pkt, flow, facts, notes, out);
        self.reliability.on_packet(pkt, flow, facts, notes, out);
        self.retries.on_packet(pkt, flow, facts, notes, out);
        self.latency.on_packet(pkt, flow, facts, notes, out);
        self.bandwidth.on_packet(pkt, flow, facts, notes, out);
        self.homogeneity.on_packet(pkt, flow, facts, notes, out);
        self.topology.on_packet(pkt, flow, facts, notes, out);
        self.cost.on_packet(pkt, flow, facts, notes, out);
        self.security.on_packet(pkt, flow, facts, notes, out);
    }

    /// [`FlowHalf::on_icmp_error`] of each.
    pub fn on_icmp_error(
        &self,
        from: std::net::IpAddr,
        msg: &crate::decode::IcmpMessage<'_>,
        dir: Dir,
        flow: &mut AFlow,
        facts: &mut Facts,
    ) {
        self.homogeneity.on_icmp_error(from, msg, dir, flow, facts);
        self.topology.on_icmp_error(from, msg, dir, flow, facts);
    }
}

/// The analyzer stage boundary: an analyzer's run-wide half, which sees every packet in
/// capture order but a flow only through [`FlowInfo`] and what its [`FlowHalf`] found.
pub trait Analyzer {
    /// Stable short name.
    fn name(&self) -> &'static str;

    /// A packet of `flow`, after every per-flow half ran for it.
    fn on_packet(
        &mut self,
        _pkt: &PacketView<'_>,
        _flow: &FlowInfo,
        _facts: &Facts,
        _out: &mut Vec<Finding>,
    ) {
    }

    /// A note a per-flow half left about a packet of `flow`, after every `on_packet` for it
    /// and before its HTTP events.
    fn on_note(&mut self, _note: &Note, _flow: &FlowInfo, _out: &mut Vec<Finding>) {}

    /// A DNS message of `flow`: the datagram's, after `on_packet` for it (and its notes); or a
    /// whole message of a DNS-over-TCP connection, after `on_packet` for the segment that
    /// completed it (a segment is analyzed once, its messages one by one).
    fn on_dns(&mut self, _dns: &DnsView<'_>, _flow: &FlowInfo, _out: &mut Vec<Finding>) {}

    /// A DNS query (`id`, [`crate::proto::dns::question_key`]) sent on the TCP connection
    /// `flow` whose answer may have been in a gap of the capture of the server's direction:
    /// unless an answer is seen after it, its outcome is unknown.
    fn on_dns_lost(&mut self, _id: u16, _key: u64, _flow: &FlowInfo) {}

    /// Like [`Analyzer::on_dns_lost`] for every query waiting on DNS-over-TCP connection
    /// `flow`: more were sent on it than are followed one by one.
    fn on_dns_lost_untracked(&mut self, _flow: &FlowInfo) {}

    /// An application-layer event of `flow` (a complete HTTP request or response), delivered
    /// after `on_packet` for the segment that completed it, or before `on_flow_end`.
    fn on_http(&mut self, _ev: &HttpEvent, _flow: &FlowInfo, _out: &mut Vec<Finding>) {}

    /// An ICMP error sent by `from` about a packet of `flow` that travelled in `dir` (the
    /// quoted packet).
    #[allow(clippy::too_many_arguments)]
    fn on_icmp_error(
        &mut self,
        _ts: Timestamp,
        _from: std::net::IpAddr,
        _msg: &crate::decode::IcmpMessage<'_>,
        _dir: Dir,
        _flow: &FlowInfo,
        _facts: &Facts,
        _out: &mut Vec<Finding>,
    ) {
    }

    /// A datagram from `src` to `dst` (IP protocol `proto`) was given up because its
    /// fragments did not fit together: they overlapped with different bytes, or claimed more
    /// than a datagram holds (see [`crate::defrag`]).
    fn on_fragments_inconsistent(
        &mut self,
        _ts: Timestamp,
        _src: std::net::IpAddr,
        _dst: std::net::IpAddr,
        _proto: u8,
        _out: &mut Vec<Finding>,
    ) {
    }

    /// IP fragments that reach no flow were on the wire (see [`FragmentBytes`]).
    fn on_fragment_bytes(&mut self, _frags: &FragmentBytes, _out: &mut Vec<Finding>) {}

    /// `flow` has ended. It is mutable so that an analyzer can leave a verdict in its own
    /// `FlowExt` field for the analyzers after it (the order of [`Analyzers`]): `tcp_health` marks
    /// failed attempts it counted in a sweep, which `administrators` then leaves out.
    fn on_flow_end(&mut self, _flow: &mut AFlow, _reason: EndReason, _out: &mut Vec<Finding>) {}

    /// Capture time has advanced to `now`.
    fn on_tick(&mut self, _now: Timestamp, _out: &mut Vec<Finding>) {}

    /// The input has ended at capture time `now`; report everything still pending.
    fn finish(&mut self, _now: Timestamp, _out: &mut Vec<Finding>) {}

    /// Counters for the summary.
    fn stats(&self, _out: &mut Vec<Counter>) {}

    /// Structured additions to the summary's `stats` object (beyond the flat counters).
    fn summary(&self, _stats: &mut serde_json::Map<String, serde_json::Value>) {}

    /// Non-finding events decided since the last call (metric events), in order.
    fn drain_events(&mut self, _out: &mut Vec<serde_json::Value>) {}

    /// Adds what only this analyzer holds to the HTML report (after [`Analyzer::finish`];
    /// called only when a report was asked for).
    fn report(&mut self, _r: &mut crate::report::ReportData) {}
}

/// Every analyzer this build has, configured, in the order each sees an event: the ten
/// run-wide halves by their concrete types, so that the per-packet call
/// ([`Analyzers::on_packet`]) is direct and inlined rather than ten calls through a vtable;
/// then any added ([`Analyzers::push`]: the HTML report's recorder).
pub struct Analyzers {
    tcp_health: tcp_health::TcpHealth,
    reliability: reliability::Reliability,
    retries: retries::Retries,
    latency: latency::Latency,
    bandwidth: bandwidth::Bandwidth,
    security: security::Security,
    homogeneity: homogeneity::Homogeneity,
    topology: topology::Topology,
    administrators: administrators::Administrators,
    cost: cost::Cost,
    added: Vec<Box<dyn Analyzer>>,
}

impl Analyzers {
    /// Every analyzer, configured by `cfg`.
    pub fn new(cfg: &crate::config::Config) -> Analyzers {
        let active = cfg.report.active_group_max();
        Analyzers {
            tcp_health: tcp_health::TcpHealth::new(&cfg.tcp_health, active),
            reliability: reliability::Reliability::new(&cfg.reliability),
            retries: retries::Retries::new(&cfg.retries, active),
            latency: latency::Latency::new(&cfg.latency, cfg.retries.dns_timeout_secs),
            bandwidth: bandwidth::Bandwidth::new(&cfg.bandwidth),
            // What a connection is (cleartext, a protocol version) is no failure that lasts: a
            // group of those is reported once quiet, never again every `active_group_secs`;
            // only a connection with credentials in clear joins its group once that old (its
            // half).
            security: security::Security::new(&cfg.networks, cfg.tcp_health.report_after_idle_secs),
            homogeneity: homogeneity::Homogeneity::new(cfg.tcp_health.report_after_idle_secs),
            topology: topology::Topology::new(&cfg.topology, active),
            administrators: administrators::Administrators::new(cfg),
            cost: cost::Cost::new(cfg),
            added: Vec::new(),
        }
    }

    /// Adds `a` after every other analyzer.
    pub fn push(&mut self, a: Box<dyn Analyzer>) {
        self.added.push(a);
    }

    /// [`Analyzer::on_packet`] of each, in order.
    #[inline]
    pub fn on_packet(
        &mut self,
        pkt: &PacketView<'_>,
        flow: &FlowInfo,
        facts: &Facts,
        out: &mut Vec<Finding>,
    ) {
        self.tcp_health.on_packet(pkt, flow, facts, out);
        self.reliability.on_packet(pkt, flow, facts, out);
        self.retries.on_packet(pkt, flow, facts, out);
        self.latency.on_packet(pkt, flow, facts, out);
        self.bandwidth.on_packet(pkt, flow, facts, out);
        self.security.on_packet(pkt, flow, facts, out);
        self.homogeneity.on_packet(pkt, flow, facts, out);
        self.topology.on_packet(pkt, flow, facts, out);
        self.administrators.on_packet(pkt, flow, facts, out);
        self.cost.on_packet(pkt, flow, facts, out);
        for a in &mut self.added {
            a.on_packet(pkt, flow, facts, out);
        }
    }

    /// Each, in order, for every other event.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut dyn Analyzer> {
        let fixed: [&mut dyn Analyzer; 10] = [
            &mut self.tcp_health,
            &mut self.reliability,
            &mut self.retries,
            &mut self.latency,
            &mut self.bandwidth,
            &mut self.security,
            &mut self.homogeneity,
            &mut self.topology,
            &mut self.administrators,
            &mut self.cost,
        ];
        fixed
            .into_iter()
            .chain(self.added.iter_mut().map(|a| &mut **a as &mut dyn Analyzer))
    }

    /// Each, in order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Analyzer> {
        let fixed: [&dyn Analyzer; 10] = [
            &self.tcp_health,
            &self.reliability,
            &self.retries,
            &self.latency,
            &self.bandwidth,
            &self.security,
            &self.homogeneity,
            &self.topology,
            &self.administrators,
            &self.cost,
        ];
        fixed
            .into_iter()
            .chain(self.added.iter().map(|a| &**a as &dyn Analyzer))
    }
}
