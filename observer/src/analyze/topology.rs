//! Topology doesn't change (fallacy 5): endpoints that disappear, ICMP "destination
//! unreachable", and clients that keep using addresses DNS no longer gives out.
//!
//! Flags:
//! * `icmp.destination.unreachable` — ICMP type 3 / ICMPv6 type 1 errors about TCP or UDP
//!   packets, grouped per quoted destination (address, transport, port) and code, with the
//!   code decoded, who sent the error (the host itself or a router on the way) and the
//!   clients whose packets failed. Fragmentation-needed (type 3 code 4) is a path-MTU signal
//!   and belongs to the homogeneity analyzer; it is counted here, not reported. So is a port
//!   unreachable sent by the host that began the conversation about the other side's packet
//!   to it (`topology.icmp_unreachable_late_replies`): a reply that came after that client had
//!   stopped waiting and closed its port (a DNS answer after the resolver's timeout, a second
//!   answer to a query sent twice), not an endpoint gone.
//! * `endpoint.vanished` — a server endpoint (address, transport, port) that answered earlier
//!   in the capture (a SYN/ACK, or any packet it sent) and then fails every attempt: SYNs
//!   unanswered, refused with RST, or ICMP unreachable. Reported as *vanished at T* (the first
//!   failed attempt after the last good exchange) with the last good exchange, once at least
//!   `min_failed_attempts` attempts failed and the endpoint has had no new failure for `report_after_idle_secs` or the input ends; if it
//!   answers again later (for TCP, a connection accepted after the first failure: one opened
//!   before that and still served, as by a backend being drained, does not count), the finding says when it came back (reported then, or as a second,
//!   low-severity finding when the first was already out).
//! * `dns.cache.stale` — a client opens a connection to an address that a DNS answer in the
//!   capture gave out for a name, after that answer's TTL ran out (plus
//!   `dns_ttl_grace_secs`), and either (a) a later answer for the name no longer contains the
//!   address (`reason = "address_removed"`, high: the client talks to where the service
//!   *was*), or (b) the client itself received the answer and never a newer one
//!   (`reason = "ttl_expired"`, low: it caches past the TTL). Grouped per name and address.
//!
//! Evidence comes from the shared TCP state (SYN, SYN/ACK, RST in SYN-SENT), the ICMP errors
//! handed over by the pipeline, and A/AAAA records of DNS responses (the question name owns
//! every address of the answer, CNAME chains included).
//!
//! Deliberately not flagged: an endpoint that never answered in the capture (that is
//! `tcp.handshake.unanswered` / `refused` in the TCP health analyzer); an address used within
//! its TTL even when the name has moved on (that is what the TTL allows); empty (NODATA)
//! answers, which do not remove addresses; NXDOMAIN does (of both families: an AAAA lookup
//! answered NXDOMAIN removes the name's IPv4 addresses too). State is bounded: at most
//! `MAX_ENDPOINTS` endpoints, `MAX_NAMES` names, `MAX_ADDRESSES` addresses and the first
//! `MAX_ANSWER_ADDRESSES` addresses of one answer are tracked (an answer with more removes no
//! address: the ones not followed may be those it still gives out);
//! beyond that new ones are counted in `topology.untracked` and ignored. A map more than half
//! full forgets (every minute of capture time) what has not been used for `forget_after_secs`
//! (an hour), counted in `topology.forgotten`.

use super::{
    AFlow, Analyzer, Counter, DnsView, Facts as AllFacts, FlowHalf, FlowInfo, MAX_CLIENTS_LISTED,
    NoSynAck, PacketView, clients_count, no_synack, push_listed, unanswered_after_retries,
};
use crate::config::TopologySection;
use crate::decode::IcmpMessage;
use crate::finding::{Fallacy, Finding, FlowRef, Severity};
use crate::flow::tcp::{Phase, TcpEvents};
use crate::flow::{Dir, EndReason};
use crate::time::{NANOS_PER_SEC, Nanos, Timestamp};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;

const MAX_ENDPOINTS: usize = 131_072;
const MAX_NAMES: usize = 65_536;
const MAX_ADDRESSES: usize = 262_144;
const MAX_REPORTERS_LISTED: usize = 4;
const MAX_ANSWER_ADDRESSES: usize = 16;

/// The topology analyzer's per-flow state.
#[derive(Debug, Default)]
pub struct TopologyFlow {
    /// When the server side last sent something other than a RST.
    last_server_ts: Option<Timestamp>,
    /// The flow's failed attempt was already recorded (at its first SYN retry).
    failure_recorded: bool,
    /// The flow's first client packet was checked against the DNS answers.
    dns_checked: bool,
    /// The failure recorded was the early "unanswered" one (undone if the server answers).
    early_unanswered: bool,
    /// A flow without TCP: the capture second (since the epoch, in 32 bits; 0 for none) in which its
    /// server's answer was last taken as a good exchange: once a second at most, so that an
    /// endpoint that answers and then fails is known as one that answered without waiting for
    /// the flow to end. Four bytes, which the flags' padding holds.
    answer_second: u32,
}

/// A server endpoint: address, IP protocol, port.
type Endpoint = (IpAddr, u8, u16);

#[derive(Clone, Copy, Debug)]
struct Good {
    ts: Timestamp,
    client: (IpAddr, u16),
}

/// Early "unanswered" failures an outage keeps the times of (the earliest), to know where it
/// starts when one is taken back.
const TAKEN_BACK_KEPT: usize = 4;

#[derive(Debug)]
struct Outage {
    first: Timestamp,
    last: Timestamp,
    /// The earliest failure that cannot be taken back (refused, ICMP, unanswered at the
    /// flow's end).
    firm_first: Option<Timestamp>,
    /// Failures counted "unanswered" early (at the client's second SYN retry), which are taken
    /// back if the server turns out to have answered: the earliest [`TAKEN_BACK_KEPT`] times,
    /// sorted; then how many more, and the earliest of those.
    early: [Timestamp; TAKEN_BACK_KEPT],
    early_len: usize,
    early_more: u64,
    early_more_first: Timestamp,
    /// The latest failure that cannot be taken back.
    firm_last: Option<Timestamp>,
    /// The latest [`TAKEN_BACK_KEPT`] early failures' times, sorted, to know where the outage
    /// ends when one is taken back.
    early_latest: [Timestamp; TAKEN_BACK_KEPT],
    early_latest_len: usize,
    last_good: Good,
    unanswered: u64,
    refused: u64,
    icmp: u64,
    clients: Vec<IpAddr>,
    /// How many failures (not taken back) each client listed in `clients` had, in its order.
    client_failures: Vec<u32>,
    more_clients: bool,
    reported: bool,
}

impl Outage {
    fn attempts(&self) -> u64 {
        self.unanswered + self.refused + self.icmp
    }

    /// Notes an early "unanswered" failure at `ts`, which may be taken back.
    fn note_early(&mut self, ts: Timestamp) {
        let kept = &mut self.early[..self.early_len];
        let at = kept.partition_point(|&t| t <= ts);
        if self.early_len < TAKEN_BACK_KEPT {
            self.early.copy_within(at..self.early_len, at + 1);
            self.early[at] = ts;
            self.early_len += 1;
            return;
        }
        // Full: the latest of the kept and the new one, whichever is later, goes uncounted
        // by time.
        let out = if at == TAKEN_BACK_KEPT {
            ts
        } else {
            let last = self.early[TAKEN_BACK_KEPT - 1];
            self.early.copy_within(at..TAKEN_BACK_KEPT - 1, at + 1);
            self.early[at] = ts;
            last
        };
        self.early_more_first = if self.early_more == 0 {
            out
        } else {
            self.early_more_first.min(out)
        };
        self.early_more += 1;
    }

    /// Notes an early failure at `ts` among the latest kept.
    fn note_early_latest(&mut self, ts: Timestamp) {
        let len = self.early_latest_len;
        if len == TAKEN_BACK_KEPT {
            if ts <= self.early_latest[0] {
                return;
            }
            // The earliest of the latest kept goes.
            self.early_latest.copy_within(1.., 0);
            self.early_latest_len -= 1;
        }
        let len = self.early_latest_len;
        let at = self.early_latest[..len].partition_point(|&t| t <= ts);
        self.early_latest.copy_within(at..len, at + 1);
        self.early_latest[at] = ts;
        self.early_latest_len += 1;
    }

    /// A failed attempt from `client`, for the list of clients.
    fn note_client(&mut self, client: IpAddr) {
        push_listed(
            &mut self.clients,
            &mut self.more_clients,
            client,
            MAX_CLIENTS_LISTED,
        );
        if let Some(i) = self.clients.iter().position(|&c| c == client) {
            self.client_failures.resize(self.clients.len(), 0);
            self.client_failures[i] += 1;
        }
    }

    /// Takes back the early failure at `ts`: the outage starts at the earliest one left.
    /// False when the outage holds no early failure at `ts` (it was another outage's, or none:
    /// an attempt before the last good exchange).
    fn take_back(&mut self, ts: Timestamp, client: IpAddr) -> bool {
        let kept = &self.early[..self.early_len];
        if let Some(i) = kept.iter().position(|&t| t == ts) {
            self.early.copy_within(i + 1..self.early_len, i);
            self.early_len -= 1;
        } else if self.early_more > 0 && ts >= self.early_more_first {
            // Beyond those kept by time: the earliest of them stays the bound (an outage
            // reported from no later than its start).
            self.early_more -= 1;
        } else {
            return false;
        }
        self.unanswered = self.unanswered.saturating_sub(1);
        let kept = self.early[..self.early_len].first().copied();
        let more = (self.early_more > 0).then_some(self.early_more_first);
        if let Some(first) = [self.firm_first, kept, more].into_iter().flatten().min() {
            self.first = first;
        }
        // Where it ends: the latest failure left (of those whose time is kept).
        let latest = &self.early_latest[..self.early_latest_len];
        if let Some(i) = latest.iter().rposition(|&t| t == ts) {
            self.early_latest
                .copy_within(i + 1..self.early_latest_len, i);
            self.early_latest_len -= 1;
        }
        let latest = self.early_latest[..self.early_latest_len].last().copied();
        let kept = self.early[..self.early_len].last().copied();
        if let Some(last) = [self.firm_last, latest, kept, more]
            .into_iter()
            .flatten()
            .max()
        {
            self.last = last;
        }
        // Its client is no longer blamed unless another of its attempts failed.
        if let Some(i) = self.clients.iter().position(|&c| c == client) {
            self.client_failures[i] = self.client_failures[i].saturating_sub(1);
            if self.client_failures[i] == 0 {
                self.clients.remove(i);
                self.client_failures.remove(i);
            }
        }
        true
    }
}

#[derive(Debug, Default)]
struct EndpointState {
    good: Option<Good>,
    outage: Option<Outage>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    Unanswered,
    Refused,
    Icmp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct IcmpKey {
    dst: Endpoint,
    v6: bool,
    code: u8,
}

#[derive(Debug)]
struct IcmpGroup {
    /// The packets that drew the errors, and their clients.
    seen: super::Seen,
    reporters: Vec<IpAddr>,
}

#[derive(Debug)]
struct Answer {
    ts: Timestamp,
    addrs: Vec<IpAddr>,
    nxdomain: bool,
    /// The answer had more addresses than `addrs` holds: an address missing from `addrs`
    /// may still be in it.
    partial: bool,
}

/// The answer containing an address that expires last (the latest, of those that expire at
/// the same time): an address several names share (virtual hosting, a CDN's edge) is valid
/// in a cache as long as one of its answers is, whatever another name's newer answer says.
#[derive(Debug)]
struct AddrSeen {
    name: Arc<str>,
    ts: Timestamp,
    ttl: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum StaleReason {
    AddressRemoved,
    TtlExpired,
}

#[derive(Debug)]
struct StaleGroup {
    reason: StaleReason,
    first: Timestamp,
    last: Timestamp,
    connections: u64,
    first_flow: ((IpAddr, u16), (IpAddr, u16), u8),
    clients: Vec<IpAddr>,
    more_clients: bool,
    answer_ts: Timestamp,
    ttl: u32,
    changed_at: Option<Timestamp>,
    new_addrs: Vec<IpAddr>,
    nxdomain: bool,
}

/// The topology analyzer.
pub struct Topology {
    report_after: Nanos,
    /// See [`super::due`].
    active_max: Option<Nanos>,
    forget_after: Nanos,
    next_aging: Option<Timestamp>,
    forgotten: u64,
    min_attempts: u64,
    grace: Nanos,
    endpoints: FxHashMap<Endpoint, EndpointState>,
    icmp: FxHashMap<IcmpKey, IcmpGroup>,
    /// Latest answer per name and family (0 = A, 1 = AAAA).
    names: FxHashMap<Arc<str>, [Option<Answer>; 2]>,
    addrs: FxHashMap<IpAddr, AddrSeen>,
    /// Name, answer time and TTL per (client, address) the client itself received: of its
    /// answers containing the address, the one that expires last.
    client_answers: FxHashMap<(IpAddr, IpAddr), AddrSeen>,
    stale: FxHashMap<(Arc<str>, IpAddr), StaleGroup>,
    vanished: u64,
    returned: u64,
    blips: u64,
    icmp_reported: u64,
    icmp_not_reported: u64,
    /// Of `icmp_not_reported`: replies that found their client's port closed.
    late_replies: u64,
    dns_answers: u64,
    stale_connections: u64,
    untracked: u64,
    /// Times the stale-address groups reached [`super::MAX_PENDING_GROUPS`] and were all
    /// reported at once.
    stale_reported_early: u64,
}

#[derive(Serialize)]
struct IcmpEvidence<'a> {
    packets: u64,
    icmp_type: u8,
    icmp_code: u8,
    meaning: &'static str,
    reported_by: &'a [IpAddr],
    reported_by_destination: bool,
    clients: &'a [IpAddr],
    clients_truncated: bool,
    first_seen: String,
    last_seen: String,
}

#[derive(Serialize)]
struct VanishedEvidence<'a> {
    vanished_at: String,
    last_good_at: String,
    last_good_client: String,
    failed_attempts: u64,
    unanswered: u64,
    refused: u64,
    icmp_unreachable: u64,
    last_failure_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    returned_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outage_secs: Option<f64>,
    clients: &'a [IpAddr],
    clients_truncated: bool,
}

#[derive(Serialize)]
struct StaleEvidence<'a> {
    reason: &'static str,
    name: &'a str,
    address: IpAddr,
    ttl_secs: u32,
    answered_at: String,
    expired_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    changed_at: Option<String>,
    current_addresses: &'a [IpAddr],
    nxdomain: bool,
    connections: u64,
    clients: &'a [IpAddr],
    clients_truncated: bool,
    first_seen: String,
    last_seen: String,
}

/// What an ICMP destination-unreachable code means (RFC 792, 1812, 4443).
pub fn unreachable_meaning(v6: bool, code: u8) -> &'static str {
    if v6 {
        match code {
            0 => "no route to destination",
            1 => "communication administratively prohibited",
            2 => "beyond scope of source address",
            3 => "address unreachable",
            4 => "port unreachable",
            5 => "source address failed ingress/egress policy",
            6 => "reject route to destination",
            7 => "error in source routing header",
            _ => "unreachable (unknown code)",
        }
    } else {
        match code {
            0 => "network unreachable",
            1 => "host unreachable",
            2 => "protocol unreachable",
            3 => "port unreachable",
            4 => "fragmentation needed",
            5 => "source route failed",
            6 => "destination network unknown",
            7 => "destination host unknown",
            8 => "source host isolated",
            9 => "network administratively prohibited",
            10 => "host administratively prohibited",
            11 => "network unreachable for TOS",
            12 => "host unreachable for TOS",
            13 => "communication administratively prohibited",
            14 => "host precedence violation",
            15 => "precedence cutoff in effect",
            _ => "unreachable (unknown code)",
        }
    }
}

fn secs(n: Nanos) -> f64 {
    n as f64 / NANOS_PER_SEC as f64
}

fn plus_secs(ts: Timestamp, s: u32, extra: Nanos) -> Timestamp {
    Timestamp(
        ts.0.saturating_add(i64::from(s) * NANOS_PER_SEC)
            .saturating_add(extra),
    )
}

impl Topology {
    /// A new analyzer with its configuration.
    pub fn new(cfg: &TopologySection, active_max: Option<Nanos>) -> Self {
        Topology {
            report_after: (cfg.report_after_idle_secs * NANOS_PER_SEC as f64) as Nanos,
            active_max,
            forget_after: (cfg.forget_after_secs * NANOS_PER_SEC as f64) as Nanos,
            next_aging: None,
            forgotten: 0,
            min_attempts: cfg.min_failed_attempts,
            grace: (cfg.dns_ttl_grace_secs * NANOS_PER_SEC as f64) as Nanos,
            endpoints: FxHashMap::default(),
            icmp: FxHashMap::default(),
            names: FxHashMap::default(),
            addrs: FxHashMap::default(),
            client_answers: FxHashMap::default(),
            stale: FxHashMap::default(),
            vanished: 0,
            returned: 0,
            blips: 0,
            icmp_reported: 0,
            icmp_not_reported: 0,
            late_replies: 0,
            dns_answers: 0,
            stale_connections: 0,
            untracked: 0,
            stale_reported_early: 0,
        }
    }

    fn endpoint(&mut self, ep: Endpoint) -> Option<&mut EndpointState> {
        if !self.endpoints.contains_key(&ep) && self.endpoints.len() >= MAX_ENDPOINTS {
            self.untracked += 1;
            return None;
        }
        Some(self.endpoints.entry(ep).or_default())
    }

    /// A good exchange at `ts` in a connection the server accepted at `accepted` (for UDP,
    /// `ts` itself).
    fn success(
        &mut self,
        ep: Endpoint,
        ts: Timestamp,
        accepted: Timestamp,
        client: (IpAddr, u16),
        out: &mut Vec<Finding>,
    ) {
        let Some(st) = self.endpoint(ep) else { return };
        if st.outage.as_ref().is_some_and(|o| ts > o.first) {
            if st.outage.as_ref().is_some_and(|o| accepted <= o.first) {
                // A connection accepted before the outage still served (a backend being
                // drained, a firewall letting established connections through): the endpoint
                // has not answered a new attempt, so it has not come back.
                return;
            }
            let o = st.outage.take().expect("checked");
            st.good = Some(Good { ts, client });
            if o.reported || o.attempts() >= self.min_attempts {
                out.push(Self::vanished_finding(ep, &o, Some(ts)));
                self.returned += 1;
                if !o.reported {
                    self.vanished += 1;
                }
            } else {
                self.blips += 1;
            }
            return;
        }
        if st.good.is_none_or(|g| ts > g.ts) {
            st.good = Some(Good { ts, client });
        }
        if let (Some(o), Some(g)) = (st.outage.as_mut(), st.good) {
            if g.ts > o.last_good.ts {
                o.last_good = g;
            }
        }
    }

    /// A failed attempt at `ts`; `early`: an "unanswered" counted before the flow ends, which
    /// [`Topology::unfail`] may take back.
    fn failure(&mut self, ep: Endpoint, ts: Timestamp, kind: Failure, client: IpAddr, early: bool) {
        let Some(st) = self.endpoints.get_mut(&ep) else {
            return; // never answered: the TCP health analyzer's business
        };
        let Some(good) = st.good.filter(|g| ts > g.ts) else {
            return;
        };
        let o = st.outage.get_or_insert_with(|| Outage {
            first: ts,
            last: ts,
            last_good: good,
            firm_first: None,
            early: [ts; TAKEN_BACK_KEPT],
            early_len: 0,
            early_more: 0,
            early_more_first: ts,
            firm_last: None,
            early_latest: [ts; TAKEN_BACK_KEPT],
            early_latest_len: 0,
            unanswered: 0,
            refused: 0,
            icmp: 0,
            clients: Vec::new(),
            client_failures: Vec::new(),
            more_clients: false,
            reported: false,
        });
        o.first = o.first.min(ts);
        o.last = o.last.max(ts);
        if early {
            o.note_early(ts);
            o.note_early_latest(ts);
        } else {
            o.firm_first = Some(o.firm_first.map_or(ts, |f| f.min(ts)));
            o.firm_last = Some(o.firm_last.map_or(ts, |f| f.max(ts)));
        }
        match kind {
            Failure::Unanswered => o.unanswered += 1,
            Failure::Refused => o.refused += 1,
            Failure::Icmp => o.icmp += 1,
        }
        o.note_client(client);
    }

    /// Takes back an early "unanswered" failure, the attempt at `ts`: the server answered it
    /// from `client` after all (the outage then starts at its next failure and ends at its
    /// latest one left, and the client is no longer among those whose attempts failed).
    fn unfail(&mut self, ep: Endpoint, ts: Timestamp, client: IpAddr) {
        if let Some(st) = self.endpoints.get_mut(&ep) {
            if let Some(o) = st.outage.as_mut().filter(|o| !o.reported) {
                if o.take_back(ts, client) && o.attempts() == 0 {
                    st.outage = None;
                }
            }
        }
    }

    /// Long runs: a map more than half full forgets entries unused for `forget_after` (an
    /// endpoint not seen answering, an answer that expired, a client's lookup), so new ones
    /// keep being tracked. Open outages and pending groups are never forgotten.
    fn age(&mut self, now: Timestamp) {
        let old = |t: Timestamp| now.since(t) > self.forget_after;
        let before =
            self.endpoints.len() + self.addrs.len() + self.names.len() + self.client_answers.len();
        if self.endpoints.len() > MAX_ENDPOINTS / 2 {
            self.endpoints
                .retain(|_, st| st.outage.is_some() || st.good.is_some_and(|g| !old(g.ts)));
        }
        if self.addrs.len() > MAX_ADDRESSES / 2 {
            self.addrs.retain(|_, a| !old(plus_secs(a.ts, a.ttl, 0)));
        }
        if self.client_answers.len() > MAX_ADDRESSES / 2 {
            self.client_answers
                .retain(|_, a| !old(plus_secs(a.ts, a.ttl, 0)));
        }
        if self.names.len() > MAX_NAMES / 2 {
            self.names
                .retain(|_, fam| fam.iter().flatten().any(|a| !old(a.ts)));
        }
        let after =
            self.endpoints.len() + self.addrs.len() + self.names.len() + self.client_answers.len();
        self.forgotten += (before - after) as u64;
    }

    fn vanished_finding(ep: Endpoint, o: &Outage, returned: Option<Timestamp>) -> Finding {
        let (ip, proto, port) = ep;
        let attempts = o.attempts();
        let how = [
            (o.unanswered, "unanswered"),
            (o.refused, "refused"),
            (o.icmp, "ICMP unreachable"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect::<Vec<_>>()
        .join(", ");
        let tail = match returned {
            Some(r) => format!(
                "answered again at {} after {:.1} s",
                r.rfc3339_micros(),
                secs(r.since(o.first))
            ),
            None => "not answering since".to_string(),
        };
        let message = format!(
            "{ip}:{port} vanished at {}: {attempts} attempt(s) failed ({how}) after its last good exchange at {} with {}; {tail}",
            o.first.rfc3339_micros(),
            o.last_good.ts.rfc3339_micros(),
            o.last_good.client.0,
        );
        let ev = VanishedEvidence {
            vanished_at: o.first.rfc3339_micros(),
            last_good_at: o.last_good.ts.rfc3339_micros(),
            last_good_client: format!("{}", o.last_good.client.0),
            failed_attempts: attempts,
            unanswered: o.unanswered,
            refused: o.refused,
            icmp_unreachable: o.icmp,
            last_failure_at: o.last.rfc3339_micros(),
            returned_at: returned.map(|r| r.rfc3339_micros()),
            outage_secs: returned.map(|r| secs(r.since(o.first))),
            clients: &o.clients,
            clients_truncated: o.more_clients,
        };
        let severity = match (returned, o.reported) {
            (None, _) => Severity::High,
            (Some(_), false) => Severity::Medium,
            (Some(_), true) => Severity::Low,
        };
        Finding {
            ts: returned.unwrap_or(o.first),
            rule: "endpoint.vanished",
            severity,
            fallacy: Fallacy::TopologyDoesntChange,
            message,
            flow: Some(FlowRef::new(o.last_good.client, (ip, port), proto)),
            evidence: Finding::evidence_from(&ev),
        }
    }

    fn on_dns_answer(&mut self, d: &DnsView<'_>) {
        let msg = d.msg;
        if !msg.response || !matches!(msg.qtype, 1 | 28) || msg.qname.is_empty() {
            return;
        }
        let nxdomain = msg.rcode == 3;
        if msg.rcode != 0 && !nxdomain {
            return;
        }
        let found = d.answers;
        let fam = usize::from(msg.qtype == 28);
        let mut of_family = found
            .iter()
            .filter(|(a, _)| a.is_ipv6() == (fam == 1))
            .map(|(a, _)| *a);
        // Gathered in place, sorted and without repeats: no allocation per answer.
        let mut buf = [IpAddr::from([0u8; 4]); MAX_ANSWER_ADDRESSES];
        let mut n = 0;
        for a in of_family.by_ref().take(MAX_ANSWER_ADDRESSES) {
            buf[n] = a;
            n += 1;
        }
        // The rest are not followed: counted.
        let skipped = of_family.count() as u64;
        self.untracked += skipped;
        let partial = skipped > 0;
        if n == 0 && !nxdomain {
            return; // NODATA or a CNAME without addresses: removes nothing
        }
        buf[..n].sort_unstable();
        let mut kept = 0;
        for i in 0..n {
            if kept == 0 || buf[kept - 1] != buf[i] {
                buf[kept] = buf[i];
                kept += 1;
            }
        }
        let addrs = &buf[..kept];
        let ttl = found.iter().map(|(_, t)| *t).min().unwrap_or(0);
        self.dns_answers += 1;
        let name: Arc<str> = match self.names.get_key_value(msg.qname.as_str()) {
            Some((k, _)) => k.clone(),
            None if self.names.len() >= MAX_NAMES => {
                self.untracked += 1;
                return;
            }
            None => Arc::from(msg.qname.as_str()),
        };
        let client = d.dst.0;
        let expires = plus_secs(d.ts, ttl, 0);
        for &a in addrs {
            let room = self.addrs.len() < MAX_ADDRESSES;
            match self.addrs.get_mut(&a) {
                Some(seen) if plus_secs(seen.ts, seen.ttl, 0) > expires => {}
                Some(seen) => {
                    *seen = AddrSeen {
                        name: name.clone(),
                        ts: d.ts,
                        ttl,
                    }
                }
                None if room => {
                    self.addrs.insert(
                        a,
                        AddrSeen {
                            name: name.clone(),
                            ts: d.ts,
                            ttl,
                        },
                    );
                }
                None => self.untracked += 1,
            }
            let room = self.client_answers.len() < MAX_ADDRESSES;
            match self.client_answers.get_mut(&(client, a)) {
                Some(seen) if plus_secs(seen.ts, seen.ttl, 0) > expires => {}
                Some(seen) => {
                    *seen = AddrSeen {
                        name: name.clone(),
                        ts: d.ts,
                        ttl,
                    }
                }
                None if room => {
                    self.client_answers.insert(
                        (client, a),
                        AddrSeen {
                            name: name.clone(),
                            ts: d.ts,
                            ttl,
                        },
                    );
                }
                None => self.untracked += 1,
            }
        }
        let slot = self.names.entry(name).or_default();
        // NXDOMAIN says the name does not exist, for either family.
        let fams = if nxdomain { 0..2 } else { fam..fam + 1 };
        for f in fams {
            let addrs = if f == fam { addrs } else { &[] };
            match &mut slot[f] {
                // The name's latest answer is replaced in its own room.
                Some(a) if d.ts >= a.ts => {
                    a.ts = d.ts;
                    a.addrs.clear();
                    a.addrs.extend_from_slice(addrs);
                    a.nxdomain = nxdomain;
                    a.partial = partial;
                }
                Some(_) => {}
                None => {
                    slot[f] = Some(Answer {
                        ts: d.ts,
                        addrs: addrs.to_vec(),
                        nxdomain,
                        partial,
                    })
                }
            }
        }
    }

    /// A new connection from `client` to `server`: was the address still valid?
    fn check_stale(
        &mut self,
        ts: Timestamp,
        client: (IpAddr, u16),
        server: (IpAddr, u16),
        proto: u8,
        out: &mut Vec<Finding>,
    ) {
        let Some(seen) = self.addrs.get(&server.0) else {
            return;
        };
        if ts <= plus_secs(seen.ts, seen.ttl, self.grace) {
            return;
        }
        // Every answer with the address has expired. The client's own lookup, when the
        // capture saw one, says which name it used (an address several names share).
        let own = self.client_answers.get(&(client.0, server.0));
        let used = own.unwrap_or(seen);
        let fam = usize::from(server.0.is_ipv6());
        let latest = self
            .names
            .get(&used.name)
            .and_then(|s| s[fam].as_ref())
            .filter(|l| l.ts > used.ts && !l.partial && !l.addrs.contains(&server.0));
        let reason = if latest.is_some() {
            StaleReason::AddressRemoved
        } else if own.is_some_and(|o| ts > plus_secs(o.ts, o.ttl, self.grace)) {
            StaleReason::TtlExpired
        } else {
            return;
        };
        self.stale_connections += 1;
        let key = (used.name.clone(), server.0);
        if self.stale.len() >= super::MAX_PENDING_GROUPS && !self.stale.contains_key(&key) {
            // Too many waiting: all reported now (see `MAX_PENDING_GROUPS`).
            let mut found = Vec::new();
            for ((name, addr), g) in
                super::take_due(&mut self.stale, None, (0, None), |g| (g.first, g.last))
            {
                found.push(Self::stale_finding(&name, addr, &g));
            }
            found.sort_by_key(|f| f.ts);
            out.extend(found);
            self.stale_reported_early += 1;
        }
        let g = self.stale.entry(key).or_insert_with(|| StaleGroup {
            reason,
            first: ts,
            last: ts,
            connections: 0,
            first_flow: (client, server, proto),
            clients: Vec::new(),
            more_clients: false,
            answer_ts: used.ts,
            ttl: used.ttl,
            changed_at: None,
            new_addrs: Vec::new(),
            nxdomain: false,
        });
        g.reason = g.reason.min(reason);
        g.last = g.last.max(ts);
        g.connections += 1;
        if let Some(l) = latest {
            g.changed_at = Some(l.ts);
            g.new_addrs.clone_from(&l.addrs);
            g.nxdomain = l.nxdomain;
        }
        push_listed(
            &mut g.clients,
            &mut g.more_clients,
            client.0,
            MAX_CLIENTS_LISTED,
        );
    }

    fn stale_finding(name: &str, addr: IpAddr, g: &StaleGroup) -> Finding {
        let expired = plus_secs(g.answer_ts, g.ttl, 0);
        let (severity, reason, message) = match g.reason {
            StaleReason::AddressRemoved => {
                let now_text = if g.nxdomain {
                    "the name no longer exists (NXDOMAIN)".to_string()
                } else {
                    format!(
                        "DNS now answers {}",
                        g.new_addrs
                            .iter()
                            .map(|a| a.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                (
                    Severity::High,
                    "address_removed",
                    format!(
                        "stale DNS cache: {} connection(s) from {} client(s) to {addr} for {name} after its TTL of {} s expired, but {now_text} (since {})",
                        g.connections,
                        clients_count(g.clients.len(), g.more_clients),
                        g.ttl,
                        g.changed_at.unwrap_or(g.answer_ts).rfc3339_micros()
                    ),
                )
            }
            StaleReason::TtlExpired => (
                Severity::Low,
                "ttl_expired",
                format!(
                    "{} connection(s) from {} client(s) to {addr} for {name} more than its TTL of {} s after the client's last lookup, without a new one: the address is cached past its TTL",
                    g.connections,
                    clients_count(g.clients.len(), g.more_clients),
                    g.ttl
                ),
            ),
        };
        let ev = StaleEvidence {
            reason,
            name,
            address: addr,
            ttl_secs: g.ttl,
            answered_at: g.answer_ts.rfc3339_micros(),
            expired_at: expired.rfc3339_micros(),
            changed_at: g.changed_at.map(|t| t.rfc3339_micros()),
            current_addresses: &g.new_addrs,
            nxdomain: g.nxdomain,
            connections: g.connections,
            clients: &g.clients,
            clients_truncated: g.more_clients,
            first_seen: g.first.rfc3339_micros(),
            last_seen: g.last.rfc3339_micros(),
        };
        let (c, s, p) = g.first_flow;
        Finding {
            ts: g.first,
            rule: "dns.cache.stale",
            severity,
            fallacy: Fallacy::TopologyDoesntChange,
            message,
            flow: Some(FlowRef::new(c, s, p)),
            evidence: Finding::evidence_from(&ev),
        }
    }

    fn icmp_finding(k: IcmpKey, g: &IcmpGroup) -> Finding {
        let (ip, proto, port) = k.dst;
        let meaning = unreachable_meaning(k.v6, k.code);
        let icmp_type = if k.v6 { 1 } else { 3 };
        let by_dest = g.reporters.contains(&ip);
        let reporter_text = if by_dest {
            "by the destination itself".to_string()
        } else {
            format!(
                "by {}",
                g.reporters
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let severity = match (k.v6, k.code) {
            (false, 3) | (true, 4) => Severity::Medium,
            (false, 9 | 10 | 13) | (true, 1 | 5 | 6) => Severity::Medium,
            _ => Severity::High,
        };
        let message = format!(
            "{ip} {}/{port}: {} packet(s) from {} client(s) answered with ICMP{} {meaning} (type {icmp_type} code {}) {reporter_text}",
            crate::finding::transport_name(proto),
            g.seen.count,
            clients_count(g.seen.clients.len(), g.seen.more_clients),
            if k.v6 { "v6" } else { "" },
            k.code
        );
        let ev = IcmpEvidence {
            packets: g.seen.count,
            icmp_type,
            icmp_code: k.code,
            meaning,
            reported_by: &g.reporters,
            reported_by_destination: by_dest,
            clients: &g.seen.clients,
            clients_truncated: g.seen.more_clients,
            first_seen: g.seen.first.rfc3339_micros(),
            last_seen: g.seen.last.rfc3339_micros(),
        };
        Finding {
            ts: g.seen.first,
            rule: "icmp.destination.unreachable",
            severity,
            fallacy: Fallacy::TopologyDoesntChange,
            message,
            flow: Some(FlowRef::new(g.seen.client, (ip, port), proto)),
            evidence: Finding::evidence_from(&ev),
        }
    }

    fn flush(&mut self, now: Option<Timestamp>, out: &mut Vec<Finding>) {
        let (after, active_max) = (self.report_after, self.active_max);
        let due = |first, last| super::due(now, (first, last), after, active_max);
        let min = self.min_attempts;
        let mut found: Vec<Finding> = Vec::new();
        let mut keys: Vec<IcmpKey> = self
            .icmp
            .iter()
            .filter(|(_, g)| due(g.seen.first, g.seen.last))
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable();
        for k in keys {
            if let Some(g) = self.icmp.remove(&k) {
                self.icmp_reported += g.seen.count;
                found.push(Self::icmp_finding(k, &g));
            }
        }
        let mut eps: Vec<Endpoint> = self
            .endpoints
            .iter()
            .filter(|(_, s)| {
                s.outage
                    .as_ref()
                    .is_some_and(|o| !o.reported && o.attempts() >= min && due(o.first, o.last))
            })
            .map(|(k, _)| *k)
            .collect();
        eps.sort_unstable();
        for ep in eps {
            if let Some(o) = self.endpoints.get_mut(&ep).and_then(|s| s.outage.as_mut()) {
                o.reported = true;
                self.vanished += 1;
                found.push(Self::vanished_finding(ep, o, None));
            }
        }
        for ((name, addr), g) in super::take_due(&mut self.stale, now, (after, active_max), |g| {
            (g.first, g.last)
        }) {
            found.push(Self::stale_finding(&name, addr, &g));
        }
        found.sort_by_key(|f| f.ts);
        out.extend(found);
    }
}

/// What the topology analyzer's per-flow half found about one packet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts {
    /// The flow's first client packet: to check against the DNS answers.
    check_stale: bool,
    /// The early "unanswered" failure recorded for the flow is undone (the server answered).
    unfail: bool,
    /// A failed attempt to record.
    failure: Option<Failure>,
    /// A good exchange with the server, at this packet.
    success: bool,
    /// What an ICMP destination-unreachable error about the flow counts for.
    icmp: Icmp,
}

/// What an ICMP error about a flow counts for (see [`Facts::icmp`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Icmp {
    /// Nothing (not destination unreachable, or no packet quoted).
    #[default]
    None,
    /// Path MTU (the homogeneity analyzer's): not reported here.
    NotReported,
    /// Port unreachable from the conversation's own client: a reply came late.
    LateReply,
    /// An error, the flow's first failed attempt.
    First,
    /// An error, for a flow whose failed attempt was already recorded.
    Again,
}

/// The topology analyzer's per-flow half.
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
        let f = &mut facts.topology;
        let client_dir = flow.client_dir();
        match pkt.tcp {
            Some(u) => {
                let e = u.events;
                if pkt.dir == client_dir {
                    let st = &mut flow.ext.topology;
                    if e.has(TcpEvents::SYN) && !st.dns_checked {
                        st.dns_checked = true;
                        f.check_stale = true;
                    }
                    if unanswered_after_retries(pkt, flow) && !flow.ext.topology.failure_recorded {
                        let st = &mut flow.ext.topology;
                        st.failure_recorded = true;
                        st.early_unanswered = true;
                        f.failure = Some(Failure::Unanswered);
                    } else if flow.ext.topology.early_unanswered
                        && no_synack(flow, None) == Some(NoSynAck::NotCaptured)
                    {
                        // The client acknowledged a SYN/ACK the capture missed: a slow
                        // handshake, not a failed attempt.
                        flow.ext.topology.early_unanswered = false;
                        f.unfail = true;
                    }
                } else if e.has(TcpEvents::RST) {
                    if u.before == Phase::SynSent && flow.tcp.reset_by == Some(pkt.dir) {
                        // Refused after it was counted unanswered: one failed attempt, refused.
                        let st = &mut flow.ext.topology;
                        f.unfail = std::mem::take(&mut st.early_unanswered);
                        st.failure_recorded = true;
                        f.failure = Some(Failure::Refused);
                    }
                } else {
                    // A slow handshake, not a failed attempt.
                    let st = &mut flow.ext.topology;
                    f.unfail = std::mem::take(&mut st.early_unanswered);
                    st.last_server_ts = Some(pkt.ts);
                    // Good exchanges are taken at the SYN/ACK, the server's FIN and the
                    // flow's end (its last server packet), not per packet: a closed flow
                    // ends only after lingering, and failures seen meanwhile must not
                    // overtake its last answer.
                    f.success = e.has(TcpEvents::SYN_ACK) || e.has(TcpEvents::FIN);
                }
            }
            None => {
                let st = &mut flow.ext.topology;
                if pkt.dir == client_dir {
                    if !st.dns_checked && pkt.dns.is_none() {
                        st.dns_checked = true;
                        f.check_stale = true;
                    }
                } else {
                    st.last_server_ts = Some(pkt.ts);
                    // Wrapped to 32 bits: two seconds in a row always differ.
                    let second = pkt.ts.0.div_euclid(NANOS_PER_SEC) as u32;
                    if second != st.answer_second {
                        st.answer_second = second;
                        f.success = true;
                    }
                }
            }
        }
    }

    fn on_icmp_error(
        &self,
        from: IpAddr,
        msg: &IcmpMessage<'_>,
        dir: Dir,
        flow: &mut AFlow,
        facts: &mut AllFacts,
    ) {
        let unreachable = (!msg.v6 && msg.icmp_type == 3) || (msg.v6 && msg.icmp_type == 1);
        if !unreachable || msg.quoted.is_none() {
            return;
        }
        let port_unreachable = if msg.v6 { msg.code == 4 } else { msg.code == 3 };
        facts.topology.icmp = if !msg.v6 && msg.code == 4 {
            Icmp::NotReported
        } else if port_unreachable && dir != flow.client_dir() && from == flow.client().0 {
            Icmp::LateReply
        } else if !std::mem::replace(&mut flow.ext.topology.failure_recorded, true) {
            // (Recorded by the run-wide half even when it holds too many ICMP groups to
            // group this error.)
            Icmp::First
        } else {
            Icmp::Again
        };
    }
}

impl Analyzer for Topology {
    fn name(&self) -> &'static str {
        "topology"
    }

    fn on_packet(
        &mut self,
        pkt: &PacketView<'_>,
        flow: &FlowInfo,
        facts: &AllFacts,
        out: &mut Vec<Finding>,
    ) {
        let f = facts.topology;
        let stale = f.check_stale && !self.addrs.is_empty();
        if !stale && !f.unfail && f.failure.is_none() && !f.success {
            // Most packets: nothing for the run-wide half.
            return;
        }
        let server = flow.server();
        let proto = flow.key.proto;
        let ep = (server.0, proto, server.1);
        if stale {
            self.check_stale(pkt.ts, flow.client(), server, proto, out);
        }
        if f.unfail {
            self.unfail(ep, flow.first_ts, flow.client().0);
        }
        // A failed attempt fails at its first SYN (the flow's first packet), whether nothing
        // came back or a reset did, maybe after retries: the endpoint failed from then.
        if let Some(kind) = f.failure {
            let early = kind == Failure::Unanswered;
            self.failure(ep, flow.first_ts, kind, flow.client().0, early);
        }
        if f.success {
            // A SYN/ACK accepts a connection now; a FIN belongs to one opened at the flow's
            // start.
            let accepted = match pkt.tcp {
                Some(u) if !u.events.has(TcpEvents::SYN_ACK) => flow.first_ts,
                _ => pkt.ts,
            };
            self.success(ep, pkt.ts, accepted, flow.client(), out);
        }
    }

    fn on_dns(&mut self, d: &DnsView<'_>, _flow: &FlowInfo, _out: &mut Vec<Finding>) {
        self.on_dns_answer(d);
    }

    fn on_icmp_error(
        &mut self,
        ts: Timestamp,
        from: IpAddr,
        msg: &IcmpMessage<'_>,
        _dir: Dir,
        _flow: &FlowInfo,
        facts: &AllFacts,
        _out: &mut Vec<Finding>,
    ) {
        let f = facts.topology;
        let Some(q) = msg.quoted.filter(|_| f.icmp != Icmp::None) else {
            return;
        };
        if f.icmp == Icmp::NotReported {
            self.icmp_not_reported += 1;
            return;
        }
        if f.icmp == Icmp::LateReply {
            // The conversation's client closed its port before the other side's reply came.
            self.late_replies += 1;
            self.icmp_not_reported += 1;
            return;
        }
        let key = IcmpKey {
            dst: (q.dst, q.proto, q.dport),
            v6: msg.v6,
            code: msg.code,
        };
        if !self.icmp.contains_key(&key) && self.icmp.len() >= MAX_ENDPOINTS {
            // The error is not grouped, but the connection's failed attempt is counted: its
            // per-flow half took it as recorded.
            self.untracked += 1;
            self.icmp_not_reported += 1;
            if f.icmp == Icmp::First {
                self.failure(key.dst, ts, Failure::Icmp, q.src, false);
            }
            return;
        }
        let g = self.icmp.entry(key).or_insert_with(|| IcmpGroup {
            seen: super::Seen::new((q.src, q.sport), ts),
            reporters: Vec::new(),
        });
        g.seen.note((q.src, q.sport), ts);
        let mut more = false;
        push_listed(&mut g.reporters, &mut more, from, MAX_REPORTERS_LISTED);
        // One failed attempt per connection, however many errors its packets drew.
        if f.icmp == Icmp::First {
            self.failure(key.dst, ts, Failure::Icmp, q.src, false);
        }
    }

    fn on_flow_end(&mut self, flow: &mut AFlow, reason: EndReason, out: &mut Vec<Finding>) {
        let server = flow.server();
        let ep = (server.0, flow.key.proto, server.1);
        // Refusals were recorded when the RST came; only an attempt with nothing at all back
        // is a failure here (a SYN/ACK the capture missed is not).
        if no_synack(flow, reason.input_end()) == Some(NoSynAck::Unanswered)
            && !flow.ext.topology.failure_recorded
        {
            self.failure(
                ep,
                flow.first_ts,
                Failure::Unanswered,
                flow.client().0,
                false,
            );
        }
        if let Some(ts) = flow.ext.topology.last_server_ts {
            let accepted = if flow.key.proto == 6 {
                flow.tcp.synack_ts.unwrap_or(flow.first_ts)
            } else {
                ts
            };
            self.success(ep, ts, accepted, flow.client(), out);
        }
    }

    fn on_tick(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        self.flush(Some(now), out);
        if self.next_aging.is_none_or(|t| now >= t) {
            self.next_aging = Some(now.plus(60 * NANOS_PER_SEC));
            self.age(now);
        }
    }

    fn finish(&mut self, _now: Timestamp, out: &mut Vec<Finding>) {
        self.flush(None, out);
    }

    fn stats(&self, out: &mut Vec<Counter>) {
        out.extend([
            ("topology.endpoints_vanished", self.vanished),
            ("topology.endpoints_returned", self.returned),
            ("topology.outages_below_min_attempts", self.blips),
            ("topology.icmp_unreachable_reported", self.icmp_reported),
            (
                "topology.icmp_unreachable_not_reported",
                self.icmp_not_reported,
            ),
            ("topology.icmp_unreachable_late_replies", self.late_replies),
            ("topology.dns_answers", self.dns_answers),
            ("topology.stale_dns_connections", self.stale_connections),
            ("topology.untracked", self.untracked),
            (
                "limits.topology_stale_reported_early",
                self.stale_reported_early,
            ),
            ("topology.forgotten", self.forgotten),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_more_than_half_full_forgets_what_is_old() {
        let mut t = Topology::new(&TopologySection::default(), None);
        let c: IpAddr = "10.0.0.1".parse().unwrap();
        let hour = 3_600 * NANOS_PER_SEC;
        let (old, recent) = (Timestamp(hour), Timestamp(3 * hour));
        let n = MAX_ENDPOINTS / 2 + 10;
        for i in 0..n {
            let ip = IpAddr::from((0x0a00_0000u32 + i as u32).to_be_bytes());
            let ts = if i % 2 == 0 { old } else { recent };
            let st = t.endpoints.entry((ip, 6, 80)).or_default();
            st.good = Some(Good { ts, client: (c, 1) });
        }
        // An old endpoint with an open outage is kept.
        let kept: IpAddr = "10.0.0.0".parse().unwrap();
        t.failure(
            (kept, 6, 80),
            Timestamp(hour + 1),
            Failure::Unanswered,
            c,
            false,
        );
        t.age(Timestamp(3 * hour + 1));
        assert_eq!(t.endpoints.len(), n / 2 + 1);
        assert!(t.endpoints.contains_key(&(kept, 6, 80)));
        assert_eq!(t.forgotten, (n - n / 2 - 1) as u64);
        // Below half full nothing is forgotten, however old.
        t.age(Timestamp(30 * hour));
        assert_eq!(t.endpoints.len(), n / 2 + 1);
    }

    #[test]
    fn icmp_codes_are_named() {
        assert_eq!(unreachable_meaning(false, 3), "port unreachable");
        assert_eq!(
            unreachable_meaning(false, 13),
            "communication administratively prohibited"
        );
        assert_eq!(unreachable_meaning(true, 3), "address unreachable");
        assert_eq!(unreachable_meaning(true, 4), "port unreachable");
    }
}
