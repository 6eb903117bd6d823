//! TCP connection health: did connections get established?
//!
//! Flags, per destination (server address and port), with the attempts aggregated so that a
//! crash-looping service is one finding and not thousands; at most [`MAX_GROUPS`] destinations
//! are tracked at once, and attempts to further ones (a scan, an address sweep) are counted in
//! one group per kind, reported without a destination but with sample destinations and counted
//! in `limits.tcp_destinations_merged`:
//! * `tcp.handshake.refused` — the server (or something on its behalf) answered a SYN with RST:
//!   nothing listens there any more (fallacy 5, topology doesn't change);
//! * `tcp.handshake.unanswered` — SYNs that got neither SYN/ACK nor RST until the connection
//!   was given up or the capture ended: a silent host, a black-holing firewall (fallacy 5);
//! * `tcp.connection.reset` — established connections aborted with RST before either side
//!   sent FIN (fallacy 1, the network is reliable), with who sent the RST (an endpoint, or
//!   something on the path in its name: a RST whose TTL differs from that endpoint's packets
//!   before it) and how many were
//!   aborted with data still unacknowledged (in flight: sent, not yet acknowledged); low when
//!   only clients reset them, with nothing in flight (they dropped idle connections);
//! * `tcp.handshake.half_open` — attempts answered by a SYN/ACK that the server resent and
//!   nothing acknowledged, reset or carried data on: a SYN flood from spoofed addresses, a SYN
//!   scan whose resets never left, or clients' ACKs lost on the way back (fallacy 1); never in
//!   a client's sweep.
//!
//! A SYN without SYN/ACK whose server sent other packets, or whose client acknowledged
//! something (the capture missed the SYN/ACK, or the server's whole direction: asymmetric
//! routing, a tap on one fibre) is counted as `synack_not_captured`, not reported; one answered by ICMP destination
//! unreachable is counted as `icmp_unreachable` and reported by the topology analyzer.
//!
//! RSTs after a FIN (some stacks close that way) are counted as `reset_after_fin`, not
//! reported.
//!
//! A client whose attempts fail against many distinct destinations (`sweep_destinations`, 64 by
//! default: a port scan, an address sweep, a client working through a long stale list of
//! endpoints), and fail more often than they complete a handshake from its first failure on
//! (not a gateway whose many clients behind NAT mostly connect), is one `tcp.sweep` finding
//! (fallacy 4, the network is secure): its later failed
//! attempts go there instead of to per-destination groups, and the per-destination groups
//! still waiting that only it filled are counted there too (`tcp.sweeps.groups_folded`), so
//! every failed attempt is in exactly one finding. At most
//! [`MAX_SWEEP_CLIENTS`] clients with failures are watched at once (`limits.sweep_clients_untracked`
//! counts attempts of further ones, which are grouped per destination as usual), and sweeps
//! count distinct hosts exactly up to 65,536 each and 1,048,576 together (beyond: "more than").
//!
//! Evidence: attempts, SYN packets, distinct clients (up to 16 listed), first and last time.
//! A group is reported once it has had no new event for `report_after_idle_secs` of capture
//! time, and at the end of the input.
//!
//! Deliberately not flagged: connections picked up mid-stream (no handshake seen), RSTs after
//! both FINs (normal teardown by some stacks), a SYN/ACK sent once without the final ACK
//! (counted as `half_open` only: the capture point may simply have missed it), and a SYN/ACK answered by
//! a RST instead (counted as `reset_after_synack`: a client that gave up, a SYN scan).

use super::{
    AFlow, Analyzer, Counter, Facts as AllFacts, FlowHalf, FlowInfo, MAX_CLIENTS_LISTED, NoSynAck,
    PacketView, no_synack, push_listed, unanswered_after_retries,
};
use crate::config::TcpHealthSection;
use crate::finding::{Fallacy, Finding, FlowRef, Severity};
use crate::flow::tcp::{Phase, TcpEvents};
use crate::flow::{Dir, EndReason};
use crate::time::{NANOS_PER_SEC, Nanos, Timestamp};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::net::IpAddr;

/// Destinations tracked one by one at once; attempts to further ones (a scan, a sweep) are
/// counted together in one group per kind, reported as such.
pub const MAX_GROUPS: usize = 10_000;
/// The key of that shared group.
const OVERFLOW: (IpAddr, u16) = (IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);
const MAX_DESTINATIONS_LISTED: usize = 16;
const MAX_FLOWS_LISTED: usize = 5;
/// Clients with failed attempts watched at once for sweeps.
pub const MAX_SWEEP_CLIENTS: usize = 10_000;
/// Distinct hosts counted exactly per sweeping client (beyond: "more than").
const MAX_SWEEP_HOSTS: usize = 65_536;
/// … and over all sweeps held at once (about 40 MB).
const MAX_SWEEP_HOSTS_TOTAL: usize = 1 << 20;

/// One client's failed attempts (refused or unanswered), to tell a sweep from ordinary failures.
#[derive(Debug)]
struct ClientFailures {
    /// Distinguishes this record from a later one for the same client (after it was reported).
    id: u64,
    first_ts: Timestamp,
    last_ts: Timestamp,
    /// When its newest failure became known (see [`Group::noted`]).
    noted: Timestamp,
    /// Distinct destinations so far, until there are `sweep_destinations` of them.
    destinations: Vec<(IpAddr, u16)>,
    /// Failed attempts and completed handshakes of this client since its first failure: a
    /// sweep's attempts mostly fail; a gateway's many clients (NAT) mostly connect.
    failed: u64,
    completed: u64,
    /// Failed attempts counted in the sweep: from the one that made it a sweep on, plus those
    /// of its per-destination groups folded into it.
    refused: u64,
    unanswered: u64,
    syn_packets: u64,
    /// Set once the client reached `sweep_destinations`: counted from then on.
    sweep: Option<Box<SweepTally>>,
}

/// What a sweeping client's failed attempts reached.
#[derive(Debug)]
struct SweepTally {
    hosts: rustc_hash::FxHashSet<IpAddr>,
    hosts_truncated: bool,
    /// Destination ports seen, one bit each.
    ports: Box<[u64; 1024]>,
    samples: Vec<(IpAddr, u16)>,
    community_ids: Vec<String>,
}

impl SweepTally {
    /// `held`: hosts held by all sweeps, raised for a new one.
    fn add_destination(&mut self, d: (IpAddr, u16), held: &mut usize) {
        if !self.hosts.contains(&d.0) {
            if self.hosts.len() < MAX_SWEEP_HOSTS && *held < MAX_SWEEP_HOSTS_TOTAL {
                self.hosts.insert(d.0);
                *held += 1;
            } else {
                self.hosts_truncated = true;
            }
        }
        self.ports[usize::from(d.1 >> 6)] |= 1 << (d.1 & 63);
        if self.samples.len() < MAX_DESTINATIONS_LISTED && !self.samples.contains(&d) {
            self.samples.push(d);
        }
    }

    fn ports(&self) -> u32 {
        self.ports.iter().map(|w| w.count_ones()).sum()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Refused,
    Unanswered,
    Reset,
    HalfOpen,
}

impl Kind {
    fn rule(self) -> &'static str {
        match self {
            Kind::Refused => "tcp.handshake.refused",
            Kind::Unanswered => "tcp.handshake.unanswered",
            Kind::Reset => "tcp.connection.reset",
            Kind::HalfOpen => "tcp.handshake.half_open",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct GroupKey {
    kind: Kind,
    server: (IpAddr, u16),
}

#[derive(Debug)]
struct Group {
    /// Distinguishes this group from a later one for the same key (after it was reported).
    id: u64,
    first_ts: Timestamp,
    last_ts: Timestamp,
    /// When its newest connection became known as failed: an unanswered attempt is known only
    /// when its flow ends, `closed_linger_secs` after its last SYN. The group is quiet from
    /// there, so attempts a few seconds apart are one group however late each is known.
    noted: Timestamp,
    connections: u64,
    syn_packets: u64,
    /// Half-open attempts: the server's SYN/ACKs.
    synack_packets: u64,
    reset_by_server: u64,
    reset_by_client: u64,
    /// Resets sent in an endpoint's name by something on the path (see
    /// [`Facts::path_reset_ttls`]), and the TTLs of the first.
    reset_by_path: u64,
    path_reset_ttls: Option<(u8, u8)>,
    first_client: (IpAddr, u16),
    with_unacked_data: u64,
    unacked_bytes: u64,
    /// Connections reset with an HTTP request still waiting for its response.
    with_request_pending: u64,
    clients: Vec<IpAddr>,
    more_clients: bool,
    community_ids: Vec<String>,
    /// The overflow group only: some of its destinations.
    destinations: Vec<(IpAddr, u16)>,
}

#[derive(Serialize)]
struct SweepEvidence<'a> {
    client: IpAddr,
    connections: u64,
    refused: u64,
    unanswered: u64,
    syn_packets: u64,
    distinct_hosts: usize,
    distinct_hosts_truncated: bool,
    distinct_ports: u32,
    sample_destinations: Vec<String>,
    first_seen: String,
    last_seen: String,
    duration_secs: f64,
    community_ids: &'a [String],
}

#[derive(Serialize)]
struct Evidence<'a> {
    connections: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    syn_packets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    synack_packets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reset_by_server: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reset_by_client: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reset_by_path: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_reset_ttls: Option<[u8; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aborted_with_unacked_data: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unacked_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aborted_with_request_pending: Option<u64>,
    clients: &'a [IpAddr],
    clients_truncated: bool,
    first_seen: String,
    last_seen: String,
    duration_secs: f64,
    community_ids: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    sample_destinations: Option<Vec<String>>,
}

/// The TCP connection health analyzer.
pub struct TcpHealth {
    /// Capture time of the last tick: about when a flow's end is seen.
    clock: Timestamp,
    report_after: Nanos,
    /// See [`super::due`].
    active_max: Option<Nanos>,
    groups: FxHashMap<GroupKey, Group>,
    completed: u64,
    refused: u64,
    unanswered: u64,
    half_open: u64,
    /// Attempts answered by a SYN/ACK and then reset instead of completed.
    reset_after_synack: u64,
    synack_not_captured: u64,
    /// Attempts without an answer cut off by the end of the capture (see [`super::ANSWER_DUE`]).
    open_at_end: u64,
    icmp_unreachable: u64,
    midstream: u64,
    aborted: u64,
    reset_after_fin: u64,
    rst_segments: u64,
    refusals_withdrawn: u64,
    unanswered_withdrawn: u64,
    next_group: u64,
    /// Attempts counted in the shared group because [`MAX_GROUPS`] destinations were tracked.
    overflowed: u64,
    /// Distinct failed destinations that make a client a sweeper (0: never).
    sweep_destinations: usize,
    failures: FxHashMap<IpAddr, ClientFailures>,
    sweeps_reported: u64,
    groups_folded: u64,
    sweep_clients_untracked: u64,
    /// Distinct hosts held by all sweeps.
    sweep_hosts_held: usize,
    /// Connections counted as failed, by flow id, until they end.
    side: FxHashMap<u64, Side>,
}

/// The TCP health analyzer's per-flow state.
#[derive(Debug, Default)]
pub struct TcpHealthFlow {
    /// Counted as unanswered after its SYN retries (before the flow ended).
    unanswered_counted: bool,
    /// The client's SYNs at that moment.
    syns_counted: u32,
    /// Its failed attempt is counted in its client's sweep (`tcp.sweep`), not per destination
    /// (set when it ends).
    swept: bool,
}

impl TcpHealthFlow {
    /// Whether this connection's failed attempt is counted in a `tcp.sweep` finding.
    pub fn swept(&self) -> bool {
        self.swept
    }
}

/// What the TCP health analyzer's per-flow half found about one packet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts {
    /// What became of the connection's early "unanswered" verdict.
    unanswered: Step,
    /// The client's SYNs so far.
    client_syns: u32,
    /// This packet is the connection's first RST.
    first_rst: bool,
    /// No handshake showed which side is the client.
    client_unknown: bool,
    /// Bytes sent but not acknowledged (at a RST).
    unacked_bytes: u64,
    /// An HTTP request waits for its response (at a RST).
    request_pending: bool,
    /// The first RST of an established connection came from the path, not from the endpoint
    /// it claims: (that endpoint's TTL, the reset's); see `TcpConn::path_reset_ttls`.
    path_reset_ttls: Option<(u8, u8)>,
}

/// A change to a connection's early "unanswered" verdict (see [`unanswered_after_retries`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Step {
    #[default]
    None,
    /// Counted now.
    Count,
    /// Counted before; one more SYN retry.
    Extend,
    /// Counted before, answered after all.
    Withdraw,
}

/// The TCP health analyzer's per-flow half.
pub(crate) struct Half;

impl FlowHalf for Half {
    fn on_packet(
        &self,
        pkt: &PacketView<'_>,
        flow: &mut AFlow,
        facts: &mut AllFacts,
        _notes: &mut Vec<super::Note>,
        _out: &mut Vec<Finding>,
    ) {
        let Some(u) = pkt.tcp else { return };
        let f = &mut facts.tcp_health;
        f.client_syns = flow.tcp.half[flow.client_dir().idx()].syns.into();
        // Unanswered is known after the second SYN retry, without waiting for the flow to end;
        // withdrawn if an answer still comes before the group is reported.
        let counted = flow.ext.tcp_health.unanswered_counted;
        if counted && no_synack(flow, None) != Some(NoSynAck::Unanswered) {
            flow.ext.tcp_health.unanswered_counted = false;
            f.unanswered = Step::Withdraw;
        } else if counted && u.events.has(TcpEvents::SYN_RETRY) && pkt.dir == flow.client_dir() {
            flow.ext.tcp_health.syns_counted += 1;
            f.unanswered = Step::Extend;
        } else if !counted && unanswered_after_retries(pkt, flow) {
            flow.ext.tcp_health.unanswered_counted = true;
            flow.ext.tcp_health.syns_counted = flow.tcp.half[pkt.dir.idx()].syns.into();
            f.unanswered = Step::Count;
        }
        if u.events.has(TcpEvents::RST) {
            f.first_rst = flow.tcp.reset_by == Some(pkt.dir);
            f.client_unknown = flow.tcp.client_dir.is_none();
            if f.first_rst && u.before == Phase::Established {
                f.unacked_bytes = super::unacked_bytes(flow);
                f.request_pending = super::request_pending(flow);
                f.path_reset_ttls = flow.tcp.path_reset_ttls();
            }
        }
    }
}

/// A connection as the run-wide half counts it: who, and the client's SYNs at that moment.
struct Conn {
    info: FlowInfo,
    syns: u32,
}

impl Conn {
    fn client(&self) -> (IpAddr, u16) {
        self.info.client()
    }

    fn server(&self) -> (IpAddr, u16) {
        self.info.server()
    }
}

/// What the run-wide half keeps about a connection it counted as failed: the groups it is
/// counted in, to withdraw it from them if it is answered after all.
#[derive(Clone, Copy, Debug, Default)]
struct Side {
    unanswered_group: u64,
    refusal_group: u64,
    swept: bool,
}

/// What [`TcpHealth::side`] takes for one flow at most.
pub(crate) const SIDE_BYTES: usize = super::map_entry_bytes::<u64, Side>();

impl TcpHealth {
    /// A new analyzer with its configuration.
    pub fn new(cfg: &TcpHealthSection, active_max: Option<Nanos>) -> Self {
        TcpHealth {
            clock: Timestamp::default(),
            report_after: (cfg.report_after_idle_secs * NANOS_PER_SEC as f64) as Nanos,
            active_max,
            groups: FxHashMap::default(),
            completed: 0,
            refused: 0,
            unanswered: 0,
            half_open: 0,
            reset_after_synack: 0,
            synack_not_captured: 0,
            open_at_end: 0,
            icmp_unreachable: 0,
            midstream: 0,
            aborted: 0,
            reset_after_fin: 0,
            rst_segments: 0,
            refusals_withdrawn: 0,
            unanswered_withdrawn: 0,
            next_group: 0,
            overflowed: 0,
            sweep_destinations: cfg.sweep_destinations,
            failures: FxHashMap::default(),
            sweeps_reported: 0,
            groups_folded: 0,
            sweep_clients_untracked: 0,
            sweep_hosts_held: 0,
            side: FxHashMap::default(),
        }
    }

    /// Notes a failed attempt of `flow`'s client. When that client is sweeping (this attempt
    /// included), the attempt is counted in its sweep and the sweep's id is returned: it goes to
    /// no per-destination group.
    fn note_failure(&mut self, kind: Kind, flow: &Conn, ts: Timestamp) -> Option<u64> {
        // (A half-open attempt is no failure of its client's: in a SYN flood the clients are
        // spoofed addresses.)
        if self.sweep_destinations == 0 || matches!(kind, Kind::Reset | Kind::HalfOpen) {
            return None;
        }
        let client = flow.client();
        let server = flow.server();
        if !self.failures.contains_key(&client.0) && self.failures.len() >= MAX_SWEEP_CLIENTS {
            self.sweep_clients_untracked += 1;
            return None;
        }
        let threshold = self.sweep_destinations;
        // Its own id: never one a group has.
        self.next_group += 1;
        let id = self.next_group;
        let r = self
            .failures
            .entry(client.0)
            .or_insert_with(|| ClientFailures {
                id,
                first_ts: ts,
                last_ts: ts,
                noted: ts,
                destinations: Vec::new(),
                failed: 0,
                completed: 0,
                refused: 0,
                unanswered: 0,
                syn_packets: 0,
                sweep: None,
            });
        r.first_ts = r.first_ts.min(ts);
        r.last_ts = r.last_ts.max(ts);
        r.noted = r.noted.max(ts).max(self.clock);
        r.failed += 1;
        if r.sweep.is_none() {
            if r.destinations.len() < threshold && !r.destinations.contains(&server) {
                r.destinations.push(server);
            }
            // Enough destinations, and more failures than connections made: a sweep.
            if r.destinations.len() < threshold || r.completed >= r.failed {
                return None;
            }
            let mut t = Box::new(SweepTally {
                hosts: rustc_hash::FxHashSet::default(),
                hosts_truncated: false,
                ports: Box::new([0; 1024]),
                samples: Vec::new(),
                community_ids: Vec::new(),
            });
            for d in std::mem::take(&mut r.destinations) {
                t.add_destination(d, &mut self.sweep_hosts_held);
            }
            r.sweep = Some(t);
        }
        let t = r.sweep.as_mut()?;
        t.add_destination(server, &mut self.sweep_hosts_held);
        match kind {
            Kind::Refused => r.refused += 1,
            _ => r.unanswered += 1,
        }
        r.syn_packets += u64::from(flow.syns);
        if t.community_ids.len() < MAX_FLOWS_LISTED {
            t.community_ids
                .push(FlowRef::new(client, server, 6).community_id);
        }
        Some(r.id)
    }

    /// Folds group `g` into its client's sweep when that one client is sweeping: its attempts
    /// are then counted (and reported) there. Whether it did.
    fn fold_into_sweep(&mut self, kind: Kind, g: &Group) -> bool {
        let [client] = g.clients[..] else {
            return false;
        };
        let Some(r) = self
            .failures
            .get_mut(&client)
            .filter(|r| r.sweep.is_some() && !matches!(kind, Kind::Reset | Kind::HalfOpen))
        else {
            return false;
        };
        match kind {
            Kind::Refused => r.refused += g.connections,
            _ => r.unanswered += g.connections,
        }
        r.syn_packets += g.syn_packets;
        r.first_ts = r.first_ts.min(g.first_ts);
        true
    }

    fn report_sweep(client: IpAddr, r: &ClientFailures, t: &SweepTally) -> Finding {
        let span = r.last_ts.since(r.first_ts) as f64 / NANOS_PER_SEC as f64;
        let connections = r.refused + r.unanswered;
        let hosts = t.hosts.len();
        let more = if t.hosts_truncated { "more than " } else { "" };
        let ports = t.ports();
        let shape = if hosts == 1 && ports > 1 {
            "a port scan of one host"
        } else if ports == 1 {
            "an address sweep on one port"
        } else {
            "a scan"
        };
        let ev = SweepEvidence {
            client,
            connections,
            refused: r.refused,
            unanswered: r.unanswered,
            syn_packets: r.syn_packets,
            distinct_hosts: hosts,
            distinct_hosts_truncated: t.hosts_truncated,
            distinct_ports: ports,
            sample_destinations: t
                .samples
                .iter()
                .map(|d| std::net::SocketAddr::new(d.0, d.1).to_string())
                .collect(),
            first_seen: r.first_ts.rfc3339_micros(),
            last_seen: r.last_ts.rfc3339_micros(),
            duration_secs: span,
            community_ids: &t.community_ids,
        };
        Finding {
            ts: r.first_ts,
            rule: "tcp.sweep",
            severity: Severity::Medium,
            fallacy: Fallacy::NetworkIsSecure,
            message: format!(
                "{client} failed {connections} connection attempt(s) ({} refused, {} unanswered) against {more}{hosts} host(s) and {ports} port(s) over {span:.1} s: {shape}, or a client working through a stale list of endpoints",
                r.refused, r.unanswered
            ),
            flow: None,
            evidence: Finding::evidence_from(&ev),
        }
    }

    /// Adds `flow` to its group (or its client's sweep); returns the group's (or sweep's) id and
    /// the group's key (`None`: it went to the sweep).
    fn record(
        &mut self,
        kind: Kind,
        flow: &Conn,
        ts: Timestamp,
        reset_dir: Option<Dir>,
    ) -> (u64, Option<GroupKey>) {
        self.next_group += 1;
        let next_id = self.next_group;
        let clock = self.clock;
        if let Some(id) = self.note_failure(kind, flow, ts) {
            return (id, None);
        }
        let client = flow.client();
        let server = flow.server();
        let mut key = GroupKey { kind, server };
        if self.groups.len() >= MAX_GROUPS && !self.groups.contains_key(&key) {
            key.server = OVERFLOW;
            self.overflowed += 1;
        }
        let g = self.groups.entry(key).or_insert_with(|| Group {
            id: next_id,
            first_ts: ts,
            last_ts: ts,
            noted: ts,
            connections: 0,
            syn_packets: 0,
            synack_packets: 0,
            reset_by_server: 0,
            reset_by_client: 0,
            reset_by_path: 0,
            path_reset_ttls: None,
            first_client: client,
            with_unacked_data: 0,
            with_request_pending: 0,
            unacked_bytes: 0,
            clients: Vec::new(),
            more_clients: false,
            community_ids: Vec::new(),
            destinations: Vec::new(),
        });
        if key.server == OVERFLOW
            && g.destinations.len() < MAX_DESTINATIONS_LISTED
            && !g.destinations.contains(&server)
        {
            g.destinations.push(server);
        }
        g.first_ts = g.first_ts.min(ts);
        g.last_ts = g.last_ts.max(ts);
        g.noted = g.noted.max(ts).max(clock);
        g.connections += 1;
        g.syn_packets += u64::from(flow.syns);
        match reset_dir {
            Some(d) if d == flow.info.client_dir => g.reset_by_client += 1,
            Some(_) => g.reset_by_server += 1,
            None => {}
        }
        push_listed(
            &mut g.clients,
            &mut g.more_clients,
            client.0,
            MAX_CLIENTS_LISTED,
        );
        if g.community_ids.len() < MAX_FLOWS_LISTED {
            g.community_ids
                .push(FlowRef::new(client, server, 6).community_id);
        }
        (g.id, Some(key))
    }

    /// Counts half-open attempt `flow` (see [`super::half_open_resent`]) in its server's group:
    /// active from its SYN to its last SYN/ACK.
    fn record_half_open(&mut self, conn: &Conn, flow: &AFlow) {
        if let (_, Some(key)) = self.record(Kind::HalfOpen, conn, flow.first_ts, None) {
            let clock = self.clock;
            let g = self.groups.get_mut(&key).expect("just recorded");
            g.last_ts = g.last_ts.max(flow.last_ts);
            g.noted = g.noted.max(flow.last_ts).max(clock);
            g.synack_packets += u64::from(flow.tcp.half[flow.client_dir().rev().idx()].syns);
        }
    }

    /// The key of waiting group `id` of `kind` that a connection to `server` was counted in:
    /// the server's own, or the shared one of destinations beyond the cap. `None` once that
    /// group was reported (or when the connection went to its client's sweep).
    fn group_key(&self, kind: Kind, server: (IpAddr, u16), id: u64) -> Option<GroupKey> {
        [server, OVERFLOW]
            .into_iter()
            .map(|server| GroupKey { kind, server })
            .find(|k| self.groups.get(k).is_some_and(|g| g.id == id))
    }

    /// An unanswered connection counted in group (or sweep) `id` was still active at `ts` and
    /// sent `syns` more SYNs: keeps that group open and counts them, if it is still waiting.
    fn extend(&mut self, flow: &Conn, id: u64, ts: Timestamp, syns: u64) {
        if let Some(key) = self.group_key(Kind::Unanswered, flow.server(), id) {
            let clock = self.clock;
            let g = self.groups.get_mut(&key).expect("found above");
            g.last_ts = g.last_ts.max(ts);
            g.noted = g.noted.max(ts).max(clock);
            g.syn_packets += syns;
            return;
        }
        let clock = self.clock;
        if let Some(r) = self
            .failures
            .get_mut(&flow.client().0)
            .filter(|r| r.id == id)
        {
            r.last_ts = r.last_ts.max(ts);
            r.noted = r.noted.max(ts).max(clock);
            r.syn_packets += syns;
        }
    }

    /// Takes a connection back out of its group `id`, if that group is still waiting to be
    /// reported (a reported finding stands, and so does its count). Whether it did.
    fn withdraw(&mut self, kind: Kind, flow: &Conn, id: u64) -> bool {
        let Some(key) = self.group_key(kind, flow.server(), id) else {
            // Counted in its client's sweep?
            let Some(r) = self
                .failures
                .get_mut(&flow.client().0)
                .filter(|r| r.id == id && r.sweep.is_some())
            else {
                return false;
            };
            match kind {
                Kind::Refused => r.refused = r.refused.saturating_sub(1),
                _ => r.unanswered = r.unanswered.saturating_sub(1),
            }
            r.syn_packets = r.syn_packets.saturating_sub(u64::from(flow.syns));
            return true;
        };
        let g = self.groups.get_mut(&key).expect("found above");
        g.connections = g.connections.saturating_sub(1);
        g.syn_packets = g.syn_packets.saturating_sub(u64::from(flow.syns));
        if g.connections == 0 {
            self.groups.remove(&key);
        }
        true
    }

    fn report(key: GroupKey, g: Group) -> Finding {
        let (ip, port) = key.server;
        let clients_text = super::clients_named(&g.clients, g.more_clients);
        let span = g.last_ts.since(g.first_ts) as f64 / NANOS_PER_SEC as f64;
        let overflow = key.server == OVERFLOW;
        let samples: Vec<String> = g
            .destinations
            .iter()
            .map(|d| std::net::SocketAddr::new(d.0, d.1).to_string())
            .collect();
        let (severity, fallacy, message) = match key.kind {
            _ if overflow => (
                match key.kind {
                    Kind::Unanswered => Severity::High,
                    _ => Severity::Medium,
                },
                match key.kind {
                    Kind::Reset | Kind::HalfOpen => Fallacy::NetworkIsReliable,
                    _ => Fallacy::TopologyDoesntChange,
                },
                format!(
                    "{} more connection attempt(s) from {clients_text} over {span:.1} s {} at destinations beyond the {MAX_GROUPS} tracked one by one (a scan or a sweep?), e.g. {}",
                    g.connections,
                    match key.kind {
                        Kind::Refused => "were refused",
                        Kind::Unanswered => "got no answer",
                        Kind::Reset => "were reset",
                        Kind::HalfOpen =>
                            "were left half-open (SYN/ACK resent, never acknowledged)",
                    },
                    samples
                        .iter()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Kind::Refused => (
                Severity::Medium,
                Fallacy::TopologyDoesntChange,
                format!(
                    "{ip}:{port} refused {} connection attempt(s) from {clients_text} (RST in reply to SYN) over {span:.1} s: nothing is listening there",
                    g.connections
                ),
            ),
            Kind::Unanswered => (
                Severity::High,
                Fallacy::TopologyDoesntChange,
                format!(
                    "{ip}:{port} never answered {} connection attempt(s) ({} SYNs) from {clients_text} over {span:.1} s: host gone or traffic black-holed",
                    g.connections, g.syn_packets
                ),
            ),
            Kind::HalfOpen => (
                Severity::Medium,
                Fallacy::NetworkIsReliable,
                format!(
                    "{ip}:{port} answered {} connection attempt(s) from {clients_text} with a SYN/ACK ({} sent: resent for want of an answer) that nothing acknowledged, over {span:.1} s: a SYN flood from spoofed addresses, a SYN scan whose resets never left, or the clients' ACKs lost on the way back",
                    g.connections, g.synack_packets
                ),
            ),
            // Clients closing their own connections with RST, nothing in flight either way (a
            // browser or a pool dropping idle connections), chose to: worth knowing, no loss.
            Kind::Reset
                if g.reset_by_server == 0
                    && g.reset_by_path == 0
                    && g.with_unacked_data == 0
                    && g.with_request_pending == 0 =>
            {
                (
                    Severity::Low,
                    Fallacy::NetworkIsReliable,
                    format!(
                        "{} established connection(s) to {ip}:{port} were aborted by the client's RST with no data in flight and no request waiting, from {clients_text} over {span:.1} s: the client dropped them (an application's choice, not a loss)",
                        g.connections,
                    ),
                )
            }
            Kind::Reset => (
                Severity::Medium,
                Fallacy::NetworkIsReliable,
                format!(
                    "{} established connection(s) to {ip}:{port} were aborted by RST ({} by the server, {} by the client{}; {} with data still unacknowledged, {} bytes) from {clients_text} over {span:.1} s",
                    g.connections,
                    g.reset_by_server,
                    g.reset_by_client,
                    g.path_reset_ttls
                        .map(|(h, r)| format!(
                            ", {} by something on the path in an endpoint's name (TTL {r} on the reset, {h} on that endpoint's own packets before it: a firewall or load balancer that dropped the connection's state, an injected reset, or a route that changed just before)",
                            g.reset_by_path
                        ))
                        .unwrap_or_default(),
                    g.with_unacked_data,
                    g.unacked_bytes
                ),
            ),
        };
        let ev = Evidence {
            connections: g.connections,
            syn_packets: (key.kind != Kind::Reset).then_some(g.syn_packets),
            synack_packets: (key.kind == Kind::HalfOpen).then_some(g.synack_packets),
            reset_by_server: (key.kind == Kind::Reset).then_some(g.reset_by_server),
            reset_by_client: (key.kind == Kind::Reset).then_some(g.reset_by_client),
            reset_by_path: (key.kind == Kind::Reset).then_some(g.reset_by_path),
            path_reset_ttls: g.path_reset_ttls.map(|(h, r)| [h, r]),
            aborted_with_unacked_data: (key.kind == Kind::Reset).then_some(g.with_unacked_data),
            aborted_with_request_pending: (key.kind == Kind::Reset)
                .then_some(g.with_request_pending),
            unacked_bytes: (key.kind == Kind::Reset).then_some(g.unacked_bytes),
            clients: &g.clients,
            clients_truncated: g.more_clients,
            first_seen: g.first_ts.rfc3339_micros(),
            last_seen: g.last_ts.rfc3339_micros(),
            duration_secs: span,
            community_ids: &g.community_ids,
            sample_destinations: overflow.then_some(samples),
        };
        Finding {
            ts: g.first_ts,
            rule: key.kind.rule(),
            severity,
            fallacy,
            message,
            flow: (!overflow).then(|| FlowRef::new(g.first_client, key.server, 6)),
            evidence: Finding::evidence_from(&ev),
        }
    }

    fn flush(&mut self, now: Option<Timestamp>, out: &mut Vec<Finding>) {
        let after = (self.report_after, self.active_max);
        let due = super::take_due(&mut self.groups, now, after, |g| (g.first_ts, g.noted));
        for (k, g) in due {
            if self.fold_into_sweep(k.kind, &g) {
                self.groups_folded += 1;
            } else {
                out.push(Self::report(k, g));
            }
        }
        self.flush_sweeps(now, out);
    }

    /// Reports the sweeps quiet for `report_after` (all of them at `None`, the end) and forgets
    /// the other clients' quiet failures. After the groups, which a sweep may cover.
    fn flush_sweeps(&mut self, now: Option<Timestamp>, out: &mut Vec<Finding>) {
        let times = |r: &ClientFailures| (r.first_ts, r.noted);
        let mut due = super::take_due(&mut self.failures, now, (self.report_after, None), times);
        // A client's failures make a sweep only once they reach `sweep_destinations` without
        // a pause: only a sweep already recognised is due by age (`active_group_secs`).
        if let (Some(n), Some(_)) = (now, self.active_max) {
            let (after, max) = (self.report_after, self.active_max);
            let old: Vec<IpAddr> = self
                .failures
                .iter()
                .filter(|(_, r)| r.sweep.is_some() && super::due(Some(n), times(r), after, max))
                .map(|(c, _)| *c)
                .collect();
            due.extend(
                old.into_iter()
                    .filter_map(|c| self.failures.remove(&c).map(|r| (c, r))),
            );
            due.sort_unstable_by_key(|(c, r)| (r.first_ts, *c));
        }
        for (c, r) in due {
            if let Some(t) = &r.sweep {
                self.sweep_hosts_held -= t.hosts.len();
                self.sweeps_reported += 1;
                out.push(Self::report_sweep(c, &r, t));
            }
        }
    }
}

impl Analyzer for TcpHealth {
    fn name(&self) -> &'static str {
        "tcp_health"
    }

    fn on_packet(
        &mut self,
        pkt: &PacketView<'_>,
        info: &FlowInfo,
        facts: &AllFacts,
        _out: &mut Vec<Finding>,
    ) {
        let Some(u) = pkt.tcp else { return };
        let f = facts.tcp_health;
        let e = u.events;
        if f.unanswered == Step::None
            && !(e.has(TcpEvents::SYN_ACK)
                || e.has(TcpEvents::HANDSHAKE_DONE)
                || e.has(TcpEvents::RST))
        {
            return;
        }
        let flow = Conn {
            info: *info,
            syns: f.client_syns,
        };
        match f.unanswered {
            Step::None => {}
            // Answered after all (SYN/ACK, RST, anything from the server, or the client's
            // ACK of a SYN/ACK the capture missed): not unanswered.
            Step::Withdraw => {
                let side = self.side.entry(info.id).or_default();
                side.swept = false;
                let id = side.unanswered_group;
                if self.withdraw(Kind::Unanswered, &flow, id) {
                    self.unanswered = self.unanswered.saturating_sub(1);
                    self.unanswered_withdrawn += 1;
                }
            }
            // Later retries keep the group (or sweep) open (it is reported once quiet) and
            // counted.
            Step::Extend => {
                let id = self.side.get(&info.id).map_or(0, |s| s.unanswered_group);
                self.extend(&flow, id, pkt.ts, 1);
            }
            Step::Count => {
                self.unanswered += 1;
                let (id, key) = self.record(Kind::Unanswered, &flow, info.first_ts, None);
                let side = self.side.entry(info.id).or_default();
                side.unanswered_group = id;
                side.swept = key.is_none();
                self.extend(&flow, id, pkt.ts, 0);
            }
        }
        if u.events.has(TcpEvents::SYN_ACK) {
            // Refused, then answered after all (an injected RST, a stack answering a retried
            // SYN): withdrawn once, from its own group.
            if let Some(side) = self.side.get_mut(&info.id).filter(|s| s.refusal_group != 0) {
                let id = std::mem::take(&mut side.refusal_group);
                side.swept = false;
                if self.withdraw(Kind::Refused, &flow, id) {
                    self.refused = self.refused.saturating_sub(1);
                    self.refusals_withdrawn += 1;
                }
            }
        }
        if u.events.has(TcpEvents::HANDSHAKE_DONE) {
            self.completed += 1;
            if !self.failures.is_empty() {
                if let Some(r) = self.failures.get_mut(&flow.client().0) {
                    r.completed += 1;
                }
            }
        }
        if u.events.has(TcpEvents::RST) {
            self.rst_segments += 1;
            // The first RST decides the connection's fate.
            if f.first_rst && u.before != Phase::Closed {
                match u.before {
                    // Withdrawn if a SYN/ACK still follows (an injected RST, or a stack that
                    // answers a retried SYN).
                    Phase::SynSent if pkt.dir != info.client_dir || f.client_unknown => {
                        self.refused += 1;
                        let (id, key) = self.record(Kind::Refused, &flow, pkt.ts, Some(pkt.dir));
                        let side = self.side.entry(info.id).or_default();
                        side.refusal_group = id;
                        side.swept = key.is_none();
                    }
                    Phase::Established => {
                        self.aborted += 1;
                        // A reset from the path is neither endpoint's.
                        let by = f.path_reset_ttls.is_none().then_some(pkt.dir);
                        let (id, _) = self.record(Kind::Reset, &flow, pkt.ts, by);
                        // Data sent but not acknowledged when the connection died, either way,
                        // and requests still waiting for their responses.
                        let (unacked, pending) = (f.unacked_bytes, f.request_pending);
                        let path = f.path_reset_ttls;
                        if let Some(key) = (unacked > 0 || pending || path.is_some())
                            .then(|| self.group_key(Kind::Reset, flow.server(), id))
                            .flatten()
                        {
                            let g = self.groups.get_mut(&key).expect("found above");
                            if unacked > 0 {
                                g.with_unacked_data += 1;
                                g.unacked_bytes += unacked;
                            }
                            g.with_request_pending += u64::from(pending);
                            if path.is_some() {
                                g.reset_by_path += 1;
                                g.path_reset_ttls = g.path_reset_ttls.or(path);
                            }
                        }
                    }
                    Phase::Closing => self.reset_after_fin += 1,
                    _ => {}
                }
            }
        }
    }

    fn on_flow_end(&mut self, flow: &mut AFlow, reason: EndReason, _out: &mut Vec<Finding>) {
        if flow.key.proto != 6 {
            return;
        }
        let mut side = self.side.remove(&flow.id).unwrap_or_default();
        let conn = Conn {
            info: FlowInfo::of(flow),
            syns: flow.tcp.half[flow.client_dir().idx()].syns.into(),
        };
        let t = &flow.tcp;
        if t.midstream {
            self.midstream += 1;
        }
        let counted = flow.ext.tcp_health.unanswered_counted;
        let verdict = no_synack(flow, reason.input_end());
        if counted
            && verdict != Some(NoSynAck::Unanswered)
            && self.withdraw(Kind::Unanswered, &conn, side.unanswered_group)
        {
            // Counted after the SYN retries, answered after all (an ICMP error).
            side.swept = false;
            self.unanswered = self.unanswered.saturating_sub(1);
            self.unanswered_withdrawn += 1;
        }
        match verdict {
            // Counted when the RST came.
            Some(NoSynAck::Refused) => {}
            // The server did answer: the capture missed its SYN/ACK (or its whole direction).
            Some(NoSynAck::NotCaptured) => self.synack_not_captured += 1,
            // Answered with ICMP unreachable: the topology analyzer reports it.
            Some(NoSynAck::Unreachable) => self.icmp_unreachable += 1,
            // Cut off by the end of the capture: no verdict.
            Some(NoSynAck::OpenAtEnd) => self.open_at_end += 1,
            Some(NoSynAck::Unanswered) => {
                // The group's last activity is the last SYN, not the time the flow ended;
                // SYNs after the early verdict still count.
                if counted {
                    let later =
                        u64::from(conn.syns.saturating_sub(flow.ext.tcp_health.syns_counted));
                    self.extend(&conn, side.unanswered_group, flow.last_ts, later);
                } else {
                    self.unanswered += 1;
                    let (id, key) = self.record(Kind::Unanswered, &conn, flow.first_ts, None);
                    side.swept = key.is_none();
                    self.extend(&conn, id, flow.last_ts, 0);
                }
            }
            None => {
                if t.synack_ts.is_some() && t.established_ts.is_none() {
                    if t.reset_by.is_none() {
                        self.half_open += 1;
                        if super::half_open_resent(flow) {
                            self.record_half_open(&conn, flow);
                        }
                    } else {
                        // A client whose connect gave up as the answer came, a SYN scan.
                        self.reset_after_synack += 1;
                    }
                }
            }
        }
        // For the analyzers after this one (see `Analyzer::on_flow_end`).
        flow.ext.tcp_health.swept = side.swept;
    }

    fn on_tick(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        self.clock = now;
        self.flush(Some(now), out);
    }

    fn finish(&mut self, _now: Timestamp, out: &mut Vec<Finding>) {
        self.flush(None, out);
    }

    fn stats(&self, out: &mut Vec<Counter>) {
        out.extend([
            ("tcp.handshakes.completed", self.completed),
            ("tcp.handshakes.refused", self.refused),
            ("tcp.handshakes.unanswered", self.unanswered),
            ("tcp.handshakes.half_open", self.half_open),
            ("tcp.handshakes.reset_after_synack", self.reset_after_synack),
            ("limits.tcp_destinations_merged", self.overflowed),
            (
                "limits.sweep_clients_untracked",
                self.sweep_clients_untracked,
            ),
            ("tcp.sweeps.reported", self.sweeps_reported),
            ("tcp.sweeps.groups_folded", self.groups_folded),
            (
                "tcp.handshakes.synack_not_captured",
                self.synack_not_captured,
            ),
            ("tcp.handshakes.icmp_unreachable", self.icmp_unreachable),
            ("tcp.handshakes.open_at_end", self.open_at_end),
            ("tcp.connections.midstream", self.midstream),
            ("tcp.connections.aborted", self.aborted),
            ("tcp.connections.reset_after_fin", self.reset_after_fin),
            ("tcp.resets", self.rst_segments),
            ("tcp.handshakes.refusals_withdrawn", self.refusals_withdrawn),
            (
                "tcp.handshakes.unanswered_withdrawn",
                self.unanswered_withdrawn,
            ),
        ]);
    }
}
